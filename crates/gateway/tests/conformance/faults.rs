//! Every injected fault kind, for every family: on a payment submission,
//! the final state through the gateway (and never an execution twice); on
//! every read, the error kind the connector reports, without a panic.

use std::time::Duration;

use banks::{
    BalanceQuery, BankError, BatchInstruction, BatchItemInstruction, BatchKind, BatchStatusAnswer,
    Capability, TransactionQuery, UnknownCause,
};
use banksim::{Fault, FaultRule};
use domain::{AccountNumber, BankReference};
use serde_json::{json, Value};

use crate::payments::{instruction, payment_body, settled};
use crate::rig::{Op, Rig, FAMILIES};

/// One row of the submission matrix.
struct Row {
    name: &'static str,
    /// A fault for the family's payment submission, or null.
    fault: Value,
    /// Whether the creditor's name is one the bank says does not match.
    wrong_name: bool,
    amount: &'static str,
    /// Share of settled payments the bank returns.
    return_share_percent: u8,
    expected: &'static str,
}

fn rows() -> Vec<Row> {
    let row = |name, fault, amount, expected| Row {
        name,
        fault,
        wrong_name: false,
        amount,
        return_share_percent: 0,
        expected,
    };
    vec![
        row("no fault", Value::Null, "10.00", "settled"),
        row(
            "reset before execution → unknown → none after the minimum age → resent",
            json!({"kind": "reset", "when": "before"}),
            "10.01",
            "settled",
        ),
        row(
            "503 before execution → unknown → none → resent",
            json!({"kind": "http_error", "status": 503, "when": "before"}),
            "10.02",
            "settled",
        ),
        row(
            "500 after execution → unknown → found by reference",
            json!({"kind": "http_error", "status": 500, "when": "after"}),
            "10.03",
            "settled",
        ),
        row(
            "reset after execution → unknown → found",
            json!({"kind": "reset", "when": "after"}),
            "10.04",
            "settled",
        ),
        row(
            "answer lost after execution → found",
            json!({"kind": "response_lost", "hold_ms": 0}),
            "10.05",
            "settled",
        ),
        row(
            "truncated answer → found",
            json!({"kind": "truncated"}),
            "10.06",
            "settled",
        ),
        row(
            "garbled answer → found",
            json!({"kind": "garbled"}),
            "10.07",
            "settled",
        ),
        row(
            "answer in the wrong encoding → found",
            json!({"kind": "wrong_encoding"}),
            "10.08",
            "settled",
        ),
        row(
            "answer torn mid-body → found",
            json!({"kind": "torn_body"}),
            "10.09",
            "settled",
        ),
        row(
            "bank busy (not processed) → retried",
            json!({"kind": "error_code", "code": "SYSTEM_BUSY", "message": "busy"}),
            "10.10",
            "settled",
        ),
        row(
            "429 before execution → unknown → none → resent",
            json!({"kind": "http_error", "status": 429, "when": "before"}),
            "10.11",
            "settled",
        ),
        row(
            "slow bank (timeout) → unknown → found",
            json!({"kind": "delay", "ms": 2600}),
            "10.12",
            "settled",
        ),
        row(
            "wrongly signed answer after execution → unknown → found by reference",
            json!({"kind": "wrong_signature"}),
            "10.15",
            "settled",
        ),
        row(
            "insufficient funds → failed",
            Value::Null,
            "99999999999.00",
            "failed",
        ),
        Row {
            name: "name does not match the account → failed",
            fault: Value::Null,
            wrong_name: true,
            amount: "10.13",
            return_share_percent: 0,
            expected: "failed",
        },
        Row {
            name: "settled, then returned by the creditor's bank → returned",
            fault: Value::Null,
            wrong_name: false,
            amount: "10.14",
            return_share_percent: 100,
            expected: "returned",
        },
    ]
}

