use std::{collections::BTreeMap, time::Duration};

use banksim::{Fault, FaultRule};
use domain::{Currency, Money, MoneyTotal};
use serde_json::Value;

use crate::helpers::{Options, TestApp};

async fn refresh_all(app: &TestApp, token: &str) {
    for account in ["east-1", "south-1"] {
        let (status, body) = app
            .post(&format!("/v1/accounts/{account}/balance:refresh"), token)
            .await;
        assert_eq!(status, 200, "{body}");
    }
}

fn ledger_totals(app: &TestApp) -> BTreeMap<String, (String, String)> {
    let mut totals: BTreeMap<Currency, (MoneyTotal, MoneyTotal)> = BTreeMap::new();
    for sim in &app.sims {
        for a in sim.ledger().accounts() {
            let e = totals
                .entry(a.currency)
                .or_insert_with(|| (MoneyTotal::zero(a.currency), MoneyTotal::zero(a.currency)));
            e.0.add(Money::from_minor(a.booked_minor, a.currency))
                .unwrap();
            e.1.add(Money::from_minor(a.available_minor, a.currency))
                .unwrap();
        }
    }
    totals
        .into_iter()
        .map(|(c, (b, a))| {
            (
                c.code().to_owned(),
                (b.to_decimal_string(), a.to_decimal_string()),
            )
        })
        .collect()
}

#[tokio::test]
async fn balances_across_two_banks_total_exactly_what_the_simulators_hold() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&app.erp, Some("accounts:read")).await;
    refresh_all(&app, &token).await;

    let (status, body) = app.get("/v1/balances", &token).await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 6, "one item per account and currency: {body}");
    let banks: std::collections::BTreeSet<&str> = items
        .iter()
        .map(|i| i["bank_id"].as_str().unwrap())
        .collect();
    assert!(banks.len() >= 2);
    for i in items {
        for f in [
            "account_id",
            "bank_id",
            "currency",
            "booked",
            "available",
            "as_of",
        ] {
            assert!(i[f].is_string(), "{f} in {i}");
        }
    }
    let api_totals: BTreeMap<String, (String, String)> = body["totals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["currency"].as_str().unwrap().to_owned(),
                (
                    t["booked"].as_str().unwrap().to_owned(),
                    t["available"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect();
    assert_eq!(api_totals, ledger_totals(&app));
    assert!(api_totals.contains_key("CNY") && api_totals.contains_key("USD"));
    app.stop().await;
}

#[tokio::test]
async fn reads_serve_the_stored_snapshot_and_refresh_fetches_a_new_one() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&app.erp, None).await;

    // Nothing fetched yet: a clear 503 that says what to do.
    let (status, body) = app.get("/v1/accounts/east-1/balance", &token).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "balance_not_yet_available");

    let (status, first) = app
        .post("/v1/accounts/east-1/balance:refresh", &token)
        .await;
    assert_eq!(status, 200, "{first}");
    let east = app.sim("east");
    let number = east.ledger().accounts()[0].number.clone();
    let before = east.ledger().account(&number).unwrap();
    assert_eq!(
        first["balances"][0]["booked"],
        Money::from_minor(before.booked_minor, before.currency).to_decimal_string()
    );

    // The bank's balance moves; a read still serves the stored snapshot and
    // does not call the bank.
    east.ledger().adjust(&number, -12_345).unwrap();
    let served = east.requests_served();
    let (_, stale) = app.get("/v1/accounts/east-1/balance", &token).await;
    assert_eq!(
        stale["balances"][0]["booked"],
        first["balances"][0]["booked"]
    );
    assert!(stale["balances"][0]["age_s"].as_i64().unwrap() >= 0);
    assert_eq!(east.requests_served(), served, "reads never call the bank");

    let (status, fresh) = app
        .post("/v1/accounts/east-1/balance:refresh", &token)
        .await;
    assert_eq!(status, 200, "{fresh}");
    assert_eq!(
        fresh["balances"][0]["booked"],
        Money::from_minor(before.booked_minor - 12_345, before.currency).to_decimal_string()
    );
    let (_, stored) = app.get("/v1/accounts/east-1/balance", &token).await;
    assert_eq!(
        stored["balances"][0]["booked"],
        fresh["balances"][0]["booked"]
    );
    app.stop().await;
}

#[tokio::test]
async fn concurrent_refreshes_of_one_connection_make_one_bank_call() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&app.erp, None).await;
    let east = app.sim("east");
    east.faults().inject(FaultRule {
        fault: Fault::Delay { ms: 400 },
        function: None,
        remaining: Some(1),
    });
    let before = east.requests_served();
    let calls = (0..4).map(|i| {
        let account = ["east-1", "east-2", "east-3", "east-1"][i];
        let app = &app;
        let token = token.clone();
        async move {
            app.post(&format!("/v1/accounts/{account}/balance:refresh"), &token)
                .await
        }
    });
    let results: Vec<(u16, Value)> = futures::future::join_all(calls).await;
    for (status, body) in &results {
        assert_eq!(*status, 200, "{body}");
    }
    assert_eq!(
        east.requests_served() - before,
        1,
        "single-flight per connection"
    );
    app.stop().await;
}

#[tokio::test]
async fn readiness_waits_for_the_first_snapshot_of_every_connection() {
    let app = TestApp::spawn().await;
    let resp = app.get_raw("/readyz").await;
    assert_eq!(resp.status(), 503);
    let token = app.token_for(&app.erp, None).await;
    app.post("/v1/accounts/east-1/balance:refresh", &token)
        .await;
    assert_eq!(
        app.get_raw("/readyz").await.status(),
        503,
        "south has no snapshot yet"
    );
    app.post("/v1/accounts/south-1/balance:refresh", &token)
        .await;
    let resp = app.get_raw("/readyz").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    app.stop().await;
}

#[tokio::test]
async fn the_worker_fetches_balances_at_start() {
    let app = TestApp::spawn_with(Options {
        workers: true,
        ..Options::default()
    })
    .await;
    let mut ready = false;
    for _ in 0..100 {
        if app.get_raw("/readyz").await.status() == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "ready within 5 s of start");
    let token = app.token_for(&app.erp, None).await;
    let (status, body) = app.get("/v1/balances", &token).await;
    assert_eq!(status, 200);
    assert_eq!(body["items"].as_array().unwrap().len(), 6);
    app.stop().await;
}

#[tokio::test]
async fn a_refresh_is_audited_with_its_caller() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&app.erp, None).await;
    app.post("/v1/accounts/south-1/balance:refresh", &token)
        .await;
    let records = app
        .state
        .store
        .list_audit(&store::AuditQuery {
            action: Some("balance.refresh".to_owned()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].actor, "client:erp");
    assert_eq!(records[0].object, "connection:south-main");
    assert_eq!(records[0].outcome, "ok");
    // Account numbers never appear in audit details.
    let details = records[0].details.to_string();
    for acc in app.sim("south").ledger().accounts() {
        assert!(!details.contains(&acc.number), "{details}");
    }
    app.stop().await;
}
