//! Fuzzes the camt.053 statement reader (`.001.08` and `.001.02`) with
//! arbitrary bytes: `StatementReader` is driven over the bytes until it
//! ends or errors, once straight from the slice and once through a 7-byte
//! `BufReader` (so that tags, text and UTF-8 sequences straddle buffer
//! refills), and `camt053::parse_any` reads the whole document. Beyond
//! "never panics", it checks that:
//!
//! - the reader makes progress: it never yields more items than there are
//!   input bytes, and yields nothing after its end or its first error;
//! - the buffer size changes nothing: same items, same version, and an
//!   error in both or in neither;
//! - `parse_any` agrees with the stream: it succeeds exactly when the
//!   stream ended cleanly after a group header, with the version the
//!   reader told;
//! - limits only refuse: a statement that parses under tight limits parses
//!   identically under the default ones;
//! - a statement that parses either fails to render in its version (`.02`
//!   cannot carry everything `.08` can, and parsing is tolerant) or renders
//!   to bytes that parse back to the same version and statement.
//!
//! Run on the stable toolchain (no sanitizer), from the repository root:
//!
//! ```text
//! scripts/fuzz iso20022_camt053 60
//! ```
//!
//! libFuzzer writes new inputs into `corpus/iso20022_camt053` (gitignored)
//! and only reads the committed `seeds/iso20022_camt053` (the `rendered_*`
//! seeds, `.02` among them, are written by our renderer:
//! `crates/formats/tests/iso20022_fuzz_seeds.rs`); the dictionary is
//! `iso20022_camt053.dict`.

#![no_main]

use std::io::BufReader;

use formats::iso20022::camt053::{
    parse_any, parse_any_with_limits, render_version, StatementItem, StatementReader,
};
use libfuzzer_sys::fuzz_target;

#[path = "iso20022_common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let limits = common::fuzz_limits();
    let mut reader = StatementReader::new(data, limits);
    let (items, error) = common::drain(|| reader.next_item(), data.len());
    let mut small = StatementReader::new(BufReader::with_capacity(7, data), limits);
    let (small_items, small_error) = common::drain(|| small.next_item(), data.len());
    assert_eq!(small_items, items, "a 7-byte buffer changed the items");
    assert_eq!(
        small_error.is_some(),
        error.is_some(),
        "a 7-byte buffer changed the outcome: {error:?} vs {small_error:?}"
    );
    if !items.is_empty() {
        assert!(reader.version().is_some(), "items before the version");
        assert_eq!(
            small.version(),
            reader.version(),
            "a 7-byte buffer changed the version"
        );
    }

    let parsed = parse_any_with_limits(data, &limits);
    let stream_ok = error.is_none() && matches!(items.first(), Some(StatementItem::Group(_)));
    assert_eq!(
        parsed.is_ok(),
        stream_ok,
        "parse_any and the stream disagree: {parsed:?} vs {error:?}"
    );
    if let Ok(tight) = parse_any_with_limits(data, &common::tight_limits()) {
        assert_eq!(
            Some(&tight),
            parsed.as_ref().ok(),
            "tight limits changed a result instead of refusing"
        );
    }
    let Ok((version, first)) = parsed else {
        return;
    };
    assert_eq!(
        Some(version),
        reader.version(),
        "parse_any and the reader disagree on the version"
    );
    let Ok(bytes) = render_version(&first, version) else {
        return;
    };
    match parse_any(&bytes) {
        Ok(second) => assert_eq!(second, (version, first), "parse(render(s)) != s"),
        Err(error) => panic!("re-parsing our own rendering failed: {error}"),
    }
});