#[tokio::test]
async fn every_fault_on_a_submission_ends_in_the_expected_state_and_never_pays_twice() {
    for fam in FAMILIES {
        let rig = Rig::start(fam, 9).await;
        let wrong_name = fam.creditor_name(66);
        let book = rig.sim.payments();
        let base = book.config();
        for (i, row) in rows().iter().enumerate() {
            if skipped(fam, &row.fault) {
                continue;
            }
            let mut cfg = base.clone();
            cfg.return_share_percent = row.return_share_percent;
            cfg.mismatched_names = vec![wrong_name.clone()];
            book.set_config(cfg).unwrap();
            rig.sim.faults().clear();
            if !row.fault.is_null() {
                let fault: Fault = serde_json::from_value(row.fault.clone()).unwrap();
                rig.sim.faults().inject(
                    FaultRule::times(fault, 1).for_function(fam.function(Op::SubmitPayment)),
                );
            }
            let name = if row.wrong_name {
                wrong_name.clone()
            } else {
                fam.creditor_name(i)
            };
            let body = payment_body(&rig, row.amount, fam.creditor(i, &name));
            let (status, created) = rig
                .post("/v1/payments", Some(&format!("fault-{i}")), Some(&body))
                .await;
            assert_eq!(status, 201, "{}: {}: {created}", fam.name(), row.name);
            let id = created["id"].as_str().unwrap();
            let reference = created["business_reference"].as_str().unwrap().to_owned();
            let done = rig.drive_payment(id, Duration::from_secs(40)).await;
            assert_eq!(
                done["status"],
                row.expected,
                "{}: {}: {done}",
                fam.name(),
                row.name
            );
            assert_eq!(
                rig.executions().get(&reference),
                Some(&1),
                "{}: {}: executed exactly once",
                fam.name(),
                row.name
            );
        }
        if !skipped(fam, &json!({"kind": "wrong_signature"})) {
            // The wrongly signed answer raised the alert.
            let metrics = rig
                .http
                .get(rig.url("/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert!(
                metrics.contains("bank_signature_failures_total{bank=\"bank\"}"),
                "{}: the signature alert is counted: {metrics}",
                fam.name()
            );
        }
        rig.stop().await;
    }
}

/// Whether `fault` needs a capability the family lacks (and says so in
/// [`crate::rig::Fam::lacks`]): a wrongly signed answer means nothing to a
/// family that signs nothing.
fn skipped(fam: crate::rig::Fam, fault: &Value) -> bool {
    let needs = (fault["kind"] == "wrong_signature").then_some(Capability::SignedMessages);
    needs.is_some_and(|cap| fam.lacks().iter().any(|(lacking, _)| *lacking == cap))
}

/// What a read should come back as for a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// `OutcomeUnknown` because the answer is not a message of the family
    /// (for a family that signs, a cut answer may already fail its
    /// signature: the bank signed the whole packet).
    Protocol,
    /// `OutcomeUnknown` of any cause (transport, timeout, HTTP status).
    Unknown,
    NotProcessed,
    /// `OutcomeUnknown` because the answer's signature does not verify.
    Signature,
}

fn read_faults() -> Vec<(&'static str, Value, Expect)> {
    vec![
        ("garbled", json!({"kind": "garbled"}), Expect::Protocol),
        ("truncated", json!({"kind": "truncated"}), Expect::Protocol),
        (
            "wrong encoding",
            json!({"kind": "wrong_encoding"}),
            Expect::Protocol,
        ),
        (
            "oversized",
            json!({"kind": "oversized", "bytes": 9 * 1024 * 1024}),
            Expect::Protocol,
        ),
        ("torn body", json!({"kind": "torn_body"}), Expect::Unknown),
        (
            "HTTP 500",
            json!({"kind": "http_error", "status": 500}),
            Expect::Unknown,
        ),
        ("reset", json!({"kind": "reset"}), Expect::Unknown),
        (
            "answer lost",
            json!({"kind": "response_lost", "hold_ms": 0}),
            Expect::Unknown,
        ),
        (
            "timeout",
            json!({"kind": "delay", "ms": 2600}),
            Expect::Unknown,
        ),
        (
            "bank busy",
            json!({"kind": "error_code", "code": "SYSTEM_BUSY", "message": "busy"}),
            Expect::NotProcessed,
        ),
        (
            "wrongly signed",
            json!({"kind": "wrong_signature"}),
            Expect::Signature,
        ),
    ]
}

/// What the reads ask about: a payment and a batch chunk the bank has.
struct Known {
    payment: BankReference,
    chunk: BankReference,
}

