#!/usr/bin/env bash
# benches/intake.sh: the payment benchmarks of BENCHMARKS.md ("Durable
# intake"), on SQLite and on PostgreSQL, in one run, on loopback.
#
# For each backend it measures, one phase after another:
#   1. durable intake: wrk at BENCH_CONNECTIONS connections, every request a
#      new payment (`POST /v1/payments`, its own Idempotency-Key and
#      end_to_end_id; benches/intake.lua); req/s, p50, p99; the payments
#      found stored afterwards. Payment workers are off in this phase, so
#      the gateway only takes payments in.
#      Durability shown, not claimed: SQLite's journal_mode read from the
#      file, and the gateway's fsync/fdatasync calls counted with strace
#      during a short separate load (per file: the WAL is synced at every
#      commit only with synchronous=FULL); PostgreSQL's fsync,
#      synchronous_commit and wal_sync_method read from the server.
#   2. a payroll batch of BENCH_BATCH_ITEMS items, `POST /v1/payment-batches`,
#      timed by curl; "not available" when the gateway answers 404;
#   3. the raw commit rate of the same kind of database (store-bench, sqlx):
#      one INSERT per transaction with 1, 10 and BENCH_CONNECTIONS writers,
#      and BENCH_COMMIT_BATCH INSERTs per transaction, rows/s;
#   4. dispatch: BENCH_DISPATCH_PAYMENTS payments preloaded with workers off,
#      then the gateway restarted with workers on against a simulated bank
#      that answers at once (settle, return and ingest delays 0, the debtor
#      may overdraw); the rate is answers written back per second from the
#      first `submitting` commit to the last answer (payment_history).
# Results go to stdout and benches/results/intake-latest.md. Goals (reported,
# never asserted): intake >= 10000/s on SQLite and >= 5000/s on PostgreSQL
# with p99 < 25 ms; dispatch >= 2000/s.
#
# Usage: benches/intake.sh [--help]
#
# Settings (environment):
#   BENCH_SECONDS=15            measured wrk run per backend
#   BENCH_WARMUP_SECONDS=3      unrecorded wrk run before it
#   BENCH_CONNECTIONS=64        wrk connections (and the largest writer count)
#   BENCH_THREADS=2             wrk threads
#   BENCH_BACKENDS="sqlite postgres"
#   BENCH_COMMIT_SECONDS=5      per raw commit-rate measurement
#   BENCH_COMMIT_BATCH=256      INSERTs per batched transaction (the store's max_batch)
#   BENCH_BATCH_ITEMS=5000      items in the payroll batch
#   BENCH_DISPATCH_PAYMENTS=5000
#   BENCH_DISPATCH_TIMEOUT_S=300
#   BENCH_BANK_CONCURRENCY=64   the simulated bank's call limits in the gateway's
#   BENCH_BANK_QPS=100000       config for every phase (the demo's 4 and 10/s would
#                               make the bank limit the dispatch rate)
#   BENCH_MAX_IN_FLIGHT=256     the gateway's payments.max_in_flight (shipped: 64,
#                               sized for banks of a few calls at once and ~10/s):
#                               for a bank that takes 64 calls at once, each
#                               payment also holds its slot through the writes
#                               before and after its call, so 64 would leave the
#                               bank's capacity idle
#   BENCH_CLIENT_RATE=1000000   the gateway's per-client request limit
#                               ([server.limits] client_requests_per_s and
#                               client_burst) for every phase: the shipped
#                               200/s would make the limiter the result; the
#                               limiter still runs on every request
#   BENCH_PG_URL                an admin URL of the PostgreSQL server (loopback);
#                               default $BANKDIRECT_TEST_PG_URL, else the script
#                               runs scripts/pg-test.sh start and uses its cluster
#   BENCH_BIN_DIR               use prebuilt bankdirect and store-bench from there
#
# Example:
#   benches/intake.sh                                  # everything, ~3 minutes plus the build
#   BENCH_BACKENDS=sqlite BENCH_SECONDS=5 benches/intake.sh
#
# Everything listens on 127.0.0.1; every wait is bounded; the gateway, the
# simulator and strace are stopped and the temporary directory and
# PostgreSQL databases removed on exit, whatever happens. It exits non-zero
# when something breaks, not when a goal is missed.
set -euo pipefail

