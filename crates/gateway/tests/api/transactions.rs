//! Transaction details end to end: sync from a simulated cn-xml bank,
//! dedupe, pending → booked, stable paging, the change feed, continuity,
//! restarts, and bad input.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::helpers::{split, TestApp};

/// Every entry of an account through the API, paging with `limit`.
async fn all_entries(app: &TestApp, token: &str, account: &str, limit: u32) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let path = match &cursor {
            Some(c) => format!("/v1/accounts/{account}/transactions?limit={limit}&cursor={c}"),
            None => format!("/v1/accounts/{account}/transactions?limit={limit}"),
        };
        let (status, body) = app.get(&path, token).await;
        assert_eq!(status, 200, "{body}");
        out.extend(body["items"].as_array().unwrap().iter().cloned());
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
    panic!("paging did not end");
}

fn ids(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

fn assert_unique(entries: &[Value]) {
    let all = ids(entries);
    let set: BTreeSet<&String> = all.iter().collect();
    assert_eq!(set.len(), all.len(), "no entry twice");
}

/// What the simulated bank shows for an account: its visible entries.
async fn bank_entries(app: &TestApp, bank: &str, number: &str) -> Vec<Value> {
    let url = format!("{}_sim/accounts/{number}/entries", app.sim(bank).url());
    let body: Value = app
        .http
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = body.get("entries").cloned().unwrap_or(body);
    list.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["visible"].as_bool().unwrap_or(true))
        .cloned()
        .collect()
}

/// A comparable description of an entry, the same from the API and the bank.
fn shape(e: &Value, from_bank: bool) -> String {
    let field = |api: &str, bank: &str| -> String {
        let v = if from_bank { &e[bank] } else { &e[api] };
        v.as_str().unwrap_or("").to_owned()
    };
    let serial = if from_bank {
        e["serial"].as_str().unwrap_or("").to_owned()
    } else {
        e["bank_transaction_id"].as_str().unwrap_or("").to_owned()
    };
    format!(
        "{}|{}|{}|{}|{}",
        field("booking_date", "booking_date"),
        field("direction", "direction"),
        field("amount", "amount"),
        field("status", "status"),
        serial
    )
}

fn multiset(entries: &[Value], from_bank: bool) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for e in entries {
        *m.entry(shape(e, from_bank)).or_insert(0) += 1;
    }
    m
}

/// Asserts two multisets are equal, printing only what differs.
fn assert_same(stored: &[Value], bank: &[Value]) {
    let a = multiset(stored, false);
    let b = multiset(bank, true);
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let diff: Vec<String> = keys
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k}: stored {:?}, bank {:?}", a.get(k), b.get(k)))
        .collect();
    assert!(
        diff.is_empty(),
        "the store differs from the bank:\n{}",
        diff.join("\n")
    );
}

fn number_of(app: &TestApp, account: &str) -> String {
    app.config
        .accounts
        .iter()
        .find(|a| a.id.as_str() == account)
        .unwrap()
        .number
        .to_string()
}

async fn refresh(app: &TestApp, token: &str, account: &str) -> Value {
    let (status, body) = app
        .post(
            &format!("/v1/accounts/{account}/transactions:refresh"),
            token,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn add_bank_entry(app: &TestApp, bank: &str, number: &str, body: Value) -> Value {
    let url = format!("{}_sim/accounts/{number}/entries", app.sim(bank).url());
    let resp = app.http.post(url).json(&body).send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    resp.json().await.unwrap()
}

/// Adds a pending credit to account `number` at the bank; its serial.
async fn add_pending_credit(
    app: &TestApp,
    bank: &str,
    number: &str,
    amount: &str,
    counterparty: &str,
    remittance: &str,
) -> String {
    let added = add_bank_entry(
        app,
        bank,
        number,
        json!({"direction": "credit", "amount": amount, "counterparty_name": counterparty, "remittance": remittance, "status": "pending"}),
    )
    .await;
    added["serial"].as_str().unwrap().to_owned()
}

/// Books the bank's pending entry `serial` of account `number`.
async fn book_at_bank(app: &TestApp, bank: &str, number: &str, serial: &str) {
    let url = format!(
        "{}_sim/accounts/{number}/entries/{serial}/book",
        app.sim(bank).url()
    );
    let status = app.http.post(url).send().await.unwrap().status();
    assert!(status.is_success(), "{status}");
}

#[tokio::test]
async fn repeated_and_overlapping_syncs_store_every_entry_exactly_once() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&app.erp, None).await;
    let first = refresh(&app, &token, "east-1").await;
    assert!(
        first["inserted"].as_u64().unwrap() > 200,
        "90 days of history: {first}"
    );
    // The second, overlapping sync finds the entries that arrived late.
    let second = refresh(&app, &token, "east-1").await;
    assert!(
        second["inserted"].as_u64().unwrap() > 0,
        "late entries: {second}"
    );
    let third = refresh(&app, &token, "east-1").await;
    assert_eq!(third["inserted"], 0, "{third}");
    assert_eq!(third["booked_from_pending"], 0, "{third}");

    let stored = all_entries(&app, &token, "east-1", 37).await;
    assert_unique(&stored);
    let number = number_of(&app, "east-1");
    let from = first["from"].as_str().unwrap().to_owned();
    let bank: Vec<Value> = bank_entries(&app, "east", &number)
        .await
        .into_iter()
        .filter(|e| e["booking_date"].as_str().unwrap() >= from.as_str())
        .collect();
    assert_same(&stored, &bank);
    app.stop().await;
}

