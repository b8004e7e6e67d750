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
//! Every fault's size and duration is bounded ([`Fault::validate`]) so that
//! a typo in a demo cannot make the simulator allocate gigabytes or hang for
//! hours.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::SimError;

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
    /// Answer with this HTTP status and no packet.
    HttpStatus { status: u16 },
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
            Fault::HttpStatus { status } if !(100..=599).contains(status) => invalid(format!(
                "http_status status is {status}; expected an HTTP status code 100..=599"
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
        let fault_applies = match self.fault {
            Fault::RecordFailure { .. } => {
                function == Some(formats::cn_xml::messages::FUNC_QUERY_BALANCE)
            }
            Fault::ContinuityBreak { .. } | Fault::DuplicatePage => {
                function == Some(formats::cn_xml::messages::FUNC_QUERY_HISTORY)
            }
            _ => true,
        };
        function_matches && fault_applies
    }
}

/// Adds and clears the fault rules of one running simulator. Cheap to clone;
/// all clones act on the same rules.
#[derive(Clone, Debug, Default)]
pub struct FaultHandle {
    rules: Arc<Mutex<Vec<FaultRule>>>,
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

    /// Removes every rule.
    pub fn clear(&self) {
        self.lock().clear();
        tracing::info!("faults cleared");
    }

    /// The active rules, first-matching first.
    pub fn rules(&self) -> Vec<FaultRule> {
        self.lock().clone()
    }

    /// Takes the fault for a packet with this function (`None` when the
    /// packet did not decode), using up one of the rule's `remaining`.
    pub(crate) fn take(&self, function: Option<&str>) -> Option<Fault> {
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
