#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The batch crash test (issue 5, "Must hold": a crash mid-batch ends with
//! every item final or `needs_review` and none executed twice). The real
//! `bankdirect serve` and `bankdirect sim` as separate processes on
//! loopback; five payment batches (payroll and supplier, 3 to 1,100 items,
//! eleven chunks of at most 500), a few per cent of their items refused by
//! the bank (creditor account `000…`, creditor name `错名…`) and one batch
//! refused item by item. The simulated bank spoils some chunk submissions
//! after executing them and some before (one of each for sure, more at
//! random), and a few status queries. The gateway dies four times, each
//! death followed by a normal restart:
//!
//! 1. armed with `after_submitting_commit` while only the first batch is
//!    there: it aborts on one of that batch's chunks, right after committing
//!    `submitting`, and the batch, resubmitted with its key, is replayed;
//! 2. `kill -9` while the next three batches are being dispatched (once a
//!    seeded number of their five chunks reached the bank);
//! 3. `kill -9` at a seeded moment after that, then a start armed with
//!    `after_bank_answer` while the last batch is submitted: it aborts on
//!    the first chunk the bank answers (of that batch, or one the kills
//!    left behind), which the last process must then reap from
//!    `submitting` and ask the bank about.
//!
//! Afterwards, once every batch is final (or in review) and the gateway has
//! seen what the bank did:
//!
//! - every item is final or `needs_review` (none expected: an unknown
//!   outcome resolves within seconds, long before the maximum age);
//! - per batch, the items add up to its count, `items_by_status` agrees with
//!   the items, and the batch status with them (completed when something was
//!   paid, failed when nothing was); each Idempotency-Key made one batch;
//! - at the bank, every chunk and every item reference is one the gateway
//!   holds, each chunk was taken in once and each item executed exactly once;
//! - what the gateway says happened to each item is what happened at the
//!   bank: settled and returned alike with the same amount, failed moved no
//!   money, and the items meant to be refused failed with the bank's code;
//! - the debtor's statement shows a debit per paid supplier item and one per
//!   payroll chunk (its paid items' sum), a credit per returned item, and the
//!   balance fell by exactly the settled items.
//!
//! It runs on SQLite and on PostgreSQL (`BANKDIRECT_TEST_PG_URL`, set by
//! `scripts/test`; a fresh database per run, dropped afterwards). It prints
//! its seed first; `BATCH_CRASH_SEED=N` replays the items, the fault seed and
//! the kill moments. Everything is bounded in time and every child process
//! is killed when the test ends, pass or fail; on failure the working
//! directory (config, logs) and the PostgreSQL database are kept and named.

mod support;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
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
    write_config, Draws, Gateway, PgDatabase, Setup, StopOnPanic, WorkDir, ACCOUNT_ID, CLIENT_ID,
    FAILPOINT_WITHIN,
};

/// The whole test, set-up and checks included, must end within this (it
/// takes well under a minute).
const BUDGET: Duration = Duration::from_secs(120);
/// The wait for the batches gives up when no status changed for this long
/// (at the gateway or at the bank).
const STUCK_AFTER: Duration = Duration::from_secs(30);
/// Chunk size of the cn-xml family (`max_batch_items`).
const CHUNK_ITEMS: usize = 500;
/// Share of the items of a batch, in per cent, whose creditor account does
/// not exist, and whose creditor name does not match the account.
const UNKNOWN_ACCOUNT_PERCENT: u64 = 3;
const NAME_MISMATCH_PERCENT: u64 = 2;

const AFTER_SUBMITTING_COMMIT: &str = "after_submitting_commit";
const AFTER_BANK_ANSWER: &str = "after_bank_answer";
const FINAL_ITEM: [&str; 4] = ["settled", "failed", "returned", "cancelled"];
const FINAL_BATCH: [&str; 3] = ["completed", "failed", "cancelled"];
/// Where a chunk ends once the bank finished every item.
const FINAL_CHUNK: [&str; 2] = ["settled", "failed"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Payroll,
    Supplier,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Payroll => "payroll",
            Kind::Supplier => "supplier",
        }
    }
}

/// When a batch is submitted (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// To a gateway armed with `after_submitting_commit`.
    FirstFailpoint,
    /// While the gateway is `kill -9`ed mid-dispatch.
    Kill,
    /// To a gateway armed with `after_bank_answer`.
    SecondFailpoint,
}

struct BatchSpec {
    label: &'static str,
    kind: Kind,
    items: usize,
    /// Every item refused by the bank (the batch must end `failed`).
    all_refused: bool,
    phase: Phase,
}

const BATCHES: [BatchSpec; 5] = [
    BatchSpec {
        label: "A",
        kind: Kind::Payroll,
        items: 1_100,
        all_refused: false,
        phase: Phase::FirstFailpoint,
    },
    BatchSpec {
        label: "B",
        kind: Kind::Supplier,
        items: 700,
        all_refused: false,
        phase: Phase::Kill,
    },
    BatchSpec {
        label: "C",
        kind: Kind::Payroll,
        items: 700,
        all_refused: false,
        phase: Phase::Kill,
    },
    BatchSpec {
        label: "D",
        kind: Kind::Supplier,
        items: 3,
        all_refused: true,
        phase: Phase::Kill,
    },
    BatchSpec {
        label: "E",
        kind: Kind::Supplier,
        items: 1_100,
        all_refused: false,
        phase: Phase::SecondFailpoint,
    },
];

