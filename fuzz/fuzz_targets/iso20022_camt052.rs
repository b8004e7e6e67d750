//! Fuzzes the camt.052.001.08 intraday account report reader with
//! arbitrary bytes. `ReportReader` is driven over the bytes until it ends
//! or errors, once straight from the slice and once through a 7-byte
//! `BufReader` (so that tags, text and UTF-8 sequences straddle buffer
//! refills), and `camt052::parse` reads the whole document. Beyond "never
//! panics", it checks that:
//!
//! - the reader makes progress: it never yields more items than there are
//!   input bytes, and yields nothing after its end or its first error;
//! - the buffer size changes nothing: same items, and an error in both or
//!   in neither;
//! - `parse` agrees with the stream: it succeeds exactly when the stream
//!   ended cleanly after a group header;
//! - limits only refuse: a document that parses under tight limits parses
//!   identically under the default ones;
//! - a document that parses either fails to render or renders to bytes
//!   that parse back to the same document.
//!
//! Run on the stable toolchain (no sanitizer), from the repository root:
//!
//! ```text
//! scripts/fuzz iso20022_camt052 60
//! ```
//!
//! libFuzzer writes new inputs into `corpus/iso20022_camt052` (gitignored)
//! and only reads the committed `seeds/iso20022_camt052`, which our
//! renderer wrote (`crates/formats/tests/iso20022_fuzz_seeds.rs`); the
//! dictionary is `iso20022_camt052.dict`.

#![no_main]

use std::io::BufReader;

use formats::iso20022::camt052::{parse, parse_with_limits, render, ReportItem, ReportReader};
use libfuzzer_sys::fuzz_target;

#[path = "iso20022_common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let limits = common::fuzz_limits();
    let mut reader = ReportReader::new(data, limits);
    let (items, error) = common::drain(|| reader.next_item(), data.len());
    let mut small = ReportReader::new(BufReader::with_capacity(7, data), limits);
    let (small_items, small_error) = common::drain(|| small.next_item(), data.len());
    assert_eq!(small_items, items, "a 7-byte buffer changed the items");
    assert_eq!(
        small_error.is_some(),
        error.is_some(),
        "a 7-byte buffer changed the outcome: {error:?} vs {small_error:?}"
    );

    let parsed = parse_with_limits(data, &limits);
    let stream_ok = error.is_none() && matches!(items.first(), Some(ReportItem::Group(_)));
    assert_eq!(
        parsed.is_ok(),
        stream_ok,
        "parse and the stream disagree: {parsed:?} vs {error:?}"
    );
    if let Ok(tight) = parse_with_limits(data, &common::tight_limits()) {
        assert_eq!(
            Some(&tight),
            parsed.as_ref().ok(),
            "tight limits changed a result instead of refusing"
        );
    }
    let Ok(first) = parsed else {
        return;
    };
    let Ok(bytes) = render(&first) else {
        return;
    };
    match parse(&bytes) {
        Ok(second) => assert_eq!(second, first, "parse(render(m)) != m"),
        Err(error) => panic!("re-parsing our own rendering failed: {error}"),
    }
});
