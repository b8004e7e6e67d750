//! Failpoints: places where a crash test can make the gateway die as a
//! `kill -9` would, at the two moments that matter for paying once
//! (DESIGN.md, "Testing"):
//!
//! - `after_submitting_commit`: `submitting` is committed, the bank not yet called;
//! - `after_bank_answer`: the bank answered, the answer not yet committed.
//!
//! They are compiled in and off: only the environment variable
//! `BANKDIRECT_FAILPOINTS` turns one on, e.g.
//! `BANKDIRECT_FAILPOINTS=after_bank_answer=1` (crash the first time) or
//! `after_submitting_commit=0.05` (crash with probability 5 %). It is read
//! once at start; with it unset a failpoint is one map lookup on an empty map.

use std::{collections::HashMap, sync::OnceLock};

pub const AFTER_SUBMITTING_COMMIT: &str = "after_submitting_commit";
pub const AFTER_BANK_ANSWER: &str = "after_bank_answer";

static ARMED: OnceLock<HashMap<String, f64>> = OnceLock::new();

fn armed() -> &'static HashMap<String, f64> {
    ARMED.get_or_init(|| match std::env::var("BANKDIRECT_FAILPOINTS") {
        Ok(spec) => parse(&spec),
        Err(_) => HashMap::new(),
    })
}

/// `name=probability` pairs separated by commas; a bad pair is reported and
/// ignored (a failpoint is a test tool and must never stop a real start).
fn parse(spec: &str) -> HashMap<String, f64> {
    let mut map = HashMap::new();
    for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match pair.split_once('=').map(|(n, p)| (n.trim(), p.trim().parse::<f64>())) {
            Some((name, Ok(p))) if (0.0..=1.0).contains(&p) && [AFTER_SUBMITTING_COMMIT, AFTER_BANK_ANSWER].contains(&name) => {
                map.insert(name.to_owned(), p);
            }
            _ => eprintln!("BANKDIRECT_FAILPOINTS: ignoring {pair:?}; expected <failpoint>=<probability 0..1> with failpoint {AFTER_SUBMITTING_COMMIT} or {AFTER_BANK_ANSWER}"),
        }
    }
    if !map.is_empty() {
        eprintln!("failpoints armed: {map:?}");
    }
    map
}

/// Dies here, without unwinding or flushing anything, if the failpoint is
/// armed and its draw says so.
pub fn hit(name: &str) {
    let Some(probability) = armed().get(name) else {
        return;
    };
    let draw =
        (domain::RandomSource::next_u64(&domain::OsRandom) >> 11) as f64 / (1u64 << 53) as f64;
    if draw < *probability {
        eprintln!("failpoint {name}: crashing now");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_failpoints_and_ignores_the_rest() {
        let m =
            parse("after_bank_answer=1, after_submitting_commit=0.25,bogus=1,after_bank_answer=x");
        assert_eq!(m.get(AFTER_BANK_ANSWER), Some(&1.0));
        assert_eq!(m.get(AFTER_SUBMITTING_COMMIT), Some(&0.25));
        assert_eq!(m.len(), 2);
        assert!(parse("").is_empty());
    }
}