// Only one crash test at a time: each alone keeps both cores busy.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn batch_crash_test_on_sqlite() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    batch_crash_test(None);
}

#[test]
fn batch_crash_test_on_postgres() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let db = PgDatabase::from_env();
    batch_crash_test(Some(db.url.clone()));
}

// ---------------------------------------------------------------------------
// The plan drawn from the seed
// ---------------------------------------------------------------------------

/// What the bank is meant to make of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    None,
    /// Creditor account starting `000`: refused, `INVALID_ACCOUNT`.
    UnknownAccount,
    /// Creditor name starting `错名`: refused, `NAME_MISMATCH`.
    NameMismatch,
}

impl Flaw {
    fn bank_code(self) -> Option<&'static str> {
        match self {
            Flaw::None => None,
            Flaw::UnknownAccount => Some("INVALID_ACCOUNT"),
            Flaw::NameMismatch => Some("NAME_MISMATCH"),
        }
    }
}

struct PlannedItem {
    amount_minor: i64,
    flaw: Flaw,
}

struct Plan {
    /// Per batch of [`BATCHES`], its items.
    items: Vec<Vec<PlannedItem>>,
    fault_seed: u64,
    /// The mid-dispatch `kill -9` comes once this many chunks of the
    /// batches submitted in [`Phase::Kill`] reached the bank…
    kill_after_chunks: usize,
    /// …and this much later.
    kill_delay_ms: u64,
    /// The `kill -9` before the start armed with `after_bank_answer`, this
    /// long after the restart that followed the mid-dispatch kill.
    second_kill_ms: u64,
}

impl Plan {
    fn from_seed(seed: u64) -> Plan {
        let draws = Draws(domain::SeededRandom::new(seed));
        let items = BATCHES
            .iter()
            .map(|spec| {
                (0..spec.items)
                    .map(|_| {
                        let amount_minor = draws.between(100, 500_000) as i64;
                        let roll = draws.between(0, 99);
                        let flaw = if spec.all_refused {
                            if roll % 2 == 0 {
                                Flaw::UnknownAccount
                            } else {
                                Flaw::NameMismatch
                            }
                        } else if roll < UNKNOWN_ACCOUNT_PERCENT {
                            Flaw::UnknownAccount
                        } else if roll < UNKNOWN_ACCOUNT_PERCENT + NAME_MISMATCH_PERCENT {
                            Flaw::NameMismatch
                        } else {
                            Flaw::None
                        };
                        PlannedItem { amount_minor, flaw }
                    })
                    .collect()
            })
            .collect();
        let kill_chunks = chunks_in(Phase::Kill);
        Plan {
            items,
            fault_seed: draws.between(0, u64::MAX >> 1),
            // Leave at least two of them not yet at the bank.
            kill_after_chunks: draws.between(1, kill_chunks as u64 - 2) as usize,
            kill_delay_ms: draws.between(0, 60),
            second_kill_ms: draws.between(0, 1_500),
        }
    }
}

/// Chunks of the batches submitted in this phase.
fn chunks_in(phase: Phase) -> usize {
    BATCHES
        .iter()
        .filter(|spec| spec.phase == phase)
        .map(|spec| spec.items.div_ceil(CHUNK_ITEMS))
        .sum()
}

/// The body of `POST /v1/payment-batches` for batch `b`.
fn batch_body(b: usize, items: &[PlannedItem]) -> Value {
    let spec = &BATCHES[b];
    let control_sum: i64 = items.iter().map(|i| i.amount_minor).sum();
    let items: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let (mut name, mut account, kind, remittance) = match spec.kind {
                Kind::Payroll => (
                    format!("员工{i:04}"),
                    format!("62220200{i:08}"),
                    "personal",
                    format!("工资 {}-{i}", spec.label),
                ),
                Kind::Supplier => (
                    format!("供应商{i:04}有限公司"),
                    format!("31100{i:011}"),
                    "corporate",
                    format!("货款 {}-{i}", spec.label),
                ),
            };
            match item.flaw {
                Flaw::None => {}
                Flaw::UnknownAccount => account = format!("000{i:013}"),
                Flaw::NameMismatch => name = format!("错名{i:04}"),
            }
            json!({
                "amount": decimal(item.amount_minor),
                "creditor": {
                    "name": name,
                    "account": account,
                    "bank_code": "102290000001",
                    "type": kind,
                },
                "remittance": remittance,
            })
        })
        .collect();
    json!({
        "debtor_account_id": ACCOUNT_ID,
        "currency": "CNY",
        "kind": spec.kind.as_str(),
        "count": items.len(),
        "control_sum": decimal(control_sum),
        "items": items,
    })
}

