//! Fault injection: what a simulated bank should do wrong, and when.
//!
//! A test (from Rust, through [`FaultHandle`]) or a person (through the
//! control API) adds [`FaultRule`]s. Each incoming packet takes the first
//! rule that matches its function; a rule with a `remaining` count is
//! used up after that many packets. Faults are about the answer: the
//! simulator still reads the request and, for the functions it has, works
//! out the normal answer before spoiling it, so a fault shows what a client
//! sees when the bank may have acted.
//!
//! Payments make "when" matter: a fault *before* execution spoils the
//! answer without touching the ledger; a fault *after* execution lets the
//! instruction execute first. The batch submissions (`SubmitBatch`,
//! `SubmitPayroll`) are payment-submitting functions in exactly the same
//! way: "after" lets the whole chunk execute; rules match them by their own
//! function code (or by none). `HttpError`, `Reset` take a [`When`];
//! `ResponseLost`, `Garbled`, `Truncated`, `WrongEncoding`, `Oversized`,
//! `TornBody` and `WrongSignature` always act after (the answer is computed, then spoiled);
//! `Delay`, `HttpStatus` and `ErrorCode` (e.g. `SYSTEM_BUSY`, the family's
//! rate-limit answer) always act before. For a read function "after" is the
//! same as "before". A refused connection is not a fault here: tests use a
//! closed port, which is what a refusal is.
//!
//! Besides these explicit rules, [`RandomFaults`] draw a fault for a share
//! of packets from a seeded RNG, so that a crash test can ask for "10 %
//! after execution, 5 % before" and replay a failing run from its seed
//! (under concurrency, which packet gets which draw follows arrival order).
//!
//! Every fault's size and duration is bounded ([`Fault::validate`]) so that
//! a typo in a demo cannot make the simulator allocate gigabytes or hang for
//! hours.
//!
//! The iso20022 front ([`crate::iso20022`]) takes faults the same way, by
//! order type (`CCT`, `PSR`, `C52`, `C53`, `C54`, `HTD`) instead of
//! function code; `CCT` is its payment-submitting order type.

use std::sync::{Arc, Mutex, MutexGuard};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::SimError;

/// Whether a fault acts before or after the bank executes the request.
#[derive(serde::Deserialize, serde::Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum When {
    #[default]
    Before,
    After,
}

/// Longest injectable delay, in milliseconds.
pub const MAX_DELAY_MS: u64 = 600_000;
/// Largest injectable oversized answer, in bytes.
pub const MAX_OVERSIZED_BYTES: usize = 64 * 1024 * 1024;
/// Most rules held at once.
pub const MAX_FAULT_RULES: usize = 64;
/// Longest function name, error code or message accepted in a rule, in bytes.
pub const MAX_RULE_TEXT_BYTES: usize = 256;

