//! Single and batch payments (the batch's first answer lost after it
//! executed), status by reference and a reused reference, for every family.

use std::time::{Duration, Instant};

use banks::{BankError, BankPaymentStatus, PaymentInstruction, StatusAnswer};
use domain::{AccountNumber, BankReference, Bic, CnapsCode, CreditorType, Money, Urgency};
use serde_json::{json, Value};

use banksim::FaultRule;

use crate::rig::{Fam, Op, Rig, FAMILIES};

/// A payment body of the family, from its first account in its currency.
pub fn payment_body(rig: &Rig, amount: &str, creditor: Value) -> Value {
    let (account, _) = rig.account_in(rig.fam.currency());
    json!({
        "debtor_account_id": account,
        "amount": amount,
        "currency": rig.fam.currency().code(),
        "creditor": creditor,
        "remittance": "conformance",
    })
}

#[tokio::test]
async fn a_single_payment_settles_and_is_executed_once() {
    for fam in FAMILIES {
        let rig = Rig::start(fam, 5).await;
        let body = payment_body(&rig, "25.00", fam.creditor(1, &fam.creditor_name(1)));
        let (status, created) = rig
            .post("/v1/payments", Some("single-1"), Some(&body))
            .await;
        assert_eq!(status, 201, "{}: {created}", fam.name());
        let id = created["id"].as_str().unwrap();
        let reference = created["business_reference"].as_str().unwrap().to_owned();
        let done = rig.drive_payment(id, Duration::from_secs(30)).await;
        assert_eq!(done["status"], "settled", "{}: {done}", fam.name());
        assert_eq!(
            rig.executions().get(&reference),
            Some(&1),
            "{}: executed exactly once",
            fam.name()
        );
        rig.stop().await;
    }
}

#[tokio::test]
async fn a_batch_reports_a_partial_rejection_per_item() {
    for fam in FAMILIES {
        let rig = Rig::start(fam, 6).await;
        let wrong_name = fam.creditor_name(99);
        let payments = rig.sim.payments();
        let mut cfg = payments.config();
        cfg.mismatched_names = vec![wrong_name.clone()];
        payments.set_config(cfg).unwrap();
        let (account, _) = rig.account_in(fam.currency());
        let items: Vec<Value> = (0..4)
            .map(|i| {
                let name = if i == 2 {
                    wrong_name.clone()
                } else {
                    fam.creditor_name(i)
                };
                json!({
                    "amount": "3.00",
                    "creditor": fam.creditor(i, &name),
                    "remittance": "conformance batch",
                })
            })
            .collect();
        let body = json!({
            "debtor_account_id": account,
            "currency": fam.currency().code(),
            "kind": "supplier",
            "count": 4,
            "control_sum": "12.00",
            "items": items,
        });
        // The first submission executes, but its answer is lost: the chunk
        // is found by its reference, never sent as new.
        rig.sim.faults().inject(
            FaultRule::times(
                serde_json::from_value(json!({"kind": "reset", "when": "after"})).unwrap(),
                1,
            )
            .for_function(fam.function(Op::SubmitBatch)),
        );
        let (status, created) = rig
            .post("/v1/payment-batches", Some("batch-1"), Some(&body))
            .await;
        assert_eq!(status, 201, "{}: {created}", fam.name());
        let id = created["id"].as_str().unwrap();
        let done = rig.drive_batch(id, Duration::from_secs(60)).await;
        assert_eq!(done["status"], "completed", "{}: {done}", fam.name());
        let items = done["items"].as_array().unwrap();
        let statuses: Vec<&str> = items
            .iter()
            .map(|i| i["status"].as_str().unwrap())
            .collect();
        assert_eq!(
            statuses,
            ["settled", "settled", "failed", "settled"],
            "{}: {done}",
            fam.name()
        );
        let failed = &items[2];
        assert!(
            failed["bank_code"].as_str().is_some_and(|c| !c.is_empty()),
            "{}: the rejected item carries the bank's code: {failed}",
            fam.name()
        );
        let executions = rig.executions();
        for item in items {
            let reference = item["business_reference"].as_str().unwrap();
            assert_eq!(
                executions.get(reference),
                Some(&1),
                "{}: item {reference} executed once",
                fam.name()
            );
        }
        rig.stop().await;
    }
}

