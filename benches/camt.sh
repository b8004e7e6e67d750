#!/usr/bin/env bash
# benches/camt.sh: the camt.053 streaming benchmark of BENCHMARKS.md
# ("camt.053 streaming"): formats' StatementReader turning a large
# camt.053.001.08 into domain entries, beside a raw quick-xml scan of the
# same file and Python lxml iterparse, in the same run.
#
#   1. sets up (once) a Python venv with lxml (python3-venv from apt only if
#      python3 cannot make a venv), builds camt_bench (release);
#   2. generates the statement once (camt_bench generate, deterministic from
#      CAMT_SEED; reused when the same file and its generate.json are there);
#   3. reads the file once to warm the page cache, then CAMT_ROUNDS rounds of
#      scan, parse, lxml, one after another (never two at once), so each
#      round sees the same cache;
#   4. checks that all three saw the same entries (count, signed sum of
#      amounts, dates) as the generator wrote, and prints a markdown table:
#      median MB/s of each (MB = 2^20 bytes), parse/scan and parse/lxml,
#      peak RSS of each (VmHWM / ru_maxrss), the load around the run.
# Goals (reported, never asserted): parse >= 50 % of scan, >= 3x lxml, peak
# RSS of parse < 64 MB.
#
# Usage: benches/camt.sh [SIZE_MB] [--help]
#
# Settings (environment):
#   CAMT_SIZE_MB=1024        size of the generated statement (or the first argument)
#   CAMT_SEED=1              generator seed
#   CAMT_ROUNDS=3            rounds of scan, parse, lxml
#   CAMT_BENCH_DIR           where the file goes [a new temporary directory]
#   CAMT_KEEP=1              keep the file (default: delete it at the end)
#   CAMT_VENV                the venv [~/.cache/bankdirect/camt-venv]
#   CAMT_LXML_SPEC           what pip installs [lxml==6.1.3]
#   CAMT_BIN_DIR             use a prebuilt camt_bench from there (no build)
#   CARGO_TARGET_DIR         cargo's target directory [/root/.cache/bankdirect/target]
#
# Example:
#   benches/camt.sh                          # the 1 GB run, about 3 minutes plus the build
#   CAMT_KEEP=1 CAMT_BENCH_DIR=/tmp/camt benches/camt.sh 100   # a quick run, file kept
#
# Exits non-zero when something breaks (a build, a tool, a check), not when a
# goal is missed. Every step is bounded by a timeout.
set -euo pipefail

if (( $# > 0 )); then
    case $1 in
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *[!0-9]*) echo "camt.sh: the only argument is the size in MB; see --help" >&2; exit 2 ;;
        *) CAMT_SIZE_MB=$1 ;;
    esac
fi

CAMT_SIZE_MB=${CAMT_SIZE_MB:-1024}
CAMT_SEED=${CAMT_SEED:-1}
CAMT_ROUNDS=${CAMT_ROUNDS:-3}
CAMT_KEEP=${CAMT_KEEP:-0}
CAMT_VENV=${CAMT_VENV:-$HOME/.cache/bankdirect/camt-venv}
CAMT_LXML_SPEC=${CAMT_LXML_SPEC:-lxml==6.1.3}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/.cache/bankdirect/target}
GOAL_SCAN_PERCENT=50
GOAL_LXML_TIMES=3
GOAL_RSS_MB=64
# Generous bounds per step: on the 2-core machine of BENCHMARKS.md a 1 GB parse
# takes ~10 s and lxml ~45 s.
RUN_TIMEOUT_S=$(( 120 + CAMT_SIZE_MB ))
GENERATE_TIMEOUT_S=$(( 120 + CAMT_SIZE_MB ))

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf 'camt.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for v in CAMT_SIZE_MB CAMT_SEED CAMT_ROUNDS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
(( CAMT_SIZE_MB >= 1 && CAMT_SIZE_MB <= 16384 )) || die "CAMT_SIZE_MB is between 1 and 16384"
(( CAMT_ROUNDS >= 1 && CAMT_ROUNDS <= 9 )) || die "CAMT_ROUNDS is between 1 and 9"

as_root() {
    if (( EUID == 0 )); then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n -- "$@"
    else
        die "need root or sudo to run $1"
    fi
}

