//! Fuzzes the camt.053 statement reader with arbitrary bytes under the
//! default limits: `StatementReader` is driven over the bytes until it ends
//! or errors, once straight from the slice and once through a 7-byte
//! `BufReader` (so that tags, text and UTF-8 sequences straddle buffer
//! refills), and `camt053::parse` reads the whole document. Beyond "never
//! panics", it checks that:
//!
//! - the reader makes progress: it never yields more items than there are
//!   input bytes, and yields nothing after its end or its first error;
//! - the buffer size changes nothing: same items, and an error in both or
//!   in neither;
//! - `parse` agrees with the stream: it succeeds exactly when the stream
//!   ended cleanly after a group header;
//! - a statement that parses either fails to render or renders to bytes
//!   that parse back to the same statement.
//!
//! Run on the stable toolchain (no sanitizer), from the repository root:
//!
//! ```text
//! scripts/fuzz iso20022_camt053 60
//! ```
//!
//! libFuzzer writes new inputs into `corpus/iso20022_camt053` (gitignored)
//! and only reads the committed `seeds/iso20022_camt053`; the dictionary is
//! `iso20022_camt053.dict`.

#![no_main]

use std::io::{BufRead, BufReader};

use formats::iso20022::camt053::{parse, render, StatementItem, StatementReader};
use formats::iso20022::{Limits, ParseError};
use libfuzzer_sys::fuzz_target;

/// Every item the reader yields, and the error that stopped it, if any.
fn stream<R: BufRead>(input: R, max_items: usize) -> (Vec<StatementItem>, Option<ParseError>) {
    let mut reader = StatementReader::new(input, Limits::default());
    let mut items = Vec::new();
    loop {
        match reader.next_item() {
            Ok(Some(item)) => {
                items.push(item);
                assert!(
                    items.len() <= max_items,
                    "more items than input bytes: the reader does not make progress"
                );
            }
            Ok(None) => {
                assert!(
                    matches!(reader.next_item(), Ok(None)),
                    "the reader yielded something after its end"
                );
                return (items, None);
            }
            Err(error) => {
                assert!(
                    matches!(reader.next_item(), Ok(None)),
                    "the reader yielded something after its first error"
                );
                return (items, Some(error));
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (items, error) = stream(data, data.len());
    let (small_items, small_error) = stream(BufReader::with_capacity(7, data), data.len());
    assert_eq!(small_items, items, "a 7-byte buffer changed the items");
    assert_eq!(
        small_error.is_some(),
        error.is_some(),
        "a 7-byte buffer changed the outcome: {error:?} vs {small_error:?}"
    );

    let parsed = parse(data);
    let stream_ok = error.is_none() && matches!(items.first(), Some(StatementItem::Group(_)));
    assert_eq!(
        parsed.is_ok(),
        stream_ok,
        "parse and the stream disagree: {parsed:?} vs {error:?}"
    );
    let Ok(first) = parsed else {
        return;
    };
    let Ok(bytes) = render(&first) else {
        return;
    };
    match parse(&bytes) {
        Ok(second) => assert_eq!(second, first, "parse(render(s)) != s"),
        Err(error) => panic!("re-parsing our own rendering failed: {error}"),
    }
});
