//! Statement storage, generic over the backend like the rest of the suite (listed in the
//! `suite!` of `suite.rs`): ingest and dedupe, pending → booked, paging by `seq`, the change
//! feed in commit order, filters, continuity breaks, sync state, limits and atomicity.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use domain::{
    continuity_gap, BusinessDate, Counterparty, Currency, Direction, EntryId, EntryStatus, Money,
    OsRandom, StatementEntry, MAX_BANK_TRANSACTION_ID_CHARS, MAX_COUNTERPARTY_ACCOUNT_CHARS,
    MAX_COUNTERPARTY_BANK_CHARS, MAX_COUNTERPARTY_NAME_CHARS, MAX_ENTRY_END_TO_END_ID_CHARS,
    MAX_REMITTANCE_CHARS,
};
use store::{
    ContinuityBreak, EntryQuery, IngestEntry, IngestReport, NewAuditRecord, Store, StoreError,
    StoredEntry, SyncState, CHANGE_FEED_MAX_ACCOUNTS, ENTRY_KEY_MAX_CHARS, SYNC_ERROR_MAX_CHARS,
};

use crate::{account, all_audit, instant, record, TestDb};

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

fn cny(minor: i64) -> Money {
    Money::from_minor(minor, Currency::CNY)
}

fn day(d: u32) -> BusinessDate {
    BusinessDate::from_ymd(2026, 11, d).unwrap()
}

fn entry(
    acct: &str,
    direction: Direction,
    minor: i64,
    booking_day: u32,
    status: EntryStatus,
) -> StatementEntry {
    StatementEntry::new(
        EntryId::generate(&OsRandom),
        account(acct),
        direction,
        cny(minor),
        day(booking_day),
        day(booking_day),
        status,
    )
    .unwrap()
}

fn booked(acct: &str, minor: i64, booking_day: u32) -> StatementEntry {
    entry(
        acct,
        Direction::Credit,
        minor,
        booking_day,
        EntryStatus::Booked,
    )
}

/// An entry with every optional field filled, multi-byte text included.
fn full_entry(acct: &str, minor: i64) -> StatementEntry {
    let mut e = entry(acct, Direction::Debit, minor, 27, EntryStatus::Booked);
    e.value_date = day(28);
    e.counterparty = Counterparty {
        name: Some("上海某某贸易有限公司".to_owned()),
        account: Some("6222021234567890123".to_owned()),
        bank: Some("招商银行上海分行".to_owned()),
    };
    e.remittance = Some("货款 INV-2026/11 #42".to_owned());
    e.bank_transaction_id = Some("SER20261127000001".to_owned());
    e.end_to_end_id = Some("E2E-42".to_owned());
    e.running_balance = Some(cny(-1_250));
    e
}

fn offer(entry: StatementEntry, dedupe_key: &str, pending_match_key: Option<&str>) -> IngestEntry {
    IngestEntry {
        entry,
        dedupe_key: dedupe_key.to_owned(),
        pending_match_key: pending_match_key.map(str::to_owned),
    }
}

fn ingest_audit(at_s: i64) -> NewAuditRecord {
    NewAuditRecord {
        at: instant(at_s, 250_000),
        ..record("sync", "statement.ingest", "account:main")
    }
}

fn report(inserted: u32, booked_from_pending: u32, unchanged: u32) -> IngestReport {
    IngestReport {
        inserted,
        booked_from_pending,
        unchanged,
    }
}

/// Every entry of the account, page by page.
async fn all_entries(store: &dyn Store, acct: &str) -> Vec<StoredEntry> {
    let mut out = Vec::new();
    let mut q = EntryQuery::all_of(account(acct));
    q.limit = 1000;
    loop {
        let page = store.list_entries(&q).await.unwrap();
        let Some(last) = page.last() else { break };
        q.after_seq = last.seq;
        out.extend(page);
    }
    out
}

fn ids(entries: &[StoredEntry]) -> Vec<EntryId> {
    entries.iter().map(|e| e.entry.id.clone()).collect()
}

