//! Time-based one-time passwords (TOTP, RFC 6238) as authenticator apps
//! make them: HMAC-SHA1, 6 digits, 30-second steps from the Unix epoch.
//!
//! [`TotpKey`] is the shared secret, parsed from the base32 text an
//! authenticator app shows (RFC 4648, case-insensitive, spaces ignored,
//! padding optional) and never printed. [`TotpKey::verify`] accepts the
//! current step and one step either side (clock drift and typing time) and
//! returns the step that matched, so the caller can refuse a code whose step
//! it has already accepted: this module keeps no state.
//!
//! The digit count, step and window are [`TotpParams`] so the RFC's test
//! vectors (8 digits) can be checked; the product uses [`AUTHENTICATOR`].

use std::fmt;
use std::sync::OnceLock;

use data_encoding::{Encoding, Specification, BASE32_NOPAD};
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac as _};
use rand::rngs::OsRng;
use rand::RngCore as _;
use sha1::{Digest as _, Sha1};
use subtle::{Choice, ConstantTimeEq as _};
use zeroize::Zeroizing;

use crate::{CryptoError, SecretString};

/// Shortest secret accepted: RFC 4226 §4 requires 128 bits.
pub const TOTP_SECRET_MIN_BYTES: usize = 16;

/// Longest secret accepted (a limit on input, not a security bound).
pub const TOTP_SECRET_MAX_BYTES: usize = 128;

/// Length of a generated secret: 160 bits, RFC 4226's recommendation and
/// what authenticator apps expect (32 base32 characters).
pub const TOTP_GENERATED_SECRET_BYTES: usize = 20;

/// SHA-1's block size; HMAC pads (or pre-hashes) its key to this length.
const SHA1_BLOCK_LEN_BYTES: usize = 64;

/// How codes are made and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpParams {
    /// Digits of a code, 6..=8 (RFC 4226 §5.3).
    pub digits: u32,
    /// Length of a time step in seconds (RFC 6238's X).
    pub step_s: u64,
    /// Steps accepted either side of the current one.
    pub window_steps: u64,
}

/// What every authenticator app uses: 6 digits, 30 s, and ±1 step.
pub const AUTHENTICATOR: TotpParams = TotpParams {
    digits: 6,
    step_s: 30,
    window_steps: 1,
};

/// A TOTP shared secret. Prints as `[redacted]`; wiped on drop.
#[derive(Clone)]
pub struct TotpKey(Zeroizing<Vec<u8>>);

impl fmt::Debug for TotpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpKey([redacted])")
    }
}

/// RFC 4648 base32 as people copy it: upper or lower case, spaces between
/// groups, no padding (padding is stripped before decoding). Bits left over
/// at the end are ignored, as authenticator apps ignore them.
fn lenient_base32() -> &'static Encoding {
    static ENCODING: OnceLock<Encoding> = OnceLock::new();
    ENCODING.get_or_init(|| {
        let mut spec = Specification::new();
        spec.symbols.push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
        spec.translate.from.push_str("abcdefghijklmnopqrstuvwxyz");
        spec.translate.to.push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ");
        spec.ignore.push(' ');
        spec.check_trailing_bits = false;
        // The specification is a constant data-encoding accepts; should it
        // ever not, the strict alphabet still parses canonical text.
        spec.encoding().unwrap_or(BASE32_NOPAD)
    })
}

impl TotpKey {
    /// Parses the base32 text of a secret (what an authenticator app shows).
    /// Errors name what is wrong, never the secret.
    pub fn from_base32(text: &str) -> Result<Self, CryptoError> {
        const WHAT: &str = "TOTP secret";
        let trimmed = text.trim().trim_end_matches('=');
        if trimmed.len() > TOTP_SECRET_MAX_BYTES * 2 {
            return Err(CryptoError::InvalidKey {
                what: WHAT,
                reason: "is longer than 1024 bits",
            });
        }
        let bytes = Zeroizing::new(lenient_base32().decode(trimmed.as_bytes()).map_err(|_| {
            CryptoError::InvalidKey {
                what: WHAT,
                reason: "is not base32 (RFC 4648: letters A-Z and digits 2-7; spaces and case do not matter)",
            }
        })?);
        Self::from_bytes(&bytes)
    }

