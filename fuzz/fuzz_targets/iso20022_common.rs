//! Shared by the ISO 20022 fuzz targets, each of which includes it with
//! `#[path = "iso20022_common.rs"] mod common;` (it is no target itself).

use formats::iso20022::{Limits, ParseError};

/// Limits small enough that fuzzed inputs reach every one of them. Limits
/// only ever refuse: a parse that succeeds under these must give exactly
/// what the default limits give.
pub fn tight_limits() -> Limits {
    Limits {
        max_bytes: 2048,
        max_depth: 12,
        max_text_bytes: 48,
        max_event_bytes: 256,
        max_elements: 48,
    }
}

/// Limits for the fuzzed parsers: the defaults, with the whole-input bound
/// set explicitly (libFuzzer's inputs are far smaller).
pub fn fuzz_limits() -> Limits {
    Limits {
        max_bytes: 1024 * 1024,
        ..Limits::default()
    }
}

/// Every item a streaming reader yields until its end or first error,
/// checking that it makes progress (never more items than `max_items`,
/// the input's length) and stays finished afterwards.
pub fn drain<T>(
    mut next: impl FnMut() -> Result<Option<T>, ParseError>,
    max_items: usize,
) -> (Vec<T>, Option<ParseError>) {
    let mut items = Vec::new();
    loop {
        match next() {
            Ok(Some(item)) => {
                items.push(item);
                assert!(
                    items.len() <= max_items,
                    "more items than input bytes: the reader does not make progress"
                );
            }
            Ok(None) => {
                assert!(
                    matches!(next(), Ok(None)),
                    "the reader yielded something after its end"
                );
                return (items, None);
            }
            Err(error) => {
                assert!(
                    matches!(next(), Ok(None)),
                    "the reader yielded something after its first error"
                );
                return (items, Some(error));
            }
        }
    }
}