/// One way of answering badly.
#[derive(serde::Deserialize, serde::Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Wait this long, then answer normally.
    Delay { ms: u64 },
    /// Answer with this HTTP status and no packet, before execution (the
    /// same as `HttpError` with `when: before`; kept for existing rules).
    HttpStatus { status: u16 },
    /// Answer with this HTTP status and no packet, before or after the
    /// request is executed (e.g. 500 after: the payment is made, the client
    /// sees a 500; 429 before: a rate limit).
    HttpError {
        status: u16,
        #[serde(default)]
        when: When,
    },
    /// Close the connection without any answer, before or after execution.
    /// The client cannot tell this from a TCP reset.
    Reset {
        #[serde(default)]
        when: When,
    },
    /// Execute, then hold the connection without answering for `hold_ms`
    /// (0: not at all), then close it: the answer is lost. A hold longer
    /// than the client's timeout makes the client time out.
    ResponseLost {
        #[serde(default)]
        hold_ms: u64,
    },
    /// Answer with a well-formed packet whose request status is this error.
    ErrorCode { code: String, message: String },
    /// Answer 200 with bytes that are not a packet.
    Garbled,
    /// Answer 200 with the first half of a valid packet.
    Truncated,
    /// Answer 200 with a valid packet that has a byte which is not GB18030.
    WrongEncoding,
    /// Answer 200 with a valid packet padded to at least this many bytes.
    Oversized { bytes: usize },
    /// Send the status and headers and part of the body, then break the
    /// connection.
    TornBody,
    /// Execute and answer as usual, but sign the answer with a key that is
    /// not the bank's (cn-xml's `X-Signature`): a client that verifies must
    /// not believe it, though the request took effect. iso20022 answers
    /// carry no signature (mutual TLS authenticates the bank), so there the
    /// answer is sent unchanged.
    WrongSignature,
    /// In a balance answer, fail the record of this account. The family has
    /// no record-level code field: the message goes into `RECMSG` and the
    /// code into the simulator's log only.
    RecordFailure {
        acc_no: String,
        code: String,
        message: String,
    },
    /// In a `QueryHistory` answer for this account, silently leave out the
    /// last booked entry of the most recent day in the asked range that has
    /// booked entries, while `QueryDayBalance` keeps reporting the true
    /// balances: that day's opening balance plus the reported entries no
    /// longer gives its closing balance. Taken by every `QueryHistory`
    /// packet (a page of another account uses it up without effect), so a
    /// rule meant for a whole paging session is `always` or counts pages.
    ContinuityBreak { acc_no: String },
    /// In a `QueryHistory` answer, hand out a `CONTKEY` that leads to the
    /// same page again: a client following keys gets the page twice (the
    /// key repeats, or, for the first page, the entries do). With
    /// `remaining` 1 the page after the repeat continues normally.
    DuplicatePage,
}

impl Fault {
    /// Checks the fault's bounds; the error names the field and its limit.
    pub fn validate(&self) -> Result<(), SimError> {
        let invalid = |message: String| Err(SimError::InvalidFault { message });
        match self {
            Fault::Delay { ms } if *ms > MAX_DELAY_MS => {
                invalid(format!("delay ms is {ms}; expected at most {MAX_DELAY_MS}"))
            }
            Fault::HttpStatus { status } | Fault::HttpError { status, .. }
                if !(100..=599).contains(status) =>
            {
                invalid(format!(
                    "http status is {status}; expected an HTTP status code 100..=599"
                ))
            }
            Fault::ResponseLost { hold_ms } if *hold_ms > MAX_DELAY_MS => invalid(format!(
                "response_lost hold_ms is {hold_ms}; expected at most {MAX_DELAY_MS}"
            )),
            Fault::ErrorCode { code, message } => {
                if code.is_empty() || code == formats::cn_xml::messages::RET_OK {
                    invalid(format!(
                        "error_code code is {code:?}; expected a non-empty code other than the success code"
                    ))
                } else {
                    check_text("error_code code", code)?;
                    check_text("error_code message", message)
                }
            }
            Fault::Oversized { bytes } if *bytes > MAX_OVERSIZED_BYTES => invalid(format!(
                "oversized bytes is {bytes}; expected at most {MAX_OVERSIZED_BYTES}"
            )),
            Fault::RecordFailure {
                acc_no,
                code,
                message,
            } => {
                if acc_no.is_empty() {
                    return invalid(
                        "record_failure acc_no is empty; expected an account number".into(),
                    );
                }
                check_text("record_failure acc_no", acc_no)?;
                check_text("record_failure code", code)?;
                check_text("record_failure message", message)
            }
            Fault::ContinuityBreak { acc_no } => {
                if acc_no.is_empty() {
                    return invalid(
                        "continuity_break acc_no is empty; expected an account number".into(),
                    );
                }
                check_text("continuity_break acc_no", acc_no)
            }
            _ => Ok(()),
        }
    }
}