# ---------------------------------------------------------------- python + lxml
command -v python3 >/dev/null || die "python3 is not installed"
if ! "$CAMT_VENV/bin/python" -c 'import lxml.etree' 2>/dev/null; then
    if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
        command -v apt-get >/dev/null || die "python3 cannot make a venv and apt-get is not available; install python3-venv"
        log "installing python3-venv (Debian package)"
        as_root env DEBIAN_FRONTEND=noninteractive timeout 300 apt-get update -qq || die "apt-get update failed"
        as_root env DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends python3-venv >/dev/null \
            || die "apt-get install python3-venv failed"
    fi
    log "creating the venv $CAMT_VENV with $CAMT_LXML_SPEC"
    rm -rf "$CAMT_VENV"
    timeout 300 python3 -m venv "$CAMT_VENV" || die "python3 -m venv $CAMT_VENV failed"
    timeout 600 "$CAMT_VENV/bin/pip" install --quiet --disable-pip-version-check "$CAMT_LXML_SPEC" \
        || die "pip install $CAMT_LXML_SPEC failed"
    "$CAMT_VENV/bin/python" -c 'import lxml.etree' || die "lxml does not import in $CAMT_VENV"
fi
PY=$CAMT_VENV/bin/python

# ---------------------------------------------------------------- build
if [[ -n ${CAMT_BIN_DIR:-} ]]; then
    BIN=$CAMT_BIN_DIR/camt_bench
    BUILD_NOTE="prebuilt camt_bench from $CAMT_BIN_DIR (built $(date -u -r "$BIN" '+%Y-%m-%d %H:%M UTC' 2>/dev/null || echo '?'), not by this run)"
else
    log "building release camt_bench (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$ROOT" && timeout 1800 cargo build --release -p bankdirect-bench --bin camt_bench) || die "release build failed"
    BIN=$CARGO_TARGET_DIR/release/camt_bench
    BUILD_NOTE="release profile, built by this run"
fi
[[ -x $BIN ]] || die "no camt_bench at $BIN"

# ---------------------------------------------------------------- the file
if [[ -n ${CAMT_BENCH_DIR:-} ]]; then
    mkdir -p "$CAMT_BENCH_DIR"
    DIR=$CAMT_BENCH_DIR
    OWN_DIR=0
else
    DIR=$(mktemp -d "${TMPDIR:-/tmp}/camt-bench.XXXXXX")
    OWN_DIR=1
