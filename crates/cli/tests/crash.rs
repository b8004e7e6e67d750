#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The crash test (issue 4, "Must hold"): the real `bankdirect serve` and
//! `bankdirect sim` as separate processes on loopback; 520 payments
//! submitted by 32 concurrent clients while the simulated bank spoils 11 %
//! of the submissions after executing them and 6 % before; the gateway
//! `kill -9`ed three times at seeded moments during submission and once
//! while it works the backlog off, and restarted once with each failpoint
//! armed (it must abort there by itself) — every death followed by a normal
//! restart. Afterwards:
//!
//! - every payment is final or `needs_review` (a handful at most);
//! - each Idempotency-Key made exactly one payment;
//! - no execution at the bank carries a reference the gateway does not know,
//!   and none was executed twice;
//! - what the gateway says happened is what happened at the bank: `settled`
//!   and `returned` were executed exactly once with the same amount and the
//!   same outcome, `failed` moved no money;
//! - the debtor's statement shows one debit per settled payment, a debit
//!   and a credit per returned one, nothing for the rest, and its balance
//!   fell by the settled amounts exactly (returns are credited back).
//!
//! It runs on SQLite and on PostgreSQL (`BANKDIRECT_TEST_PG_URL`, set by
//! `scripts/test`; a fresh database per run, dropped afterwards). It prints
//! its seed first; `CRASH_SEED=N` replays the amounts, the fault seed and
//! the kill moments (which packet draws which fault follows arrival order,
//! so a replay under concurrency is close, not identical). Everything is
//! bounded in time and every child process is killed when the test ends,
//! pass or fail; on failure the working directory (config, logs) and the
//! PostgreSQL database are kept and named.

mod support;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    os::unix::process::ExitStatusExt,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use support::{
    booked_balance, decimal, executions, get_json, http, minor_of, seed, start_sim, tail, token,
    write_config, Draws, Gateway, PgDatabase, Setup, StopOnPanic, WorkDir, ACCOUNT_ID, FAILPOINTS,
};

/// Payments submitted (the issue asks for at least 500).
const PAYMENTS: usize = 520;
/// Client threads submitting at once.
const CLIENTS: usize = 32;
/// `kill -9`s at seeded moments while payments are being submitted.
const RANDOM_KILLS: usize = 3;
/// Longest pause of a client before a payment (mean half of it): 32 clients
/// then submit ~45 payments a second, and submission lasts ~12 s.
const MAX_THINK_MS: u64 = 1_400;
/// Payments still in `needs_review` at the end above this fail the test:
/// with queries never faulted, an unknown outcome resolves long before
/// `max_unknown_age_s`.
const MAX_NEEDS_REVIEW: usize = 5;
/// The whole test, set-up and checks included, must end within this.
const BUDGET: Duration = Duration::from_secs(175);
/// Payments one worker round claims: the configuration's default, so the
/// test runs the shipped setting. (This test once found that the status
/// poller starved when more payments were settled than one batch holds: a
/// claim refreshed `updated_at` and polling did not move `next_attempt_at`.
/// Both are fixed; `CRASH_CLAIM_BATCH` sets another batch size.)
const CLAIM_BATCH: u32 = 32;
/// The wait for the backlog gives up when no status changed for this long
/// (no status at the gateway and none at the bank).
const STUCK_AFTER: Duration = Duration::from_secs(30);

const FINAL: [&str; 5] = ["settled", "returned", "failed", "cancelled", "declined"];

// Only one crash test at a time: each alone keeps both cores busy.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn crash_test_on_sqlite() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    crash_test(None);
}

#[test]
fn crash_test_on_postgres() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let db = PgDatabase::from_env();
    crash_test(Some(db.url.clone()));
}

// ---------------------------------------------------------------------------
// The seed and what is drawn from it
// ---------------------------------------------------------------------------

/// What one gateway death looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Death {
    /// `kill -9`, then a normal restart.
    Kill,
    /// `kill -9`, a restart with this failpoint armed (the gateway must
    /// abort there by itself), then a normal restart.
    Failpoint(&'static str),
}

#[derive(Debug, Clone, Copy)]
struct Event {
    /// Submitted payments (201s seen by the clients) before it happens.
    after_accepted: usize,
    /// And this much later.
    delay_ms: u64,
    death: Death,
}

