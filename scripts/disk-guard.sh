#!/usr/bin/env bash
# scripts/disk-guard.sh: make room for a build in a reused cargo target dir.
#
# A target dir reused across runs grows with every toolchain, lockfile and
# profile change it has seen; a full disk then fails the build halfway, with
# "No space left on device". When the file system holding TARGET_DIR has
# less than NEED_GIB GiB free, this removes its incremental caches first,
# then, if that is not enough, its whole cached build (debug and release;
# the next build starts from scratch). It never fails the caller: when even
# that leaves too little room it says so and what to do, and exits 0.
#
# Usage: scripts/disk-guard.sh TARGET_DIR NEED_GIB
# Example: scripts/disk-guard.sh "$HOME/.cache/bankdirect/target" 15
set -euo pipefail

if [[ $# -ne 2 || ${1:-} == -h || ${1:-} == --help ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    [[ ${1:-} == -h || ${1:-} == --help ]] && exit 0
    exit 2
fi
dir=$1
need=$2
[[ $need =~ ^[0-9]+$ ]] || { echo "disk-guard: NEED_GIB must be a whole number of GiB, not '$need'" >&2; exit 2; }

free_gib() { df -Pk "$dir" | awk 'NR == 2 { print int($4 / 1048576) }'; }

mkdir -p "$dir"
if (( $(free_gib) < need )); then
    echo "disk-guard: only $(free_gib) GiB free: removing the incremental caches in $dir" >&2
    rm -rf "$dir"/*/incremental
fi
if (( $(free_gib) < need )); then
    echo "disk-guard: only $(free_gib) GiB free: removing the cached build in $dir" >&2
    rm -rf "${dir:?}/debug" "${dir:?}/release"
fi
free_now=$(free_gib)
if (( free_now < need )); then
    echo "disk-guard: warning: only ${free_now} GiB free after pruning $dir; the build may fail." >&2
    echo "disk-guard: free space on that file system, or point CARGO_TARGET_DIR elsewhere." >&2
else
    echo "disk-guard: ${free_now} GiB free in $dir" >&2
fi