fi
FILE=$DIR/camt053-${CAMT_SIZE_MB}mb-seed${CAMT_SEED}.xml
GEN_JSON=$FILE.generate.json
RUNS=$(mktemp "${TMPDIR:-/tmp}/camt-runs.XXXXXX")
cleanup() {
    local rc=$?
    rm -f "$RUNS" "$RUNS.times" "$RUNS.cpu"
    if [[ $CAMT_KEEP != 1 ]]; then
        rm -f "$FILE" "$GEN_JSON"
        if (( OWN_DIR )); then rm -rf "$DIR"; fi
    else
        log "kept $FILE"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -s $FILE && -s $GEN_JSON ]] \
    && [[ $(stat -c %s "$FILE") == $("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes"])' "$GEN_JSON") ]]; then
    log "reusing $FILE"
else
    free_mb=$(df -Pm "$DIR" | awk 'NR == 2 { print $4 }')
    (( free_mb > CAMT_SIZE_MB + 512 )) || die "$DIR has ${free_mb} MB free; the file needs ${CAMT_SIZE_MB} MB plus room"
    log "generating $FILE (${CAMT_SIZE_MB} MB, seed $CAMT_SEED)"
    timeout "$GENERATE_TIMEOUT_S" "$BIN" generate --out "$FILE" --size-mb "$CAMT_SIZE_MB" --seed "$CAMT_SEED" >"$GEN_JSON.tmp" \
        || die "camt_bench generate failed"
    mv "$GEN_JSON.tmp" "$GEN_JSON"
fi

# ---------------------------------------------------------------- runs
# CPU seconds (user + system) of this shell's finished children so far;
# `times` must run in this shell, not in a $(...) subshell.
children_cpu_s() {
    times >"$RUNS.times"
    awk 'NR == 2 {
        t = 0
        for (i = 1; i <= 2; i++) { split($i, a, "m"); sub(/s$/, "", a[2]); t += a[1] * 60 + a[2] }
        printf "%.2f", t
    }' "$RUNS.times"
}
# CPU seconds the whole machine has been busy so far (all cores, steal included).
machine_busy_s() {
    awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu" { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "warming the page cache (reading the file once); load average $LOAD_BEFORE"
timeout "$RUN_TIMEOUT_S" cat "$FILE" >/dev/null

run_one() {
    local mode=$1 json cpu0 cpu1 busy0 busy1 t0 t1
    busy0=$(machine_busy_s)
    children_cpu_s >"$RUNS.cpu"; cpu0=$(<"$RUNS.cpu")
    t0=$(date +%s.%N)
    case $mode in
        scan | parse) json=$(timeout "$RUN_TIMEOUT_S" "$BIN" "$mode" --in "$FILE") || die "camt_bench $mode failed" ;;
        lxml) json=$(timeout "$RUN_TIMEOUT_S" "$PY" "$ROOT/benches/camt_lxml.py" --in "$FILE") || die "camt_lxml.py failed" ;;
    esac
    t1=$(date +%s.%N)
    children_cpu_s >"$RUNS.cpu"; cpu1=$(<"$RUNS.cpu")
    busy1=$(machine_busy_s)
    # "other": cores the rest of the machine kept busy meanwhile.
    other=$(awk -v b0="$busy0" -v b1="$busy1" -v c0="$cpu0" -v c1="$cpu1" -v t0="$t0" -v t1="$t1" -v n="$(nproc)" \
        'BEGIN { o = ((b1 - b0) - (c1 - c0)) / (t1 - t0); if (o < 0) o = 0; if (o > n) o = n; printf "%.2f", o }')
    cpu=$(awk -v c0="$cpu0" -v c1="$cpu1" 'BEGIN { printf "%.2f", c1 - c0 }')
    printf '%s\t%s\t%s\n' "$other" "$cpu" "$json" >>"$RUNS"
    log "$mode: $json (CPU ${cpu}s; other cores busy: $other)"
}

for round in $(seq 1 "$CAMT_ROUNDS"); do
    log "round $round of $CAMT_ROUNDS"
    run_one scan
    run_one parse
    run_one lxml
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem_total=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
fs=$(df -PT "$DIR" | awk 'NR == 2 { print $2 }')
commit=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$ROOT" --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    commit="$commit (with uncommitted changes in the working tree)"
fi
MACHINE="$(nproc) cores ($cpu_model), $mem_total RAM, $(uname -sr), file on $fs" \
DATE="$(date -u '+%Y-%m-%d %H:%M UTC')" COMMIT="$commit" BUILD_NOTE="$BUILD_NOTE" \
RUSTC="$(rustc --version 2>/dev/null || echo 'rustc unknown')" PYV="$("$PY" -c 'import platform; print(platform.python_version())')" \
LOAD_BEFORE="$LOAD_BEFORE" LOAD_AFTER="$LOAD_AFTER" GOAL_SCAN_PERCENT=$GOAL_SCAN_PERCENT GOAL_LXML_TIMES=$GOAL_LXML_TIMES \
GOAL_RSS_MB=$GOAL_RSS_MB "$PY" - "$RUNS" "$GEN_JSON" <<'EOF'
import json, os, statistics, sys

runs = {"scan": [], "parse": [], "lxml": []}
for line in open(sys.argv[1]):
    other, cpu, text = line.rstrip("\n").split("\t", 2)
    record = json.loads(text)
    record["other"] = float(other)
    record["cpu_s"] = float(cpu)
    runs[record["mode"]].append(record)
gen = json.load(open(sys.argv[2]))
env = os.environ

# Everything must have seen the same document.
problems = []
for mode in ("parse", "lxml"):
    for r in runs[mode]:
        for key in ("entries", "signed_sum_minor"):
            if r[key] != gen[key]:
                problems.append(f"{mode}: {key} {r[key]} but the generator wrote {gen[key]}")
        for key in ("date_sum", "pending", "statements"):
            if r[key] != runs["parse"][0][key]:
                problems.append(f"{mode}: {key} {r[key]} differs from parse's {runs['parse'][0][key]}")