    /// A secret from raw bytes (RFC test vectors use ASCII text).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() < TOTP_SECRET_MIN_BYTES {
            return Err(CryptoError::InvalidKey {
                what: "TOTP secret",
                reason: "is shorter than 128 bits (26 base32 characters)",
            });
        }
        if bytes.len() > TOTP_SECRET_MAX_BYTES {
            return Err(CryptoError::InvalidKey {
                what: "TOTP secret",
                reason: "is longer than 1024 bits",
            });
        }
        Ok(Self(Zeroizing::new(bytes.to_vec())))
    }

    /// A fresh 160-bit secret from the OS.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new(vec![0u8; TOTP_GENERATED_SECRET_BYTES]);
        OsRng.fill_bytes(bytes.as_mut_slice());
        Self(bytes)
    }

    /// The secret as unpadded upper-case base32, as authenticator apps
    /// take it.
    pub fn to_base32(&self) -> SecretString {
        SecretString::new(BASE32_NOPAD.encode(&self.0))
    }

    /// The time step a Unix time falls in, `None` before 1970.
    pub fn step_at(unix_s: i64, params: TotpParams) -> Option<u64> {
        u64::try_from(unix_s).ok().map(|t| t / params.step_s.max(1))
    }

    /// The code of a time step (RFC 4226 HOTP with the step as counter),
    /// zero-padded to `params.digits`.
    pub fn code(&self, step: u64, params: TotpParams) -> String {
        let digits = params.digits.clamp(6, 8);
        let value = hotp(&self.0, step, digits);
        format!("{value:0width$}", width = digits as usize)
    }

    /// Checks `code` at Unix time `unix_s`: the current step and
    /// `params.window_steps` either side. Returns the matching step (the
    /// latest, should several match), or `None`. A code that is not exactly
    /// `params.digits` ASCII digits never matches. The comparison of every
    /// step in the window is constant time and none is skipped.
    pub fn verify(&self, code: &str, unix_s: i64, params: TotpParams) -> Option<u64> {
        let digits = params.digits.clamp(6, 8);
        if code.len() != digits as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let now = Self::step_at(unix_s, params)?;
        let first = now.saturating_sub(params.window_steps);
        let last = now.saturating_add(params.window_steps);
        let mut matched = None;
        for step in first..=last {
            let expected = self.code(step, params);
            let hit: Choice = expected.as_bytes().ct_eq(code.as_bytes());
            if bool::from(hit) {
                matched = Some(step);
            }
        }
        matched
    }
}