#[tokio::test]
async fn identical_entries_on_one_day_both_survive_with_and_without_bank_serials() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&app.erp, None).await;
    refresh(&app, &token, "east-2").await;
    let stored = all_entries(&app, &token, "east-2", 500).await;
    let mut groups: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for e in &stored {
        let key = format!(
            "{}|{}|{}|{}|{}",
            e["booking_date"],
            e["direction"],
            e["amount"],
            e["counterparty"]["name"],
            e["remittance"]
        );
        groups.entry(key).or_default().push(e);
    }
    let twins: Vec<&Vec<&Value>> = groups.values().filter(|g| g.len() >= 2).collect();
    assert!(
        !twins.is_empty(),
        "the bank's history has identical entries on one day"
    );
    assert!(
        twins.iter().any(|g| g
            .iter()
            .filter(|e| e["bank_transaction_id"].is_null())
            .count()
            >= 2),
        "identical entries without a bank serial are kept apart by occurrence"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_pending_entry_that_becomes_booked_appears_once() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&app.erp, None).await;
    let number = number_of(&app, "south-1");
    let serial = add_pending_credit(
        &app,
        "south",
        &number,
        "880.00",
        "杭州市测试贸易有限公司",
        "货款",
    )
    .await;
    refresh(&app, &token, "south-1").await;
    let before = all_entries(&app, &token, "south-1", 500).await;
    // Serials are unique per account and day only: find ours by serial and content.
    let ours = |e: &&Value| {
        e["bank_transaction_id"] == serial.as_str()
            && e["amount"] == "880.00"
            && e["counterparty"]["name"] == "杭州市测试贸易有限公司"
    };
    let pending: Vec<&Value> = before.iter().filter(ours).collect();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["status"], "pending");
    let id = pending[0]["id"].clone();

    book_at_bank(&app, "south", &number, &serial).await;
    let r = refresh(&app, &token, "south-1").await;
    assert!(r["booked_from_pending"].as_u64().unwrap() >= 1, "{r}");
    let after = all_entries(&app, &token, "south-1", 500).await;
    assert_unique(&after);
    let same: Vec<&Value> = after.iter().filter(ours).collect();
    assert_eq!(same.len(), 1, "booked replaces pending, never beside it");
    assert_eq!(same[0]["status"], "booked");
    assert_eq!(same[0]["id"], id, "the entry keeps its id");
    // Everything seen before is still there (the second sync may add the
    // bank's late entries, never replace or lose one).
    let after_ids: BTreeSet<String> = ids(&after).into_iter().collect();
    assert!(ids(&before).iter().all(|id| after_ids.contains(id)));
    app.stop().await;
}