fn assert_invalid<T: std::fmt::Debug>(result: Result<T, StoreError>, needle: &str) {
    match result {
        Err(StoreError::Invalid { reason }) => {
            assert!(
                reason.contains(needle),
                "{reason:?} does not name {needle:?}"
            );
        }
        other => panic!("expected Invalid naming {needle:?}, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

pub(crate) async fn reingesting_the_same_entries_changes_nothing_and_keeps_ids(db: TestDb) {
    let store = db.open().await;
    let first = vec![
        full_entry("main", 12_345),
        booked("main", 100, 27),
        entry("main", Direction::Debit, 7, 28, EntryStatus::Pending),
    ];
    let keys = [
        "bank:2026-11-27:1",
        "bank:2026-11-27:2",
        "bank:2026-11-28:3",
    ];
    let offers: Vec<_> = first
        .iter()
        .zip(keys)
        .map(|(e, k)| offer(e.clone(), k, None))
        .collect();
    let done = store
        .ingest_entries(&account("main"), offers, ingest_audit(10))
        .await
        .unwrap();
    assert_eq!(done, report(3, 0, 0));

    let stored = all_entries(store.as_ref(), "main").await;
    assert_eq!(stored.len(), 3);
    for (s, e) in stored.iter().zip(&first) {
        assert_eq!(&s.entry, e, "stored exactly as offered");
        assert_eq!(s.ingested_at, instant(10, 250_000));
        assert_eq!(s.updated_at, s.ingested_at);
    }
    assert!(stored.windows(2).all(|w| w[0].seq < w[1].seq));

    // The same report again, with fresh ids as the caller always generates them.
    let again: Vec<_> = first
        .iter()
        .zip(keys)
        .map(|(e, k)| {
            let mut e = e.clone();
            e.id = EntryId::generate(&OsRandom);
            offer(e, k, None)
        })
        .collect();
    let done = store
        .ingest_entries(&account("main"), again, ingest_audit(20))
        .await
        .unwrap();
    assert_eq!(done, report(0, 0, 3));
    assert_eq!(all_entries(store.as_ref(), "main").await, stored);
    // Both calls were audited, the one that changed nothing too.
    assert_eq!(all_audit(store.as_ref()).await.len(), 2);
    store.close().await;
}

pub(crate) async fn identical_entries_are_kept_apart_only_by_their_dedupe_keys(db: TestDb) {
    let store = db.open().await;
    // Two identical ¥100 credits of one day are two entries (fingerprint + occurrence).
    let same = booked("main", 10_000, 28);
    let fp = same.fingerprint();
    let mut twin = same.clone();
    twin.id = EntryId::generate(&OsRandom);
    let mut repeat = same.clone();
    repeat.id = EntryId::generate(&OsRandom);
    let done = store
        .ingest_entries(
            &account("main"),
            vec![
                offer(same.clone(), &format!("fp:{fp}:1"), None),
                offer(twin.clone(), &format!("fp:{fp}:2"), None),
                // Within one call, a repeated key is the same entry.
                offer(repeat, &format!("fp:{fp}:2"), None),
            ],
            ingest_audit(10),
        )
        .await
        .unwrap();
    assert_eq!(done, report(2, 0, 1));
    let stored = all_entries(store.as_ref(), "main").await;
    assert_eq!(ids(&stored), [same.id, twin.id]);

    // Dedupe keys are per account: the same key on another account is another entry.
    let other = booked("other", 10_000, 28);
    let done = store
        .ingest_entries(
            &account("other"),
            vec![offer(other, &format!("fp:{fp}:1"), None)],
            ingest_audit(11),
        )
        .await
        .unwrap();
    assert_eq!(done, report(1, 0, 0));
    store.close().await;
}

pub(crate) async fn a_booked_entry_replaces_its_pending_one(db: TestDb) {
    let store = db.open().await;
    let pending = entry("main", Direction::Credit, 5_000, 27, EntryStatus::Pending);
    let unrelated = entry("main", Direction::Credit, 5_000, 27, EntryStatus::Pending);
    store
        .ingest_entries(
            &account("main"),
            vec![
                offer(pending.clone(), "intraday:27:1", Some("bank:S1")),
                offer(unrelated.clone(), "intraday:27:2", Some("bank:S2")),
            ],
            ingest_audit(10),
        )
        .await
        .unwrap();
    let before = all_entries(store.as_ref(), "main").await;

    // The end-of-day statement books it on the next day, with a running balance.
    let mut booked_version = entry("main", Direction::Credit, 5_000, 28, EntryStatus::Booked);
    booked_version.value_date = day(29);
    booked_version.running_balance = Some(cny(90_000));
    let done = store
        .ingest_entries(
            &account("main"),
            vec![offer(
                booked_version.clone(),
                "bank:2026-11-28:S1",
                Some("bank:S1"),
            )],
            ingest_audit(20),
        )
        .await
        .unwrap();
    assert_eq!(done, report(0, 1, 0));

    let after = all_entries(store.as_ref(), "main").await;
    assert_eq!(after.len(), 2, "replaced, not added");
    let (old, new) = (&before[0], &after[0]);
    assert_eq!(new.entry.id, pending.id, "the id is stable");
    assert_eq!(new.seq, old.seq, "seq never changes");
    assert!(
        new.change_seq > before[1].change_seq,
        "the change feed moves"
    );
    assert_eq!(new.entry.status, EntryStatus::Booked);
    assert_eq!(new.entry.booking_date, day(28));
    assert_eq!(new.entry.value_date, day(29));
    assert_eq!(new.entry.running_balance, Some(cny(90_000)));
    assert_eq!(new.ingested_at, old.ingested_at);
    assert_eq!(new.updated_at, instant(20, 250_000));
    assert_eq!(after[1], before[1], "the other pending entry is untouched");

    // The booked report again: unchanged. A late intraday report of the pending one (its
    // old dedupe key was replaced) is recognised by its match key: unchanged too.
    let mut late = pending.clone();
    late.id = EntryId::generate(&OsRandom);
    let done = store
        .ingest_entries(
            &account("main"),
            vec![
                offer(
                    booked_version.clone(),
                    "bank:2026-11-28:S1",
                    Some("bank:S1"),
                ),
                offer(late, "intraday:27:1", Some("bank:S1")),
            ],
            ingest_audit(30),
        )
        .await
        .unwrap();
    assert_eq!(done, report(0, 0, 2));
    assert_eq!(all_entries(store.as_ref(), "main").await, after);

    // Booked under the same dedupe key as the pending report (no match key needed).
    let p = entry("main", Direction::Debit, 1, 28, EntryStatus::Pending);
    store
        .ingest_entries(
            &account("main"),
            vec![offer(p.clone(), "bank:2026-11-28:S9", None)],
            ingest_audit(40),
        )
        .await
        .unwrap();
    let mut b = p.clone();
    b.id = EntryId::generate(&OsRandom);
    b.status = EntryStatus::Booked;
    let done = store
        .ingest_entries(
            &account("main"),
            vec![offer(b, "bank:2026-11-28:S9", None)],
            ingest_audit(50),
        )
        .await
        .unwrap();
    assert_eq!(done, report(0, 1, 0));
    let last = all_entries(store.as_ref(), "main").await.pop().unwrap();
    assert_eq!(last.entry.id, p.id);
    assert_eq!(last.entry.status, EntryStatus::Booked);

    // A pending report never downgrades a booked entry, and a match key never reaches
    // across accounts.
    let mut downgrade = p.clone();
    downgrade.id = EntryId::generate(&OsRandom);
    let other = entry("other", Direction::Credit, 5_000, 28, EntryStatus::Booked);
    let done = store
        .ingest_entries(
            &account("main"),
            vec![offer(downgrade, "bank:2026-11-28:S9", None)],
            ingest_audit(60),
        )
        .await
        .unwrap();
    assert_eq!(done, report(0, 0, 1));
    let done = store
        .ingest_entries(
            &account("other"),
            vec![offer(other, "bank:2026-11-28:S2", Some("bank:S2"))],
            ingest_audit(61),
        )
        .await
        .unwrap();
    assert_eq!(done, report(1, 0, 0));
    let main = all_entries(store.as_ref(), "main").await;
    assert_eq!(
        main[1].entry.status,
        EntryStatus::Pending,
        "main's S2 stays pending"
    );
    store.close().await;
}

pub(crate) async fn paging_by_seq_returns_every_entry_once_while_entries_arrive(db: TestDb) {
    let store = db.open().await;
    let mut offered = Vec::new();
    let mut next_key = 0;
    let mut ingest = |count: usize, status: EntryStatus| {
        let batch: Vec<_> = (0..count)
            .map(|_| {
                next_key += 1;
                let e = entry("main", Direction::Credit, 100 + next_key, 28, status);
                offered.push(e.id.clone());
                offer(e, &format!("k{next_key}"), Some(&format!("m{next_key}")))
            })
            .collect();
        batch
    };
    let first = ingest(5, EntryStatus::Pending);
    let second = ingest(3, EntryStatus::Booked);
    let third = ingest(2, EntryStatus::Booked);
    store
        .ingest_entries(&account("main"), first, ingest_audit(1))
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut q = EntryQuery::all_of(account("main"));
    q.limit = 2;
    let mut round = 0;
    loop {
        let page = store.list_entries(&q).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        q.after_seq = last.seq;
        seen.extend(page.iter().map(|e| (e.seq, e.entry.id.clone())));
        round += 1;
        // Between pages: new entries arrive, and an already-read one is booked.
        match round {
            1 => {
                store
                    .ingest_entries(&account("main"), second.clone(), ingest_audit(2))
                    .await
                    .unwrap();
            }
            2 => {
                let mut booking = entry("main", Direction::Credit, 101, 28, EntryStatus::Booked);
                booking.id = EntryId::generate(&OsRandom);
                let done = store
                    .ingest_entries(
                        &account("main"),
                        vec![offer(booking, "k1-booked", Some("m1"))],
                        ingest_audit(3),
                    )
                    .await
                    .unwrap();
                assert_eq!(done, report(0, 1, 0));
                store
                    .ingest_entries(&account("main"), third.clone(), ingest_audit(4))
                    .await
                    .unwrap();
            }
            _ => {}
        }
    }
    let seen_ids: Vec<_> = seen.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(seen_ids, offered, "every entry once, in ingest order");
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
    store.close().await;
}

pub(crate) async fn the_change_feed_spans_accounts_in_change_seq_order(db: TestDb) {
    let store = db.open().await;
    let a1 = entry("acct-a", Direction::Credit, 1, 28, EntryStatus::Pending);
    let a2 = booked("acct-a", 2, 28);
    let b1 = booked("acct-b", 3, 28);
    let c1 = booked("acct-c", 4, 28);
    store
        .ingest_entries(
            &account("acct-a"),
            vec![
                offer(a1.clone(), "a1", Some("s-a1")),
                offer(a2.clone(), "a2", None),
            ],
            ingest_audit(1),
        )
        .await
        .unwrap();
    store
        .ingest_entries(
            &account("acct-b"),
            vec![offer(b1.clone(), "b1", None)],
            ingest_audit(2),
        )
        .await
        .unwrap();
    store
        .ingest_entries(
            &account("acct-c"),
            vec![offer(c1.clone(), "c1", None)],
            ingest_audit(3),
        )
        .await
        .unwrap();
    let mut a1_booked = a1.clone();
    a1_booked.id = EntryId::generate(&OsRandom);
    a1_booked.status = EntryStatus::Booked;
    store
        .ingest_entries(
            &account("acct-a"),
            vec![offer(a1_booked, "a1-eod", Some("s-a1"))],
            ingest_audit(4),
        )
        .await
        .unwrap();

    let watched = [account("acct-a"), account("acct-b")];
    let feed = store.entries_changed_since(&watched, 0, 0).await.unwrap();
    // a1 moved to the end when it was booked; acct-c is not watched.
    assert_eq!(ids(&feed), [a2.id.clone(), b1.id.clone(), a1.id.clone()]);
    assert!(feed.windows(2).all(|w| w[0].change_seq < w[1].change_seq));
    assert_eq!(feed[2].entry.status, EntryStatus::Booked);

    // Resuming after what was seen gives the rest; a limit cuts the page.
    let rest = store
        .entries_changed_since(&watched, feed[0].change_seq, 0)
        .await
        .unwrap();
    assert_eq!(ids(&rest), [b1.id.clone(), a1.id.clone()]);
    let one = store.entries_changed_since(&watched, 0, 1).await.unwrap();
    assert_eq!(ids(&one), std::slice::from_ref(&a2.id));
    let done = store
        .entries_changed_since(&watched, feed[2].change_seq, 0)
        .await
        .unwrap();
    assert!(done.is_empty());

    assert!(store
        .entries_changed_since(&[], 0, 0)
        .await
        .unwrap()
        .is_empty());
    let too_many: Vec<_> = (0..=CHANGE_FEED_MAX_ACCOUNTS)
        .map(|n| account(&format!("acct-{n}")))
        .collect();
    assert_invalid(
        store.entries_changed_since(&too_many, 0, 0).await,
        "change-feed",
    );
    store.close().await;
}

pub(crate) async fn concurrent_ingests_reach_a_polling_reader_exactly_once(db: TestDb) {
    const CALLS: usize = 20;
    const PER_CALL: usize = 5;
    const POLL_LIMIT: u32 = 7;
    let store = db.open().await;
    let watched = vec![account("acct-a"), account("acct-b")];

    let writers: Vec<_> = (0..CALLS)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let acct = if n % 2 == 0 { "acct-a" } else { "acct-b" };
                let offers: Vec<_> = (0..PER_CALL)
                    .map(|i| {
                        let minor = i64::try_from(n * 100 + i + 1).unwrap();
                        offer(booked(acct, minor, 28), &format!("call{n}:{i}"), None)
                    })
                    .collect();
                let ids: Vec<EntryId> = offers.iter().map(|o| o.entry.id.clone()).collect();
                let done = store
                    .ingest_entries(
                        &account(acct),
                        offers,
                        ingest_audit(i64::try_from(n).unwrap()),
                    )
                    .await
                    .unwrap();
                assert_eq!(done.inserted, PER_CALL as u32);
                ids
            })
        })
        .collect();

    // The poller runs while the writers do: it must never see a change_seq appear below
    // one it has already passed, or it would miss that entry for ever.
    let mut last = 0;
    let mut seen: HashMap<EntryId, i64> = HashMap::new();
    let mut polls = 0u32;
    let mut poll = |page: Vec<StoredEntry>, last: &mut i64| {
        for e in page {
            assert!(e.change_seq > *last, "{} after {}", e.change_seq, *last);
            *last = e.change_seq;
            assert!(
                seen.insert(e.entry.id.clone(), e.change_seq).is_none(),
                "{} seen twice",
                e.entry.id
            );
        }
    };
    while !writers.iter().all(|w| w.is_finished()) {
        let page = store
            .entries_changed_since(&watched, last, POLL_LIMIT)
            .await
            .unwrap();
        poll(page, &mut last);
        polls += 1;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut offered = HashSet::new();
    for w in writers {
        offered.extend(w.await.unwrap());
    }
    // Drain what committed after the last poll.
    loop {
        let page = store
            .entries_changed_since(&watched, last, POLL_LIMIT)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        poll(page, &mut last);
    }
    assert!(polls > 0);
    assert_eq!(offered.len(), CALLS * PER_CALL);
    let missed = offered.iter().filter(|id| !seen.contains_key(*id)).count();
    assert_eq!(
        missed,
        0,
        "the poller missed {missed} of {} entries: a change_seq committed below one it had passed",
        offered.len()
    );
    assert_eq!(seen.len(), offered.len());

    // What the poller saw is what is stored, and the counters have no duplicates.
    let mut stored = all_entries(store.as_ref(), "acct-a").await;
    stored.extend(all_entries(store.as_ref(), "acct-b").await);
    assert_eq!(stored.len(), CALLS * PER_CALL);
    for s in &stored {
        assert_eq!(seen.get(&s.entry.id), Some(&s.change_seq));
    }
    let seqs: HashSet<i64> = stored.iter().map(|s| s.seq).collect();
    assert_eq!(seqs.len(), stored.len());
    store.close().await;
}

