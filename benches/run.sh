#!/usr/bin/env bash
# benches/run.sh: load-test the gateway's cached balance read and transaction
# page read beside a raw axum hello-world baseline and a reference server
# answering the same page's bytes from memory, in one run, on loopback.
# Method and the last recorded results: BENCHMARKS.md.
#
# Usage: benches/run.sh
#
# Environment (all optional):
#   BENCH_SECONDS         measured duration per endpoint, seconds   [60]
#   BENCH_ROUNDS          rounds that duration is split into; each round
#                         measures every endpoint once, in turn     [12]
#   BENCH_WARMUP_SECONDS  warm-up per endpoint, not recorded, s     [3]
#   BENCH_CONNECTIONS     wrk connections                           [64]
#   BENCH_THREADS         wrk threads                               [2]
#   BENCH_ACCOUNT         demo account to read                      [sim-east-cny-1]
#   BENCH_CLIENT_RATE     the gateway's per-client request limit   [1000000]
#                         (the shipped 200/s would make the limiter the result)
#   BENCH_BIN_DIR         use `bankdirect` and `hello-baseline` from this
#                         directory and skip the release build (for trying
#                         the script out; recorded results use release)
#   CARGO_TARGET_DIR      cargo's target directory [/root/.cache/bankdirect/target]
#
# Writes the results table to stdout and to benches/results/latest.md.
# Exits non-zero when something fails (a tool, a build, a server, a request
# check, wrk); a missed throughput goal is reported, not an error.
# All traffic goes to 127.0.0.1. Every wait is bounded.
set -euo pipefail

if (( $# > 0 )); then
    case $1 in
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: takes no arguments (settings come from the environment); see --help" >&2; exit 2 ;;
    esac
fi

BENCH_SECONDS=${BENCH_SECONDS:-60}
BENCH_ROUNDS=${BENCH_ROUNDS:-12}
BENCH_WARMUP_SECONDS=${BENCH_WARMUP_SECONDS:-3}
BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-64}
BENCH_THREADS=${BENCH_THREADS:-2}
BENCH_ACCOUNT=${BENCH_ACCOUNT:-sim-east-cny-1}
BENCH_CLIENT_RATE=${BENCH_CLIENT_RATE:-1000000}
# The gateway's per-client request limit ([server.limits]): the shipped 200/s
# would make the limiter the result. The limiter still runs on every request.
export BANKDIRECT_SERVER__LIMITS__CLIENT_REQUESTS_PER_S=$BENCH_CLIENT_RATE
export BANKDIRECT_SERVER__LIMITS__CLIENT_BURST=$BENCH_CLIENT_RATE
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/.cache/bankdirect/target}
GOAL_PERCENT=50
STARTUP_TIMEOUT_S=60
CURL_TIMEOUT_S=10

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS_DIR="$ROOT/benches/results"

log() { printf 'run.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for v in BENCH_SECONDS BENCH_ROUNDS BENCH_WARMUP_SECONDS BENCH_CONNECTIONS BENCH_THREADS; do
    [[ ${!v} =~ ^[0-9]+$ ]] && (( ${!v} > 0 )) || die "$v must be a positive integer, got '${!v}'"
done
(( BENCH_SECONDS <= 600 )) || die "BENCH_SECONDS is at most 600 (the run must stay bounded)"
(( BENCH_SECONDS % BENCH_ROUNDS == 0 )) \
    || die "BENCH_SECONDS ($BENCH_SECONDS) must be a multiple of BENCH_ROUNDS ($BENCH_ROUNDS): each round measures BENCH_SECONDS / BENCH_ROUNDS whole seconds"
(( BENCH_WARMUP_SECONDS <= 60 )) || die "BENCH_WARMUP_SECONDS is at most 60"
[[ $BENCH_ACCOUNT =~ ^[a-z0-9-]+$ ]] || die "BENCH_ACCOUNT: expected an account id like sim-east-cny-1"

# ---------------------------------------------------------------- tools
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v jq >/dev/null || missing+=(jq)
command -v curl >/dev/null || missing+=(curl)
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
    log "building release bankdirect and hello-baseline (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$ROOT" && cargo build --release -p bankdirect -p bankdirect-bench) || die "release build failed"
    BIN_DIR=$CARGO_TARGET_DIR/release
    BUILD_NOTE="release profile, built by this run"