if (( $# > 0 )); then
    case $1 in
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "intake.sh: takes no arguments (settings come from the environment); see --help" >&2; exit 2 ;;
    esac
fi

BENCH_SECONDS=${BENCH_SECONDS:-15}
BENCH_WARMUP_SECONDS=${BENCH_WARMUP_SECONDS:-3}
BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-64}
BENCH_THREADS=${BENCH_THREADS:-2}
BENCH_BACKENDS=${BENCH_BACKENDS:-sqlite postgres}
BENCH_COMMIT_SECONDS=${BENCH_COMMIT_SECONDS:-5}
BENCH_COMMIT_BATCH=${BENCH_COMMIT_BATCH:-256}
BENCH_BATCH_ITEMS=${BENCH_BATCH_ITEMS:-5000}
BENCH_DISPATCH_PAYMENTS=${BENCH_DISPATCH_PAYMENTS:-5000}
BENCH_DISPATCH_TIMEOUT_S=${BENCH_DISPATCH_TIMEOUT_S:-300}
BENCH_BANK_CONCURRENCY=${BENCH_BANK_CONCURRENCY:-64}
BENCH_BANK_QPS=${BENCH_BANK_QPS:-100000}
BENCH_MAX_IN_FLIGHT=${BENCH_MAX_IN_FLIGHT:-256}
BENCH_CLIENT_RATE=${BENCH_CLIENT_RATE:-1000000}
# Read by every bankdirect process the script starts (the demo, serve, sim).
export BANKDIRECT_SERVER__LIMITS__CLIENT_REQUESTS_PER_S=$BENCH_CLIENT_RATE
export BANKDIRECT_SERVER__LIMITS__CLIENT_BURST=$BENCH_CLIENT_RATE
BENCH_ACCOUNT=sim-east-cny-1
DURABILITY_CHECK_SECONDS=2
PRELOAD_TIMEOUT_S=120
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/.cache/bankdirect/target}
STARTUP_TIMEOUT_S=60
STOP_TIMEOUT_S=15
CURL_TIMEOUT_S=10
BATCH_TIMEOUT_S=300
GOAL_SQLITE_RPS=10000
GOAL_PG_RPS=5000
GOAL_P99_MS=25
GOAL_DISPATCH_PER_S=2000

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS_DIR="$ROOT/benches/results"
LUA="$ROOT/benches/intake.lua"