pub(crate) async fn entries_filter_by_booking_date_and_status(db: TestDb) {
    let store = db.open().await;
    let d26 = booked("main", 1, 26);
    let d27 = booked("main", 2, 27);
    let d27_debit = entry("main", Direction::Debit, 3, 27, EntryStatus::Booked);
    let d27_pending = entry("main", Direction::Credit, 4, 27, EntryStatus::Pending);
    let d28 = booked("main", 5, 28);
    let elsewhere = booked("other", 6, 27);
    let all = [&d26, &d27, &d27_debit, &d27_pending, &d28];
    store
        .ingest_entries(
            &account("main"),
            all.iter()
                .enumerate()
                .map(|(n, e)| offer((*e).clone(), &format!("k{n}"), None))
                .collect(),
            ingest_audit(1),
        )
        .await
        .unwrap();
    store
        .ingest_entries(
            &account("other"),
            vec![offer(elsewhere, "k0", None)],
            ingest_audit(2),
        )
        .await
        .unwrap();

    let list = |from: Option<u32>, to: Option<u32>, status: Option<EntryStatus>| {
        let store = Arc::clone(&store);
        async move {
            let q = EntryQuery {
                from: from.map(day),
                to: to.map(day),
                status,
                ..EntryQuery::all_of(account("main"))
            };
            ids(&store.list_entries(&q).await.unwrap())
        }
    };
    let id = |e: &StatementEntry| e.id.clone();
    assert_eq!(list(None, None, None).await, all.map(id));
    assert_eq!(
        list(Some(27), Some(27), None).await,
        [id(&d27), id(&d27_debit), id(&d27_pending)]
    );
    assert_eq!(
        list(Some(27), None, None).await,
        [id(&d27), id(&d27_debit), id(&d27_pending), id(&d28)]
    );
    assert_eq!(list(None, Some(26), None).await, [id(&d26)]);
    assert_eq!(
        list(None, None, Some(EntryStatus::Pending)).await,
        [id(&d27_pending)]
    );
    assert_eq!(
        list(Some(27), Some(28), Some(EntryStatus::Booked)).await,
        [id(&d27), id(&d27_debit), id(&d28)]
    );
    assert!(list(Some(28), Some(27), None).await.is_empty());

    // The continuity check's read: booked entries of one day of one account.
    let day27 = store
        .booked_entries_on(&account("main"), day(27))
        .await
        .unwrap();
    assert_eq!(ids(&day27), [id(&d27), id(&d27_debit)]);
    let movements = day27.iter().map(|s| (s.entry.direction, s.entry.amount));
    // +2 − 3 from an opening of 10 closes at 9.
    assert_eq!(continuity_gap(cny(10), movements, cny(9)), Ok(None));
    assert!(store
        .booked_entries_on(&account("main"), day(1))
        .await
        .unwrap()
        .is_empty());
    store.close().await;
}