fi
[[ -x $BIN_DIR/bankdirect ]] || die "no bankdirect binary in $BIN_DIR"
[[ -x $BIN_DIR/hello-baseline ]] || die "no hello-baseline binary in $BIN_DIR"

# ---------------------------------------------------------------- servers
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bankdirect-bench.XXXXXX")
PIDS=()
cleanup() {
    local rc=$?
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        # Bounded: a server that ignores SIGTERM for 10 s gets SIGKILL.
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if (( rc != 0 )); then
        for f in "$WORK"/*.log; do
            [[ -s $f ]] || continue
            log "last lines of $(basename "$f"):"
            tail -n 20 "$f" >&2 || true
        done
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$BIN_DIR/hello-baseline" --port 0 >"$WORK/baseline.out" 2>"$WORK/baseline.log" &
BASELINE_PID=$!
PIDS+=("$BASELINE_PID")
"$BIN_DIR/bankdirect" demo --data-dir "$WORK/demo" --port 0 >"$WORK/demo.out" 2>"$WORK/demo.log" &
GATEWAY_PID=$!
PIDS+=("$GATEWAY_PID")

# Waits until the command succeeds, at most $1 seconds.
wait_for() {
    local limit_s=$1 what=$2
    shift 2
    local deadline=$((SECONDS + limit_s))
    until "$@" >/dev/null 2>&1; do
        for pid in "${PIDS[@]}"; do
            kill -0 "$pid" 2>/dev/null || die "a server exited while waiting for $what"
        done
        (( SECONDS < deadline )) || die "timed out after ${limit_s}s waiting for $what"
        sleep 0.2
    done
}

wait_for "$STARTUP_TIMEOUT_S" "the baseline's address" grep -qx '127\.0\.0\.1:[0-9]*' "$WORK/baseline.out"
BASELINE_URL="http://$(head -n 1 "$WORK/baseline.out")"
wait_for "$STARTUP_TIMEOUT_S" "demo.json" jq -e .base_url "$WORK/demo/demo.json"
BASE=$(jq -r .base_url "$WORK/demo/demo.json")
CLIENT_ID=$(jq -r .client_id "$WORK/demo/demo.json")
CLIENT_SECRET=$(jq -r .client_secret "$WORK/demo/demo.json")
[[ $BASE == http://127.0.0.1:* ]] || die "the gateway is not on 127.0.0.1: $BASE"
[[ $BASELINE_URL == http://127.0.0.1:* ]] || die "the baseline is not on 127.0.0.1: $BASELINE_URL"
wait_for "$STARTUP_TIMEOUT_S" "the gateway's /readyz" \
    curl -fsS --max-time "$CURL_TIMEOUT_S" "$BASE/readyz"
log "baseline at $BASELINE_URL, gateway at $BASE"

# A fresh token (15 min lifetime) before each measured endpoint, so a long
# BENCH_SECONDS never runs into an expired one.
get_token() {
    local body
    body=$(curl -fsS --max-time "$CURL_TIMEOUT_S" -u "$CLIENT_ID:$CLIENT_SECRET" \
        -d grant_type=client_credentials "$BASE/oauth/token") || die "POST /oauth/token failed"
    jq -er .access_token <<<"$body" || die "no access_token in the token response"
}

# Prints the HTTP status of a request; the body goes to $WORK/last.json.
status_of() {
    local code
    code=$(curl -sS --max-time "$CURL_TIMEOUT_S" -o "$WORK/last.json" -w '%{http_code}' "$@") || true
    echo "${code:-000}"
}

TOKEN=$(get_token)
AUTH=(-H "Authorization: Bearer $TOKEN")
ACC="$BASE/v1/accounts/$BENCH_ACCOUNT"

code=$(status_of -X POST "${AUTH[@]}" "$ACC/balance:refresh")
[[ $code == 2* ]] || die "POST balance:refresh answered HTTP $code: $(head -c 400 "$WORK/last.json")"
code=$(status_of -X POST "${AUTH[@]}" "$ACC/transactions:refresh")
TX_REFRESH_CODE=$code
[[ $code == 2* ]] || log "POST transactions:refresh answered HTTP $code: $(head -c 400 "$WORK/last.json")"

# The reference row: a second hello-baseline serving the bytes of one
# transaction page from memory, so the page's row can be read against what
# moving a response of that size costs (hyper, the kernel, wrk) and nothing else.
code=$(status_of "${AUTH[@]}" "$ACC/transactions?limit=50")
[[ $code == 200 ]] || die "GET transactions?limit=50 answered HTTP $code: $(head -c 400 "$WORK/last.json")"
cp "$WORK/last.json" "$WORK/page.json"
"$BIN_DIR/hello-baseline" --port 0 --body-file "$WORK/page.json" >"$WORK/reference.out" 2>"$WORK/reference.log" &
REFERENCE_PID=$!
PIDS+=("$REFERENCE_PID")
wait_for "$STARTUP_TIMEOUT_S" "the reference server's address" grep -qx '127\.0\.0\.1:[0-9]*' "$WORK/reference.out"
REFERENCE_URL="http://$(head -n 1 "$WORK/reference.out")"
[[ $REFERENCE_URL == http://127.0.0.1:* ]] || die "the reference server is not on 127.0.0.1: $REFERENCE_URL"
cmp -s "$WORK/page.json" <(curl -fsS --max-time "$CURL_TIMEOUT_S" "$REFERENCE_URL/body") \
    || die "the reference server does not answer the page's bytes"

# ---------------------------------------------------------------- load
# One row per endpoint: name|url|needs_auth|server pid. Only "gateway:" rows
# are held to the goal; the reference row is there to be read against.
ENDPOINTS=(
    "baseline: axum hello-world \`GET /\`|$BASELINE_URL/|no|$BASELINE_PID"
    "gateway: cached balance \`GET /v1/accounts/{id}/balance\`|$ACC/balance|yes|$GATEWAY_PID"
    "gateway: transaction page \`GET /v1/accounts/{id}/transactions?limit=50\`|$ACC/transactions?limit=50|yes|$GATEWAY_PID"
    "reference: axum serving that page's bytes from memory \`GET /body\`|$REFERENCE_URL/body|no|$REFERENCE_PID"
)

# CPU seconds (user + system) a process has used so far.
proc_cpu_s() {
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat"
}
# CPU seconds the whole machine has been busy so far (all cores, steal included).
machine_busy_s() {
    awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu" { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat
}
# CPU seconds (user + system) this shell's finished children have used so far.
# `times` must run in this shell, not in a $(...) subshell: it goes to a file.
children_cpu_s() {
    times >"$WORK/times.txt"
    awk 'NR == 2 {
        t = 0
        for (i = 1; i <= 2; i++) { split($i, a, "m"); sub(/s$/, "", a[2]); t += a[1] * 60 + a[2] }
        printf "%.2f", t
    }' "$WORK/times.txt"
}

# Converts a wrk latency ("812.00us", "1.23ms", "2.01s") to milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/)      { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /m$/)  { sub(/m$/, "", v);  printf "%.3f", v * 60000 }
        else if (v ~ /s$/)  { sub(/s$/, "", v);  printf "%.3f", v * 1000 }
        else                { printf "?" }
    }'
}

ROWS=()
CPU_ROWS=()
NOTES=()
FAILED=0
ROUND_SECONDS=$((BENCH_SECONDS / BENCH_ROUNDS))
WRK_TIMEOUT_S=$((ROUND_SECONDS + BENCH_WARMUP_SECONDS + 60))

# Per endpoint (by index): its headers' need, and the sums over rounds.
declare -a NAME URL NEEDS_AUTH PID MEASURED REQS SECS SRV WRKC OTHER NON2XX SOCK P50S P99S ROUND_RPS
for i in "${!ENDPOINTS[@]}"; do
    IFS='|' read -r NAME[i] URL[i] NEEDS_AUTH[i] PID[i] <<<"${ENDPOINTS[i]}"
    MEASURED[i]=no REQS[i]=0 SECS[i]=0 SRV[i]=0 WRKC[i]=0 OTHER[i]=0 NON2XX[i]=0 SOCK[i]=0
    P50S[i]="" P99S[i]="" ROUND_RPS[i]=""
done

# The Authorization header for endpoint $1, in the array HDR. A fresh token
# (15 min lifetime) each time, so no long run meets an expired one.
auth_for() {
    HDR=()
    if [[ ${NEEDS_AUTH[$1]} == yes ]]; then
        HDR=(-H "Authorization: Bearer $(get_token)")
    fi
}

# Pre-check and warm-up, once per endpoint.
for i in "${!ENDPOINTS[@]}"; do
    name=${NAME[i]} url=${URL[i]}
    auth_for "$i"
    code=$(status_of "${HDR[@]}" "$url")
    if [[ $code != 200 ]]; then
        detail=$(head -c 300 "$WORK/last.json" | tr '\n|' '  ')
        [[ $name == gateway:* ]] || die "$name answered HTTP $code"
        log "$name: pre-check answered HTTP $code, not measured: $detail"
        NOTES+=("- $name: not measured; a single request before the run answered HTTP $code: \`$detail\`")
        FAILED=1
        continue
    fi
    MEASURED[i]=yes
    if [[ $url == *"/transactions"* ]]; then
        items=$(jq '.items | length' "$WORK/last.json" 2>/dev/null || echo '?')
        bytes=$(wc -c <"$WORK/last.json")
        NOTES+=("- transaction page: each response carries $items transactions ($bytes bytes of JSON); transactions:refresh answered HTTP $TX_REFRESH_CODE.")
    fi
    log "$name: warm-up ${BENCH_WARMUP_SECONDS}s"
    timeout "$WRK_TIMEOUT_S" wrk -t"$BENCH_THREADS" -c"$BENCH_CONNECTIONS" -d"${BENCH_WARMUP_SECONDS}s" \
        "${HDR[@]}" "$url" >/dev/null || die "wrk warm-up failed for $url"
done
[[ ${MEASURED[0]} == yes ]] || die "the baseline was not measured"

# Measured rounds: every endpoint once per round, each round starting one
# endpoint further on, so a slow phase of the machine falls on all of them.
n=${#ENDPOINTS[@]}
for ((round = 1; round <= BENCH_ROUNDS; round++)); do
    for ((k = 0; k < n; k++)); do
        i=$(((k + round - 1) % n))
        [[ ${MEASURED[i]} == yes ]] || continue
        name=${NAME[i]} url=${URL[i]}
        auth_for "$i"
        log "round $round/$BENCH_ROUNDS, $name: measuring ${ROUND_SECONDS}s"
        out="$WORK/wrk.txt"
        machine_before=$(machine_busy_s)
        server_cpu_before=$(proc_cpu_s "${PID[i]}")
        children_cpu_s >"$WORK/cpu.txt"
        wrk_cpu_before=$(<"$WORK/cpu.txt")
        timeout "$WRK_TIMEOUT_S" wrk -t"$BENCH_THREADS" -c"$BENCH_CONNECTIONS" -d"${ROUND_SECONDS}s" \
            --latency "${HDR[@]}" "$url" >"$out" || die "wrk failed for $url"
        children_cpu_s >"$WORK/cpu.txt"
        wrk_cpu_after=$(<"$WORK/cpu.txt")
        server_cpu_after=$(proc_cpu_s "${PID[i]}")
        machine_after=$(machine_busy_s)
        cat "$out" >&2

        # "1478988 requests in 15.10s, 170.68MB read"
        total=$(awk '/requests in/ { print $1 }' "$out")
        secs=$(awk '/requests in/ { v = $4; sub(/,$/, "", v)
            if (v ~ /ms$/) { sub(/ms$/, "", v); v /= 1000 } else if (v ~ /m$/) { sub(/m$/, "", v); v *= 60 } else sub(/s$/, "", v)
            print v }' "$out")
        p50=$(awk '$1 == "50%" { print $2 }' "$out")
        p99=$(awk '$1 == "99%" { print $2 }' "$out")
        non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
        sock=$(awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' "$out")
        [[ -n $total && -n $secs && -n $p50 && -n $p99 ]] || die "could not parse wrk's output for $url"
        REQS[i]=$((REQS[i] + total))
        # Sums over rounds: seconds, server and wrk CPU, everything else the machine ran.
        read -r "SECS[i]" "SRV[i]" "WRKC[i]" "OTHER[i]" < <(awk -v t="${SECS[i]}" -v s="${SRV[i]}" \
            -v w="${WRKC[i]}" -v o="${OTHER[i]}" -v d="$secs" \
            -v s0="$server_cpu_before" -v s1="$server_cpu_after" -v w0="$wrk_cpu_before" -v w1="$wrk_cpu_after" \
            -v m0="$machine_before" -v m1="$machine_after" \
            'BEGIN { ds = s1 - s0; dw = w1 - w0; dm = (m1 - m0) - ds - dw; if (dm < 0) dm = 0
                     printf "%.3f %.2f %.2f %.2f\n", t + d, s + ds, w + dw, o + dm }')
        NON2XX[i]=$((NON2XX[i] + ${non2xx:-0}))
        SOCK[i]=$((SOCK[i] + ${sock:-0}))
        P50S[i]+="$(to_ms "$p50") "
        P99S[i]+="$(to_ms "$p99") "
        ROUND_RPS[i]+="$(awk -v t="$total" -v d="$secs" 'BEGIN { printf "%.0f", t / d }') "
    done
done

# One row per endpoint: req/s over all its rounds (requests / seconds), the
# median of the rounds' p50 and the highest of their p99.
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
highest() { tr ' ' '\n' <<<"$1" | grep . | sort -g | tail -n 1; }
BASELINE_RPS=$(awk -v t="${REQS[0]}" -v d="${SECS[0]}" 'BEGIN { print t / d }')
ROUND_ROWS=()
for i in "${!ENDPOINTS[@]}"; do
    name=${NAME[i]}
    if [[ ${MEASURED[i]} != yes ]]; then
        ROWS+=("| $name | not measured | | | | pre-check failed |")
        continue
    fi
    rps=$(awk -v t="${REQS[i]}" -v d="${SECS[i]}" 'BEGIN { print t / d }')
    pct=$(awk -v r="$rps" -v b="$BASELINE_RPS" 'BEGIN { printf "%.1f %%", 100 * r / b }')
    rps_fmt=$(awk -v r="$rps" 'BEGIN { printf "%.0f", r }')
    errors="${NON2XX[i]} non-2xx/3xx, ${SOCK[i]} socket errors (of ${REQS[i]})"
    ROWS+=("| $name | $rps_fmt | $(median "${P50S[i]}") ms | $(highest "${P99S[i]}") ms | $pct | $errors |")
    CPU_ROWS+=("$(awk -v n="$name" -v t="${REQS[i]}" -v d="${SECS[i]}" -v s="${SRV[i]}" -v w="${WRKC[i]}" -v o="${OTHER[i]}" \
        'BEGIN { printf "| %s | %.2f | %.2f | %.2f | %.1f µs | %.1f µs |", n, s / d, w / d, o / d, 1e6 * s / t, 1e6 * w / t }')")
    # Each round's req/s as a share of the baseline's in the same round.
    read -r -a mine <<<"${ROUND_RPS[i]}"
    read -r -a base <<<"${ROUND_RPS[0]}"
    cells=""
    for ((r = 0; r < ${#mine[@]}; r++)); do
        cells+=" $(awk -v a="${mine[r]}" -v b="${base[r]}" 'BEGIN { printf "%s (%.1f %%)", a, 100 * a / b }') |"
    done
    ROUND_ROWS+=("| $name |$cells")
    if (( NON2XX[i] > 0 || SOCK[i] > 0 )); then
        NOTES+=("- $name: ${NON2XX[i]} responses were not 2xx/3xx and ${SOCK[i]} socket errors occurred; the req/s counts them.")
    fi
done

# ---------------------------------------------------------------- report
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
cpu_model=${cpu_model:-$(awk -F': ' '/^(Hardware|Processor|uarch)/ { print $2; exit }' /proc/cpuinfo)}
mem_total=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
commit=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$ROOT" --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    commit="$commit (with uncommitted changes in the working tree)"
fi
wrk_version=$(wrk -v 2>&1 | head -n 1 | awk '{ print $1, $2 }' || true)
rustc_version=$(rustc --version 2>/dev/null || echo unknown)

# The goal is reported, never turned into a failure.
GOAL_LINES=()
for row in "${ROWS[@]:1}"; do
    row_name=$(awk -F'|' '{ print $2 }' <<<"$row" | sed 's/^ *//; s/ *$//')
    [[ $row_name == gateway:* ]] || continue
    pct=$(awk -F'|' '{ print $6 }' <<<"$row" | tr -d ' %')
    if [[ ! $pct =~ ^[0-9.]+$ ]]; then
        GOAL_LINES+=("- $row_name: not measured, goal not assessed.")
    elif awk -v p="$pct" -v g="$GOAL_PERCENT" 'BEGIN { exit !(p >= g) }'; then
        GOAL_LINES+=("- $row_name: $pct % of the baseline: goal (≥ $GOAL_PERCENT %) met.")
    else
        GOAL_LINES+=("- $row_name: $pct % of the baseline: goal (≥ $GOAL_PERCENT %) MISSED.")
    fi
done

report="$WORK/report.md"
{
    echo "| endpoint | req/s | p50 | p99 | % of baseline req/s | errors |"
    echo "|---|---:|---:|---:|---:|---|"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "Load: \`wrk -t$BENCH_THREADS -c$BENCH_CONNECTIONS -d${ROUND_SECONDS}s --latency\` per endpoint and round, one run at a time," \
        "$BENCH_ROUNDS rounds (each round starts one endpoint further on), ${BENCH_SECONDS}s per endpoint in all, after a" \
        "${BENCH_WARMUP_SECONDS}s warm-up of each endpoint at the same concurrency; req/s is all its requests over all its seconds," \
        "p50 the median of its rounds' p50, p99 the highest of its rounds' p99. Gateway requests carry" \
        "\`Authorization: Bearer <token>\`; account \`$BENCH_ACCOUNT\`. Goal: each gateway row ≥ ${GOAL_PERCENT} % of the baseline req/s."
    echo
    header="| endpoint |" rule="|---|"
    for ((r = 1; r <= BENCH_ROUNDS; r++)); do header+=" round $r: req/s (share of that round's baseline) |"; rule+="---:|"; done
    echo "Each round on its own:"
    echo
    echo "$header"
    echo "$rule"
    printf '%s\n' "${ROUND_ROWS[@]}"
    echo
    echo "Where the CPU went during each measured run: user + system time, as cores busy on average"
    echo "(the machine has $(nproc)); the gateway's process also hosts the two idle simulated banks;"
    echo "\"other\" is everything else the machine ran meanwhile (from /proc/stat, steal included)."
    echo
    echo "| endpoint | server, cores | wrk, cores | other, cores | server CPU per request | wrk CPU per request |"
    echo "|---|---:|---:|---:|---:|---:|"
    if (( ${#CPU_ROWS[@]} > 0 )); then printf '%s\n' "${CPU_ROWS[@]}"; fi
    echo
    printf '%s\n' "${GOAL_LINES[@]}"
    if (( ${#NOTES[@]} > 0 )); then
        printf '%s\n' "${NOTES[@]}"
    fi
    echo
    echo "Machine: $(nproc) cores ($cpu_model), $mem_total RAM, $(uname -sr);" \
        "wrk and the servers share these cores, nothing pinned."
    echo "Date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'). Commit: $commit."
    echo "Build: $BUILD_NOTE; $rustc_version; $wrk_version."
} >"$report"

mkdir -p "$RESULTS_DIR"
cp "$report" "$RESULTS_DIR/latest.md"
echo
cat "$report"
log "written to $RESULTS_DIR/latest.md"

printf '%s\n' "${GOAL_LINES[@]}" | sed 's/^- /run.sh: /' >&2
exit "$FAILED"