log() { printf 'intake.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for v in BENCH_SECONDS BENCH_WARMUP_SECONDS BENCH_CONNECTIONS BENCH_THREADS BENCH_COMMIT_SECONDS \
    BENCH_COMMIT_BATCH BENCH_BATCH_ITEMS BENCH_DISPATCH_PAYMENTS BENCH_DISPATCH_TIMEOUT_S \
    BENCH_BANK_CONCURRENCY BENCH_BANK_QPS BENCH_MAX_IN_FLIGHT; do
    [[ ${!v} =~ ^[0-9]+$ ]] && (( ${!v} > 0 )) || die "$v must be a positive integer, got '${!v}'"
done
(( BENCH_SECONDS <= 600 && BENCH_WARMUP_SECONDS <= 60 && BENCH_COMMIT_SECONDS <= 60 )) \
    || die "BENCH_SECONDS ≤ 600, BENCH_WARMUP_SECONDS ≤ 60, BENCH_COMMIT_SECONDS ≤ 60 (bounded runs)"
(( BENCH_CONNECTIONS <= 256 && BENCH_THREADS <= BENCH_CONNECTIONS )) || die "BENCH_CONNECTIONS ≤ 256 and ≥ BENCH_THREADS"
(( BENCH_BATCH_ITEMS <= 100000 && BENCH_DISPATCH_PAYMENTS <= 100000 && BENCH_DISPATCH_TIMEOUT_S <= 3600 )) \
    || die "BENCH_BATCH_ITEMS and BENCH_DISPATCH_PAYMENTS ≤ 100000, BENCH_DISPATCH_TIMEOUT_S ≤ 3600"
for b in $BENCH_BACKENDS; do
    [[ $b == sqlite || $b == postgres ]] || die "BENCH_BACKENDS: unknown backend '$b' (sqlite, postgres)"
done

# ---------------------------------------------------------------- tools
missing=()
for tool in wrk jq curl strace; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if (( ${#missing[@]} > 0 )); then
    log "installing ${missing[*]} (Debian packages)"
    SUDO=()
    (( EUID == 0 )) || SUDO=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 "${SUDO[@]}" apt-get update -qq || die "apt-get update failed"
    timeout 600 "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
fi

# ---------------------------------------------------------------- build
if [[ -n ${BENCH_BIN_DIR:-} ]]; then
    BIN_DIR=$BENCH_BIN_DIR
    built_at=$(date -u -r "$BIN_DIR/bankdirect" '+%Y-%m-%d %H:%M UTC' 2>/dev/null || echo '?')
    BUILD_NOTE="prebuilt binaries from $BIN_DIR, bankdirect built $built_at (not built by this run)"
    log "$BUILD_NOTE"
else
    log "building release bankdirect and store-bench (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$ROOT" && cargo build --release -p bankdirect -p bankdirect-bench) || die "release build failed"
    BIN_DIR=$CARGO_TARGET_DIR/release
    BUILD_NOTE="release profile, built by this run"
fi
BD=$BIN_DIR/bankdirect
SB=$BIN_DIR/store-bench
[[ -x $BD ]] || die "no bankdirect binary in $BIN_DIR"
[[ -x $SB ]] || die "no store-bench binary in $BIN_DIR"
# Write back what is dirty in the page cache (a build just before leaves
# gigabytes of it) now, not during the measured phases, where the kernel's
# writeback would stall the databases' fsyncs: in A/B sittings right after a
# build, single runs showed p99s of 88 and 184 ms that did not come back.
log "sync: writing back dirty pages before measuring"
timeout 300 sync || die "sync did not finish within 300 s"

# ---------------------------------------------------------------- PostgreSQL
PG_ADMIN_URL=""
if [[ " $BENCH_BACKENDS " == *" postgres "* ]]; then
    PG_ADMIN_URL=${BENCH_PG_URL:-${BANKDIRECT_TEST_PG_URL:-}}
    if [[ -z $PG_ADMIN_URL ]]; then
        log "no BENCH_PG_URL: starting the test cluster (scripts/pg-test.sh start)"
        timeout 600 "$ROOT/scripts/pg-test.sh" start || die "scripts/pg-test.sh start failed"
        eval "$("$ROOT/scripts/pg-test.sh" env)"
        PG_ADMIN_URL=$BANKDIRECT_TEST_PG_URL
    fi
    [[ $PG_ADMIN_URL =~ ^postgres(ql)?://([^@/]*@)?(127\.0\.0\.1|localhost)(:[0-9]+)?/ ]] \
        || die "the PostgreSQL URL must be on loopback (127.0.0.1 or localhost): $PG_ADMIN_URL"
    command -v psql >/dev/null || die "psql is needed to create the benchmark's databases"
fi
PG_PREFIX="bd_bench_$(date +%s)_$$"
PG_DATABASES=()
# The URL of database $1 on the admin URL's server.
pg_url_of() { sed -E "s#^(postgres(ql)?://[^/]*)/[^?]*#\\1/$1#" <<<"$PG_ADMIN_URL"; }
pg_admin() { timeout 60 psql "$PG_ADMIN_URL" -X -q -v ON_ERROR_STOP=1 -c "$1" >/dev/null; }
pg_create() {
    pg_admin "CREATE DATABASE $1" || die "cannot create database $1"
    PG_DATABASES+=("$1")
}

# ---------------------------------------------------------------- processes
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bankdirect-intake.XXXXXX")
PIDS=()
stop_pid() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || true
    # Bounded: a process that ignores SIGTERM gets SIGKILL.
    for _ in $(seq 1 $((STOP_TIMEOUT_S * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
forget_pid() {
    local keep=() p
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}
cleanup() {
    local rc=$?
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    if (( rc != 0 )); then
        for f in "$WORK"/*.log; do
            [[ -s $f ]] || continue
            log "last lines of $(basename "$f"):"
            tail -n 15 "$f" >&2 || true
        done
    fi
    for db in "${PG_DATABASES[@]}"; do
        pg_admin "DROP DATABASE IF EXISTS $db WITH (FORCE)" || log "could not drop database $db"
    done
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_for() {
    local limit_s=$1 what=$2
    shift 2
    local deadline=$((SECONDS + limit_s))
    until "$@" >/dev/null 2>&1; do
        for pid in "${PIDS[@]}"; do
            kill -0 "$pid" 2>/dev/null || die "a process exited while waiting for $what"
        done
        (( SECONDS < deadline )) || die "timed out after ${limit_s}s waiting for $what"
        sleep 0.2
    done
}

# ---------------------------------------------------------------- config
# `bankdirect demo` writes a real configuration (banks, accounts from the
# simulators' seeded ledgers, a client with every scope and its secret); the
# benchmark then runs `bankdirect sim` and `bankdirect serve` on it.
log "writing the configuration with bankdirect demo"
"$BD" demo --data-dir "$WORK/gw" --port 0 >"$WORK/demo.out" 2>"$WORK/demo.log" &
DEMO_PID=$!
PIDS+=("$DEMO_PID")
wait_for "$STARTUP_TIMEOUT_S" "demo.json" jq -e .base_url "$WORK/gw/demo.json"
stop_pid "$DEMO_PID"
forget_pid "$DEMO_PID"
rm -f "$WORK/gw/bankdirect.db" "$WORK/gw/bankdirect.db-wal" "$WORK/gw/bankdirect.db-shm"
CONFIG=$WORK/gw/bankdirect.toml
BASE=$(jq -r .base_url "$WORK/gw/demo.json")
CLIENT_ID=$(jq -r .client_id "$WORK/gw/demo.json")
CLIENT_SECRET=$(jq -r .client_secret "$WORK/gw/demo.json")
SIM_URL=$(jq -r '.simulators[] | select(.bank_id == "sim-east") | .url' "$WORK/gw/demo.json")
[[ $BASE == http://127.0.0.1:* && $SIM_URL == http://127.0.0.1:* ]] || die "not on 127.0.0.1: $BASE $SIM_URL"
SIM_URL=${SIM_URL%/}
# The banks' call limits (every [banks.limits] table of the demo config).
grep -q '^concurrency = ' "$CONFIG" && grep -q '^queries_per_second = ' "$CONFIG" \
    || die "the demo config has no bank limits to raise; has its layout changed?"
sed -i -E "s/^concurrency = .*/concurrency = $BENCH_BANK_CONCURRENCY/; s/^queries_per_second = .*/queries_per_second = $BENCH_BANK_QPS/" "$CONFIG"
DEBTOR_NUMBER=$(awk -v id="$BENCH_ACCOUNT" '
    $0 == "[[accounts]]" { in_acc = 1; found = 0; next }
    /^\[/ { in_acc = 0 }
    in_acc && $1 == "id" && $3 == "\"" id "\"" { found = 1 }
    in_acc && found && $1 == "number" { gsub(/"/, "", $3); print $3; exit }' "$CONFIG")
[[ -n $DEBTOR_NUMBER ]] || die "account $BENCH_ACCOUNT not found in $CONFIG"

"$BD" sim --config "$CONFIG" >"$WORK/sim.out" 2>"$WORK/sim.log" &
SIM_PID=$!
PIDS+=("$SIM_PID")
wait_for "$STARTUP_TIMEOUT_S" "the simulated bank" curl -fsS --max-time "$CURL_TIMEOUT_S" "$SIM_URL/_sim/payments/config"
# A bank that answers at once and never refuses for funds.
SIM_PAYMENTS=$(jq -cn --arg n "$DEBTOR_NUMBER" \
    '{settle_delay_ms: 0, return_delay_ms: 0, return_share_percent: 0, ingest_delay_ms: 0, overdraft_accounts: [$n]}')
curl -fsS --max-time "$CURL_TIMEOUT_S" -X PUT -H 'Content-Type: application/json' \
    -d "$SIM_PAYMENTS" "$SIM_URL/_sim/payments/config" >/dev/null || die "PUT /_sim/payments/config failed"

GW_PID=""
# Starts `bankdirect serve` on database URL $1 with payment workers on ($2 = true) or off.
start_gateway() {
    BANKDIRECT_DATABASE__URL=$1 \
    BANKDIRECT_PAYMENTS__WORKERS_ENABLED=$2 \
    BANKDIRECT_PAYMENTS__MAX_IN_FLIGHT=$BENCH_MAX_IN_FLIGHT \
    BANKDIRECT_BALANCES__WORKER_ENABLED=false \
    BANKDIRECT_STATEMENTS__WORKER_ENABLED=false \
        "$BD" serve --config "$CONFIG" >>"$WORK/gateway.out" 2>>"$WORK/gateway.log" &
    GW_PID=$!
    PIDS+=("$GW_PID")
    wait_for "$STARTUP_TIMEOUT_S" "the gateway's /healthz" curl -fsS --max-time "$CURL_TIMEOUT_S" "$BASE/healthz"
}
stop_gateway() {
    stop_pid "$GW_PID"
    forget_pid "$GW_PID"
    GW_PID=""
}
get_token() {
    local body
    body=$(curl -fsS --max-time "$CURL_TIMEOUT_S" -u "$CLIENT_ID:$CLIENT_SECRET" \
        -d grant_type=client_credentials "$BASE/oauth/token") || die "POST /oauth/token failed"
    jq -er .access_token <<<"$body" || die "no access_token in the token response"
}

# ---------------------------------------------------------------- measuring helpers
proc_cpu_s() {
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat"
}
machine_busy_s() {
    awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu" { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat
}
children_cpu_s() {
    times >"$WORK/times.txt"
    awk 'NR == 2 {
        t = 0
        for (i = 1; i <= 2; i++) { split($i, a, "m"); sub(/s$/, "", a[2]); t += a[1] * 60 + a[2] }
        printf "%.2f", t
    }' "$WORK/times.txt"
}
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/)      { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /m$/)  { sub(/m$/, "", v);  printf "%.3f", v * 60000 }
        else if (v ~ /s$/)  { sub(/s$/, "", v);  printf "%.3f", v * 1000 }
        else                { printf "?" }
    }'
}
# Runs wrk with the intake script: $1 seconds, $2 run tag, $3 output file, rest extra env.
run_wrk() {
    local secs=$1 tag=$2 out=$3
    shift 3
    env INTAKE_TOKEN="$TOKEN" INTAKE_ACCOUNT="$BENCH_ACCOUNT" INTAKE_RUN="$tag" "$@" \
        timeout $((secs + 60)) wrk -t"$BENCH_THREADS" -c"$BENCH_CONNECTIONS" -d"${secs}s" --latency \
        -s "$LUA" "$BASE/v1/payments" >"$out" || die "wrk failed ($tag)"
}
# One payment by curl; prints the HTTP status.
one_payment() {
    local key="bench-pre-$1" body
    body=$(jq -cn --arg a "$BENCH_ACCOUNT" --arg k "$key" '{debtor_account_id: $a, amount: "1.00", currency: "CNY",
        creditor: {name: "上海测试贸易有限公司", account: "6222020000001234", bank_code: "102290000001", type: "corporate"},
        remittance: "货款", end_to_end_id: $k}')
    curl -sS --max-time "$CURL_TIMEOUT_S" -o "$WORK/last.json" -w '%{http_code}' -X POST \
        -H "Authorization: Bearer $TOKEN" -H "Idempotency-Key: $key" -H 'Content-Type: application/json' \
        -d "$body" "$BASE/v1/payments" || echo 000
}
payments_line() { "$SB" payments "${DB_ARGS[@]}" | awk '/^payments /'; }
status_count() { awk -v k="$1" '{ for (i = 2; i <= NF; i++) { split($i, a, "="); if (a[1] == k) n = a[2] } } END { print n + 0 }' <<<"$2"; }

# The payroll batch body: BENCH_BATCH_ITEMS personal creditors, amounts in
# fen 1000.00..9999.99, control_sum their exact total.
jq -cn --argjson n "$BENCH_BATCH_ITEMS" --arg a "$BENCH_ACCOUNT" '
    def money: "\(. / 100 | floor).\(. % 100 | if . < 10 then "0\(.)" else "\(.)" end)";
    [range(0; $n) | {i: ., m: (100000 + (. * 7919) % 900000)}] as $items
    | {debtor_account_id: $a, currency: "CNY", kind: "payroll", count: $n,
       control_sum: ($items | map(.m) | add | money),
       items: [$items[] | {amount: (.m | money),
               creditor: {name: "张伟", account: "62220200\(100000000 + .i)", bank_code: "102290000001", type: "personal"},
               remittance: "工资 \(.i)", end_to_end_id: "PAYROLL-\(.i)"}]}' >"$WORK/batch.json"
BATCH_BYTES=$(wc -c <"$WORK/batch.json")

# ---------------------------------------------------------------- phases
INTAKE_ROWS=()
COMMIT_ROWS=()
BATCH_ROWS=()
DISPATCH_ROWS=()
CPU_ROWS=()
EVIDENCE=()
GOALS=()
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
RUN_TAG=$(date +%s)

for backend in $BENCH_BACKENDS; do
    # Again before each backend: the one before leaves its own writes dirty (SQLite's
    # phases write gigabytes), which would otherwise stall this one's fsyncs.
    log "sync: writing back dirty pages before the $backend phases"
    timeout 300 sync || die "sync did not finish within 300 s"
    if [[ $backend == sqlite ]]; then
        mkdir -p "$WORK/sqlite-intake" "$WORK/sqlite-dispatch"
        INTAKE_URL="sqlite://$WORK/sqlite-intake/bankdirect.db"
        DB_ARGS=(--sqlite "$WORK/sqlite-intake/bankdirect.db")
        DISPATCH_URL="sqlite://$WORK/sqlite-dispatch/bankdirect.db"
        DISPATCH_ARGS=(--sqlite "$WORK/sqlite-dispatch/bankdirect.db")
        COMMIT_ARGS=(--sqlite "$WORK/sqlite-intake/commit-bench.db")
        goal_rps=$GOAL_SQLITE_RPS
        label=SQLite
    else
        pg_create "${PG_PREFIX}_intake"
        pg_create "${PG_PREFIX}_dispatch"
        pg_create "${PG_PREFIX}_commit"
        INTAKE_URL=$(pg_url_of "${PG_PREFIX}_intake")
        DB_ARGS=(--postgres "$INTAKE_URL")
        DISPATCH_URL=$(pg_url_of "${PG_PREFIX}_dispatch")
        DISPATCH_ARGS=(--postgres "$DISPATCH_URL")
        COMMIT_ARGS=(--postgres "$(pg_url_of "${PG_PREFIX}_commit")")
        goal_rps=$GOAL_PG_RPS
        label=PostgreSQL
    fi

    tag="$RUN_TAG${backend:0:1}"  # keys and end_to_end_ids stay within 35 characters
    # ---- 1. intake
    log "$label: intake"
    start_gateway "$INTAKE_URL" false
    TOKEN=$(get_token)
    code=$(one_payment "$tag")
    [[ $code == 201 ]] || die "$label: a single POST /v1/payments answered HTTP $code: $(head -c 400 "$WORK/last.json")"

    if [[ $backend == sqlite ]]; then
        "$SB" settings "${DB_ARGS[@]}" >"$WORK/settings.txt" || die "store-bench settings failed"
        journal=$(awk '/journal_mode=/ { sub(/.*journal_mode=/, ""); print $1 }' "$WORK/settings.txt")
        # Every thread of the gateway, only fsync and fdatasync, with the file behind each fd.
        strace -f -qq -y -e trace=fsync,fdatasync -p "$GW_PID" -o "$WORK/strace.txt" 2>"$WORK/strace.log" &
        STRACE_PID=$!
        PIDS+=("$STRACE_PID")
        sleep 1
        run_wrk "$DURABILITY_CHECK_SECONDS" "${tag}c" "$WORK/wrk-dur.txt"
        stop_pid "$STRACE_PID"
        forget_pid "$STRACE_PID"
        dur_reqs=$(awk '/requests in/ { print $1 }' "$WORK/wrk-dur.txt")
        wal_syncs=$(grep -c -- '-wal>' "$WORK/strace.txt" || true)
        db_syncs=$(grep -E -c -- '\.db>' "$WORK/strace.txt" || true)
        all_syncs=$(grep -E -c 'f(data)?sync\(' "$WORK/strace.txt" || true)
        EVIDENCE+=("- SQLite: \`journal_mode=$journal\`, read from the gateway's database file (WAL mode is stored in the file). \`synchronous\` is a setting of each connection, not of the file, so it is shown by what the gateway does: during a separate ${DURABILITY_CHECK_SECONDS} s load of $dur_reqs payments (strace on the gateway, which slows it; not a measured run) its threads called fsync/fdatasync $all_syncs times: $wal_syncs on \`bankdirect.db-wal\`, $db_syncs on \`bankdirect.db\`. With \`synchronous=NORMAL\` in WAL mode the WAL is synced only at checkpoints (then as often as the database file); with FULL at every commit, so many WAL syncs per checkpoint show FULL (the store also refuses to start unless its writer reports \`synchronous=2\`).")
    else
        "$SB" settings "${DB_ARGS[@]}" >"$WORK/settings.txt" || die "store-bench settings failed"
        pg_settings=$(awk '/^setting postgres/ { printf "%s`%s`", sep, $3; sep = ", " }' "$WORK/settings.txt")
        EVIDENCE+=("- PostgreSQL: read from the server the gateway uses: $pg_settings. The store does not change \`synchronous_commit\` per session (no SET in crates/store), so each transaction's commit waits for its WAL flush.")
    fi

    log "$label: warm-up ${BENCH_WARMUP_SECONDS}s"
    run_wrk "$BENCH_WARMUP_SECONDS" "${tag}w" "$WORK/wrk-warm.txt"
    log "$label: measuring ${BENCH_SECONDS}s"
    out="$WORK/wrk-$backend.txt"
    m0=$(machine_busy_s); g0=$(proc_cpu_s "$GW_PID"); children_cpu_s >"$WORK/cpu.txt"; w0=$(<"$WORK/cpu.txt")
    load_at=$(cut -d' ' -f1 /proc/loadavg)
    run_wrk "$BENCH_SECONDS" "${tag}m" "$out"
    children_cpu_s >"$WORK/cpu.txt"; w1=$(<"$WORK/cpu.txt"); g1=$(proc_cpu_s "$GW_PID"); m1=$(machine_busy_s)
    cat "$out" >&2
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    p50=$(awk '$1 == "50%" { print $2 }' "$out")
    p99=$(awk '$1 == "99%" { print $2 }' "$out")
    total=$(awk '/requests in/ { print $1 }' "$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out"); non2xx=${non2xx:-0}
    sock=$(awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' "$out"); sock=${sock:-0}
    [[ -n $rps && -n $p50 && -n $p99 ]] || die "could not parse wrk's output"
    stored=$(payments_line)
    stored_total=$(awk '{ sub(/total=/, "", $2); print $2 }' <<<"$stored")
    p99_ms=$(to_ms "$p99")
    INTAKE_ROWS+=("| $label | $(printf '%.0f' "$rps") | $(to_ms "$p50") ms | $p99_ms ms | $non2xx non-2xx, $sock socket errors (of $total) | $stored_total | $load_at |")
    CPU_ROWS+=("$(awk -v n="$label intake" -v t="$total" -v d="$BENCH_SECONDS" -v g0="$g0" -v g1="$g1" -v w0="$w0" -v w1="$w1" -v m0="$m0" -v m1="$m1" \
        'BEGIN { g = g1 - g0; w = w1 - w0; o = (m1 - m0) - g - w; if (o < 0) o = 0
                 printf "| %s | %.2f | %.2f | %.2f | %.1f µs | %.1f µs |", n, g / d, w / d, o / d, 1e6 * g / t, 1e6 * w / t }')")
    met=MISSED
    awk -v r="$rps" -v g="$goal_rps" -v p="$p99_ms" -v gp="$GOAL_P99_MS" 'BEGIN { exit !(r >= g && p < gp) }' && met=met
    GOALS+=("- $label intake: $(printf '%.0f' "$rps") payments/s, p99 $p99_ms ms: goal (≥ $goal_rps/s, p99 < $GOAL_P99_MS ms) $met.")

    # ---- 2. payroll batch
    log "$label: payroll batch of $BENCH_BATCH_ITEMS items"
    TOKEN=$(get_token)
    batch_out=$(curl -sS --max-time "$BATCH_TIMEOUT_S" -o "$WORK/batch-answer.json" -w '%{http_code} %{time_total}' \
        -X POST -H "Authorization: Bearer $TOKEN" -H "Idempotency-Key: bench-batch-$RUN_TAG-$backend" \
        -H 'Content-Type: application/json' --data-binary "@$WORK/batch.json" "$BASE/v1/payment-batches") || batch_out="000 0"
    read -r bcode btime <<<"$batch_out"
    bdetail=$(head -c 200 "$WORK/batch-answer.json" 2>/dev/null | tr '\n|' '  ')
    # An unknown route is the gateway's `route_not_found` (or a bare 404); the
    # endpoint's own 404s (an unknown account, say) are reported as answers.
    if [[ $bcode == 404 && ( $bdetail == *route_not_found* || $bdetail != *'"type"'* ) ]]; then
        log "$label: POST /v1/payment-batches answered 404: not available in this build; skipped"
        BATCH_ROWS+=("| $label | not available (HTTP 404: no such route in this build) | | | |")
    elif [[ $bcode == 2* ]]; then
        BATCH_ROWS+=("| $label | HTTP $bcode | $(awk -v t="$btime" 'BEGIN { printf "%.3f s", t }') | $(awk -v t="$btime" -v n="$BENCH_BATCH_ITEMS" 'BEGIN { printf "%.0f", n / t }') | $BATCH_BYTES |")
    else
        BATCH_ROWS+=("| $label | HTTP $bcode: \`$bdetail\` | $(awk -v t="$btime" 'BEGIN { printf "%.3f s", t }') | | $BATCH_BYTES |")
    fi
    stop_gateway

    # ---- 3. raw commit rate, same database kind, same file system / server
    log "$label: raw commit rate (store-bench)"
    "$SB" commit-rate "${COMMIT_ARGS[@]}" --seconds "$BENCH_COMMIT_SECONDS" \
        --writers "1,10,$BENCH_CONNECTIONS" --batch "$BENCH_COMMIT_BATCH" >"$WORK/commit-$backend.txt" \
        || die "store-bench commit-rate failed on $label"
    cat "$WORK/commit-$backend.txt" >&2
    while read -r line; do
        COMMIT_ROWS+=("$(awk -v b="$label" '{
            for (i = 2; i <= NF; i++) { split($i, a, "="); v[a[1]] = a[2] }
            what = v["mode"] == "single" ? "1 INSERT per transaction" : v["rows_per_txn"] " INSERTs per transaction"
            printf "| %s | %s | %s | %s | %s | %s ms | %s ms | %s |", b, what, v["writers"], v["rows_per_s"], v["txns_per_s"], v["p50_ms"], v["p99_ms"], v["errors"] }' <<<"$line")")
    done < <(grep '^result ' "$WORK/commit-$backend.txt")
    grep '^setting ' "$WORK/commit-$backend.txt" | sed "s/^setting /  - $label commit bench, own connection: /" >"$WORK/commit-settings.txt"
    while read -r line; do EVIDENCE+=("$line"); done <"$WORK/commit-settings.txt"

    # ---- 4. dispatch
    log "$label: preloading $BENCH_DISPATCH_PAYMENTS payments (workers off)"
    start_gateway "$DISPATCH_URL" false
    TOKEN=$(get_token)
    per_thread=$(( (BENCH_DISPATCH_PAYMENTS + BENCH_THREADS - 1) / BENCH_THREADS ))
    # wrk waits out its whole duration even when every thread has stopped:
    # it runs in the background and is stopped once the payments are stored.
    DB_ARGS=("${DISPATCH_ARGS[@]}")
    # (env execs timeout, so $! is timeout's pid, which passes SIGTERM on to wrk.)
    env INTAKE_TOKEN="$TOKEN" INTAKE_ACCOUNT="$BENCH_ACCOUNT" INTAKE_RUN="${tag}d" INTAKE_LIMIT="$per_thread" \
        timeout "$PRELOAD_TIMEOUT_S" wrk -t"$BENCH_THREADS" -c"$BENCH_CONNECTIONS" -d"${PRELOAD_TIMEOUT_S}s" \
        -s "$LUA" "$BASE/v1/payments" >"$WORK/wrk-preload.txt" 2>&1 &
    PRELOAD_PID=$!
    PIDS+=("$PRELOAD_PID")
    deadline=$((SECONDS + PRELOAD_TIMEOUT_S))
    until (( $(status_count queued "$(payments_line)") >= BENCH_DISPATCH_PAYMENTS )); do
        (( SECONDS < deadline )) || die "$label: fewer than $BENCH_DISPATCH_PAYMENTS payments stored after ${PRELOAD_TIMEOUT_S}s"
        kill -0 "$PRELOAD_PID" 2>/dev/null || die "$label: the preload ended before $BENCH_DISPATCH_PAYMENTS payments were stored"
        sleep 0.2
    done
    sleep 1  # the last answers of the stopping wrk threads
    stop_pid "$PRELOAD_PID"
    forget_pid "$PRELOAD_PID"
    stop_gateway
    pre=$(payments_line)
    queued=$(status_count queued "$pre")
    execs_before=$(curl -fsS --max-time 60 "$SIM_URL/_sim/executions" | jq '.items | length')
    log "$label: dispatching $queued queued payments (workers on)"
    m0=$(machine_busy_s); s0=$(proc_cpu_s "$SIM_PID"); t0=$(date +%s.%N)
    start_gateway "$DISPATCH_URL" true
    g0=$(proc_cpu_s "$GW_PID")
    # One probe process on one connection, counting on the status index every
    # 0.2 s (a process and three full scans per poll were ~6 % of PostgreSQL's
    # time during this phase).
    "$SB" wait-dispatched "${DB_ARGS[@]}" --timeout-s "$BENCH_DISPATCH_TIMEOUT_S" --while-pid "$GW_PID" \
        || die "$label: dispatch did not finish: $(payments_line)"
    t1=$(date +%s.%N); g1=$(proc_cpu_s "$GW_PID"); s1=$(proc_cpu_s "$SIM_PID"); m1=$(machine_busy_s)
    stop_gateway
    final=$(payments_line)
    span=$("$SB" payments "${DB_ARGS[@]}" | awk '/^dispatch /')
    execs=$(curl -fsS --max-time 60 "$SIM_URL/_sim/executions" | jq -c --argjson b "$execs_before" \
        '.items[$b:] | {n: length, twice: map(select(.count != 1)) | length, by_status: (group_by(.status) | map({(.[0].status): length}) | add)}')
    answered=$(awk '{ for (i = 2; i <= NF; i++) { split($i, a, "="); if (a[1] == "answered") print a[2] } }' <<<"$span")
    span_s=$(awk '{ for (i = 2; i <= NF; i++) { split($i, a, "="); if (a[1] == "span_s") print a[2] } }' <<<"$span")
    per_s=$(awk '{ for (i = 2; i <= NF; i++) { split($i, a, "="); if (a[1] == "answered_per_s") print a[2] } }' <<<"$span")
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    DISPATCH_ROWS+=("| $label | $queued | $answered | ${span_s} s | $per_s | $wall s | ${final#payments } | $(jq -r '"\(.n) executed, \(.twice) more than once, \(.by_status | tostring)"' <<<"$execs") |")
    CPU_ROWS+=("$(awk -v n="$label dispatch (gateway | simulator)" -v d="$wall" -v g0="$g0" -v g1="$g1" -v s0="$s0" -v s1="$s1" -v m0="$m0" -v m1="$m1" -v q="$queued" \
        'BEGIN { g = g1 - g0; s = s1 - s0; o = (m1 - m0) - g - s; if (o < 0) o = 0
                 printf "| %s | %.2f | %.2f (simulator) | %.2f | %.1f µs | %.1f µs (simulator) |", n, g / d, s / d, o / d, 1e6 * g / q, 1e6 * s / q }')")
    met=MISSED
    awk -v r="$per_s" -v g="$GOAL_DISPATCH_PER_S" 'BEGIN { exit !(r >= g) }' && met=met
    GOALS+=("- $label dispatch: $per_s payments/s answered by the bank: goal (≥ $GOAL_DISPATCH_PER_S/s) $met.")
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem_total=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
fs=$(findmnt -n -o FSTYPE,OPTIONS -T "$WORK" 2>/dev/null | awk '{ print $1 " (" $2 ")" }')
commit=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$ROOT" --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    commit="$commit (with uncommitted changes in the working tree)"
fi
report="$WORK/report.md"
{
    echo "Durable intake: \`POST /v1/payments\`, a new Idempotency-Key and end_to_end_id per request, answered after the commit;"
    echo "\`wrk -t$BENCH_THREADS -c$BENCH_CONNECTIONS -d${BENCH_SECONDS}s --latency -s benches/intake.lua\` after a ${BENCH_WARMUP_SECONDS} s warm-up; payment workers off."
    echo
    echo "| backend | payments/s | p50 | p99 | errors | payments stored after the phase | load average (1 min) at start |"
    echo "|---|---:|---:|---:|---|---:|---:|"
    printf '%s\n' "${INTAKE_ROWS[@]}"
    echo
    echo "Raw commit rate of the same kind of database (\`store-bench commit-rate\`, ${BENCH_COMMIT_SECONDS} s each; rows of ~400 bytes into one table with a text primary key):"
    echo
    echo "| backend | transactions | writers | rows/s | commits/s | p50 commit | p99 commit | errors |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${COMMIT_ROWS[@]}"
    echo
    echo "Payroll batch: \`POST /v1/payment-batches\`, $BENCH_BATCH_ITEMS items, $BATCH_BYTES bytes of JSON, timed by curl (request sent to answer received):"
    echo
    echo "| backend | answer | intake time | items/s | body bytes |"
    echo "|---|---|---:|---:|---:|"
    printf '%s\n' "${BATCH_ROWS[@]}"
    echo
    echo "Dispatch to a simulated bank that answers at once (settle, return and ingest delays 0; bank limits concurrency $BENCH_BANK_CONCURRENCY, $BENCH_BANK_QPS calls/s; payments.max_in_flight $BENCH_MAX_IN_FLIGHT (shipped: 64); claim batch and poll interval as shipped):"
    echo
    echo "| backend | queued | answers written back | first submitting → last answer | payments/s | wall time from gateway start | statuses after | at the bank |"
    echo "|---|---:|---:|---:|---:|---:|---|---|"
    printf '%s\n' "${DISPATCH_ROWS[@]}"
    echo
    echo "CPU during each measured phase, cores busy on average (the machine has $(nproc)); \"other\" is everything else the machine ran (from /proc/stat):"
    echo
    echo "| phase | gateway, cores | wrk (dispatch: simulator), cores | other, cores | gateway CPU per payment | wrk (simulator) CPU per payment |"
    echo "|---|---:|---:|---:|---:|---:|"
    printf '%s\n' "${CPU_ROWS[@]}"
    echo
    echo "Durability, as shown by this run:"
    echo
    printf '%s\n' "${EVIDENCE[@]}"
    echo
    printf '%s\n' "${GOALS[@]}"
    echo
    echo "Machine: $(nproc) cores ($cpu_model), $mem_total RAM, $(uname -sr); files on $fs; load average $LOAD_BEFORE before, $LOAD_AFTER after."
    echo "Date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'). Commit: $commit. Build: $BUILD_NOTE; $(rustc --version 2>/dev/null || echo rustc ?); $(wrk -v 2>&1 | head -n 1 | awk '{ print $1, $2 }')."
} >"$report"
mkdir -p "$RESULTS_DIR"
cp "$report" "$RESULTS_DIR/intake-latest.md"
echo
cat "$report"
log "written to $RESULTS_DIR/intake-latest.md"
