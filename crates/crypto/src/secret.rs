//! Secret strings that do not print, and generation of client secrets.
//!
//! [`SecretString`] is the only way a secret crosses a module boundary: its
//! `Debug` and `Display` print `[redacted]`, so a secret cannot leak through a
//! log line or an error message by accident, and its buffer is wiped on drop.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::RngCore as _;
use zeroize::Zeroizing;

/// Entropy of a generated client secret, in bytes (256 bits).
pub const CLIENT_SECRET_ENTROPY_BYTES: usize = 32;

/// Length of a generated client secret: 32 bytes in unpadded base64url.
pub const CLIENT_SECRET_LEN_CHARS: usize = 43;

/// A secret string (client secret, password, PEM-encoded private key).
///
/// Prints as `[redacted]`; read it with [`SecretString::expose_secret`] only
/// where the secret is actually used.
#[derive(Clone, Default)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    pub fn new(secret: String) -> Self {
        Self(Zeroizing::new(secret))
    }

    /// The secret itself. Named loudly so every use is easy to find in review.
    pub fn expose_secret(&self) -> &str {
        self.0.as_str()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretString {
    fn from(secret: String) -> Self {
        Self::new(secret)
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A fresh client secret: 256 random bits from the OS, unpadded base64url
/// (43 characters of `A-Z a-z 0-9 - _`), so it needs no escaping in a form
/// body, a URL or a Basic authorization header.
pub fn generate_client_secret() -> SecretString {
    let mut bytes = Zeroizing::new([0u8; CLIENT_SECRET_ENTROPY_BYTES]);
    OsRng.fill_bytes(bytes.as_mut());
    SecretString::new(URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn secret_string_does_not_print() {
        let secret = SecretString::new("hunter2".to_owned());
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(secret.clone())), "Some([redacted])");
        assert_eq!(secret.expose_secret(), "hunter2");
    }

    #[test]
    fn generated_client_secrets_are_43_char_base64url_and_distinct() {
        let mut seen = HashSet::new();
        for _ in 0..1000 {
            let secret = generate_client_secret();
            let text = secret.expose_secret();
            assert_eq!(text.len(), CLIENT_SECRET_LEN_CHARS);
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "not base64url: {text}"
            );
            let decoded = URL_SAFE_NO_PAD.decode(text).unwrap();
            assert_eq!(decoded.len(), CLIENT_SECRET_ENTROPY_BYTES);
            assert!(seen.insert(text.to_owned()), "duplicate secret generated");
        }
    }
}
