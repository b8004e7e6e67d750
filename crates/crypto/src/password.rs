//! Password hashes of people (`[[users]]`): argon2id in PHC string form
//! (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), parameters pinned here rather
//! than taken from the crate's defaults, which move between versions.
//!
//! A password never leaves this module in any form but its hash; errors
//! never carry it.

use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Algorithm, Argon2, Params, Version,
};

use crate::CryptoError;

/// Memory in KiB, iterations and lanes: OWASP's argon2id minimum (19 MiB, 2, 1).
const MEMORY_KIB: u32 = 19 * 1024;
const ITERATIONS: u32 = 2;
const LANES: u32 = 1;
/// Longest password accepted, in bytes: hashing cost is bounded by input too.
pub const PASSWORD_MAX_BYTES: usize = 1024;
/// Longest PHC string accepted from a configuration.
const HASH_MAX_CHARS: usize = 256;

fn hasher() -> Result<Argon2<'static>, CryptoError> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, LANES, Some(32))
        .map_err(|e| CryptoError::Password(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The argon2id PHC string of `password`, with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, CryptoError> {
    if password.is_empty() || password.len() > PASSWORD_MAX_BYTES {
        return Err(CryptoError::Password(format!(
            "a password takes 1 to {PASSWORD_MAX_BYTES} bytes"
        )));
    }
    let salt = SaltString::generate(&mut OsRng);
    hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CryptoError::Password(format!("hashing a password: {e}")))
}

/// Whether `password` matches the PHC string `hash`. A malformed hash or an
/// oversized password is simply no match: the caller answers the same 401.
pub fn verify_password(password: &str, hash: &str) -> bool {
    if password.is_empty() || password.len() > PASSWORD_MAX_BYTES || hash.len() > HASH_MAX_CHARS {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    // The parameters come from the hash itself; only argon2id is accepted.
    if parsed.algorithm.as_str() != "argon2id" {
        return false;
    }
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Whether `hash` is an argon2id PHC string (checked at config load).
pub fn is_well_formed_hash(hash: &str) -> bool {
    hash.len() <= HASH_MAX_CHARS
        && hash.starts_with("$argon2id$")
        && PasswordHash::new(hash).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hash = hash_password("correct horse").unwrap();
        assert!(is_well_formed_hash(&hash));
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct horsf", &hash));
        assert!(!verify_password("", &hash));
    }

    #[test]
    fn malformed_hashes_never_match() {
        assert!(!is_well_formed_hash("hmac-sha256:abc"));
        assert!(!verify_password("x", "$argon2id$garbage"));
        assert!(!verify_password("x", ""));
        assert!(hash_password("").is_err());
    }
}