fn check_text(field: &str, text: &str) -> Result<(), SimError> {
    if text.len() > MAX_RULE_TEXT_BYTES {
        Err(SimError::InvalidFault {
            message: format!(
                "{field} is {} bytes long; expected at most {MAX_RULE_TEXT_BYTES}",
                text.len()
            ),
        })
    } else {
        Ok(())
    }
}

/// A fault and the packets it applies to.
#[derive(serde::Deserialize, serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct FaultRule {
    #[serde(flatten)]
    pub fault: Fault,
    /// Only packets with this function code (`FUNC`); `None` matches every
    /// packet, including one that does not decode.
    #[serde(default)]
    pub function: Option<String>,
    /// How many packets the rule still applies to; `None` until cleared.
    #[serde(default)]
    pub remaining: Option<u32>,
}

impl FaultRule {
    /// A rule for every packet until cleared.
    pub fn always(fault: Fault) -> FaultRule {
        FaultRule {
            fault,
            function: None,
            remaining: None,
        }
    }

    /// A rule for the next `count` matching packets.
    pub fn times(fault: Fault, count: u32) -> FaultRule {
        FaultRule {
            fault,
            function: None,
            remaining: Some(count),
        }
    }

    /// Restricts the rule to one function code.
    pub fn for_function(mut self, function: &str) -> FaultRule {
        self.function = Some(function.to_string());
        self
    }

    fn matches(&self, function: Option<&str>) -> bool {
        let function_matches = match &self.function {
            None => true,
            Some(wanted) => Some(wanted.as_str()) == function,
        };
        // A record failure only means something in a balance answer, and the
        // history faults only in a history answer; they must not be used up
        // by a packet they cannot spoil.
        // On the iso20022 front the same faults spoil the order types that
        // carry the same data: C52 (balances), C53 (statements), and the
        // paged reports.
        use crate::iso20022::{ORDER_C52, ORDER_C53, ORDER_C54};
        use formats::cn_xml::messages::{FUNC_QUERY_BALANCE, FUNC_QUERY_HISTORY};
        let fault_applies = match self.fault {
            Fault::RecordFailure { .. } => {
                matches!(function, Some(FUNC_QUERY_BALANCE | ORDER_C52))
            }
            Fault::ContinuityBreak { .. } => {
                matches!(function, Some(FUNC_QUERY_HISTORY | ORDER_C53))
            }
            Fault::DuplicatePage => {
                matches!(
                    function,
                    Some(FUNC_QUERY_HISTORY | ORDER_C52 | ORDER_C53 | ORDER_C54)
                )
            }
            _ => true,
        };
        function_matches && fault_applies
    }
}

/// Most rules in a [`RandomFaults`] set.
pub const MAX_RANDOM_RULES: usize = 16;

/// A fault drawn at random for `percent` % of the packets of `function`
/// (all packets when `None`).
#[derive(serde::Deserialize, serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct RandomFaultRule {
    #[serde(flatten)]
    pub fault: Fault,
    #[serde(default)]
    pub function: Option<String>,
    /// 1..=100; the percents of the rules matching one function add up to at
    /// most 100.
    pub percent: u8,
}

/// Faults drawn per packet from an RNG seeded with `seed`: one draw in
/// 0..100 per packet that no explicit rule took, then the first rule whose
/// cumulative percent (over the rules matching the packet) exceeds it.
#[derive(serde::Deserialize, serde::Serialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct RandomFaults {
    pub seed: u64,
    #[serde(default)]
    pub rules: Vec<RandomFaultRule>,
}