/// A payment instruction for the direct cases.
pub fn instruction(rig: &Rig, reference: &str, amount_minor: i64) -> PaymentInstruction {
    let fam = rig.fam;
    let (_, number) = rig.account_in(fam.currency());
    PaymentInstruction {
        reference: BankReference::parse(reference).unwrap(),
        debtor_account: AccountNumber::parse(&number).unwrap(),
        amount: Money::from_minor(amount_minor, fam.currency()),
        creditor_name: fam.creditor_name(7),
        creditor_account: fam.creditor_account(7),
        creditor_bank_code: match fam {
            Fam::CnXml => Some(CnapsCode::parse("102290000001").unwrap()),
            Fam::Iso20022 => None,
        },
        creditor_bic: match fam {
            Fam::CnXml => None,
            Fam::Iso20022 => Some(Bic::parse("COBADEFFXXX").unwrap()),
        },
        creditor_bank_name: None,
        creditor_type: CreditorType::Corporate,
        remittance: "conformance direct".to_owned(),
        purpose: None,
        urgency: Urgency::Normal,
        requested_execution_date: rig.sim.ledger().today(),
    }
}

/// Asks for `reference` until the bank reports it settled, bounded.
pub async fn settled(rig: &Rig, debtor: &AccountNumber, reference: &BankReference) -> StatusAnswer {
    let started = Instant::now();
    loop {
        let answer = rig
            .connector
            .payment_status(debtor, std::slice::from_ref(reference))
            .await
            .unwrap_or_else(|e| panic!("{}: status: {e}", rig.fam.name()))
            .pop()
            .unwrap();
        if matches!(
            answer,
            StatusAnswer::Found {
                status: BankPaymentStatus::Settled,
                ..
            }
        ) {
            return answer;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{}: {reference} not settled: {answer:?}",
            rig.fam.name()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn status_by_reference_finds_a_payment_and_knows_an_unknown_one() {
    for fam in FAMILIES {
        let rig = Rig::start(fam, 7).await;
        let payment = instruction(&rig, "CONFSTATUS0001", 4_200);
        rig.connector
            .submit_payment(&payment)
            .await
            .unwrap_or_else(|e| panic!("{}: submit: {e}", fam.name()));
        settled(&rig, &payment.debtor_account, &payment.reference).await;
        let unknown = BankReference::parse("CONFNEVERSENT01").unwrap();
        let answers = rig
            .connector
            .payment_status(
                &payment.debtor_account,
                &[unknown, payment.reference.clone()],
            )
            .await
            .unwrap();
        assert_eq!(
            answers[0],
            StatusAnswer::NotFound,
            "{}: never sent",
            fam.name()
        );
        assert!(
            matches!(answers[1], StatusAnswer::Found { .. }),
            "{}: answers in the order asked: {answers:?}",
            fam.name()
        );
        rig.stop().await;
    }
}

#[tokio::test]
async fn a_reused_reference_returns_the_original_result_and_never_executes_twice() {
    for fam in FAMILIES {
        let rig = Rig::start(fam, 8).await;
        let payment = instruction(&rig, "CONFREUSED0001", 5_100);
        rig.connector.submit_payment(&payment).await.unwrap();
        let original = settled(&rig, &payment.debtor_account, &payment.reference).await;
        // The same reference again, even with another amount.
        let mut again = payment.clone();
        again.amount = Money::from_minor(9_900, fam.currency());
        match rig.connector.submit_payment(&again).await {
            Err(BankError::OutcomeUnknown { .. }) => {}
            Ok(receipt) => assert_eq!(
                receipt.status,
                BankPaymentStatus::Settled,
                "{}: a reuse answered with the original result",
                fam.name()
            ),
            Err(other) => panic!("{}: a reused reference gave {other}", fam.name()),
        }
        let after = settled(&rig, &payment.debtor_account, &payment.reference).await;
        assert_eq!(after, original, "{}: the original result", fam.name());
        let execution = rig
            .sim
            .executions()
            .into_iter()
            .find(|e| e.reference == payment.reference.as_str())
            .unwrap();
        assert_eq!(execution.count, 1, "{}: executed once", fam.name());
        assert_eq!(
            execution.amount,
            Money::from_minor(5_100, fam.currency()).to_decimal_string(),
            "{}: the original amount",
            fam.name()
        );
        rig.stop().await;
    }
}
