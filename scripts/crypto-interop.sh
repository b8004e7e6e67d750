#!/usr/bin/env bash
# Interop of `bankdirect crypto` with OpenSSL 3 (issue 8): a tool nobody here
# wrote checks our SM2, SM3, SM4 and RSA, and we check its output.
#
#   SM2-with-SM3 (id 1234567812345678): our signature verifies with
#       openssl pkeyutl -verify -rawin -digest sm3 -pkeyopt distid:1234567812345678
#     and OpenSSL's (its own key, PKCS#8 and SEC1) verifies with
#     `bankdirect crypto sm2-verify`; a changed message fails on both sides.
#   SM3: GB/T 32905 examples and random inputs agree with `openssl dgst -sm3`.
#   SM4-CBC/ECB: GB/T 32907 example and random inputs (PKCS#7), both
#     directions, byte for byte with `openssl enc`.
#   RSA-SHA256 PKCS#1 v1.5: both directions, identical signature bytes.
# (SM4-GCM is not in OpenSSL 3.0: the crypto crate's unit tests check it
# against RFC 8998 A.1.)
#
# Prints one line per check and exits non-zero on the first disagreement.
# Installs Debian's openssl with apt-get when it is missing. Settings:
# CARGO_TARGET_DIR (as scripts/test), INTEROP_RANDOM_ROUNDS (default 20).
set -Eeuo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bankdirect/target}"
ROUNDS="${INTEROP_RANDOM_ROUNDS:-20}"
ID=1234567812345678

say() { printf 'crypto-interop: %s\n' "$*" >&2; }
die() {
    say "FAIL: $*"
    exit 1
}
trap 'die "command failed at line $LINENO: $BASH_COMMAND"' ERR
ok() { printf 'ok   %s\n' "$*"; }