/// The bank's faults, drawn per packet from the seed: on the two batch
/// submissions after execution 20 %, before 8 %, and a slow answer 30 % of
/// the time so that dispatch takes a while (besides one sure fault of each
/// kind set through the control API); on the status query 10 %, which only
/// delays the answer (an unknown outcome still resolves within seconds).
fn random_faults(plan: &Plan) -> toml::Table {
    let mut rules = String::new();
    for function in ["SubmitBatch", "SubmitPayroll"] {
        rules.push_str(&format!(
            r#"
  {{ kind = "http_error", status = 500, when = "after", percent = 12, function = "{function}" }},
  {{ kind = "response_lost", hold_ms = 0, percent = 8, function = "{function}" }},
  {{ kind = "reset", when = "before", percent = 8, function = "{function}" }},
  {{ kind = "delay", ms = 250, percent = 30, function = "{function}" }},"#
        ));
    }
    rules.push_str(
        r#"
  { kind = "http_error", status = 500, percent = 6, function = "QueryBatch" },
  { kind = "reset", percent = 4, function = "QueryBatch" },"#,
    );
    toml::from_str(&format!(
        "seed = {}\nrules = [{rules}\n]\n",
        plan.fault_seed
    ))
    .unwrap()
}

/// The sure faults: the first payroll chunk executes and its answer is a
/// 500; the first supplier chunk's connection is reset before the bank
/// reads it.
fn add_sure_faults(run: &Run) {
    for rule in [
        json!({"kind": "http_error", "status": 500, "when": "after", "function": "SubmitPayroll", "remaining": 1}),
        json!({"kind": "reset", "when": "before", "function": "SubmitBatch", "remaining": 1}),
    ] {
        let resp = run
            .http
            .post(format!("{}_sim/faults", run.setup.sim_url))
            .json(&rule)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 201, "adding fault {rule}");
    }
}

// ---------------------------------------------------------------------------
// The run: the processes and the API
// ---------------------------------------------------------------------------

/// One run: its configuration, the gateway process and what the threads
/// driving it share.
struct Run {
    http: reqwest::blocking::Client,
    setup: Setup,
    gateway: Mutex<Gateway>,
    deadline: Instant,
    /// Set when a thread panics, so that the others stop.
    stop: AtomicBool,
    /// Requests sent again because the gateway was down, dying or busy.
    retries: AtomicUsize,
}

/// What one `POST /v1/payment-batches` came to.
enum Posted {
    Created {
        batch: Value,
        replayed: bool,
    },
    Unauthorized,
    /// The gateway was down, dying or busy: the same request again later.
    TryAgain,
}

/// What became of a batch submitted to a gateway armed with a failpoint.
struct ThroughFailpoint {
    batch: Value,
    /// The armed gateway answered 201 before it died.
    answered: bool,
    /// The submission after the restart was answered as a replay.
    replayed: bool,
}

impl Run {
    fn token(&self) -> String {
        token(&self.http, &self.setup, self.deadline)
    }

