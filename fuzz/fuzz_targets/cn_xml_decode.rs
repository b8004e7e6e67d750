//! Fuzzes `formats::cn_xml::decode` with arbitrary bytes under the default
//! limits, then every typed message parser on what decoded (responses as the
//! connector reads them, requests as the simulator reads them). Beyond "never
//! panics", it checks the codec's stability: a packet that decodes either
//! fails to encode cleanly (GBK cannot carry every GB18030 character) or
//! encodes to bytes that decode to the same packet.
//!
//! Run on the stable toolchain (no sanitizer), from `fuzz/`:
//!
//! ```text
//! mkdir -p corpus/cn_xml_decode
//! cargo fuzz run cn_xml_decode -s none corpus/cn_xml_decode seeds/cn_xml_decode \
//!     -- -max_total_time=60 -dict=cn_xml.dict
//! ```
//!
//! libFuzzer writes new inputs into the first corpus directory (gitignored)
//! and only reads the committed `seeds/`, which are the fixtures of
//! `tests/data/cn-xml/` plus `regression_*` inputs that once failed here.

#![no_main]

use formats::cn_xml::{decode, encode, messages, EncodeError, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let Ok(first) = decode(data, &limits) else {
        return;
    };
    // Typed parsing of untrusted packets: errors are fine, panics are not.
    let _ = messages::parse_list_accounts(&first);
    let _ = messages::parse_balances(&first);
    let _ = messages::parse_balance_request(&first);
    let _ = messages::parse_history(&first);
    let _ = messages::parse_history_request(&first);
    let _ = messages::parse_day_balances(&first);
    let _ = messages::parse_day_balance_request(&first);
    let _ = messages::parse_submit_payment(&first);
    let _ = messages::parse_submit_payment_request(&first);
    let _ = messages::parse_query_payment(&first);
    let _ = messages::parse_query_payment_request(&first);
    let _ = messages::parse_submit_batch_request(&first);
    let _ = messages::parse_submit_batch(messages::BatchFunction::Supplier, &first);
    let _ = messages::parse_submit_batch(messages::BatchFunction::Payroll, &first);
    let _ = messages::parse_query_batch(&first);
    let _ = messages::parse_query_batch_request(&first);
    let bytes = match encode(&first) {
        Ok(bytes) => bytes,
        Err(EncodeError::Unencodable { .. }) => return,
        Err(other) => panic!("a decoded packet must be encodable apart from GBK gaps: {other}"),
    };
    // Escaping can make the rendering longer than the input was, so the
    // byte limit must not be what stops the second decode.
    let relaxed = Limits {
        max_bytes: bytes.len().max(limits.max_bytes),
        ..limits
    };
    match decode(&bytes, &relaxed) {
        Ok(second) => assert_eq!(second, first, "decode(encode(p)) != p"),
        Err(error) => panic!("re-decoding our own encoding failed: {error}"),
    }
});