fn break_of(
    acct: &str,
    d: u32,
    opening: i64,
    sum: i64,
    closing: i64,
    at_s: i64,
) -> ContinuityBreak {
    ContinuityBreak {
        account_id: account(acct),
        date: day(d),
        opening: cny(opening),
        closing: cny(closing),
        entries_sum: cny(sum),
        gap: cny(closing - opening - sum),
        detected_at: instant(at_s, 0),
    }
}

pub(crate) async fn continuity_breaks_are_recorded_updated_and_cleared(db: TestDb) {
    let store = db.open().await;
    let main = account("main");
    let b26 = break_of("main", 26, 1_000, 500, 1_400, 1);
    let b27 = break_of("main", 27, 1_400, -100, 1_000, 2);
    let other = break_of("other", 27, 0, 0, -1, 3);
    for b in [&b26, &b27, &other] {
        store
            .record_continuity(&b.account_id, b.date, Some(b.clone()))
            .await
            .unwrap();
    }
    let listed = store.continuity_breaks(&main, None, None).await.unwrap();
    assert_eq!(listed, [b26.clone(), b27.clone()]);
    assert_eq!(
        store
            .continuity_breaks(&main, Some(day(27)), Some(day(30)))
            .await
            .unwrap(),
        std::slice::from_ref(&b27)
    );
    assert_eq!(
        store
            .continuity_breaks(&main, None, Some(day(26)))
            .await
            .unwrap(),
        std::slice::from_ref(&b26)
    );

    // Detected again with a different gap: amounts follow, the first detection time stays.
    let again = break_of("main", 26, 1_000, 500, 1_450, 9);
    store
        .record_continuity(&main, day(26), Some(again.clone()))
        .await
        .unwrap();
    let listed = store
        .continuity_breaks(&main, None, Some(day(26)))
        .await
        .unwrap();
    assert_eq!(
        listed,
        [ContinuityBreak {
            detected_at: b26.detected_at,
            ..again
        }]
    );

    // The day is consistent now: cleared; clearing again is harmless.
    store.record_continuity(&main, day(26), None).await.unwrap();
    store.record_continuity(&main, day(26), None).await.unwrap();
    assert_eq!(
        store.continuity_breaks(&main, None, None).await.unwrap(),
        std::slice::from_ref(&b27)
    );
    assert_eq!(
        store
            .continuity_breaks(&account("other"), None, None)
            .await
            .unwrap(),
        [other]
    );

    // Breaks that do not add up, mix currencies or belong elsewhere are refused.
    let mut wrong_gap = break_of("main", 28, 0, 0, 5, 1);
    wrong_gap.gap = cny(4);
    assert_invalid(
        store
            .record_continuity(&main, day(28), Some(wrong_gap))
            .await,
        "gap",
    );
    let no_gap = break_of("main", 28, 5, 0, 5, 1);
    assert_invalid(
        store.record_continuity(&main, day(28), Some(no_gap)).await,
        "gap",
    );
    let mut mixed = break_of("main", 28, 0, 0, 5, 1);
    mixed.closing = Money::from_minor(5, Currency::USD);
    assert_invalid(
        store.record_continuity(&main, day(28), Some(mixed)).await,
        "USD",
    );
    let elsewhere = break_of("main", 28, 0, 0, 5, 1);
    assert_invalid(
        store
            .record_continuity(&main, day(29), Some(elsewhere))
            .await,
        "not for",
    );
    assert_eq!(
        store.continuity_breaks(&main, None, None).await.unwrap(),
        [b27]
    );
    store.close().await;
}