for r in runs["scan"]:
    if r["entries"] != gen["entries"]:
        problems.append(f"scan: {r['entries']} Ntry start tags but the generator wrote {gen['entries']}")
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)

MB = 1024 * 1024
med = {m: statistics.median(r["mb_per_s"] for r in rs) for m, rs in runs.items()}
rss = {m: max(r["peak_rss_kib"] for r in rs) / 1024 for m, rs in runs.items()}
secs = {m: statistics.median(r["seconds"] for r in rs) for m, rs in runs.items()}
other = {m: max(r["other"] for r in rs) for m, rs in runs.items()}
# MB per CPU second of the process (user + system, start-up included): less
# sensitive than wall time to other work on the machine.
per_cpu = {m: statistics.median(r["bytes"] / MB / max(r["cpu_s"], 0.01) for r in rs) for m, rs in runs.items()}
label = {
    "scan": "raw scan: quick-xml 0.37 events, `camt_bench scan`",
    "parse": "formats `StatementReader` → domain entries, `camt_bench parse`",
    "lxml": f"Python {env['PYV']} lxml {runs['lxml'][0]['lxml']} (libxml2 {runs['lxml'][0]['libxml2']}) iterparse, `benches/camt_lxml.py`",
}
size_mb = gen["bytes"] / MB
print(f"File: {gen['bytes']} bytes ({size_mb:.0f} MB, MB = 2^20 bytes), {gen['statements']} statements, "
      f"{gen['entries']} entries ({gen['bytes'] / gen['entries']:.0f} bytes each on average), seed {gen['seed']}; "
      f"page cache warm; {len(runs['parse'])} rounds of scan, parse, lxml in turn.")
print()
print("| measurement | MB/s, each round | median MB/s | median seconds | median MB per CPU second | peak RSS | other cores busy (max) |")
print("|---|---|---:|---:|---:|---:|---:|")
for m in ("scan", "parse", "lxml"):
    each = ", ".join(f"{r['mb_per_s']:.1f}" for r in runs[m])
    print(f"| {label[m]} | {each} | {med[m]:.1f} | {secs[m]:.2f} | {per_cpu[m]:.1f} | {rss[m]:.1f} MB | {other[m]:.2f} |")
print()
scan_pct = 100 * med["parse"] / med["scan"]
lxml_x = med["parse"] / med["lxml"]
ok = lambda c: "met" if c else "MISSED"
print(f"- parse / scan: {scan_pct:.1f} % (goal ≥ {env['GOAL_SCAN_PERCENT']} %): {ok(scan_pct >= float(env['GOAL_SCAN_PERCENT']))}"
      f" (per CPU second: {100 * per_cpu['parse'] / per_cpu['scan']:.1f} %).")
print(f"- parse / lxml: {lxml_x:.2f}× (goal ≥ {env['GOAL_LXML_TIMES']}×): {ok(lxml_x >= float(env['GOAL_LXML_TIMES']))}"
      f" (per CPU second: {per_cpu['parse'] / per_cpu['lxml']:.2f}×).")
print(f"- peak RSS of parse while streaming the {size_mb:.0f} MB file: {rss['parse']:.1f} MB "
      f"(goal < {env['GOAL_RSS_MB']} MB): {ok(rss['parse'] < float(env['GOAL_RSS_MB']))}.")
print(f"- checked: parse and lxml saw {gen['entries']} entries with signed sum {gen['signed_sum_minor']} minor units, "
      f"as the generator wrote, and the same dates, "
      f"statements ({runs['parse'][0]['statements']}) and pending entries ({runs['parse'][0]['pending']}); scan counted {runs['scan'][0]['entries']} Ntry.")
print()
print(f"Machine: {env['MACHINE']}; load average {env['LOAD_BEFORE']} before, {env['LOAD_AFTER']} after.")
print(f"Date: {env['DATE']}. Commit: {env['COMMIT']}. Build: {env['BUILD_NOTE']}; {env['RUSTC']}.")
EOF