struct Plan {
    /// Amounts in CNY fen, one per payment.
    amounts_minor: Vec<i64>,
    /// How long the client waits before submitting each payment, so that
    /// submission lasts long enough for the kills to land in it.
    think_ms: Vec<u64>,
    fault_seed: u64,
    /// During submission, ordered by `after_accepted`.
    events: Vec<Event>,
    /// The last `kill -9`, this long after the last payment was accepted.
    backlog_kill_ms: u64,
}

impl Plan {
    fn from_seed(seed: u64) -> Plan {
        let draws = Draws(domain::SeededRandom::new(seed));
        let amounts_minor = (0..PAYMENTS)
            .map(|_| draws.between(100, 500_000) as i64)
            .collect();
        let think_ms = (0..PAYMENTS)
            .map(|_| draws.between(0, MAX_THINK_MS))
            .collect();
        let fault_seed = draws.between(0, u64::MAX >> 1);
        let mut deaths: Vec<Death> = (0..RANDOM_KILLS).map(|_| Death::Kill).collect();
        deaths.extend(FAILPOINTS.into_iter().map(Death::Failpoint));
        let n = PAYMENTS as u64;
        let mut events: Vec<Event> = deaths
            .into_iter()
            .map(|death| Event {
                // Leave enough payments behind the last event for a gateway
                // armed with a failpoint to find one to dispatch.
                after_accepted: draws.between(n / 20, n * 4 / 5) as usize,
                delay_ms: draws.between(0, 400),
                death,
            })
            .collect();
        events.sort_by_key(|e| e.after_accepted);
        Plan {
            amounts_minor,
            think_ms,
            fault_seed,
            events,
            backlog_kill_ms: draws.between(300, 2_500),
        }
    }
}