pub(crate) async fn sync_state_round_trips(db: TestDb) {
    let store = db.open().await;
    assert_eq!(store.sync_state(&account("main")).await.unwrap(), None);
    let failing = SyncState {
        account_id: account("main"),
        synced_through: None,
        last_success_at: None,
        last_error: Some("银行返回错误 E001: 系统繁忙".to_owned()),
    };
    store.save_sync_state(&failing).await.unwrap();
    assert_eq!(
        store.sync_state(&account("main")).await.unwrap(),
        Some(failing)
    );

    let synced = SyncState {
        account_id: account("main"),
        synced_through: Some(day(27)),
        last_success_at: Some(instant(100, 123_456)),
        last_error: None,
    };
    store.save_sync_state(&synced).await.unwrap();
    assert_eq!(
        store.sync_state(&account("main")).await.unwrap(),
        Some(synced.clone())
    );
    assert_eq!(store.sync_state(&account("other")).await.unwrap(), None);

    let at_limit = SyncState {
        last_error: Some("误".repeat(SYNC_ERROR_MAX_CHARS)),
        ..synced.clone()
    };
    store.save_sync_state(&at_limit).await.unwrap();
    for bad in [
        "误".repeat(SYNC_ERROR_MAX_CHARS + 1),
        String::new(),
        "a\0b".to_owned(),
    ] {
        let state = SyncState {
            last_error: Some(bad),
            ..synced.clone()
        };
        assert!(matches!(
            store.save_sync_state(&state).await,
            Err(StoreError::Invalid { .. })
        ));
    }
    assert_eq!(
        store.sync_state(&account("main")).await.unwrap(),
        Some(at_limit)
    );
    store.close().await;
}

