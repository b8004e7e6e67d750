#!/usr/bin/env bash
# benches/audit_chain.sh: what the audit chain costs at intake (BENCHMARKS.md,
# "The audit chain's cost at intake"), in one run, on loopback.
#
# The same durable intake as benches/intake.sh phase 1 (wrk, every request a
# new payment, benches/intake.lua; payment workers off), measured with the
# audit chain on and off, alternating (on, off, on, off, … BENCH_ROUNDS
# times per backend), each measurement on a fresh database after a warm-up.
# "Off" is `BANKDIRECT_AUDIT__CHAIN_ENABLED=false` ([audit] chain_enabled),
# which exists for this comparison only. After each "on" measurement the
# gateway is stopped and `bankdirect audit verify` must find every record of
# the run linked (0 unlinked) and intact. The cost is the median req/s off
# against the median req/s on. Goal (reported, never asserted): < 20 %.
#
# Usage: benches/audit_chain.sh [--help]
#
# Settings (environment):
#   BENCH_SECONDS=10            measured wrk run per measurement
#   BENCH_WARMUP_SECONDS=2      unrecorded wrk run before it
#   BENCH_ROUNDS=3              on/off pairs per backend
#   BENCH_CONNECTIONS=64        wrk connections
#   BENCH_THREADS=2             wrk threads
#   BENCH_BACKENDS="sqlite postgres"
#   BENCH_PG_URL                an admin URL of the PostgreSQL server (loopback);
#                               default $BANKDIRECT_TEST_PG_URL, else the script
#                               runs scripts/pg-test.sh start and uses its cluster
#   BENCH_BIN_DIR               use a prebuilt bankdirect from there
#
# Example:
#   benches/audit_chain.sh
#   BENCH_BACKENDS=sqlite BENCH_ROUNDS=2 BENCH_SECONDS=5 benches/audit_chain.sh
#
# Results go to stdout and benches/results/audit-chain-latest.md. Every wait
# is bounded; processes, the temporary directory and the PostgreSQL databases
# are removed on exit. It exits non-zero when something breaks (including a
# chain that does not verify), not when the goal is missed.
set -euo pipefail

if (( $# > 0 )); then
    case $1 in
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "audit_chain.sh: takes no arguments (settings come from the environment); see --help" >&2; exit 2 ;;
    esac
fi

BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_WARMUP_SECONDS=${BENCH_WARMUP_SECONDS:-2}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-64}
BENCH_THREADS=${BENCH_THREADS:-2}
BENCH_BACKENDS=${BENCH_BACKENDS:-sqlite postgres}
BENCH_ACCOUNT=sim-east-cny-1
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/.cache/bankdirect/target}
STARTUP_TIMEOUT_S=60
STOP_TIMEOUT_S=15
CURL_TIMEOUT_S=10
GOAL_COST_PERCENT=20

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS_DIR="$ROOT/benches/results"
LUA="$ROOT/benches/intake.lua"

log() { printf 'audit_chain.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for v in BENCH_SECONDS BENCH_WARMUP_SECONDS BENCH_ROUNDS BENCH_CONNECTIONS BENCH_THREADS; do
    [[ ${!v} =~ ^[0-9]+$ ]] && (( ${!v} > 0 )) || die "$v must be a positive integer, got '${!v}'"
done
(( BENCH_SECONDS <= 600 && BENCH_WARMUP_SECONDS <= 60 && BENCH_ROUNDS <= 20 )) \
    || die "BENCH_SECONDS ≤ 600, BENCH_WARMUP_SECONDS ≤ 60, BENCH_ROUNDS ≤ 20 (bounded runs)"
(( BENCH_CONNECTIONS <= 256 && BENCH_THREADS <= BENCH_CONNECTIONS )) || die "BENCH_CONNECTIONS ≤ 256 and ≥ BENCH_THREADS"
for b in $BENCH_BACKENDS; do
    [[ $b == sqlite || $b == postgres ]] || die "BENCH_BACKENDS: unknown backend '$b' (sqlite, postgres)"
done
for tool in wrk jq curl; do
    command -v "$tool" >/dev/null || die "$tool is needed (benches/intake.sh installs it)"
done

if [[ -n ${BENCH_BIN_DIR:-} ]]; then
    BIN_DIR=$BENCH_BIN_DIR
    BUILD_NOTE="prebuilt bankdirect from $BIN_DIR"
else
    log "building release bankdirect (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$ROOT" && cargo build --release -p bankdirect) || die "release build failed"
    BIN_DIR=$CARGO_TARGET_DIR/release
    BUILD_NOTE="release profile, built by this run"