as_root() {
    if [[ "$(id -u)" == 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n -- "$@"
    else
        die "need root or sudo to run $1"
    fi
}

ensure_openssl() {
    if command -v openssl >/dev/null 2>&1; then
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || die "openssl is missing and apt-get is not available; install OpenSSL 3 yourself"
    say "openssl not found; installing it with apt-get"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y openssl
}

ensure_openssl
version="$(openssl version)"
[[ "$version" == "OpenSSL 3."* ]] || die "need OpenSSL 3 (SM2 distid, -rawin), found: $version"
say "using $version"

say "building bankdirect"
cargo build --quiet --locked -p bankdirect
bd="$CARGO_TARGET_DIR/debug/bankdirect"
[[ -x "$bd" ]] || die "no binary at $bd"

work="$(mktemp -d "${TMPDIR:-/tmp}/bankdirect-crypto-interop.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cd "$work"

# Messages with the bytes that break naive tools: CRLF, GBK, no final newline.
printf '<?xml version="1.0" encoding="GBK"?>\r\n<CMS><AMT>100.00</AMT></CMS>' >msg-crlf.xml
printf '\xb8\xb6\xbf\xee 100.00 \xd4\xaa\n' >msg-gbk.txt
head -c 100000 /dev/urandom >msg-random.bin
messages=(msg-crlf.xml msg-gbk.txt msg-random.bin)

both_refuse_changed() { # pubkey sig msg
    printf 'x' | cat "$3" - >"$3.changed"
    if openssl pkeyutl -verify -pubin -inkey "$1" -rawin -digest sm3 -pkeyopt "distid:$ID" \
        -in "$3.changed" -sigfile "$2" >/dev/null 2>&1; then
        die "openssl accepted an SM2 signature over a changed message"
    fi
    if "$bd" crypto sm2-verify --key "$1" --in "$3.changed" --sig "$2" >/dev/null 2>&1; then
        die "bankdirect accepted an SM2 signature over a changed message"
    fi
}

# --- SM2: ours -> OpenSSL
"$bd" crypto keygen --alg sm2 --out bd-sm2.pem --pub bd-sm2.pub.pem 2>/dev/null
for m in "${messages[@]}"; do
    "$bd" crypto sm2-sign --key bd-sm2.pem --in "$m" --out "$m.bd.sig" 2>/dev/null
    openssl pkeyutl -verify -pubin -inkey bd-sm2.pub.pem -rawin -digest sm3 \
        -pkeyopt "distid:$ID" -in "$m" -sigfile "$m.bd.sig" >/dev/null ||
        die "openssl does not verify our SM2 signature over $m"
    both_refuse_changed bd-sm2.pub.pem "$m.bd.sig" "$m"
done
# Our PKCS#8 key is usable by OpenSSL, and the public key it derives is ours.
openssl pkey -in bd-sm2.pem -pubout -out bd-sm2.ossl.pub.pem
cmp -s bd-sm2.pub.pem bd-sm2.ossl.pub.pem || die "openssl derives another SPKI from our SM2 key"
ok "SM2: openssl verifies our signatures (keygen PKCS#8/SPKI, ${#messages[@]} messages, distid:$ID); both refuse a changed message"

# --- SM2: OpenSSL -> ours (a PKCS#8 key and a SEC1 key with EC PARAMETERS)
openssl genpkey -algorithm SM2 -out ossl-sm2.pem 2>/dev/null
openssl ecparam -name SM2 -genkey -out ossl-sm2-sec1.pem 2>/dev/null
for key in ossl-sm2.pem ossl-sm2-sec1.pem; do
    openssl pkey -in "$key" -pubout -out "$key.pub"
    for m in "${messages[@]}"; do
        openssl pkeyutl -sign -inkey "$key" -rawin -digest sm3 -pkeyopt "distid:$ID" \
            -in "$m" -out "$m.ossl.sig"
        "$bd" crypto sm2-verify --key "$key.pub" --in "$m" --sig "$m.ossl.sig" >/dev/null ||
            die "bankdirect does not verify OpenSSL's SM2 signature over $m ($key)"
        both_refuse_changed "$key.pub" "$m.ossl.sig" "$m"
        # Our signature with OpenSSL's key verifies with OpenSSL.
        "$bd" crypto sm2-sign --key "$key" --in "$m" --out "$m.bd2.sig" 2>/dev/null
        openssl pkeyutl -verify -pubin -inkey "$key.pub" -rawin -digest sm3 \
            -pkeyopt "distid:$ID" -in "$m" -sigfile "$m.bd2.sig" >/dev/null ||
            die "openssl does not verify our SM2 signature made with its key $key"
    done
done
ok "SM2: bankdirect verifies OpenSSL's signatures (genpkey PKCS#8 and ecparam SEC1 keys) and signs with its keys"

# OpenSSL's default id is empty: verify refuses it under the default id,
# inspect names the mistake.
openssl pkeyutl -sign -inkey ossl-sm2.pem -rawin -digest sm3 -in msg-crlf.xml -out empty-id.sig
if "$bd" crypto sm2-verify --key ossl-sm2.pem.pub --in msg-crlf.xml --sig empty-id.sig >/dev/null 2>&1; then
    die "bankdirect accepted an empty-id signature under id $ID"
fi
"$bd" crypto sm2-verify --key ossl-sm2.pem.pub --in msg-crlf.xml --sig empty-id.sig --id '' >/dev/null ||
    die "bankdirect does not verify OpenSSL's empty-id signature with --id ''"
status=0
"$bd" crypto inspect --key ossl-sm2.pem.pub --in msg-crlf.xml --sig empty-id.sig >inspect.out || status=$?
[[ $status == 1 ]] && grep -q 'EMPTY SM2 id' inspect.out || die "inspect did not name the empty SM2 id (exit $status): $(cat inspect.out)"
ok "SM2: OpenSSL's default (empty) id is refused under $ID, verifies with --id '', and inspect names it"

# --- SM3
check_sm3() { # file label
    local ours theirs
    ours="$("$bd" crypto sm3 --in "$1")"
    theirs="$(openssl dgst -sm3 -r "$1" | cut -d' ' -f1)"
    [[ "$ours" == "$theirs" ]] || die "SM3 of $2: bankdirect $ours, openssl $theirs"
}
printf 'abc' >sm3-abc
check_sm3 sm3-abc "abc"
[[ "$("$bd" crypto sm3 --in sm3-abc)" == 66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0 ]] ||
    die "SM3(abc) is not the GB/T 32905 value"
printf 'abcd%.0s' {1..16} >sm3-abcd16
check_sm3 sm3-abcd16 "abcd x16"
[[ "$("$bd" crypto sm3 --in sm3-abcd16)" == debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732 ]] ||
    die "SM3(abcd x16) is not the GB/T 32905 value"
: >empty
check_sm3 empty "the empty input"
for ((i = 0; i < ROUNDS; i++)); do
    head -c $((RANDOM * 3 % 70000)) /dev/urandom >rnd
    check_sm3 rnd "random input $i ($(stat -c %s rnd) bytes)"
done
for len in 55 56 63 64 65 119 120 128; do
    head -c "$len" /dev/urandom >rnd
    check_sm3 rnd "random input of $len bytes"
done
ok "SM3: GB/T 32905 examples, the empty input, $ROUNDS random inputs and 8 padding-boundary lengths agree with openssl dgst -sm3"

# --- SM4
key_hex=0123456789abcdeffedcba9876543210
printf '%s\n' "$key_hex" >sm4-gbt.key
printf '\x01\x23\x45\x67\x89\xab\xcd\xef\xfe\xdc\xba\x98\x76\x54\x32\x10' >sm4-gbt.plain
"$bd" crypto sm4-encrypt --key sm4-gbt.key --mode ecb --no-padding --in sm4-gbt.plain --out sm4-gbt.bd 2>/dev/null
openssl enc -sm4-ecb -K "$key_hex" -nopad -in sm4-gbt.plain -out sm4-gbt.ossl
[[ "$(od -An -tx1 sm4-gbt.bd | tr -d " \n")" == 681edf34d206965e86b3e94f536e4246 ]] || die "SM4-ECB of the GB/T 32907 example is not 681edf34…4246"
cmp -s sm4-gbt.bd sm4-gbt.ossl || die "SM4-ECB of the GB/T 32907 example differs from openssl"
zero_iv=00000000000000000000000000000000
"$bd" crypto sm4-encrypt --key sm4-gbt.key --mode cbc --iv "$zero_iv" --no-padding --in sm4-gbt.plain --out sm4-gbt-cbc.bd 2>/dev/null
openssl enc -sm4-cbc -K "$key_hex" -iv "$zero_iv" -nopad -in sm4-gbt.plain -out sm4-gbt-cbc.ossl
cmp -s sm4-gbt-cbc.bd sm4-gbt-cbc.ossl || die "SM4-CBC of the GB/T 32907 example differs from openssl"

for ((i = 0; i < ROUNDS; i++)); do
    k="$(openssl rand -hex 16)"
    iv="$(openssl rand -hex 16)"
    printf '%s' "$k" >rnd.key
    head -c $((RANDOM % 5000)) /dev/urandom >rnd.plain
    for mode in cbc ecb; do
        iv_ours=() iv_theirs=()
        if [[ $mode == cbc ]]; then iv_ours=(--iv "$iv") iv_theirs=(-iv "$iv"); fi
        "$bd" crypto sm4-encrypt --key rnd.key --mode $mode "${iv_ours[@]}" --in rnd.plain --out rnd.bd 2>/dev/null
        openssl enc -sm4-$mode -K "$k" "${iv_theirs[@]}" -in rnd.plain -out rnd.ossl
        cmp -s rnd.bd rnd.ossl || die "SM4-${mode^^} ciphertexts differ (key $k, $(stat -c %s rnd.plain) bytes)"
        openssl enc -d -sm4-$mode -K "$k" "${iv_theirs[@]}" -in rnd.bd -out rnd.ossl.back
        cmp -s rnd.plain rnd.ossl.back || die "openssl does not decrypt our SM4-${mode^^}"
        "$bd" crypto sm4-decrypt --key rnd.key --mode $mode "${iv_ours[@]}" --in rnd.ossl --out rnd.bd.back 2>/dev/null
        cmp -s rnd.plain rnd.bd.back || die "bankdirect does not decrypt OpenSSL's SM4-${mode^^}"
    done
done
ok "SM4: GB/T 32907 example (ECB, CBC) and $ROUNDS random keys/IVs/lengths in CBC and ECB with PKCS#7 agree byte for byte, both directions"

# --- RSA-SHA256 PKCS#1 v1.5
"$bd" crypto keygen --alg rsa --out bd-rsa.pem --pub bd-rsa.pub.pem 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out ossl-rsa.pem 2>/dev/null
openssl pkey -in ossl-rsa.pem -pubout -out ossl-rsa.pub.pem
for m in "${messages[@]}"; do
    "$bd" crypto rsa-sign --key bd-rsa.pem --in "$m" --out "$m.bd.rsa" 2>/dev/null
    openssl dgst -sha256 -verify bd-rsa.pub.pem -signature "$m.bd.rsa" "$m" >/dev/null ||
        die "openssl does not verify our RSA-SHA256 signature over $m"
    openssl dgst -sha256 -sign ossl-rsa.pem -out "$m.ossl.rsa" "$m"
    "$bd" crypto rsa-verify --key ossl-rsa.pub.pem --in "$m" --sig "$m.ossl.rsa" >/dev/null ||
        die "bankdirect does not verify OpenSSL's RSA-SHA256 signature over $m"
    "$bd" crypto rsa-sign --key ossl-rsa.pem --in "$m" --out "$m.bd2.rsa" 2>/dev/null
    cmp -s "$m.bd2.rsa" "$m.ossl.rsa" || die "RSA-SHA256 signatures with the same key differ over $m"
    printf 'x' | cat "$m" - >"$m.changed"
    if "$bd" crypto rsa-verify --key ossl-rsa.pub.pem --in "$m.changed" --sig "$m.ossl.rsa" >/dev/null 2>&1; then
        die "bankdirect accepted an RSA signature over a changed message"
    fi
done
ok "RSA-SHA256: openssl verifies ours, we verify OpenSSL's, identical bytes with the same key, a changed message refused"

say "all checks passed"