pub(crate) async fn ingest_is_all_or_nothing(db: TestDb) {
    let store = db.open().await;
    let kept = booked("main", 1, 27);
    let pending = entry("main", Direction::Credit, 2, 27, EntryStatus::Pending);
    store
        .ingest_entries(
            &account("main"),
            vec![offer(kept, "k1", None), offer(pending, "k2", Some("m2"))],
            ingest_audit(1),
        )
        .await
        .unwrap();
    let before = all_entries(store.as_ref(), "main").await;

    // The first two would insert and book; the third breaks a CHECK in the middle of the
    // transaction, so both are undone, the counters with them, and no audit is written.
    let mut zero = booked("main", 1, 28);
    zero.amount = cny(0);
    let third_offers = [
        offer(
            booked("main", 3, 28),
            &"k".repeat(ENTRY_KEY_MAX_CHARS + 1),
            None,
        ),
        offer(zero, "k-zero", None),
    ];
    let constraints = ["entry_dedupe_key_length", "entry_amount_positive"];
    for (third, constraint) in third_offers.into_iter().zip(constraints) {
        let booking = entry("main", Direction::Credit, 2, 28, EntryStatus::Booked);
        let result = store
            .ingest_entries(
                &account("main"),
                vec![
                    offer(booked("main", 4, 28), "k4", None),
                    offer(booking, "k2-eod", Some("m2")),
                    third,
                ],
                ingest_audit(2),
            )
            .await;
        assert_invalid(result, constraint);
        assert_eq!(all_entries(store.as_ref(), "main").await, before);
        assert_eq!(all_audit(store.as_ref()).await.len(), 1);
    }

    // An audit record the schema refuses takes the entries down with it.
    let rejected_audit = NewAuditRecord {
        actor: "x".repeat(store::AUDIT_TEXT_MAX_CHARS + 1),
        ..ingest_audit(3)
    };
    let result = store
        .ingest_entries(
            &account("main"),
            vec![offer(booked("main", 5, 28), "k5", None)],
            rejected_audit,
        )
        .await;
    assert_invalid(result, "audit_actor_length");
    assert_eq!(all_entries(store.as_ref(), "main").await, before);

    // The counters were rolled back with the failed calls: the next insert follows on.
    store
        .ingest_entries(
            &account("main"),
            vec![offer(booked("main", 6, 28), "k6", None)],
            ingest_audit(4),
        )
        .await
        .unwrap();
    let after = all_entries(store.as_ref(), "main").await;
    assert_eq!(after.len(), 3);
    assert_eq!(after[2].seq, before[1].seq + 1);
    store.close().await;
}

