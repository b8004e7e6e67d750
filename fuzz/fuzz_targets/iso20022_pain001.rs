//! Fuzzes `formats::iso20022::pain001::parse` (the bank simulator's side of
//! the credit transfer initiation) with arbitrary bytes under the default
//! limits. Beyond "never panics", it checks the codec's stability: a message
//! that parses either fails to render (parsing is tolerant where rendering
//! is strict, e.g. `CreDtTm` is kept as text) or renders to bytes that parse
//! back to the same message.
//!
//! Run on the stable toolchain (no sanitizer), from the repository root:
//!
//! ```text
//! scripts/fuzz iso20022_pain001 60
//! ```
//!
//! libFuzzer writes new inputs into `corpus/iso20022_pain001` (gitignored)
//! and only reads the committed `seeds/iso20022_pain001`; the dictionary is
//! `iso20022_pain001.dict`.

#![no_main]

use formats::iso20022::pain001::{parse, render};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Untrusted bytes: errors are fine, panics are not.
    let Ok(first) = parse(data) else {
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