    /// One token request; `None` when the gateway is not there to answer.
    fn try_token(&self) -> Option<String> {
        let resp = self
            .http
            .post(format!("{}/oauth/token", self.setup.base))
            .basic_auth(CLIENT_ID, Some(&self.setup.client_secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .ok()?;
        if resp.status() != 200 {
            return None;
        }
        let body: Value = resp.json().ok()?;
        Some(body["access_token"].as_str()?.to_owned())
    }

    fn post_batch(&self, bearer: &str, key: &str, body: &Value) -> Posted {
        let Ok(resp) = self
            .http
            .post(format!("{}/v1/payment-batches", self.setup.base))
            .bearer_auth(bearer)
            .header("idempotency-key", key)
            .json(body)
            .send()
        else {
            return Posted::TryAgain;
        };
        let status = resp.status().as_u16();
        let replayed = resp.headers().contains_key("idempotent-replayed");
        let text = resp.text().unwrap_or_default();
        match status {
            // A body cut short by a kill is one more reason to ask again.
            201 => match serde_json::from_str::<Value>(&text) {
                Ok(batch) => Posted::Created { batch, replayed },
                Err(_) => Posted::TryAgain,
            },
            401 => Posted::Unauthorized,
            409 if text.contains("idempotency_in_progress") => Posted::TryAgain,
            429 | 500..=599 => Posted::TryAgain,
            _ => panic!("batch {key}: unexpected {status}: {text}"),
        }
    }

    /// Submits a batch until the gateway has taken it: the same key and body
    /// on every attempt, whatever happened to the previous one. Returns the
    /// batch and whether the answer was a replay.
    fn submit_batch(&self, bearer: &mut String, key: &str, body: &Value) -> (Value, bool) {
        loop {
            match self.post_batch(bearer, key, body) {
                Posted::Created { batch, replayed } => return (batch, replayed),
                Posted::Unauthorized => *bearer = self.token(),
                Posted::TryAgain => {}
            }
            self.retries.fetch_add(1, Ordering::SeqCst);
            assert!(
                !self.stop.load(Ordering::SeqCst),
                "batch {key}: given up, another thread of the test failed"
            );
            assert!(
                Instant::now() < self.deadline,
                "batch {key} not accepted before the deadline"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// GET with the bearer, asking again while the gateway is down.
    fn get_authorized(&self, bearer: &mut String, url: &str) -> reqwest::blocking::Response {
        loop {
            match self.http.get(url).bearer_auth(bearer.as_str()).send() {
                Ok(resp) if resp.status() == 200 => return resp,
                Ok(resp) if resp.status() == 401 => *bearer = self.token(),
                _ => {}
            }
            assert!(Instant::now() < self.deadline, "cannot read {url}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One batch with its chunks and every item.
    fn get_batch(&self, bearer: &mut String, id: &str) -> Value {
        let url = format!("{}/v1/payment-batches/{id}", self.setup.base);
        self.get_authorized(bearer, &url).json().unwrap()
    }

    /// `batch_chunk_transitions_total` of the running gateway process, per
    /// target status (from `/metrics`; it counts since the process started).
    fn chunk_transitions(&self, bearer: &mut String) -> BTreeMap<String, u64> {
        let url = format!("{}/metrics", self.setup.base);
        let body = self.get_authorized(bearer, &url).text().unwrap();
        body.lines()
            .filter_map(|line| line.strip_prefix("batch_chunk_transitions_total{to=\""))
            .filter_map(|rest| {
                let (to, count) = rest.split_once("\"} ")?;
                Some((to.to_owned(), count.trim().parse().ok()?))
            })
            .collect()
    }

    /// The chunks the bank took in (`/_sim/batches`).
    fn bank_chunks(&self) -> Vec<Value> {
        get_json(&self.http, &format!("{}_sim/batches", self.setup.sim_url))["items"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// How many chunks of batches other than `earlier` the bank took in.
    fn bank_chunks_besides(&self, earlier: &HashSet<String>) -> usize {
        self.bank_chunks()
            .iter()
            .filter(|c| !earlier.contains(text(c, "batch_reference")))
            .count()
    }

    /// Starts the gateway armed with `failpoint`, submits a batch to it (if
    /// it lives long enough to take it), waits until it aborts there by
    /// itself, then starts it normally and submits the batch again with the
    /// same key: when the armed gateway had answered, the answer must be
    /// the same batch, replayed.
    fn through_failpoint(
        &self,
        failpoint: &'static str,
        bearer: &mut String,
        key: &str,
        body: &Value,
    ) -> ThroughFailpoint {
        let mut gw = self.gateway.lock().unwrap();
        gw.start(Some(failpoint));
        let armed_at = Instant::now();
        let mut first: Option<Value> = None;
        while first.is_none() && !gw.has_exited() {
            let answer = match self.try_token() {
                Some(t) => self.post_batch(&t, key, body),
                None => Posted::TryAgain,
            };
            if let Posted::Created { batch, .. } = answer {
                first = Some(batch);
            }
            assert!(
                armed_at.elapsed() < FAILPOINT_WITHIN,
                "the gateway armed with {failpoint} neither took batch {key} nor died"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let status = gw.wait_for_failpoint(failpoint, &self.stop);
        assert_eq!(
            status.signal(),
            Some(6),
            "the gateway armed with {failpoint} should abort there, but exited with {status}; log:\n{}",
            tail(&gw.log, 40)
        );
        eprintln!("batch crash test: the gateway aborted at {failpoint}");
        gw.start(None);
        gw.wait_ready(&self.http);
        drop(gw);
        let (batch, replayed) = self.submit_batch(bearer, key, body);
        if let Some(first) = &first {
            assert_eq!(
                first["id"], batch["id"],
                "batch {key}: the retry after the crash made another batch"
            );
            assert!(
                replayed,
                "batch {key}: the retry after the crash was not a replay"
            );
        }
        ThroughFailpoint {
            batch,
            answered: first.is_some(),
            replayed,
        }
    }
}

fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not a string in {v}"))
}

fn array<'a>(v: &'a Value, field: &str) -> &'a [Value] {
    v[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} is not an array in {v}"))
}

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------

/// What the test did to the gateway, for the report.
#[derive(Default)]
struct Deaths {
    failpoints: Vec<&'static str>,
    kills: usize,
    /// Chunks of the [`Phase::Kill`] batches at the bank when it was killed.
    chunks_at_bank_at_kill: usize,
}

/// What the test saw once the batches were done.
struct Seen {
    /// Each batch of [`BATCHES`] with its chunks and items.
    batches: Vec<Value>,
    /// The bank's executions (`/_sim/executions`) and chunks (`/_sim/batches`).
    executions: Vec<Value>,
    bank_chunks: Vec<Value>,
    /// The debtor's statement at the bank.
    entries: Vec<Value>,
    balance_before_minor: i64,
    balance_after_minor: i64,
    last_process_transitions: BTreeMap<String, u64>,
}

fn batch_crash_test(database_url: Option<String>) {
    let backend = if database_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let seed = seed("BATCH_CRASH_SEED");
    println!("batch crash test seed: {seed} (replay with BATCH_CRASH_SEED={seed})");
    eprintln!("batch crash test seed: {seed} (replay with BATCH_CRASH_SEED={seed}), on {backend}");
    let started = Instant::now();
    let plan = Plan::from_seed(seed);

    let work = WorkDir::new("bankdirect-batch-crash-");
    // The shipped claim size: a round claims every chunk of these batches.
    let claim_batch = 32;
    let setup = write_config(
        work.path(),
        database_url.as_deref(),
        random_faults(&plan),
        claim_batch,
    );
    let run = Run {
        http: http(),
        gateway: Mutex::new(Gateway::new(&setup, work.path())),
        setup,
        deadline: started + BUDGET,
        stop: AtomicBool::new(false),
        retries: AtomicUsize::new(0),
    };

    // The bank lives through every crash of the gateway.
    let _sim = start_sim(&run.http, &run.setup, work.path());
    add_sure_faults(&run);
    let balance_before_minor = booked_balance(&run.http, &run.setup);

    let mut deaths = Deaths::default();
    let created = submit_with_crashes(&run, &plan, seed, &mut deaths);
    let submitted_in = started.elapsed();
    let mut bearer = run.token();
    let (batches, executions) = wait_until_done(&run, &mut bearer, &created);
    let done_in = started.elapsed();
    let seen = Seen {
        batches,
        executions,
        bank_chunks: run.bank_chunks(),
        entries: get_json(
            &run.http,
            &format!(
                "{}_sim/accounts/{}/entries",
                run.setup.sim_url, run.setup.debtor_number
            ),
        )
        .as_array()
        .unwrap()
        .clone(),
        balance_before_minor,
        balance_after_minor: booked_balance(&run.http, &run.setup),
        last_process_transitions: run.chunk_transitions(&mut bearer),
    };
    let starts = run.gateway.lock().unwrap().starts;
    run.gateway.lock().unwrap().kill();

    println!(
        "batch crash test on {backend}: seed {seed}; {} batches, {} items in {} chunks, submitted in {submitted_in:.1?}, all done in {done_in:.1?}",
        BATCHES.len(),
        BATCHES.iter().map(|s| s.items).sum::<usize>(),
        seen.batches
            .iter()
            .map(|b| array(b, "chunks").len())
            .sum::<usize>(),
    );
    println!(
        "  gateway: {} kill -9 (one with {} of {} chunks at the bank), failpoint aborts {:?}, {starts} starts; {} requests retried",
        deaths.kills,
        deaths.chunks_at_bank_at_kill,
        chunks_in(Phase::Kill),
        deaths.failpoints,
        run.retries.load(Ordering::SeqCst)
    );
    report(&seen);

    assert_eq!(
        deaths.failpoints,
        [AFTER_SUBMITTING_COMMIT, AFTER_BANK_ANSWER],
        "each failpoint crashed the gateway once"
    );
    // The last process found the chunk the `after_bank_answer` crash left
    // in `submitting` and learnt its outcome from the bank.
    assert!(
        seen.last_process_transitions
            .get("unknown")
            .copied()
            .unwrap_or(0)
            >= 1,
        "the last gateway process reaped no chunk left in submitting: {:?}",
        seen.last_process_transitions
    );
    check_final(&seen, seed);
    let index = check_batches(&seen, &created, &plan);
    let executed = check_bank(&seen, &index);
    check_items(&seen, &index, &executed, &plan, seed);
    drop(work);
}

/// Submits every batch of [`BATCHES`] while the gateway dies as the module
/// doc says; returns each batch as created.
fn submit_with_crashes(run: &Run, plan: &Plan, seed: u64, deaths: &mut Deaths) -> Vec<Value> {
    let keys: Vec<String> = BATCHES
        .iter()
        .map(|spec| format!("batch-crash-{seed}-{}", spec.label))
        .collect();
    let bodies: Vec<Value> = (0..BATCHES.len())
        .map(|b| batch_body(b, &plan.items[b]))
        .collect();
    let in_phase = |phase: Phase| {
        BATCHES
            .iter()
            .enumerate()
            .filter(move |(_, spec)| spec.phase == phase)
            .map(|(b, _)| b)
    };
    let mut created: Vec<Option<Value>> = vec![None; BATCHES.len()];
    let mut bearer = String::new();

    // 1. The first batch, to a gateway that dies right after committing
    //    `submitting` for one of its chunks.
    for b in in_phase(Phase::FirstFailpoint) {
        let label = BATCHES[b].label;
        let through =
            run.through_failpoint(AFTER_SUBMITTING_COMMIT, &mut bearer, &keys[b], &bodies[b]);
        // Only this batch's chunks could take the gateway to the failpoint:
        // the batch was stored before the crash, answered or not.
        assert!(
            through.replayed,
            "batch {label}: the retry after the crash was not a replay (answered before: {})",
            through.answered
        );
        eprintln!(
            "batch crash test: batch {label} answered before the crash: {}",
            through.answered
        );
        deaths.failpoints.push(AFTER_SUBMITTING_COMMIT);
        created[b] = Some(through.batch);
    }
    let earlier: HashSet<String> = created
        .iter()
        .flatten()
        .map(|b| text(b, "business_reference").to_owned())
        .collect();

    // 2. The next batches, and a `kill -9` while their chunks are being
    //    dispatched: once the bank took in `kill_after_chunks` of them.
    std::thread::scope(|scope| {
        let earlier = &earlier;
        let killer = scope.spawn(move || {
            let _guard = StopOnPanic(&run.stop);
            loop {
                if run.stop.load(Ordering::SeqCst) {
                    return None;
                }
                let at_bank = run.bank_chunks_besides(earlier);
                if at_bank >= plan.kill_after_chunks {
                    break;
                }
                assert!(
                    Instant::now() < run.deadline,
                    "only {at_bank} chunks reached the bank before the deadline"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(Duration::from_millis(plan.kill_delay_ms));
            let mut gw = run.gateway.lock().unwrap();
            gw.check_alive();
            gw.kill();
            let at_bank = run.bank_chunks_besides(earlier);
            eprintln!(
                "batch crash test: kill -9 with {at_bank} of {} chunks at the bank",
                chunks_in(Phase::Kill)
            );
            gw.start(None);
            gw.wait_ready(&run.http);
            Some(at_bank)
        });
        let _guard = StopOnPanic(&run.stop);
        for b in in_phase(Phase::Kill) {
            let (batch, _) = run.submit_batch(&mut bearer, &keys[b], &bodies[b]);
            created[b] = Some(batch);
        }
        deaths.chunks_at_bank_at_kill = killer.join().unwrap().expect("the killer stopped early");
        deaths.kills += 1;
    });

    // 3. A `kill -9` at a seeded moment, then the last batch to a gateway
    //    that dies right after the bank answered a chunk.
    std::thread::sleep(Duration::from_millis(plan.second_kill_ms));
    {
        let mut gw = run.gateway.lock().unwrap();
        gw.check_alive();
        gw.kill();
        deaths.kills += 1;
        eprintln!("batch crash test: kill -9 before the start armed with {AFTER_BANK_ANSWER}");
    }
    for b in in_phase(Phase::SecondFailpoint) {
        let through = run.through_failpoint(AFTER_BANK_ANSWER, &mut bearer, &keys[b], &bodies[b]);
        eprintln!(
            "batch crash test: batch {} answered before the crash: {}",
            BATCHES[b].label, through.answered
        );
        deaths.failpoints.push(AFTER_BANK_ANSWER);
        created[b] = Some(through.batch);
    }
    created
        .into_iter()
        .enumerate()
        .map(|(b, c)| c.unwrap_or_else(|| panic!("batch {} was never created", BATCHES[b].label)))
        .collect()
}

/// Waits until every batch is final (or in review), every chunk is done,
/// and the gateway has seen what the bank did to each item (a settlement,
/// a return); gives up when nothing moved for [`STUCK_AFTER`] or at the
/// deadline, leaving the checks to say what is wrong. Returns the batches
/// and the bank's executions as last read.
fn wait_until_done(run: &Run, bearer: &mut String, created: &[Value]) -> (Vec<Value>, Vec<Value>) {
    let mut last_change = (Instant::now(), Vec::new());
    loop {
        run.gateway.lock().unwrap().check_alive();
        let batches: Vec<Value> = created
            .iter()
            .map(|c| run.get_batch(bearer, text(c, "id")))
            .collect();
        let executions = executions(&run.http, &run.setup);
        let at_bank: HashMap<&str, &str> = executions
            .iter()
            .map(|e| (text(e, "reference"), text(e, "status")))
            .collect();
        let done =
            |status: &str, finals: &[&str]| finals.contains(&status) || status == "needs_review";
        let open_batches = batches
            .iter()
            .filter(|b| !done(text(b, "status"), &FINAL_BATCH))
            .count();
        let open_chunks = batches
            .iter()
            .flat_map(|b| array(b, "chunks"))
            .filter(|c| !done(text(c, "status"), &FINAL_CHUNK))
            .count();
        let open_items = batches
            .iter()
            .flat_map(|b| array(b, "items"))
            .filter(|i| {
                let status = text(i, "status");
                let bank = at_bank.get(text(i, "business_reference")).copied();
                !done(status, &FINAL_ITEM)
                    || bank == Some("processing")
                    || (status == "settled" && bank == Some("returned"))
            })
            .count();
        if open_batches + open_chunks + open_items == 0 {
            return (batches, executions);
        }
        let snapshot: Vec<String> = batches
            .iter()
            .flat_map(|b| {
                std::iter::once(&b["status"])
                    .chain(array(b, "chunks").iter().map(|c| &c["status"]))
                    .chain(array(b, "items").iter().map(|i| &i["status"]))
            })
            .chain(executions.iter().map(|e| &e["status"]))
            .map(|s| s.as_str().unwrap_or_default().to_owned())
            .collect();
        if snapshot != last_change.1 {
            last_change = (Instant::now(), snapshot);
        }
        if last_change.0.elapsed() > STUCK_AFTER || Instant::now() >= run.deadline {
            eprintln!(
                "batch crash test: {open_batches} batches, {open_chunks} chunks and {open_items} items still open; checking what there is"
            );
            return (batches, executions);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn report(seen: &Seen) {
    for b in &seen.batches {
        let chunks: Vec<String> = array(b, "chunks")
            .iter()
            .map(|c| format!("{}:{}", c["chunk_no"], text(c, "status")))
            .collect();
        println!(
            "  batch {} {} ({} items): {}, chunks {chunks:?}, items {}",
            text(b, "kind"),
            text(b, "id"),
            b["count"],
            text(b, "status"),
            b["items_by_status"]
        );
    }
    let mut bank_statuses: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &seen.executions {
        *bank_statuses.entry(text(e, "status")).or_default() += 1;
    }
    let chunk_resends: u64 = seen
        .bank_chunks
        .iter()
        .map(|c| c["submissions"].as_u64().unwrap().saturating_sub(1))
        .sum();
    println!(
        "  chunk transitions in the last gateway process: {:?}",
        seen.last_process_transitions
    );
    println!(
        "  bank: {} chunks ({chunk_resends} resent under their reference), {} item executions {bank_statuses:?}",
        seen.bank_chunks.len(),
        seen.executions.len()
    );
}

// ---------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------

/// Every item final or in review; none in review expected.
fn check_final(seen: &Seen, seed: u64) {
    let items = || seen.batches.iter().flat_map(|b| array(b, "items"));
    let not_final: Vec<String> = items()
        .filter(|i| {
            let status = text(i, "status");
            !(FINAL_ITEM.contains(&status) || status == "needs_review")
        })
        .map(|i| format!("{} {}", text(i, "business_reference"), text(i, "status")))
        .collect();
    assert!(
        not_final.is_empty(),
        "{} items are neither final nor in needs_review (seed {seed}): {:?}",
        not_final.len(),
        not_final.iter().take(20).collect::<Vec<_>>()
    );
    let in_review = items().filter(|i| i["status"] == "needs_review").count();
    assert_eq!(
        in_review, 0,
        "items in needs_review although the bank answers status queries within seconds (seed {seed})"
    );
}

/// One item of the gateway's, where it belongs.
struct ItemAt<'a> {
    item: &'a Value,
    /// Its batch in [`BATCHES`] and position there.
    batch: usize,
    position: usize,
    /// Its chunk's business reference.
    chunk: &'a str,
}

/// The gateway's items and chunks by business reference.
struct Index<'a> {
    items: HashMap<&'a str, ItemAt<'a>>,
    /// Each chunk's batch in [`BATCHES`] and number of items.
    chunks: HashMap<&'a str, (usize, usize)>,
}

/// Per batch: the one created, what was submitted, its chunks, its counts
/// and its status against its items.
fn check_batches<'a>(seen: &'a Seen, created: &[Value], plan: &Plan) -> Index<'a> {
    let mut index = Index {
        items: HashMap::new(),
        chunks: HashMap::new(),
    };
    for (b, (batch, spec)) in seen.batches.iter().zip(&BATCHES).enumerate() {
        let label = spec.label;
        assert_eq!(
            batch["id"], created[b]["id"],
            "batch {label}: the batch read is the one created"
        );
        assert_eq!(text(batch, "kind"), spec.kind.as_str(), "batch {label}");
        assert_eq!(batch["count"], spec.items, "batch {label}: count");
        let items = array(batch, "items");
        assert_eq!(items.len(), spec.items, "batch {label}: items listed");
        let chunks = array(batch, "chunks");
        assert_eq!(
            chunks.len(),
            spec.items.div_ceil(CHUNK_ITEMS),
            "batch {label}: chunks"
        );
        let mut chunk_refs: HashMap<i64, &str> = HashMap::new();
        for c in chunks {
            let status = text(c, "status");
            assert!(
                FINAL_CHUNK.contains(&status) || status == "needs_review",
                "batch {label}: chunk {c} is not done"
            );
            let reference = text(c, "business_reference");
            chunk_refs.insert(c["chunk_no"].as_i64().unwrap(), reference);
            assert!(
                index.chunks.insert(reference, (b, 0)).is_none(),
                "chunk reference {reference} used twice"
            );
        }
        let mut counted: BTreeMap<&str, u64> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            *counted.entry(text(item, "status")).or_default() += 1;
            assert_eq!(
                minor_of(text(item, "amount")),
                plan.items[b][i].amount_minor,
                "batch {label} item {i}: amount"
            );
            let chunk_no = item["chunk_no"].as_i64().unwrap();
            assert_eq!(
                chunk_no,
                (i / CHUNK_ITEMS) as i64 + 1,
                "batch {label} item {i}: chunk"
            );
            let chunk = chunk_refs[&chunk_no];
            index.chunks.get_mut(chunk).unwrap().1 += 1;
            let reference = text(item, "business_reference");
            let at = ItemAt {
                item,
                batch: b,
                position: i,
                chunk,
            };
            assert!(
                index.items.insert(reference, at).is_none(),
                "item reference {reference} used twice"
            );
        }
        let by_status: BTreeMap<&str, u64> = batch["items_by_status"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(s, n)| (s.as_str(), n.as_u64().unwrap()))
            .filter(|(_, n)| *n > 0)
            .collect();
        assert_eq!(
            by_status, counted,
            "batch {label}: items_by_status disagrees with the items"
        );
        assert_eq!(
            counted.values().sum::<u64>(),
            spec.items as u64,
            "batch {label}: the statuses add up to the count"
        );
        let paid = counted.get("settled").copied().unwrap_or(0)
            + counted.get("returned").copied().unwrap_or(0);
        let expected_status = if counted.contains_key("needs_review") {
            "needs_review"
        } else if paid > 0 {
            "completed"
        } else {
            "failed"
        };
        assert_eq!(
            text(batch, "status"),
            expected_status,
            "batch {label}: its status against its items {counted:?}"
        );
        if spec.all_refused {
            assert_eq!(text(batch, "status"), "failed", "batch {label}");
        }
    }
    index
}

/// The bank took in only chunks the gateway knows, each once and with its
/// items, and executed only items the gateway knows, each once and as part
/// of its chunk. Returns the executions by reference.
fn check_bank<'a>(seen: &'a Seen, index: &Index) -> HashMap<&'a str, &'a Value> {
    let mut bank_chunks = HashSet::new();
    for c in &seen.bank_chunks {
        let reference = text(c, "reference");
        let Some((_, items)) = index.chunks.get(reference) else {
            panic!("the bank took in chunk {reference}, which the gateway does not know: {c}");
        };
        assert!(
            bank_chunks.insert(reference),
            "the bank lists chunk {reference} twice"
        );
        assert_eq!(c["items"], *items, "items of chunk {reference} at the bank");
    }
    for reference in index.chunks.keys() {
        assert!(
            bank_chunks.contains(reference),
            "chunk {reference} never reached the bank"
        );
    }
    let mut executed: HashMap<&str, &Value> = HashMap::new();
    for e in &seen.executions {
        let reference = text(e, "reference");
        let Some(at) = index.items.get(reference) else {
            panic!(
                "the bank executed reference {reference}, which is no item the gateway holds: {e}"
            );
        };
        assert_eq!(e["count"], 1, "executed more than once: {e}");
        assert!(
            executed.insert(reference, e).is_none(),
            "the bank lists reference {reference} twice"
        );
        assert_eq!(
            e["batch_reference"].as_str(),
            Some(at.chunk),
            "executed as part of another chunk than the gateway's: {e}"
        );
    }
    executed
}

/// Each item: what the gateway says is what happened at the bank, the
/// refused ones with the bank's code; then the debtor's statement and
/// balance agree with the items.
fn check_items(
    seen: &Seen,
    index: &Index,
    executed: &HashMap<&str, &Value>,
    plan: &Plan,
    seed: u64,
) {
    let mut settled_minor = 0i64;
    let mut paid_per_chunk: HashMap<&str, i64> = HashMap::new();
    for (reference, at) in &index.items {
        let (item, i) = (at.item, at.position);
        let label = BATCHES[at.batch].label;
        let status = text(item, "status");
        let amount = minor_of(text(item, "amount"));
        let Some(e) = executed.get(reference) else {
            panic!("batch {label} item {i} ({reference}, {status}) was never executed at the bank");
        };
        assert_eq!(
            minor_of(text(e, "amount")),
            amount,
            "amount at the bank: {item} vs {e}"
        );
        let bank_status = text(e, "status");
        match status {
            "settled" | "returned" => {
                assert_eq!(
                    bank_status, status,
                    "batch {label} item {i}: the gateway says {status}, the bank says {bank_status}: {item}"
                );
                if status == "settled" {
                    settled_minor += amount;
                }
                *paid_per_chunk.entry(at.chunk).or_default() += amount;
            }
            "failed" => assert_eq!(
                bank_status, "failed",
                "batch {label} item {i}: the gateway says failed but the bank moved the money: {item}"
            ),
            other => panic!("batch {label} item {i}: unexpected status {other}: {item}"),
        }
        match plan.items[at.batch][i].flaw.bank_code() {
            Some(code) => assert_eq!(
                (status, item["bank_code"].as_str()),
                ("failed", Some(code)),
                "batch {label} item {i} should be refused by the bank with {code}: {item}"
            ),
            None => assert_ne!(
                status, "failed",
                "batch {label} item {i} was valid but failed: {item}"
            ),
        }
    }

    // The debtor's statement: a supplier item is debited alone, a payroll
    // chunk once for its paid items; a return is credited per item.
    let mut debits: HashMap<&str, (usize, i64)> = HashMap::new();
    let mut credits: HashMap<&str, usize> = HashMap::new();
    for entry in &seen.entries {
        let e2e = text(entry, "e2e_ref");
        if entry["direction"] == "debit" {
            let d = debits.entry(e2e).or_default();
            d.0 += 1;
            d.1 += minor_of(text(entry, "amount")).abs();
        } else {
            *credits.entry(e2e).or_default() += 1;
        }
    }
    for (reference, at) in &index.items {
        let status = text(at.item, "status");
        let paid = matches!(status, "settled" | "returned");
        let supplier = BATCHES[at.batch].kind == Kind::Supplier;
        assert_eq!(
            (
                debits.get(reference).map_or(0, |d| d.0),
                credits.get(reference).copied().unwrap_or(0)
            ),
            (
                usize::from(paid && supplier),
                usize::from(status == "returned")
            ),
            "debits and credits for {reference} in the debtor's statement: {}",
            at.item
        );
    }
    for (chunk, (b, _)) in &index.chunks {
        if BATCHES[*b].kind != Kind::Payroll {
            continue;
        }
        let paid = paid_per_chunk.get(chunk).copied().unwrap_or(0);
        let expected = if paid > 0 { (1, paid) } else { (0, 0) };
        assert_eq!(
            debits.get(chunk).copied().unwrap_or((0, 0)),
            expected,
            "payroll chunk {chunk}: one debit for its paid items"
        );
    }
    let net_debit = seen.balance_before_minor - seen.balance_after_minor;
    println!(
        "  ledger: debtor net debit {} = settled items {}",
        decimal(net_debit),
        decimal(settled_minor)
    );
    assert_eq!(
        net_debit, settled_minor,
        "the debtor's net debit differs from the settled items (seed {seed})"
    );
}