/// Sends a payment and a one-item batch chunk straight to the bank and
/// waits until both are known there.
async fn known_references(rig: &Rig) -> Known {
    let fam = rig.fam;
    let payment = instruction(rig, "CONFFAULTPAY01", 1_200);
    rig.connector.submit_payment(&payment).await.unwrap();
    settled(rig, &payment.debtor_account, &payment.reference).await;
    let chunk = BatchInstruction {
        kind: BatchKind::Supplier,
        reference: BankReference::parse("CONFFAULTCHUNK01").unwrap(),
        batch_reference: BankReference::parse("CONFFAULTBATCH01").unwrap(),
        debtor_account: payment.debtor_account.clone(),
        currency: fam.currency(),
        requested_execution_date: payment.requested_execution_date,
        items: vec![BatchItemInstruction {
            reference: BankReference::parse("CONFFAULTITEM01").unwrap(),
            amount: payment.amount,
            creditor_name: payment.creditor_name.clone(),
            creditor_account: payment.creditor_account.clone(),
            creditor_bank_code: payment.creditor_bank_code.clone(),
            creditor_bic: payment.creditor_bic.clone(),
            creditor_bank_name: None,
            creditor_type: payment.creditor_type,
            remittance: "conformance read faults".to_owned(),
            purpose: None,
        }],
    };
    rig.connector.submit_batch(&chunk).await.unwrap();
    let started = std::time::Instant::now();
    loop {
        let answer = rig
            .connector
            .batch_status(&payment.debtor_account, &chunk.reference)
            .await
            .unwrap();
        if matches!(answer, BatchStatusAnswer::Found { .. }) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{}: the chunk is not known: {answer:?}",
            fam.name()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Known {
        payment: payment.reference,
        chunk: chunk.reference,
    }
}

/// Runs one read of `op` against the rig's bank.
async fn read(rig: &Rig, op: Op, known: &Known) -> Result<(), BankError> {
    let (_, number) = rig.account_in(rig.fam.currency());
    let number = AccountNumber::parse(&number).unwrap();
    let today = rig.sim.ledger().today();
    match op {
        Op::Balances => rig
            .connector
            .balances(&[BalanceQuery {
                number,
                currency: rig.fam.currency(),
            }])
            .await
            .map(drop),
        Op::Transactions => rig
            .connector
            .transactions(&TransactionQuery {
                number,
                currency: rig.fam.currency(),
                from: today.add_days(-5).unwrap(),
                to: today.add_days(-1).unwrap(),
            })
            .await
            .map(drop),
        Op::PaymentStatus => rig
            .connector
            .payment_status(&number, std::slice::from_ref(&known.payment))
            .await
            .map(drop),
        Op::BatchStatus => rig
            .connector
            .batch_status(&number, &known.chunk)
            .await
            .map(drop),
        Op::SubmitPayment | Op::SubmitBatch => unreachable!("reads only"),
    }
}

#[tokio::test]
async fn broken_answers_to_every_read_are_errors_of_the_right_kind_never_panics() {
    for fam in FAMILIES {
        let rig = Rig::start(fam, 10).await;
        let known = known_references(&rig).await;
        for op in [
            Op::Balances,
            Op::Transactions,
            Op::PaymentStatus,
            Op::BatchStatus,
        ] {
            // Without a fault the read works, so the faults below are what
            // breaks it.
            read(&rig, op, &known)
                .await
                .unwrap_or_else(|e| panic!("{}: {op:?} without a fault: {e}", fam.name()));
            for (name, fault, expect) in read_faults() {
                if skipped(fam, &fault) {
                    continue;
                }
                rig.sim.faults().clear();
                let fault: Fault = serde_json::from_value(fault).unwrap();
                rig.sim
                    .faults()
                    .inject(FaultRule::always(fault).for_function(fam.function(op)));
                let result = read(&rig, op, &known).await;
                let signs = !skipped(fam, &json!({"kind": "wrong_signature"}));
                let signature_refused = matches!(
                    &result,
                    Err(BankError::OutcomeUnknown {
                        cause: UnknownCause::Signature,
                        ..
                    })
                );
                let ok = (signs && signature_refused && expect == Expect::Protocol)
                    || matches!(
                        (&result, expect),
                        (
                            Err(BankError::OutcomeUnknown {
                                cause: UnknownCause::Protocol,
                                ..
                            }),
                            Expect::Protocol,
                        ) | (
                            Err(BankError::OutcomeUnknown {
                                cause: UnknownCause::Signature,
                                ..
                            }),
                            Expect::Signature,
                        ) | (Err(BankError::OutcomeUnknown { .. }), Expect::Unknown)
                            | (Err(BankError::NotProcessed { .. }), Expect::NotProcessed)
                    );
                assert!(
                    ok,
                    "{}: {op:?} with {name}: expected {expect:?}, got {result:?}",
                    fam.name()
                );
            }
            rig.sim.faults().clear();
        }
        rig.stop().await;
    }
}