pub(crate) async fn entry_fields_at_their_limit_pass_and_beyond_are_refused(db: TestDb) {
    let store = db.open().await;
    // Multi-byte characters: the limits count characters on both backends, not bytes.
    let text = |n: usize| "账".repeat(n);
    let mut full = booked("main", 1, 28);
    full.counterparty = Counterparty {
        name: Some(text(MAX_COUNTERPARTY_NAME_CHARS)),
        account: Some(text(MAX_COUNTERPARTY_ACCOUNT_CHARS)),
        bank: Some(text(MAX_COUNTERPARTY_BANK_CHARS)),
    };
    full.remittance = Some(text(MAX_REMITTANCE_CHARS));
    full.bank_transaction_id = Some(text(MAX_BANK_TRANSACTION_ID_CHARS));
    full.end_to_end_id = Some(text(MAX_ENTRY_END_TO_END_ID_CHARS));
    full.amount = cny(i64::MAX);
    full.running_balance = Some(cny(i64::MIN));
    assert_eq!(
        full.validate(),
        Ok(()),
        "the domain agrees these are at the limit"
    );
    let key = text(ENTRY_KEY_MAX_CHARS);
    store
        .ingest_entries(
            &account("main"),
            vec![offer(full.clone(), &key, Some(&key))],
            ingest_audit(1),
        )
        .await
        .unwrap();
    let stored = all_entries(store.as_ref(), "main").await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].entry, full);

    type Change = fn(&mut IngestEntry);
    let over: [(&str, Change); 9] = [
        ("entry_counterparty_name_length", |o| {
            o.entry.counterparty.name = Some("账".repeat(MAX_COUNTERPARTY_NAME_CHARS + 1));
        }),
        ("entry_counterparty_account_length", |o| {
            o.entry.counterparty.account = Some("1".repeat(MAX_COUNTERPARTY_ACCOUNT_CHARS + 1));
        }),
        ("entry_counterparty_bank_length", |o| {
            o.entry.counterparty.bank = Some("账".repeat(MAX_COUNTERPARTY_BANK_CHARS + 1));
        }),
        ("entry_remittance_length", |o| {
            o.entry.remittance = Some("账".repeat(MAX_REMITTANCE_CHARS + 1));
        }),
        ("entry_bank_transaction_id_length", |o| {
            o.entry.bank_transaction_id = Some("s".repeat(MAX_BANK_TRANSACTION_ID_CHARS + 1));
        }),
        ("entry_end_to_end_id_length", |o| {
            o.entry.end_to_end_id = Some("e".repeat(MAX_ENTRY_END_TO_END_ID_CHARS + 1));
        }),
        ("entry_remittance_length", |o| {
            o.entry.remittance = Some(String::new());
        }),
        ("entry_pending_match_key_length", |o| {
            o.pending_match_key = Some("m".repeat(ENTRY_KEY_MAX_CHARS + 1));
        }),
        ("entry_dedupe_key_length", |o| o.dedupe_key = String::new()),
    ];
    for (constraint, change) in over {
        let mut o = offer(booked("main", 2, 28), "fresh", None);
        change(&mut o);
        let result = store
            .ingest_entries(&account("main"), vec![o], ingest_audit(2))
            .await;
        assert_invalid(result, constraint);
    }

    // What the schema cannot see is checked before anything is written.
    let mut foreign = offer(booked("other", 2, 28), "fresh", None);
    assert_invalid(
        store
            .ingest_entries(&account("main"), vec![foreign.clone()], ingest_audit(3))
            .await,
        "belongs to account other",
    );
    foreign.entry.account_id = account("main");
    foreign.entry.running_balance = Some(Money::from_minor(1, Currency::USD));
    assert_invalid(
        store
            .ingest_entries(&account("main"), vec![foreign.clone()], ingest_audit(3))
            .await,
        "running balance",
    );
    foreign.entry.running_balance = None;
    foreign.entry.remittance = Some("a\0b".to_owned());
    assert_invalid(
        store
            .ingest_entries(&account("main"), vec![foreign], ingest_audit(3))
            .await,
        "NUL",
    );
    let too_many: Vec<_> = (0..=store::INGEST_ENTRIES_MAX)
        .map(|n| offer(booked("main", 1, 28), &format!("n{n}"), None))
        .collect();
    assert_invalid(
        store
            .ingest_entries(&account("main"), too_many, ingest_audit(3))
            .await,
        "limit",
    );
    assert_eq!(all_entries(store.as_ref(), "main").await, stored);
    assert_eq!(all_audit(store.as_ref()).await.len(), 1);
    store.close().await;
}

pub(crate) async fn a_damaged_entry_row_is_reported_as_corrupt(db: TestDb) {
    let store = db.open().await;
    store
        .ingest_entries(
            &account("main"),
            vec![offer(booked("main", 1, 28), "k1", None)],
            ingest_audit(1),
        )
        .await
        .unwrap();
    // Damage a column no CHECK can fully guard: the currency code.
    db.execute_raw("UPDATE statement_entries SET currency = 'QQQ'")
        .await;
    let result = store
        .list_entries(&EntryQuery::all_of(account("main")))
        .await;
    assert!(
        matches!(
            result,
            Err(StoreError::Corrupt {
                table: "statement_entries",
                column: "currency",
                ..
            })
        ),
        "{result:?}"
    );
    store.close().await;
}
