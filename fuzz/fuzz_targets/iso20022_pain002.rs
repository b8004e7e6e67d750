//! Fuzzes `formats::iso20022::pain002::parse` (the payment status reports
//! banks send us, `.001.03` and `.001.12`) with arbitrary bytes. Beyond
//! "never panics", it checks that:
//!
//! - limits only refuse: a report that parses under tight limits parses
//!   identically under the default ones;
//! - a report that parses either fails to render in the version it was
//!   read as (parsing keeps codes rendering refuses) or renders to bytes
//!   that parse back to the same version and report.
//!
//! Run on the stable toolchain (no sanitizer), from the repository root:
//!
//! ```text
//! scripts/fuzz iso20022_pain002 60
//! ```
//!
//! libFuzzer writes new inputs into `corpus/iso20022_pain002` (gitignored)
//! and only reads the committed `seeds/iso20022_pain002`, which our
//! renderer wrote (`crates/formats/tests/iso20022_fuzz_seeds.rs`); the
//! dictionary is `iso20022_pain002.dict`.

#![no_main]

use formats::iso20022::pain002::{parse, parse_with_limits, render};
use libfuzzer_sys::fuzz_target;

#[path = "iso20022_common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let parsed = parse_with_limits(data, &common::fuzz_limits());
    if let Ok(tight) = parse_with_limits(data, &common::tight_limits()) {
        assert_eq!(
            Some(&tight),
            parsed.as_ref().ok(),
            "tight limits changed a result instead of refusing"
        );
    }
    let Ok((version, first)) = parsed else {
        return;
    };
    let Ok(bytes) = render(&first, version) else {
        return;
    };
    match parse(&bytes) {
        Ok(second) => assert_eq!(second, (version, first), "parse(render(r)) != r"),
        Err(error) => panic!("re-parsing our own rendering failed: {error}"),
    }
});