/// HOTP (RFC 4226 §5.3): HMAC-SHA1 of the big-endian counter, dynamic
/// truncation, modulo 10^digits (digits is 6..=8, so it fits a u32).
fn hotp(key: &[u8], counter: u64, digits: u32) -> u32 {
    // Bring the key to the block size exactly as RFC 2104 does (hashed if
    // longer, zero-padded), so the MAC needs no fallible constructor.
    let mut block = Zeroizing::new([0u8; SHA1_BLOCK_LEN_BYTES]);
    if key.len() > SHA1_BLOCK_LEN_BYTES {
        block[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut mac = <Hmac<Sha1> as KeyInit>::new(block.as_ref().into());
    mac.update(&counter.to_be_bytes());
    let h: [u8; 20] = mac.finalize().into_bytes().into();
    let offset = usize::from(h[19] & 0x0f);
    let binary = u32::from_be_bytes([
        h[offset] & 0x7f,
        h[offset + 1],
        h[offset + 2],
        h[offset + 3],
    ]);
    binary % 10u32.pow(digits)
}

/// The `otpauth://totp/...` URI an authenticator app imports (the Key Uri
/// Format of Google Authenticator, which the other apps follow): label
/// `issuer:account`, the secret, and the parameters spelled out.
pub fn provisioning_uri(issuer: &str, account: &str, key: &TotpKey) -> SecretString {
    let issuer = percent_encode(issuer);
    let account = percent_encode(account);
    let secret = key.to_base32();
    SecretString::new(format!(
        "otpauth://totp/{issuer}:{account}?secret={}&issuer={issuer}&algorithm=SHA1&digits={}&period={}",
        secret.expose_secret(),
        AUTHENTICATOR.digits,
        AUTHENTICATOR.step_s
    ))
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B's SHA-1 seed (ASCII "1234567890" twice).
    const RFC_SEED: &[u8] = b"12345678901234567890";

    const RFC_PARAMS: TotpParams = TotpParams {
        digits: 8,
        step_s: 30,
        window_steps: 0,
    };

    #[test]
    fn rfc6238_appendix_b_sha1_vectors() {
        let key = TotpKey::from_bytes(RFC_SEED).unwrap();
        for (unix_s, code) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            let step = TotpKey::step_at(unix_s, RFC_PARAMS).unwrap();
            assert_eq!(key.code(step, RFC_PARAMS), code, "T = {unix_s}");
            assert_eq!(key.verify(code, unix_s, RFC_PARAMS), Some(step));
        }
    }

    #[test]
    fn rfc4226_appendix_d_six_digit_vectors() {
        let key = TotpKey::from_bytes(RFC_SEED).unwrap();
        let codes = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in codes.iter().enumerate() {
            assert_eq!(key.code(counter as u64, AUTHENTICATOR), *code);
        }
    }

    #[test]
    fn verify_accepts_one_step_either_side_and_returns_it() {
        let key = TotpKey::from_bytes(RFC_SEED).unwrap();
        let now = 1_111_111_111; // step 37037037, 1 s into it
        let step = TotpKey::step_at(now, AUTHENTICATOR).unwrap();
        let at = |s: u64| key.code(s, AUTHENTICATOR);
        assert_eq!(key.verify(&at(step), now, AUTHENTICATOR), Some(step));
        assert_eq!(
            key.verify(&at(step - 1), now, AUTHENTICATOR),
            Some(step - 1)
        );
        assert_eq!(
            key.verify(&at(step + 1), now, AUTHENTICATOR),
            Some(step + 1)
        );
        for far in [step - 2, step + 2, step - 100] {
            let code = at(far);
            if [at(step - 1), at(step), at(step + 1)].contains(&code) {
                continue; // a 1-in-10^6 collision is not a failure
            }
            assert_eq!(key.verify(&code, now, AUTHENTICATOR), None, "step {far}");
        }
    }

    #[test]
    fn malformed_codes_never_match() {
        let key = TotpKey::from_bytes(RFC_SEED).unwrap();
        let now = 59;
        let good = key.code(1, AUTHENTICATOR);
        assert!(key.verify(&good, now, AUTHENTICATOR).is_some());
        for bad in [
            "",
            "12345",
            "1234567",
            &format!(" {good}"),
            &format!("{good} "),
            "12a456",
            "١٢٣٤٥٦", // Arabic-Indic digits are not ASCII digits
            &format!("+{}", &good[1..]),
        ] {
            assert_eq!(key.verify(bad, now, AUTHENTICATOR), None, "{bad:?}");
        }
        // Before 1970 there is no step.
        assert_eq!(key.verify(&good, -1, AUTHENTICATOR), None);
    }

    #[test]
    fn base32_as_apps_show_it_parses_and_round_trips() {
        // RFC_SEED in base32.
        let canonical = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        for text in [
            canonical,
            "gezdgnbvgy3tqojqgezdgnbvgy3tqojq",
            "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ",
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ====",
            "  gezd gnbv gy3t qojq GEZD GNBV GY3T QOJQ\n",
        ] {
            let key = TotpKey::from_base32(text).unwrap();
            assert_eq!(key.0.as_slice(), RFC_SEED, "{text:?}");
            assert_eq!(key.to_base32().expose_secret(), canonical);
        }
        // 128 bits in 26 characters, no padding.
        let key = TotpKey::from_base32("AAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        assert_eq!(key.0.len(), 16);
    }

    #[test]
    fn bad_secrets_are_refused_without_echoing_them() {
        for (text, reason) in [
            ("GEZDGNBVGY3TQOJQ", "shorter than 128 bits"), // 80 bits
            ("GEZDGNBVGY3TQOJ1GEZDGNBVGY3TQOJQ", "not base32"), // 1 is not base32
            ("GEZDGNBVGY3TQOJQ-GEZDGNBVGY3TQOJQ", "not base32"),
            ("", "shorter than 128 bits"),
        ] {
            let err = TotpKey::from_base32(text).unwrap_err().to_string();
            assert!(err.contains(reason), "{text:?}: {err}");
            assert!(text.is_empty() || !err.contains(&text[..8]), "{err}");
        }
        let long = "A".repeat(2000);
        assert!(TotpKey::from_base32(&long).is_err());
    }

    #[test]
    fn keys_do_not_print_and_generated_ones_are_distinct_160_bit() {
        let a = TotpKey::generate();
        let b = TotpKey::generate();
        assert_eq!(format!("{a:?}"), "TotpKey([redacted])");
        assert_eq!(a.0.len(), TOTP_GENERATED_SECRET_BYTES);
        assert_ne!(a.0.as_slice(), b.0.as_slice());
        let text = a.to_base32();
        assert_eq!(text.expose_secret().len(), 32);
        let back = TotpKey::from_base32(text.expose_secret()).unwrap();
        assert_eq!(back.0.as_slice(), a.0.as_slice());
    }

    #[test]
    fn provisioning_uri_names_issuer_account_and_parameters() {
        let key = TotpKey::from_bytes(RFC_SEED).unwrap();
        let uri = provisioning_uri("bank direct", "li.na@example", &key);
        assert_eq!(
            uri.expose_secret(),
            "otpauth://totp/bank%20direct:li.na%40example?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=bank%20direct&algorithm=SHA1&digits=6&period=30"
        );
    }
}
