//! Capabilities, balances and transactions, for every family.

use std::collections::{BTreeMap, BTreeSet};

use banks::Capability;
use domain::Money;
use serde_json::{json, Value};

use crate::rig::{Rig, CAPABILITIES, FAMILIES};

#[tokio::test]
async fn every_family_has_each_fixed_capability_or_says_why_not_in_v1_banks() {
    for fam in FAMILIES {
        let rig = Rig::start(fam, 1).await;
        let declared: BTreeSet<Capability> = rig.connector.capabilities().iter().copied().collect();
        let lacking: BTreeMap<Capability, &str> = fam.lacks().iter().copied().collect();
        for cap in CAPABILITIES {
            assert!(
                declared.contains(&cap) != lacking.contains_key(&cap),
                "{}: {} must be either declared or lacking with a reason",
                fam.name(),
                cap.as_str()
            );
        }
        for (cap, reason) in rig.connector.lacking_capabilities() {
            assert_eq!(
                lacking.get(cap),
                Some(reason),
                "{}: the connector and the suite give the same reason for {}",
                fam.name(),
                cap.as_str()
            );
        }
        let (status, body) = rig.get("/v1/banks").await;
        assert_eq!(status, 200, "{}: {body}", fam.name());
        let bank = &body["items"][0];
        assert_eq!(bank["family"], fam.name());
        let shown: BTreeSet<String> = bank["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        let expected: BTreeSet<String> = declared.iter().map(|c| c.as_str().to_owned()).collect();
        assert_eq!(shown, expected, "{}: /v1/banks capabilities", fam.name());
        let missing: BTreeMap<String, String> = bank["missing_capabilities"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: missing_capabilities in {bank}", fam.name()))
            .iter()
            .map(|m| {
                (
                    m["capability"].as_str().unwrap().to_owned(),
                    m["reason"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let expected: BTreeMap<String, String> = lacking
            .iter()
            .map(|(c, r)| (c.as_str().to_owned(), (*r).to_owned()))
            .collect();
        assert_eq!(
            missing,
            expected,
            "{}: /v1/banks says why a capability is missing",
            fam.name()
        );
        rig.stop().await;
    }
}

#[tokio::test]
async fn balances_are_exactly_what_the_bank_holds() {
    for fam in FAMILIES {
        let rig = Rig::start(fam, 2).await;
        let ledger = rig.sim.ledger();
        for acc in rig.config.accounts.clone() {
            let (status, body) = rig
                .post(
                    &format!("/v1/accounts/{}/balance:refresh", acc.id),
                    None,
                    None,
                )
                .await;
            assert_eq!(status, 200, "{}: {body}", fam.name());
        }
        let (status, body) = rig.get("/v1/balances").await;
        assert_eq!(status, 200, "{}: {body}", fam.name());
        let items = body["items"].as_array().unwrap();
        assert_eq!(
            items.len(),
            rig.config.accounts.len(),
            "{}: one balance per account: {body}",
            fam.name()
        );
        for item in items {
            let id = item["account_id"].as_str().unwrap();
            let acc = rig
                .config
                .accounts
                .iter()
                .find(|a| a.id.as_str() == id)
                .unwrap();
            let bank = ledger.account(acc.number.as_str()).unwrap();
            assert_eq!(
                item["booked"],
                Money::from_minor(bank.booked_minor, bank.currency).to_decimal_string(),
                "{}: booked of {id}",
                fam.name()
            );
            assert_eq!(
                item["available"],
                Money::from_minor(bank.available_minor, bank.currency).to_decimal_string(),
                "{}: available of {id}",
                fam.name()
            );
            assert_eq!(item["currency"], bank.currency.code());
        }
        rig.stop().await;
    }
}

/// Every stored entry of an account, paging `limit` at a time.
async fn all_entries(rig: &Rig, account: &str, limit: u32) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let mut path = format!("/v1/accounts/{account}/transactions?limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, body) = rig.get(&path).await;
        assert_eq!(status, 200, "{}: {body}", rig.fam.name());
        out.extend(body["items"].as_array().unwrap().iter().cloned());
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
    panic!("{}: paging did not end", rig.fam.name());
}

async fn refresh(rig: &Rig, account: &str) -> Value {
    let (status, body) = rig
        .post(
            &format!("/v1/accounts/{account}/transactions:refresh"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{}: {body}", rig.fam.name());
    body
}

/// date|direction|amount|status, counted.
fn multiset(items: impl Iterator<Item = String>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for k in items {
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

fn text(v: &Value) -> String {
    v.as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| v.to_string())
}

#[tokio::test]
async fn transactions_sync_page_and_dedupe_without_gaps_and_days_add_up() {
    for fam in FAMILIES {
        let rig = Rig::start(fam, 3).await;
        let (account, number) = rig.account_in(fam.currency());
        let first = refresh(&rig, &account).await;
        assert!(
            first["inserted"].as_u64().unwrap() > 100,
            "{}: 90 days of history: {first}",
            fam.name()
        );
        assert_eq!(
            first["continuity_breaks"].as_array().map(Vec::len),
            Some(0),
            "{}: every day adds up: {first}",
            fam.name()
        );
        // Overlapping syncs add the late entries and nothing twice.
        refresh(&rig, &account).await;
        let third = refresh(&rig, &account).await;
        assert_eq!(third["inserted"], 0, "{}: {third}", fam.name());

        let stored = all_entries(&rig, &account, 37).await;
        let ids: BTreeSet<&str> = stored.iter().map(|e| e["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), stored.len(), "{}: no duplicates", fam.name());
        let from = domain::BusinessDate::parse_iso(first["from"].as_str().unwrap()).unwrap();
        let bank = rig
            .sim
            .ledger()
            .entries_between(&number, Some(from), None)
            .unwrap();
        let bank_shapes = multiset(bank.iter().filter(|e| e.visible).map(|e| {
            format!(
                "{}|{}|{}|{}",
                e.booking_date,
                text(&serde_json::to_value(e.direction).unwrap()),
                Money::from_minor(e.amount_minor, fam.currency()).to_decimal_string(),
                text(&serde_json::to_value(e.status).unwrap()),
            )
        }));
        let stored_shapes = multiset(stored.iter().map(|e| {
            format!(
                "{}|{}|{}|{}",
                text(&e["booking_date"]),
                text(&e["direction"]),
                text(&e["amount"]),
                text(&e["status"])
            )
        }));
        assert_eq!(
            stored_shapes,
            bank_shapes,
            "{}: the store holds exactly the bank's entries",
            fam.name()
        );

        // A day that no longer adds up is found and reported (on another
        // account, synced for the first time with the entry missing).
        let (other, other_number) = rig.accounts_in(fam.currency())[1].clone();
        rig.sim.faults().inject(banksim::FaultRule::always(
            banksim::Fault::ContinuityBreak {
                acc_no: other_number,
            },
        ));
        // The fault drops one entry per statement request; a family that
        // asks in several ranges sees one broken day per range.
        let broken = refresh(&rig, &other).await;
        let days = broken["continuity_breaks"].as_array().map_or(0, Vec::len);
        assert!(days >= 1, "{}: the break is detected: {broken}", fam.name());
        let (status, body) = rig
            .get(&format!("/v1/accounts/{other}/continuity-breaks"))
            .await;
        assert_eq!(status, 200, "{}: {body}", fam.name());
        assert_eq!(
            body["items"].as_array().map(Vec::len),
            Some(days),
            "{}: every broken day is reported: {body}",
            fam.name()
        );
        rig.sim.faults().clear();
        refresh(&rig, &other).await;
        let (_, body) = rig
            .get(&format!("/v1/accounts/{other}/continuity-breaks"))
            .await;
        assert_eq!(
            body["items"].as_array().map(Vec::len),
            Some(0),
            "{}: cleared once the entry comes: {body}",
            fam.name()
        );
        rig.stop().await;
    }
}

#[tokio::test]
async fn a_pending_entry_that_is_booked_later_is_stored_once() {
    for fam in FAMILIES {
        let rig = Rig::start(fam, 4).await;
        let (account, number) = rig.account_in(fam.currency());
        // Sync until the late entries are in, so that the next sync brings
        // only what is added below.
        for _ in 0..3 {
            if refresh(&rig, &account).await["inserted"] == 0 {
                break;
            }
        }
        let mut new = banksim::NewSimEntry::booked(domain::Direction::Credit, 12_345).pending();
        new.remittance = Some("conformance pending then booked".to_owned());
        let entry = rig.sim.ledger().add_entry(&number, new).unwrap();
        let pending = refresh(&rig, &account).await;
        assert_eq!(pending["inserted"], 1, "{}: {pending}", fam.name());
        rig.sim
            .ledger()
            .book_pending(&number, &entry.serial)
            .unwrap();
        let booked = refresh(&rig, &account).await;
        assert_eq!(booked["inserted"], 0, "{}: {booked}", fam.name());
        assert_eq!(booked["booked_from_pending"], 1, "{}: {booked}", fam.name());
        let stored = all_entries(&rig, &account, 500).await;
        let same: Vec<&Value> = stored
            .iter()
            .filter(|e| e["remittance"] == json!("conformance pending then booked"))
            .collect();
        assert_eq!(same.len(), 1, "{}: once: {same:?}", fam.name());
        assert_eq!(same[0]["status"], "booked", "{}", fam.name());
        rig.stop().await;
    }
}