fi
BD=$BIN_DIR/bankdirect
[[ -x $BD ]] || die "no bankdirect binary in $BIN_DIR"

PG_ADMIN_URL=""
if [[ " $BENCH_BACKENDS " == *" postgres "* ]]; then
    PG_ADMIN_URL=${BENCH_PG_URL:-${BANKDIRECT_TEST_PG_URL:-}}
    if [[ -z $PG_ADMIN_URL ]]; then
        timeout 600 "$ROOT/scripts/pg-test.sh" start || die "scripts/pg-test.sh start failed"
        eval "$("$ROOT/scripts/pg-test.sh" env)"
        PG_ADMIN_URL=$BANKDIRECT_TEST_PG_URL
    fi
    [[ $PG_ADMIN_URL =~ ^postgres(ql)?://([^@/]*@)?(127\.0\.0\.1|localhost)(:[0-9]+)?/ ]] \
        || die "the PostgreSQL URL must be on loopback: $PG_ADMIN_URL"
    command -v psql >/dev/null || die "psql is needed to create the benchmark's databases"
fi
PG_PREFIX="bd_chain_$(date +%s)_$$"
PG_DATABASES=()
pg_url_of() { sed -E "s#^(postgres(ql)?://[^/]*)/[^?]*#\\1/$1#" <<<"$PG_ADMIN_URL"; }
pg_admin() { timeout 60 psql "$PG_ADMIN_URL" -X -q -v ON_ERROR_STOP=1 -c "$1" >/dev/null; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bankdirect-chain.XXXXXX")
PIDS=()
stop_pid() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || true
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

# The configuration `bankdirect demo` writes, served by `sim` + `serve` (as intake.sh).
"$BD" demo --data-dir "$WORK/gw" --port 0 >"$WORK/demo.out" 2>"$WORK/demo.log" &
DEMO_PID=$!
PIDS+=("$DEMO_PID")
wait_for "$STARTUP_TIMEOUT_S" "demo.json" jq -e .base_url "$WORK/gw/demo.json"
stop_pid "$DEMO_PID"
forget_pid "$DEMO_PID"
CONFIG=$WORK/gw/bankdirect.toml
BASE=$(jq -r .base_url "$WORK/gw/demo.json")
CLIENT_ID=$(jq -r .client_id "$WORK/gw/demo.json")
CLIENT_SECRET=$(jq -r .client_secret "$WORK/gw/demo.json")
[[ $BASE == http://127.0.0.1:* ]] || die "not on 127.0.0.1: $BASE"
"$BD" sim --config "$CONFIG" >"$WORK/sim.out" 2>"$WORK/sim.log" &
PIDS+=("$!")
SIM_URL=$(jq -r '.simulators[] | select(.bank_id == "sim-east") | .url' "$WORK/gw/demo.json")
wait_for "$STARTUP_TIMEOUT_S" "the simulated bank" curl -fsS --max-time "$CURL_TIMEOUT_S" "${SIM_URL%/}/_sim/payments/config"

GW_PID=""
# `bankdirect serve` on database URL $1 with the chain on ($2 = true) or off.
start_gateway() {
    BANKDIRECT_DATABASE__URL=$1 \
    BANKDIRECT_AUDIT__CHAIN_ENABLED=$2 \
    BANKDIRECT_PAYMENTS__WORKERS_ENABLED=false \
    BANKDIRECT_BALANCES__WORKER_ENABLED=false \
    BANKDIRECT_STATEMENTS__WORKER_ENABLED=false \
    BANKDIRECT_WEBHOOKS__WORKER_ENABLED=false \
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
run_wrk() {
    local secs=$1 tag=$2 out=$3
    env INTAKE_TOKEN="$TOKEN" INTAKE_ACCOUNT="$BENCH_ACCOUNT" INTAKE_RUN="$tag" \
        timeout $((secs + 60)) wrk -t"$BENCH_THREADS" -c"$BENCH_CONNECTIONS" -d"${secs}s" --latency \
        -s "$LUA" "$BASE/v1/payments" >"$out" || die "wrk failed ($tag)"
}
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/)      { sub(/us$/, "", v); printf "%.2f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
        else if (v ~ /s$/)  { sub(/s$/, "", v);  printf "%.2f", v * 1000 }
        else                { printf "?" }
    }'
}
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.0f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

ROWS=()
SUMMARY=()
RUN_TAG=$(date +%s)
n=0
for backend in $BENCH_BACKENDS; do
    label=SQLite
    [[ $backend == postgres ]] && label=PostgreSQL
    : >"$WORK/on.txt"; : >"$WORK/off.txt"
    for round in $(seq 1 "$BENCH_ROUNDS"); do
        for chain in true false; do
            n=$((n + 1))
            mode=on; [[ $chain == false ]] && mode=off
            if [[ $backend == sqlite ]]; then
                mkdir -p "$WORK/db-$n"
                url="sqlite://$WORK/db-$n/bankdirect.db"
            else
                db="${PG_PREFIX}_$n"
                pg_admin "CREATE DATABASE $db" || die "cannot create database $db"
                PG_DATABASES+=("$db")
                url=$(pg_url_of "$db")
            fi
            tag="$RUN_TAG${backend:0:1}$n"
            log "$label round $round, chain $mode"
            start_gateway "$url" "$chain"
            TOKEN=$(get_token)
            run_wrk "$BENCH_WARMUP_SECONDS" "${tag}w" "$WORK/warm.txt"
            out="$WORK/wrk-$n.txt"
            run_wrk "$BENCH_SECONDS" "${tag}m" "$out"
            rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
            p50=$(awk '$1 == "50%" { print $2 }' "$out")
            p99=$(awk '$1 == "99%" { print $2 }' "$out")
            non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out"); non2xx=${non2xx:-0}
            [[ -n $rps && -n $p50 && -n $p99 ]] || die "could not parse wrk's output"
            echo "$rps" >>"$WORK/$mode.txt"
            # PostgreSQL links shortly after commit: give the chainer a moment, then stop.
            [[ $mode == on && $backend == postgres ]] && sleep 2
            stop_gateway
            verdict="—"
            if [[ $mode == on ]]; then
                BANKDIRECT_DATABASE__URL=$url "$BD" audit verify --config "$CONFIG" >"$WORK/verify.txt" 2>"$WORK/verify.log" \
                    || die "$label: audit verify failed after the run: $(cat "$WORK/verify.txt" "$WORK/verify.log")"
                grep -q 'not linked yet' "$WORK/verify.txt" && die "$label: records left unlinked: $(cat "$WORK/verify.txt")"
                verdict=$(awk '{ for (i = 1; i <= NF; i++) if ($i == "records,") print $(i - 1) }' "$WORK/verify.txt")
                verdict="intact, $verdict records linked"
            fi
            ROWS+=("| $label | $round | $mode | $rps | $(to_ms "$p50") ms | $(to_ms "$p99") ms | $non2xx | $verdict |")
        done
    done
    on=$(median <"$WORK/on.txt"); off=$(median <"$WORK/off.txt")
    cost=$(awk -v on="$on" -v off="$off" 'BEGIN { printf "%.1f", 100 * (off - on) / off }')
    met=met; awk -v c="$cost" -v g="$GOAL_COST_PERCENT" 'BEGIN { exit !(c < g) }' || met=MISSED
    SUMMARY+=("| $label | $off | $on | $cost % | < $GOAL_COST_PERCENT %: $met |")
done

report() {
    echo "### The audit chain at intake: on beside off (benches/audit_chain.sh)"
    echo
    echo "\`wrk -t$BENCH_THREADS -c$BENCH_CONNECTIONS -d${BENCH_SECONDS}s\` (benches/intake.lua, every request a new payment) after a ${BENCH_WARMUP_SECONDS} s warm-up, payment workers off; each measurement on a fresh database; on and off alternate."
    echo
    echo "| backend | req/s, chain off (median) | req/s, chain on (median) | cost | goal |"
    echo "|---|---|---|---|---|"
    printf '%s\n' "${SUMMARY[@]}"
    echo
    echo "| backend | round | chain | req/s | p50 | p99 | non-2xx | audit verify after the run |"
    echo "|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
    echo
    commit=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')
    echo "Date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'). Commit: $commit (plus uncommitted changes, if any). Build: $BUILD_NOTE. Machine: $(nproc) cores, load average at the end $(cut -d' ' -f1-3 /proc/loadavg)."
}
mkdir -p "$RESULTS_DIR"
report | tee "$RESULTS_DIR/audit-chain-latest.md"