fn claim_batch() -> u32 {
    std::env::var("CRASH_CLAIM_BATCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(CLAIM_BATCH)
}

/// 11 % of the submissions spoiled after the bank executed them, 6 %
/// before; status queries are never spoiled.
fn random_faults(plan: &Plan) -> toml::Table {
    toml::from_str(&format!(
        r#"
seed = {}
rules = [
  {{ kind = "http_error", status = 500, when = "after", percent = 5, function = "SubmitPayment" }},
  {{ kind = "reset", when = "after", percent = 3, function = "SubmitPayment" }},
  {{ kind = "response_lost", hold_ms = 0, percent = 3, function = "SubmitPayment" }},
  {{ kind = "http_error", status = 503, when = "before", percent = 3, function = "SubmitPayment" }},
  {{ kind = "reset", when = "before", percent = 3, function = "SubmitPayment" }},
]
"#,
        plan.fault_seed
    ))
    .unwrap()
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

fn payment_body(i: usize, amount_minor: i64) -> Value {
    json!({
        "debtor_account_id": ACCOUNT_ID,
        "amount": decimal(amount_minor),
        "currency": "CNY",
        "creditor": {
            "name": "上海测试贸易有限公司",
            "account": "6222020000001234",
            "bank_code": "102290000001",
            "bank_name": "中国工商银行上海分行",
            "type": "corporate"
        },
        "remittance": format!("货款 {i}"),
    })
}

/// What the gateway answered when it took a payment.
#[derive(Debug, Clone)]
struct Accepted {
    id: String,
    reference: String,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicUsize,
    /// Requests that found the gateway down or dying.
    retries: AtomicUsize,
    /// Answers marked `idempotent-replayed`.
    replays: AtomicUsize,
}

/// Submits payment `i` until the gateway has taken it: the same key and the
/// same body on every attempt, whatever happened to the previous one.
#[allow(clippy::too_many_arguments)]
fn submit(
    http: &reqwest::blocking::Client,
    setup: &Setup,
    bearer: &mut String,
    seed: u64,
    i: usize,
    amount_minor: i64,
    counters: &Counters,
    stop: &AtomicBool,
    deadline: Instant,
) -> Option<Accepted> {
    let key = format!("crash-{seed}-{i}");
    let body = payment_body(i, amount_minor);
    loop {
        if stop.load(Ordering::SeqCst) {
            return None;
        }
        assert!(
            Instant::now() < deadline,
            "payment {i} not accepted before the deadline"
        );
        let resp = http
            .post(format!("{}/v1/payments", setup.base))
            .bearer_auth(bearer.as_str())
            .header("idempotency-key", &key)
            .json(&body)
            .send();
        let retry = match resp {
            Err(_) => true,
            Ok(resp) => {
                let status = resp.status().as_u16();
                let replayed = resp.headers().contains_key("idempotent-replayed");
                let text = resp.text().unwrap_or_default();
                match status {
                    201 => {
                        // A body cut short by a kill is one more reason to ask again.
                        if let Ok(v) = serde_json::from_str::<Value>(&text) {
                            if replayed {
                                counters.replays.fetch_add(1, Ordering::SeqCst);
                            }
                            assert_eq!(v["amount"], decimal(amount_minor), "payment {i}: {v}");
                            return Some(Accepted {
                                id: v["id"].as_str().unwrap().to_owned(),
                                reference: v["business_reference"].as_str().unwrap().to_owned(),
                            });
                        }
                        true
                    }
                    401 => {
                        *bearer = token(http, setup, deadline);
                        true
                    }
                    409 if text.contains("idempotency_in_progress") => true,
                    429 | 500..=599 => true,
                    _ => panic!("payment {i} (key {key}): unexpected {status}: {text}"),
                }
            }
        };
        if retry {
            counters.retries.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Every payment the gateway holds, through its API (all pages).
fn list_payments(
    http: &reqwest::blocking::Client,
    setup: &Setup,
    bearer: &mut String,
    deadline: Instant,
) -> Vec<Value> {
    'again: loop {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{}/v1/payments?limit=500", setup.base);
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let page = match http.get(&url).bearer_auth(bearer.as_str()).send() {
                Ok(resp) if resp.status() == 200 => resp.json::<Value>().ok(),
                Ok(resp) if resp.status() == 401 => {
                    *bearer = token(http, setup, deadline);
                    None
                }
                _ => None,
            };
            let Some(page) = page else {
                assert!(Instant::now() < deadline, "cannot list the payments");
                std::thread::sleep(Duration::from_millis(200));
                continue 'again;
            };
            items.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return items,
            }
        }
    }
}

/// For each transition cause, how many payments went through it (read
/// from every payment's history).
fn causes(
    http: &reqwest::blocking::Client,
    setup: &Setup,
    bearer: &mut String,
    payments: &[Value],
    deadline: Instant,
) -> BTreeMap<String, usize> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for p in payments {
        let url = format!("{}/v1/payments/{}", setup.base, p["id"].as_str().unwrap());
        let full = loop {
            match http.get(&url).bearer_auth(bearer.as_str()).send() {
                Ok(resp) if resp.status() == 200 => break resp.json::<Value>().unwrap(),
                Ok(resp) if resp.status() == 401 => *bearer = token(http, setup, deadline),
                _ => {
                    assert!(Instant::now() < deadline, "cannot read {url}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        };
        let seen: BTreeSet<String> = full["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["cause"].as_str().unwrap().to_owned())
            .collect();
        for cause in seen {
            *counts.entry(cause).or_default() += 1;
        }
    }
    counts
}

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------

fn crash_test(database_url: Option<String>) {
    let backend = if database_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let seed = seed("CRASH_SEED");
    println!("crash test seed: {seed} (replay with CRASH_SEED={seed})");
    eprintln!("crash test seed: {seed} (replay with CRASH_SEED={seed}), on {backend}");
    let started = Instant::now();
    let deadline = started + BUDGET;
    let plan = Plan::from_seed(seed);

    let work = WorkDir::new("bankdirect-crash-");
    let setup = write_config(
        work.path(),
        database_url.as_deref(),
        random_faults(&plan),
        claim_batch(),
    );
    let http = http();

    // The bank lives through every crash of the gateway.
    let _sim = start_sim(&http, &setup, work.path());
    let balance_before = booked_balance(&http, &setup);

    let gateway = Mutex::new(Gateway::new(&setup, work.path()));
    gateway.lock().unwrap().start(None);
    gateway.lock().unwrap().wait_ready(&http);

    // Submission: the clients in threads, the killer here.
    let counters = Counters::default();
    let stop = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Accepted>>> = Mutex::new(vec![None; PAYMENTS]);
    let mut kills = 0usize;
    let mut failpoint_deaths = Vec::new();
    std::thread::scope(|scope| {
        for client in 0..CLIENTS {
            let (http, setup, plan, counters, stop, results) =
                (&http, &setup, &plan, &counters, &stop, &results);
            scope.spawn(move || {
                let _guard = StopOnPanic(stop);
                let mut token = token(http, setup, deadline);
                for i in (client..PAYMENTS).step_by(CLIENTS) {
                    std::thread::sleep(Duration::from_millis(plan.think_ms[i]));
                    let Some(accepted) = submit(
                        http,
                        setup,
                        &mut token,
                        seed,
                        i,
                        plan.amounts_minor[i],
                        counters,
                        stop,
                        deadline,
                    ) else {
                        return;
                    };
                    results.lock().unwrap()[i] = Some(accepted);
                    counters.accepted.fetch_add(1, Ordering::SeqCst);
                }
            });
        }

        let _guard = StopOnPanic(&stop);
        for event in &plan.events {
            while counters.accepted.load(Ordering::SeqCst) < event.after_accepted {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                gateway.lock().unwrap().check_alive();
                assert!(
                    Instant::now() < deadline,
                    "submission stalled before {} payments",
                    event.after_accepted
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            std::thread::sleep(Duration::from_millis(event.delay_ms));
            let mut gw = gateway.lock().unwrap();
            gw.check_alive();
            gw.kill();
            kills += 1;
            eprintln!(
                "crash test: kill -9 after {} accepted payments ({:?})",
                counters.accepted.load(Ordering::SeqCst),
                event.death
            );
            if let Death::Failpoint(name) = event.death {
                gw.start(Some(name));
                let status = gw.wait_for_failpoint(name, &stop);
                assert_eq!(
                    status.signal(),
                    Some(6),
                    "the gateway armed with {name} should abort there, but exited with {status}; log:\n{}",
                    tail(&gw.log, 40)
                );
                failpoint_deaths.push(name);
            }
            gw.start(None);
            gw.wait_ready(&http);
        }
        // Wait for the clients while watching the gateway.
        while counters.accepted.load(Ordering::SeqCst) < PAYMENTS && !stop.load(Ordering::SeqCst) {
            gateway.lock().unwrap().check_alive();
            assert!(Instant::now() < deadline, "submission did not finish");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    assert!(!stop.load(Ordering::SeqCst), "a client stopped early");
    let submitted_in = started.elapsed();
    let accepted: Vec<Accepted> = results
        .into_inner()
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(i, a)| a.unwrap_or_else(|| panic!("payment {i} was never accepted")))
        .collect();

    // One more crash while the gateway works the backlog off.
    std::thread::sleep(Duration::from_millis(plan.backlog_kill_ms));
    {
        let mut gw = gateway.lock().unwrap();
        gw.check_alive();
        gw.kill();
        kills += 1;
        eprintln!("crash test: kill -9 while the backlog is worked off");
        gw.start(None);
        gw.wait_ready(&http);
    }

    // Wait until everything is final and the gateway has seen what the bank
    // did (settlements, returns).
    let mut token = token(&http, &setup, deadline);
    let mut last_change = (Instant::now(), Vec::new());
    let (payments, execs) = loop {
        gateway.lock().unwrap().check_alive();
        let payments = list_payments(&http, &setup, &mut token, deadline);
        let execs = executions(&http, &setup);
        let sim_status: HashMap<&str, &str> = execs
            .iter()
            .map(|e| {
                (
                    e["reference"].as_str().unwrap(),
                    e["status"].as_str().unwrap(),
                )
            })
            .collect();
        let pending = payments
            .iter()
            .filter(|p| {
                let status = p["status"].as_str().unwrap();
                let at_bank = sim_status
                    .get(p["business_reference"].as_str().unwrap())
                    .copied();
                !(FINAL.contains(&status) || status == "needs_review")
                    || at_bank == Some("processing")
                    || (status == "settled" && at_bank == Some("returned"))
            })
            .count();
        if pending == 0 && payments.len() >= PAYMENTS {
            break (payments, execs);
        }
        // Stuck (nothing moves any more) or out of time: the checks below
        // say what is wrong.
        let snapshot: Vec<String> = payments
            .iter()
            .map(|p| p["status"].as_str().unwrap().to_owned())
            .chain(
                execs
                    .iter()
                    .map(|e| e["status"].as_str().unwrap().to_owned()),
            )
            .collect();
        if snapshot != last_change.1 {
            last_change = (Instant::now(), snapshot);
        }
        if last_change.0.elapsed() > STUCK_AFTER || Instant::now() >= deadline {
            eprintln!("crash test: {pending} payments still pending; checking what there is");
            break (payments, execs);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let converged_in = started.elapsed();
    let balance_after = booked_balance(&http, &setup);
    let entries = get_json(
        &http,
        &format!(
            "{}_sim/accounts/{}/entries",
            setup.sim_url, setup.debtor_number
        ),
    );
    let causes = causes(&http, &setup, &mut token, &payments, deadline);
    let starts = gateway.lock().unwrap().starts;
    gateway.lock().unwrap().kill();

    // ---- The checks --------------------------------------------------------

    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for p in &payments {
        *by_status
            .entry(p["status"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let mut sim_by_status: BTreeMap<String, usize> = BTreeMap::new();
    for e in &execs {
        *sim_by_status
            .entry(e["status"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let resends: u64 = execs
        .iter()
        .map(|e| e["submissions"].as_u64().unwrap().saturating_sub(1))
        .sum();
    println!(
        "crash test on {backend}: seed {seed}; {} payments from {CLIENTS} clients, submitted in {:.1?}, all settled in {:.1?}",
        PAYMENTS, submitted_in, converged_in
    );
    println!(
        "  gateway: {kills} kill -9 ({RANDOM_KILLS} at random during submission, 2 before failpoint restarts, 1 in the backlog), {} failpoint aborts {:?}, {starts} starts; clients retried {} requests, {} answers replayed",
        failpoint_deaths.len(),
        failpoint_deaths,
        counters.retries.load(Ordering::SeqCst),
        counters.replays.load(Ordering::SeqCst)
    );
    println!("  gateway statuses: {by_status:?}");
    println!("  payments per transition cause: {causes:?}");
    println!(
        "  bank: {} executions {sim_by_status:?}, {resends} resubmissions of a known reference",
        execs.len()
    );

    // Every payment final or needs_review.
    let not_final: Vec<String> = payments
        .iter()
        .filter(|p| {
            let s = p["status"].as_str().unwrap();
            !(FINAL.contains(&s) || s == "needs_review")
        })
        .map(|p| format!("{} {}", p["id"], p["status"]))
        .collect();
    assert!(
        not_final.is_empty(),
        "{} payments are neither final nor in needs_review after {:?} (seed {seed}): {:?}",
        not_final.len(),
        BUDGET,
        not_final.iter().take(20).collect::<Vec<_>>()
    );
    let review: Vec<&Value> = payments
        .iter()
        .filter(|p| p["status"] == "needs_review")
        .collect();
    if !review.is_empty() {
        println!(
            "  needs_review: {:?}",
            review
                .iter()
                .map(|p| format!("{} {}", p["id"], p["business_reference"]))
                .collect::<Vec<_>>()
        );
    }
    assert!(
        review.len() <= MAX_NEEDS_REVIEW,
        "{} payments in needs_review (at most {MAX_NEEDS_REVIEW} expected; seed {seed})",
        review.len()
    );

    // One payment per Idempotency-Key: exactly the ones the clients were given.
    assert_eq!(
        payments.len(),
        PAYMENTS,
        "the gateway holds {} payments for {PAYMENTS} keys (seed {seed})",
        payments.len()
    );
    let ids: BTreeSet<&str> = payments.iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), PAYMENTS, "payment ids are unique");
    let by_reference: HashMap<&str, &Value> = payments
        .iter()
        .map(|p| (p["business_reference"].as_str().unwrap(), p))
        .collect();
    assert_eq!(
        by_reference.len(),
        PAYMENTS,
        "business references are unique"
    );
    for (i, a) in accepted.iter().enumerate() {
        let p = by_reference
            .get(a.reference.as_str())
            .unwrap_or_else(|| panic!("payment {i} ({a:?}) is not in the gateway's list"));
        assert_eq!(p["id"], a.id.as_str(), "payment {i}: the id the client got");
        assert_eq!(
            minor_of(p["amount"].as_str().unwrap()),
            plan.amounts_minor[i],
            "payment {i}: amount"
        );
    }

    // The bank: only known references, each executed at most once.
    let mut executed: HashMap<&str, &Value> = HashMap::new();
    for e in &execs {
        let reference = e["reference"].as_str().unwrap();
        assert!(
            by_reference.contains_key(reference),
            "the bank executed reference {reference}, which the gateway does not know: {e}"
        );
        assert_eq!(e["count"], 1, "executed more than once: {e}");
        assert!(
            executed.insert(reference, e).is_none(),
            "reference {reference} listed twice by the bank"
        );
    }

    // What the gateway says happened is what happened at the bank.
    let mut settled_minor = 0i64;
    let mut review_moved_minor = 0i64;
    for p in &payments {
        let reference = p["business_reference"].as_str().unwrap();
        let status = p["status"].as_str().unwrap();
        let amount = minor_of(p["amount"].as_str().unwrap());
        let at_bank = executed.get(reference);
        if let Some(e) = at_bank {
            assert_eq!(
                minor_of(e["amount"].as_str().unwrap()),
                amount,
                "amount at the bank: {p} vs {e}"
            );
        }
        let bank_status = at_bank.map(|e| e["status"].as_str().unwrap());
        match status {
            "settled" | "returned" => {
                assert_eq!(
                    bank_status,
                    Some(status),
                    "gateway says {status}, the bank says {bank_status:?}: {p}"
                );
                if status == "settled" {
                    settled_minor += amount;
                }
            }
            "needs_review" => {
                if matches!(bank_status, Some("settled" | "processing")) {
                    review_moved_minor += amount;
                }
            }
            _ => assert!(
                matches!(bank_status, None | Some("failed")),
                "gateway says {status} but the bank moved the money ({bank_status:?}): {p}"
            ),
        }
    }

    // The debtor's statement: a debit per executed payment, a credit back
    // per returned one, nothing for the others.
    let mut debits: HashMap<&str, usize> = HashMap::new();
    let mut credits: HashMap<&str, usize> = HashMap::new();
    for entry in entries.as_array().unwrap() {
        let e2e = entry["e2e_ref"].as_str().unwrap();
        if !by_reference.contains_key(e2e) {
            continue;
        }
        let side = if entry["direction"] == "debit" {
            &mut debits
        } else {
            &mut credits
        };
        *side.entry(e2e).or_default() += 1;
    }
    for p in &payments {
        let reference = p["business_reference"].as_str().unwrap();
        let (d, c) = (
            debits.get(reference).copied().unwrap_or(0),
            credits.get(reference).copied().unwrap_or(0),
        );
        let ok = match p["status"].as_str().unwrap() {
            "settled" => (d, c) == (1, 0),
            "returned" => (d, c) == (1, 1),
            // Whatever happened, at most once.
            "needs_review" => d <= 1 && c <= d,
            _ => (d, c) == (0, 0),
        };
        assert!(
            ok,
            "{d} debits and {c} credits for {reference} in the debtor's statement: {p}"
        );
    }

    // The ledger's net debit is the settled payments (returns came back).
    let net_debit = balance_before - balance_after;
    println!(
        "  ledger: debtor net debit {} = settled {} (+ {} moved by payments in needs_review)",
        decimal(net_debit),
        decimal(settled_minor),
        decimal(review_moved_minor)
    );
    assert_eq!(
        net_debit,
        settled_minor + review_moved_minor,
        "the debtor's net debit differs from the settled payments (seed {seed})"
    );
    assert!(
        by_status.get("settled").copied().unwrap_or(0) > PAYMENTS / 2,
        "most payments settle: {by_status:?}"
    );
    assert_eq!(
        failpoint_deaths.len(),
        FAILPOINTS.len(),
        "each failpoint crashed the gateway once"
    );
    assert!(kills > RANDOM_KILLS);
    // The faults and crashes really happened: outcomes were unknown, the
    // bank's "none" led to resends, and crashes left work mid-submission.
    let went_through = |cause: &str| causes.get(cause).copied().unwrap_or(0);
    assert!(
        went_through("outcome_unknown") >= PAYMENTS / 20,
        "too few unknown outcomes for the faults injected: {causes:?}"
    );
    assert!(went_through("bank_says_none") >= 1, "{causes:?}");
    assert!(went_through("lease_expired") >= 1, "{causes:?}");
    drop(work);
}