impl RandomFaults {
    /// Checks every fault and that no function's percents exceed 100.
    pub fn validate(&self) -> Result<(), SimError> {
        if self.rules.len() > MAX_RANDOM_RULES {
            return Err(SimError::InvalidFault {
                message: format!(
                    "{} random rules; expected at most {MAX_RANDOM_RULES}",
                    self.rules.len()
                ),
            });
        }
        for rule in &self.rules {
            rule.fault.validate()?;
            if !(1..=100).contains(&rule.percent) {
                return Err(SimError::InvalidFault {
                    message: format!("random rule percent is {}; expected 1..=100", rule.percent),
                });
            }
            if let Some(function) = &rule.function {
                check_text("function", function)?;
            }
            let sum: u32 = self
                .rules
                .iter()
                .filter(|other| other.function.is_none() || other.function == rule.function)
                .map(|other| u32::from(other.percent))
                .sum();
            if sum > 100 {
                return Err(SimError::InvalidFault {
                    message: format!(
                        "random rules for {:?} add up to {sum} %; expected at most 100",
                        rule.function
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Random faults in force, with their RNG.
#[derive(Debug)]
struct RandomState {
    config: RandomFaults,
    rng: ChaCha20Rng,
}

/// Adds and clears the fault rules of one running simulator. Cheap to clone;
/// all clones act on the same rules.
#[derive(Clone, Debug, Default)]
pub struct FaultHandle {
    rules: Arc<Mutex<Vec<FaultRule>>>,
    random: Arc<Mutex<Option<RandomState>>>,
}

impl FaultHandle {
    pub fn new() -> FaultHandle {
        FaultHandle::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<FaultRule>> {
        // A rule list is valid after any partial update, so a poisoned lock
        // is recovered instead of failing every later request.
        self.rules
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a rule after the existing ones (earlier rules win). A rule out of
    /// bounds is not added and the reason is logged at error level; tests
    /// that want the reason use [`FaultHandle::try_inject`].
    pub fn inject(&self, rule: FaultRule) {
        if let Err(error) = self.try_inject(rule) {
            tracing::error!(%error, "fault rule refused");
        }
    }

    /// Adds a rule after the existing ones, or says why it is refused.
    pub fn try_inject(&self, rule: FaultRule) -> Result<(), SimError> {
        rule.fault.validate()?;
        if rule.remaining == Some(0) {
            return Err(SimError::InvalidFault {
                message: "remaining is 0; expected at least 1, or none for a rule until cleared"
                    .into(),
            });
        }
        if let Some(function) = &rule.function {
            if function.is_empty() {
                return Err(SimError::InvalidFault {
                    message: "function is empty; expected a function code such as QueryBalance"
                        .into(),
                });
            }
            check_text("function", function)?;
        }
        let mut rules = self.lock();
        if rules.len() >= MAX_FAULT_RULES {
            return Err(SimError::InvalidFault {
                message: format!(
                    "{} rules are already active; expected at most {MAX_FAULT_RULES} (clear them first)",
                    rules.len()
                ),
            });
        }
        tracing::info!(fault = ?rule.fault, function = ?rule.function, remaining = ?rule.remaining, "fault injected");
        rules.push(rule);
        Ok(())
    }

    /// Removes every rule, random ones included.
    pub fn clear(&self) {
        self.lock().clear();
        self.clear_random();
        tracing::info!("faults cleared");
    }

    fn lock_random(&self) -> MutexGuard<'_, Option<RandomState>> {
        self.random.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the random faults (and restarts their RNG from the seed).
    pub fn set_random(&self, config: RandomFaults) -> Result<(), SimError> {
        config.validate()?;
        tracing::info!(
            seed = config.seed,
            rules = config.rules.len(),
            "random faults set"
        );
        let rng = ChaCha20Rng::seed_from_u64(config.seed);
        *self.lock_random() = Some(RandomState { config, rng });
        Ok(())
    }

    /// The random faults in force, if any.
    pub fn random(&self) -> Option<RandomFaults> {
        self.lock_random().as_ref().map(|s| s.config.clone())
    }

    pub fn clear_random(&self) {
        *self.lock_random() = None;
    }

    /// The active rules, first-matching first.
    pub fn rules(&self) -> Vec<FaultRule> {
        self.lock().clone()
    }

    /// Takes the fault for a packet with this function (`None` when the
    /// packet did not decode), using up one of the rule's `remaining`.
    pub(crate) fn take(&self, function: Option<&str>) -> Option<Fault> {
        self.take_rule(function)
            .or_else(|| self.draw_random(function))
    }

    fn draw_random(&self, function: Option<&str>) -> Option<Fault> {
        let mut guard = self.lock_random();
        let state = guard.as_mut()?;
        let draw: u32 = state.rng.gen_range(0..100);
        let mut cumulative = 0u32;
        for rule in &state.config.rules {
            let applies = FaultRule {
                fault: rule.fault.clone(),
                function: rule.function.clone(),
                remaining: None,
            }
            .matches(function);
            if !applies {
                continue;
            }
            cumulative += u32::from(rule.percent);
            if draw < cumulative {
                return Some(rule.fault.clone());
            }
        }
        None
    }

    fn take_rule(&self, function: Option<&str>) -> Option<Fault> {
        let mut rules = self.lock();
        let position = rules.iter().position(|rule| rule.matches(function))?;
        let rule = &mut rules[position];
        let fault = rule.fault.clone();
        match rule.remaining {
            Some(left) if left <= 1 => {
                rules.remove(position);
            }
            Some(left) => rule.remaining = Some(left - 1),
            None => {}
        }
        Some(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_json_is_flat() {
        let rule: FaultRule = serde_json::from_str(
            r#"{"kind":"delay","ms":1500,"function":"QueryBalance","remaining":2}"#,
        )
        .unwrap();
        assert_eq!(
            rule,
            FaultRule::times(Fault::Delay { ms: 1500 }, 2).for_function("QueryBalance")
        );
        let rule: FaultRule = serde_json::from_str(r#"{"kind":"torn_body"}"#).unwrap();
        assert_eq!(rule, FaultRule::always(Fault::TornBody));
        let back =
            serde_json::to_value(FaultRule::always(Fault::HttpStatus { status: 503 })).unwrap();
        assert_eq!(back["kind"], "http_status");
        assert_eq!(back["status"], 503);
    }

    #[test]
    fn first_matching_rule_wins_and_is_used_up() {
        let faults = FaultHandle::new();
        faults
            .try_inject(FaultRule::times(Fault::Garbled, 1).for_function("ListAccounts"))
            .unwrap();
        faults
            .try_inject(FaultRule::times(Fault::Truncated, 2))
            .unwrap();

        assert_eq!(faults.take(Some("QueryBalance")), Some(Fault::Truncated));
        assert_eq!(faults.take(Some("ListAccounts")), Some(Fault::Garbled));
        assert_eq!(faults.take(Some("ListAccounts")), Some(Fault::Truncated));
        assert_eq!(faults.take(Some("ListAccounts")), None);
        assert!(faults.rules().is_empty());
    }

    #[test]
    fn record_failure_waits_for_a_balance_query() {
        let faults = FaultHandle::new();
        let fault = Fault::RecordFailure {
            acc_no: "755900012310001".into(),
            code: "E1".into(),
            message: "账户冻结".into(),
        };
        faults
            .try_inject(FaultRule::times(fault.clone(), 1))
            .unwrap();
        assert_eq!(faults.take(Some("ListAccounts")), None);
        assert_eq!(faults.take(None), None);
        assert_eq!(faults.take(Some("QueryBalance")), Some(fault));
    }

    #[test]
    fn history_faults_wait_for_a_history_query() {
        let faults = FaultHandle::new();
        let rule: FaultRule =
            serde_json::from_str(r#"{"kind":"continuity_break","acc_no":"755900012310001"}"#)
                .unwrap();
        faults.try_inject(rule).unwrap();
        let rule: FaultRule =
            serde_json::from_str(r#"{"kind":"duplicate_page","remaining":1}"#).unwrap();
        faults.try_inject(rule).unwrap();
        assert_eq!(faults.take(Some("QueryBalance")), None);
        assert_eq!(faults.take(Some("QueryDayBalance")), None);
        assert_eq!(
            faults.take(Some("QueryHistory")),
            Some(Fault::ContinuityBreak {
                acc_no: "755900012310001".into()
            })
        );
        faults.clear();
        faults
            .try_inject(FaultRule::times(Fault::DuplicatePage, 1))
            .unwrap();
        assert_eq!(
            faults.take(Some("QueryHistory")),
            Some(Fault::DuplicatePage)
        );
        assert_eq!(faults.take(Some("QueryHistory")), None);
        assert!(faults
            .try_inject(FaultRule::always(Fault::ContinuityBreak {
                acc_no: String::new()
            }))
            .is_err());
    }

    #[test]
    fn when_defaults_to_before_and_reads_after() {
        let rule: FaultRule =
            serde_json::from_str(r#"{"kind":"http_error","status":500,"when":"after"}"#).unwrap();
        assert_eq!(
            rule.fault,
            Fault::HttpError {
                status: 500,
                when: When::After
            }
        );
        let rule: FaultRule = serde_json::from_str(r#"{"kind":"reset"}"#).unwrap();
        assert_eq!(rule.fault, Fault::Reset { when: When::Before });
    }

    #[test]
    fn random_faults_are_reproducible_and_near_their_share() {
        let config: RandomFaults = serde_json::from_str(
            r#"{"seed":7,"rules":[
                {"kind":"http_error","status":500,"when":"after","percent":10,"function":"SubmitPayment"},
                {"kind":"reset","when":"before","percent":5,"function":"SubmitPayment"}]}"#,
        )
        .unwrap();
        let run = || {
            let faults = FaultHandle::new();
            faults.set_random(config.clone()).unwrap();
            (0..2000)
                .map(|_| faults.take(Some("SubmitPayment")))
                .collect::<Vec<_>>()
        };
        let first = run();
        assert_eq!(first, run(), "same seed, same draws");
        let after = first
            .iter()
            .filter(|f| matches!(f, Some(Fault::HttpError { .. })))
            .count();
        let before = first
            .iter()
            .filter(|f| matches!(f, Some(Fault::Reset { .. })))
            .count();
        assert!((150..=250).contains(&after), "{after}");
        assert!((60..=140).contains(&before), "{before}");
        let faults = FaultHandle::new();
        faults.set_random(config.clone()).unwrap();
        assert!((0..200).all(|_| faults.take(Some("QueryPayment")).is_none()));
        let mut over = config;
        over.rules[0].percent = 96;
        assert!(faults.set_random(over).is_err());
    }

    #[test]
    fn out_of_bounds_rules_are_refused() {
        let faults = FaultHandle::new();
        for rule in [
            FaultRule::always(Fault::Delay {
                ms: MAX_DELAY_MS + 1,
            }),
            FaultRule::always(Fault::HttpStatus { status: 42 }),
            FaultRule::always(Fault::Oversized {
                bytes: MAX_OVERSIZED_BYTES + 1,
            }),
            FaultRule::always(Fault::ErrorCode {
                code: "0".into(),
                message: String::new(),
            }),
            FaultRule::times(Fault::Garbled, 0),
            FaultRule::always(Fault::Garbled).for_function(""),
        ] {
            let err = faults.try_inject(rule.clone()).unwrap_err();
            assert!(matches!(err, SimError::InvalidFault { .. }), "{rule:?}");
        }
        faults.inject(FaultRule::always(Fault::HttpStatus { status: 42 }));
        assert!(faults.rules().is_empty(), "inject drops a refused rule");
        for _ in 0..MAX_FAULT_RULES {
            faults
                .try_inject(FaultRule::always(Fault::Garbled))
                .unwrap();
        }
        assert!(faults
            .try_inject(FaultRule::always(Fault::Garbled))
            .is_err());
        faults.clear();
        assert!(faults.rules().is_empty());
    }
}