#[tokio::test]
async fn pages_stay_stable_while_the_bank_adds_entries_during_paging() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&app.erp, None).await;
    refresh(&app, &token, "east-3").await;
    let number = number_of(&app, "east-3");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut added = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/accounts/east-3/transactions?limit=40&cursor={c}"),
            None => "/v1/accounts/east-3/transactions?limit=40".to_owned(),
        };
        let (status, body) = app.get(&path, &token).await;
        assert_eq!(status, 200, "{body}");
        seen.extend(body["items"].as_array().unwrap().iter().cloned());
        if added < 5 {
            add_bank_entry(
                &app,
                "east",
                &number,
                json!({"direction": "debit", "amount": "12.34", "remittance": "服务费"}),
            )
            .await;
            refresh(&app, &token, "east-3").await;
            added += 1;
        }
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_unique(&seen);
    let everything = all_entries(&app, &token, "east-3", 500).await;
    assert_eq!(
        ids(&seen),
        ids(&everything),
        "no gaps: the pages saw every entry, new ones at the end"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_change_feed_delivers_every_entry_exactly_once_to_a_resuming_poller() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&app.erp, None).await;
    let mut delivered: Vec<(String, String)> = Vec::new();
    let mut since: Option<String> = None;
    let accounts = ["east-1", "south-2"];
    for round in 0..6 {
        // The banks move and the gateway syncs between polls.
        if round < 3 {
            refresh(&app, &token, accounts[round % 2]).await;
        } else {
            let number = number_of(&app, "south-2");
            add_bank_entry(
                &app,
                "south",
                &number,
                json!({"direction": "credit", "amount": "100.00", "remittance": "退款"}),
            )
            .await;
            refresh(&app, &token, "south-2").await;
        }
        // Poll until caught up, resuming from the last cursor each time.
        loop {
            let path = match &since {
                Some(c) => format!("/v1/transactions?limit=64&since={c}"),
                None => "/v1/transactions?limit=64".to_owned(),
            };
            let (status, body) = app.get(&path, &token).await;
            assert_eq!(status, 200, "{body}");
            for e in body["items"].as_array().unwrap() {
                delivered.push((
                    e["id"].as_str().unwrap().to_owned(),
                    e["status"].as_str().unwrap().to_owned(),
                ));
            }
            since = Some(body["next_cursor"].as_str().unwrap().to_owned());
            if !body["has_more"].as_bool().unwrap() {
                break;
            }
        }
    }
    let distinct: BTreeSet<&(String, String)> = delivered.iter().collect();
    assert_eq!(distinct.len(), delivered.len(), "nothing delivered twice");
    let delivered_ids: BTreeSet<String> = delivered.iter().map(|(id, _)| id.clone()).collect();
    let mut stored_ids = BTreeSet::new();
    for a in accounts {
        stored_ids.extend(ids(&all_entries(&app, &token, a, 500).await));
    }
    assert_eq!(
        delivered_ids, stored_ids,
        "every stored entry was delivered"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_crash_mid_sync_and_a_restart_leave_no_gaps_and_no_duplicates() {
    let mut app = TestApp::spawn().await;
    let token = app.token_for(&app.erp, None).await;
    refresh(&app, &token, "south-1").await;
    let number = number_of(&app, "south-1");
    for i in 0..3 {
        add_bank_entry(&app, "south", &number, json!({"direction": "credit", "amount": format!("{}.00", 50 + i), "remittance": "货款"})).await;
    }
    // A slow bank keeps the next sync in flight while the gateway dies.
    app.sim("south").faults().inject(banksim::FaultRule {
        fault: banksim::Fault::Delay { ms: 1_500 },
        function: None,
        remaining: Some(1),
    });
    let url = app.url("/v1/accounts/south-1/transactions:refresh");
    let http = app.http.clone();
    let t = token.clone();
    let in_flight = tokio::spawn(async move { http.post(url).bearer_auth(t).send().await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    app.crash_and_restart().await;
    let _ = in_flight.await;
    let token = app.token_for(&app.erp, None).await;
    refresh(&app, &token, "south-1").await;
    // The sync the crashed gateway started may still finish in the
    // background; give it its bank delay, then sync once more.
    tokio::time::sleep(std::time::Duration::from_millis(1_600)).await;
    refresh(&app, &token, "south-1").await;
    let stored = all_entries(&app, &token, "south-1", 100).await;
    assert_unique(&stored);
    let first_day = stored
        .iter()
        .map(|e| e["booking_date"].as_str().unwrap().to_owned())
        .min()
        .unwrap();
    let bank: Vec<Value> = bank_entries(&app, "south", &number)
        .await
        .into_iter()
        .filter(|e| e["booking_date"].as_str().unwrap() >= first_day.as_str())
        .collect();
    assert_same(&stored, &bank);
    app.stop().await;
}

#[tokio::test]
async fn a_continuity_break_is_detected_reported_and_cleared() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&app.erp, None).await;
    let number = number_of(&app, "east-2");
    let url = format!("{}_sim/faults", app.sim("east").url());
    let resp = app
        .http
        .post(url)
        .json(&json!({"kind": "continuity_break", "acc_no": number}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let r = refresh(&app, &token, "east-2").await;
    let broken = r["continuity_breaks"].as_array().unwrap();
    assert_eq!(broken.len(), 1, "{r}");
    let (status, body) = app
        .get("/v1/accounts/east-2/continuity-breaks", &token)
        .await;
    assert_eq!(status, 200);
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{body}");
    assert_eq!(items[0]["date"], broken[0]);
    assert_ne!(items[0]["gap"], "0.00");
    let metrics = app.get_raw("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("statement_continuity_breaks_total{bank=\"east\"}"),
        "counted in a metric"
    );

    // Once the bank sends the missing entry, the day adds up again.
    app.sim("east").faults().clear();
    refresh(&app, &token, "east-2").await;
    let (_, body) = app
        .get("/v1/accounts/east-2/continuity-breaks", &token)
        .await;
    assert_eq!(body["items"].as_array().unwrap().len(), 0, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn bad_transaction_queries_name_the_parameter() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&app.erp, None).await;
    refresh(&app, &token, "east-1").await;
    let (_, page) = app
        .get("/v1/accounts/east-1/transactions?limit=2", &token)
        .await;
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    // A cursor whose position was edited (signature kept) must not pass.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let text = String::from_utf8(b64.decode(&cursor).unwrap()).unwrap();
    let parts: Vec<&str> = text.split('|').collect();
    let edited = format!(
        "{}|{}|{}|{}",
        parts[0],
        parts[1],
        parts[2].parse::<i64>().unwrap() + 1,
        parts[3]
    );
    let tampered = b64.encode(edited);
    let cases = vec![
        (
            "/v1/accounts/east-1/transactions?from=2026-13-01".to_owned(),
            "query.from",
            "invalid_date",
        ),
        (
            "/v1/accounts/east-1/transactions?to=yesterday".to_owned(),
            "query.to",
            "invalid_date",
        ),
        (
            "/v1/accounts/east-1/transactions?from=2026-05-02&to=2026-05-01".to_owned(),
            "query.to",
            "invalid_date_range",
        ),
        (
            "/v1/accounts/east-1/transactions?from=2020-01-01&to=2026-01-01".to_owned(),
            "query.to",
            "date_range_too_long",
        ),
        (
            "/v1/accounts/east-1/transactions?limit=0".to_owned(),
            "query.limit",
            "invalid_limit",
        ),
        (
            "/v1/accounts/east-1/transactions?limit=501".to_owned(),
            "query.limit",
            "invalid_limit",
        ),
        (
            "/v1/accounts/east-1/transactions?status=settled".to_owned(),
            "query.status",
            "invalid_status",
        ),
        (
            format!("/v1/accounts/east-2/transactions?cursor={cursor}"),
            "query.cursor",
            "invalid_cursor",
        ),
        (
            format!("/v1/accounts/east-1/transactions?cursor={tampered}"),
            "query.cursor",
            "invalid_cursor",
        ),
        (
            format!("/v1/transactions?since={cursor}"),
            "query.since",
            "invalid_cursor",
        ),
        (
            "/v1/transactions?since=garbage".to_owned(),
            "query.since",
            "invalid_cursor",
        ),
    ];
    for (path, field, code) in cases {
        let resp = app
            .http
            .get(app.url(&path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let (status, body) = split(resp).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["field"], field, "{path}: {body}");
        assert_eq!(body["code"], code, "{path}: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_refresh_while_one_runs_joins_it() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&app.erp, None).await;
    // After a first sync every later one reads the same short overlap window.
    refresh(&app, &token, "south-2").await;
    app.sim("south").faults().inject(banksim::FaultRule {
        fault: banksim::Fault::Delay { ms: 400 },
        function: Some("QueryHistory".to_owned()),
        remaining: Some(1),
    });
    let before = app.sim("south").requests_served();
    let calls = (0..3).map(|_| refresh(&app, &token, "south-2"));
    let reports = futures::future::join_all(calls).await;
    for r in &reports[1..] {
        assert_eq!(
            r["finished_at"], reports[0]["finished_at"],
            "one sync, shared"
        );
        assert_eq!(r["inserted"], reports[0]["inserted"]);
    }
    let one_sync = app.sim("south").requests_served() - before;
    // The same window again, alone, costs the same number of bank calls.
    let again = app.sim("south").requests_served();
    refresh(&app, &token, "south-2").await;
    assert_eq!(
        app.sim("south").requests_served() - again,
        one_sync,
        "three joined refreshes cost one sync"
    );
    app.stop().await;
}

/// The body of `GET path` as bytes.
async fn page_bytes(app: &TestApp, token: &str, path: &str) -> Vec<u8> {
    let resp = app.get_response(path, token).await;
    assert_eq!(resp.status(), 200, "{path}");
    resp.bytes().await.unwrap().to_vec()
}

/// Every page of `query` on `account`, following the cursors: (path, body).
async fn walk(app: &TestApp, token: &str, account: &str, query: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut path = format!("/v1/accounts/{account}/transactions?{query}");
    for _ in 0..1_000 {
        let body = page_bytes(app, token, &path).await;
        let next = serde_json::from_slice::<Value>(&body).unwrap()["next_cursor"]
            .as_str()
            .map(str::to_owned);
        out.push((path.clone(), body));
        match next {
            Some(c) => path = format!("/v1/accounts/{account}/transactions?{query}&cursor={c}"),
            None => return out,
        }
    }
    panic!("paging did not end");
}

/// Reads a page of `account` until its entry copy is made and up to date
/// (catch-ups run in the background; the pages meanwhile come from the store).
async fn wait_for_copy(app: &TestApp, token: &str, account: &str) {
    let id = domain::AccountId::parse(account).unwrap();
    for _ in 0..500 {
        if app.state.entry_cache.is_fresh(&id) {
            return;
        }
        let (status, body) = app
            .get(
                &format!("/v1/accounts/{account}/transactions?limit=1"),
                token,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the entry copy of {account} was never made");
}

/// Waits until at least `n` catch-ups of the entry copy have ended.
async fn wait_for_catch_ups(app: &TestApp, n: u64) {
    for _ in 0..500 {
        if app.state.entry_cache.catch_ups() >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{n} catch-ups never ended");
}

/// A ttl no test outlives: the copy changes only when this instance's syncs say so.
const NO_EXPIRY_MS: u64 = 3_600_000;

/// Hundreds of pages in a few seconds: more than the shipped per-client rate.
fn unlimited(c: &mut gateway::config::Config) {
    c.server.limits.client_requests_per_s = 100_000;
    c.server.limits.client_burst = 100_000;
}

/// Every page of eleven queries (limits, statuses, date ranges) on `accounts`,
/// and how many requests it made in all (it reads the first account's entries
/// first, for dates to ask about).
async fn every_page(
    app: &TestApp,
    token: &str,
    accounts: &[&str],
) -> (Vec<(String, Vec<u8>)>, usize) {
    let everything = all_entries(app, token, accounts[0], 500).await;
    assert!(everything.len() > 50, "{} entries", everything.len());
    let date = |i: usize| everything[i]["booking_date"].as_str().unwrap().to_owned();
    let (d1, d2) = (date(everything.len() / 4), date(everything.len() / 2));
    let (lo, hi) = if d1 <= d2 { (d1, d2) } else { (d2, d1) };
    let queries = [
        String::new(),
        "limit=1".to_owned(),
        "limit=7".to_owned(),
        "limit=50".to_owned(),
        "limit=500".to_owned(),
        "status=booked&limit=30".to_owned(),
        "status=pending&limit=3".to_owned(),
        format!("from={lo}&limit=40"),
        format!("to={hi}&limit=40"),
        format!("from={lo}&to={hi}&limit=9"),
        format!("from={lo}&to={lo}&status=booked&limit=2"),
    ];
    let mut pages = Vec::new();
    for account in accounts {
        for q in &queries {
            pages.extend(walk(app, token, account, q).await);
        }
    }
    let requests = pages.len() + everything.len().div_ceil(500).max(1);
    (pages, requests)
}

/// Restarts `app` on its data dir with the copy off and asserts that the
/// store answers every one of `pages` with the same bytes.
async fn assert_the_store_answers_the_same(app: &mut TestApp, pages: &[(String, Vec<u8>)]) {
    app.crash_and_restart_with(|c| {
        unlimited(c);
        c.statements.read_cache_ttl_ms = 0;
    })
    .await;
    let token = app.token_for(&app.erp, None).await;
    for (path, from_memory) in pages {
        let from_store = page_bytes(app, &token, path).await;
        assert!(
            *from_memory == from_store,
            "{path}:\nmemory: {}\nstore:  {}",
            String::from_utf8_lossy(from_memory),
            String::from_utf8_lossy(&from_store)
        );
    }
    assert_eq!(app.state.entry_cache.pages_from_memory(), 0);
}

#[tokio::test]
async fn pages_from_memory_are_byte_for_byte_the_pages_the_store_answers() {
    let mut app = TestApp::spawn_with(crate::helpers::Options {
        entry_cache: Some((NO_EXPIRY_MS, 200_000)),
        ..Default::default()
    })
    .await;
    app.crash_and_restart_with(unlimited).await;
    let token = app.token_for(&app.erp, None).await;
    let accounts = ["east-1", "east-3", "south-1"];
    for account in accounts {
        refresh(&app, &token, account).await;
        wait_for_copy(&app, &token, account).await;
    }
    let from_memory = app.state.entry_cache.pages_from_memory();
    let (pages, requests) = every_page(&app, &token, &accounts).await;
    assert!(pages.len() > 100, "{} pages", pages.len());
    assert_eq!(
        app.state.entry_cache.pages_from_memory() - from_memory,
        u64::try_from(requests).unwrap(),
        "every page came from the copy in memory"
    );
    assert_the_store_answers_the_same(&mut app, &pages).await;
    app.stop().await;
}

#[tokio::test]
async fn a_sync_on_this_instance_reaches_the_copy_at_once() {
    let mut app = TestApp::spawn_with(crate::helpers::Options {
        entry_cache: Some((NO_EXPIRY_MS, 200_000)),
        ..Default::default()
    })
    .await;
    app.crash_and_restart_with(unlimited).await;
    let token = app.token_for(&app.erp, None).await;
    refresh(&app, &token, "south-1").await;
    wait_for_copy(&app, &token, "south-1").await;
    let before = all_entries(&app, &token, "south-1", 500).await;

    // A new pending entry at the bank, then a sync: the copy (which would
    // otherwise live for an hour) catches up with it.
    let number = number_of(&app, "south-1");
    let serial = add_pending_credit(
        &app,
        "south",
        &number,
        "613.20",
        "宁波市测试物流有限公司",
        "运费",
    )
    .await;
    refresh(&app, &token, "south-1").await;
    wait_for_copy(&app, &token, "south-1").await;
    let served = app.state.entry_cache.pages_from_memory();
    let with_pending = all_entries(&app, &token, "south-1", 500).await;
    assert!(
        app.state.entry_cache.pages_from_memory() > served,
        "from the copy"
    );
    let ours = |e: &&Value| e["bank_transaction_id"] == serial.as_str() && e["amount"] == "613.20";
    let found: Vec<&Value> = with_pending.iter().filter(ours).collect();
    assert_eq!(found.len(), 1, "the new entry is in the copy");
    assert_eq!(found[0]["status"], "pending");
    let id = found[0]["id"].clone();
    assert!(with_pending.len() > before.len());

    // Booked at the bank, then a sync: the copy holds it once, booked, same id.
    book_at_bank(&app, "south", &number, &serial).await;
    refresh(&app, &token, "south-1").await;
    wait_for_copy(&app, &token, "south-1").await;
    let served = app.state.entry_cache.pages_from_memory();
    let booked = all_entries(&app, &token, "south-1", 500).await;
    assert!(
        app.state.entry_cache.pages_from_memory() > served,
        "from the copy"
    );
    assert_unique(&booked);
    let found: Vec<&Value> = booked.iter().filter(ours).collect();
    assert_eq!(found.len(), 1, "booked replaces pending in the copy");
    assert_eq!(found[0]["status"], "booked");
    assert_eq!(found[0]["id"], id);

    // And every page of the caught-up copy is what the store answers.
    wait_for_copy(&app, &token, "south-1").await;
    let (pages, _) = every_page(&app, &token, &["south-1"]).await;
    assert_the_store_answers_the_same(&mut app, &pages).await;
    app.stop().await;
}

/// Stores one booked credit for `account` as another gateway instance on the
/// same database would: straight into the store, which this instance's copy
/// is not told about.
async fn store_as_another_instance(app: &TestApp, account: &str, remittance: &str) -> String {
    let id = domain::EntryId::generate(&domain::OsRandom);
    let account_id = domain::AccountId::parse(account).unwrap();
    let day = domain::BusinessDate::from_ymd(2026, 11, 30).unwrap();
    let mut entry = domain::StatementEntry::new(
        id.clone(),
        account_id.clone(),
        domain::Direction::Credit,
        domain::Money::from_minor(4_200, domain::Currency::CNY),
        day,
        day,
        domain::EntryStatus::Booked,
    )
    .unwrap();
    entry.remittance = Some(remittance.to_owned());
    let report = app
        .state
        .store
        .ingest_entries(
            &account_id,
            vec![store::IngestEntry {
                entry,
                dedupe_key: format!("test:{id}"),
                pending_match_key: None,
            }],
            store::NewAuditRecord {
                at: chrono::Utc::now(),
                actor: "test".to_owned(),
                action: "statement.ingest".to_owned(),
                object: format!("account:{account}"),
                request_id: None,
                outcome: "ok".to_owned(),
                details: json!({}),
            },
        )
        .await
        .unwrap();
    assert_eq!(report.inserted, 1);
    id.to_string()
}

/// An app whose copy of `east-1` (synced) is made, with this ttl; a token
/// of the ERP client, and every entry of `east-1`.
async fn east_1_with_its_copy(ttl_ms: u64) -> (TestApp, String, Vec<Value>) {
    let app = TestApp::spawn_with(crate::helpers::Options {
        entry_cache: Some((ttl_ms, 200_000)),
        ..Default::default()
    })
    .await;
    let token = app.token_for(&app.erp, None).await;
    refresh(&app, &token, "east-1").await;
    wait_for_copy(&app, &token, "east-1").await;
    let entries = all_entries(&app, &token, "east-1", 500).await;
    (app, token, entries)
}

#[tokio::test]
async fn entries_another_instance_stores_reach_the_pages_within_the_ttl() {
    let (app, token, before) = east_1_with_its_copy(300).await;

    let id = store_as_another_instance(&app, "east-1", "另一实例写入").await;
    let started = std::time::Instant::now();
    let after = loop {
        let now = all_entries(&app, &token, "east-1", 500).await;
        if now.len() > before.len() {
            break now;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the entry never showed up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_unique(&after);
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(
        after.last().unwrap()["id"],
        id.as_str(),
        "new entries come last"
    );
    assert_eq!(
        ids(&after[..before.len()]),
        ids(&before),
        "nothing else moved"
    );
    // The copy caught up with it too, and answers the same.
    wait_for_copy(&app, &token, "east-1").await;
    let served = app.state.entry_cache.pages_from_memory();
    let again = all_entries(&app, &token, "east-1", 500).await;
    assert!(app.state.entry_cache.pages_from_memory() > served);
    assert_eq!(ids(&again), ids(&after));
    app.stop().await;
}

#[tokio::test]
async fn the_copy_keeps_to_its_bound_and_big_accounts_are_read_from_the_store() {
    let mut app = TestApp::spawn().await;
    let token = app.token_for(&app.erp, None).await;
    refresh(&app, &token, "east-1").await;
    refresh(&app, &token, "east-3").await;
    let one = all_entries(&app, &token, "east-1", 500).await;
    let three = all_entries(&app, &token, "east-3", 500).await;
    let (n1, n3) = (one.len(), three.len());
    assert!(n1 > 1 && n3 > 1);

    // Room for the larger account, not for both: the one read least recently goes.
    app.crash_and_restart_with(|c| {
        c.statements.read_cache_ttl_ms = NO_EXPIRY_MS;
        c.statements.read_cache_max_entries = n1.max(n3);
    })
    .await;
    let token = app.token_for(&app.erp, None).await;
    wait_for_copy(&app, &token, "east-1").await;
    assert_eq!(
        ids(&all_entries(&app, &token, "east-1", 500).await),
        ids(&one)
    );
    assert_eq!(app.state.entry_cache.held(), n1);
    wait_for_copy(&app, &token, "east-3").await;
    assert_eq!(
        ids(&all_entries(&app, &token, "east-3", 500).await),
        ids(&three)
    );
    assert_eq!(app.state.entry_cache.held(), n3, "east-1 was dropped");
    wait_for_copy(&app, &token, "east-1").await;
    assert_eq!(app.state.entry_cache.held(), n1, "east-3 was dropped");

    // Room for neither: both are read from the store, and still whole.
    app.crash_and_restart_with(|c| {
        c.statements.read_cache_ttl_ms = NO_EXPIRY_MS;
        c.statements.read_cache_max_entries = n1.min(n3) - 1;
    })
    .await;
    let token = app.token_for(&app.erp, None).await;
    assert_eq!(
        ids(&all_entries(&app, &token, "east-1", 500).await),
        ids(&one)
    );
    wait_for_catch_ups(&app, 1).await;
    assert_eq!(
        ids(&all_entries(&app, &token, "east-3", 500).await),
        ids(&three)
    );
    wait_for_catch_ups(&app, 2).await;
    assert_eq!(
        ids(&all_entries(&app, &token, "east-1", 500).await),
        ids(&one)
    );
    assert_eq!(
        ids(&all_entries(&app, &token, "east-3", 500).await),
        ids(&three)
    );
    assert_eq!(app.state.entry_cache.held(), 0);
    assert_eq!(app.state.entry_cache.pages_from_memory(), 0);
    assert_eq!(
        app.state.entry_cache.catch_ups(),
        2,
        "an account too large is not loaded again at once"
    );
    app.stop().await;
}

/// Sets `currency` of the stored entry `id` in the app's SQLite file, with a
/// new `change_seq` (so the copy's next catch-up reads the row), bypassing
/// the store as disk damage or a hand edit would.
async fn set_stored_currency(app: &TestApp, id: &str, currency: &str) {
    let path = app.config.data_dir.join("bankdirect.db");
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let done = sqlx::query(
        "UPDATE statement_entries SET currency = ?, \
           change_seq = (SELECT MAX(change_seq) + 1 FROM statement_entries) \
         WHERE id = ?",
    )
    .bind(currency)
    .bind(id)
    .execute(&db)
    .await
    .unwrap();
    assert_eq!(done.rows_affected(), 1);
    db.close().await;
}

#[tokio::test]
async fn a_damaged_row_sends_pages_back_to_the_store_until_it_is_mended() {
    let (app, token, before) = east_1_with_its_copy(200).await;
    assert!(before.len() > 20);
    let victim = before[10]["id"].as_str().unwrap().to_owned();
    let east_1 = domain::AccountId::parse("east-1").unwrap();

    set_stored_currency(&app, &victim, "ZZZ").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let served = app.state.entry_cache.pages_from_memory();
    let caught_up = app.state.entry_cache.catch_ups();
    // The copy is out of date: the store answers, and refuses the page that
    // holds the damaged row as it always did; the catch-up this starts fails.
    let (status, body) = app
        .get("/v1/accounts/east-1/transactions?limit=500", &token)
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "storage_unavailable");
    wait_for_catch_ups(&app, caught_up + 1).await;
    assert!(!app.state.entry_cache.is_fresh(&east_1));
    // A page before the damaged row still reads (9 entries: the store reads
    // one more, to know there is a next page, and that one is the 10th).
    let (status, body) = app
        .get("/v1/accounts/east-1/transactions?limit=9", &token)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(body["items"].as_array().unwrap()), ids(&before[..9]));
    assert_eq!(
        app.state.entry_cache.pages_from_memory(),
        served,
        "nothing was answered from the stale copy"
    );

    // Mended: after the back-off (one ttl) the copy catches up again.
    set_stored_currency(&app, &victim, "CNY").await;
    wait_for_copy(&app, &token, "east-1").await;
    let after = all_entries(&app, &token, "east-1", 500).await;
    assert!(app.state.entry_cache.pages_from_memory() > served);
    assert!(
        ids(&after) == ids(&before),
        "the mended copy holds every entry, in order"
    );
    app.stop().await;
}
