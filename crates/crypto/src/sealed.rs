//! Sealed secrets: a bank password, a private key or a TOTP secret written
//! into the configuration encrypted under a master key that is not in the
//! configuration (issue 8; `bankdirect secrets seal|rotate`).
//!
//! A sealed value is one line of text:
//!
//! ```text
//! sealed:v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>
//! ```
//!
//! AES-256-GCM with a random 96-bit nonce; the associated data is the
//! prefix `sealed:v1:<key id>:`, so neither the version nor the key id can
//! be changed without the value failing to open. The key id (16 hex digits
//! of a SHA-256 over the master key) says which master key a value was
//! sealed under, so that a wrong key is reported as such rather than as a
//! damaged value, and `rotate` knows what to re-seal. The master key is 32
//! random bytes, given as base64 in the environment or in a file.

use std::path::Path;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::cipher::{aes256_gcm_open, aes256_gcm_seal, SymmetricKey};
use crate::SecretString;

/// What every sealed value starts with.
pub const SEALED_PREFIX: &str = "sealed:v1:";
/// The environment variable a master key may be given in (base64).
pub const MASTER_KEY_ENV: &str = "BANKDIRECT_MASTER_KEY";
const NONCE_BYTES: usize = 12;
const MASTER_KEY_BYTES: usize = 32;
/// Longest sealed value accepted (a large private key PEM fits easily).
const MAX_SEALED_CHARS: usize = 1 << 20;

/// Why a master key or a sealed value could not be used. Never carries the
/// key or the plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the master key must be {MASTER_KEY_BYTES} bytes in base64 (make one with `bankdirect secrets new-master-key`)")]
    BadMasterKey,
    #[error("master key file {path}: {reason}")]
    MasterKeyFile { path: String, reason: String },
    #[error("not a sealed value (expected `{SEALED_PREFIX}<key id>:<data>`)")]
    NotSealed,
    #[error("the value was sealed under master key {sealed_with}, but the master key given is {given}; give the right key, or re-seal with `bankdirect secrets rotate`")]
    WrongKey { sealed_with: String, given: String },
    #[error("the sealed value is damaged or was altered: it does not authenticate under master key {key_id}")]
    Damaged { key_id: String },
    #[error("the sealed value does not hold UTF-8 text")]
    NotText,
}

/// The master key: 32 bytes, wiped on drop, never printed.
pub struct MasterKey {
    key: SymmetricKey,
    id: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> MasterKey {
        MasterKey::from_bytes(SymmetricKey::generate(MASTER_KEY_BYTES))
    }

    fn from_bytes(key: SymmetricKey) -> MasterKey {
        let mut digest = Sha256::new();
        digest.update(b"bankdirect master key id v1\0");
        digest.update(key.expose_secret());
        let id = crate::hex::encode(&digest.finalize()[..8]);
        MasterKey { key, id }
    }

    /// From its base64 text (standard alphabet, padding optional,
    /// surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<MasterKey, SealError> {
        let trimmed = text.trim().trim_end_matches('=');
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(trimmed)
                .map_err(|_| SealError::BadMasterKey)?,
        );
        if bytes.len() != MASTER_KEY_BYTES {
            return Err(SealError::BadMasterKey);
        }
        Ok(MasterKey::from_bytes(SymmetricKey::from_bytes(&bytes)))
    }

    /// From a file holding the base64 text; the file must not be readable
    /// by group or others (on Unix).
    pub fn from_file(path: &Path) -> Result<MasterKey, SealError> {
        let file_error = |reason: String| SealError::MasterKeyFile {
            path: path.display().to_string(),
            reason,
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(path).map_err(|e| file_error(e.kind().to_string()))?;
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(file_error(
                    "readable by group or others; chmod 600 it".to_owned(),
                ));
            }
        }
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| file_error(e.kind().to_string()))?,
        );
        MasterKey::from_base64(&text).map_err(|e| file_error(e.to_string()))
    }

    /// Loads the key kept at `path`, or makes one there (mode 0600) when
    /// there is none: a data key the gateway keeps for itself, e.g. the one
    /// webhook secrets are sealed under in the database.
    pub fn load_or_create(path: &Path) -> Result<MasterKey, crate::CryptoError> {
        crate::keyfile::load_or_create(
            path,
            1024,
            |bytes| {
                let text = std::str::from_utf8(bytes)
                    .map_err(|_| "is not text; expected base64 of 32 bytes".to_owned())?;
                MasterKey::from_base64(text).map_err(|e| e.to_string())
            },
            || {
                let key = MasterKey::generate();
                let text = format!("{}\n", key.to_base64().expose_secret());
                Ok((key, Zeroizing::new(text.into_bytes())))
            },
        )
    }

    /// Writes a fresh key to `path` (mode 0600, refusing to overwrite).
    pub fn write_new(path: &Path) -> Result<MasterKey, SealError> {
        let file_error = |reason: String| SealError::MasterKeyFile {
            path: path.display().to_string(),
            reason,
        };
        let key = MasterKey::generate();
        let text = Zeroizing::new(format!("{}\n", key.to_base64().expose_secret()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        use std::io::Write as _;
        let mut file = options.open(path).map_err(|e| {
            file_error(if e.kind() == std::io::ErrorKind::AlreadyExists {
                "exists already; a master key is never overwritten".to_owned()
            } else {
                e.kind().to_string()
            })
        })?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| file_error(e.kind().to_string()))?;
        Ok(key)
    }

    /// The key's base64 text (to write it where it is kept).
    pub fn to_base64(&self) -> SecretString {
        SecretString::new(STANDARD.encode(self.key.expose_secret()))
    }

    /// The key id sealed values name (16 hex digits; not secret).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `plaintext` under this key.
    pub fn seal(&self, plaintext: &str) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        let prefix = format!("{SEALED_PREFIX}{}:", self.id);
        // AES-GCM fails only on plaintexts beyond 64 GiB; a configuration
        // value never is one, but the error is not swallowed either.
        let sealed =
            match aes256_gcm_seal(&self.key, &nonce, prefix.as_bytes(), plaintext.as_bytes()) {
                Ok(sealed) => sealed,
                Err(_) => return String::new(),
            };
        let mut data = Vec::with_capacity(NONCE_BYTES + sealed.len());
        data.extend_from_slice(&nonce);
        data.extend_from_slice(&sealed);
        format!("{prefix}{}", URL_SAFE_NO_PAD.encode(data))
    }

    /// Opens a sealed value.
    pub fn open(&self, sealed: &str) -> Result<SecretString, SealError> {
        let (key_id, data) = split(sealed)?;
        if key_id != self.id {
            return Err(SealError::WrongKey {
                sealed_with: key_id.to_owned(),
                given: self.id.clone(),
            });
        }
        let damaged = || SealError::Damaged {
            key_id: key_id.to_owned(),
        };
        let bytes = URL_SAFE_NO_PAD.decode(data).map_err(|_| damaged())?;
        if bytes.len() < NONCE_BYTES + 16 {
            return Err(damaged());
        }
        let (nonce, body) = bytes.split_at(NONCE_BYTES);
        let prefix = format!("{SEALED_PREFIX}{key_id}:");
        let plain =
            aes256_gcm_open(&self.key, nonce, prefix.as_bytes(), body).map_err(|_| damaged())?;
        let text = std::str::from_utf8(&plain).map_err(|_| SealError::NotText)?;
        Ok(SecretString::new(text.to_owned()))
    }
}

/// Whether `text` is a sealed value (by its prefix; it may still fail to open).
pub fn is_sealed(text: &str) -> bool {
    text.trim_start().starts_with(SEALED_PREFIX)
}

/// The key id a sealed value names.
pub fn key_id_of(sealed: &str) -> Result<&str, SealError> {
    split(sealed).map(|(id, _)| id)
}

fn split(sealed: &str) -> Result<(&str, &str), SealError> {
    let sealed = sealed.trim();
    if sealed.len() > MAX_SEALED_CHARS {
        return Err(SealError::NotSealed);
    }
    let rest = sealed
        .strip_prefix(SEALED_PREFIX)
        .ok_or(SealError::NotSealed)?;
    let (key_id, data) = rest.split_once(':').ok_or(SealError::NotSealed)?;
    if key_id.len() != 16 || !key_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SealError::NotSealed);
    }
    Ok((key_id, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_opens_only_under_its_key_and_unaltered() {
        let key = MasterKey::generate();
        let sealed = key.seal("bank-password-123");
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("bank-password-123"));
        assert_eq!(key_id_of(&sealed).unwrap(), key.id());
        assert_eq!(
            key.open(&sealed).unwrap().expose_secret(),
            "bank-password-123"
        );
        // Fresh nonce each time.
        assert_ne!(key.seal("x"), key.seal("x"));

        let other = MasterKey::generate();
        assert!(matches!(
            other.open(&sealed),
            Err(SealError::WrongKey { .. })
        ));
        // A flipped character in the data, or a key id rewritten to the
        // other key's, fails to authenticate.
        let mut chars: Vec<char> = sealed.chars().collect();
        let last = chars.len() - 3;
        chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
        let flipped: String = chars.into_iter().collect();
        assert!(matches!(key.open(&flipped), Err(SealError::Damaged { .. })));
        let relabelled = sealed.replacen(key.id(), other.id(), 1);
        assert!(matches!(
            other.open(&relabelled),
            Err(SealError::Damaged { .. })
        ));
        assert!(matches!(key.open("plain"), Err(SealError::NotSealed)));
    }

    #[test]
    fn master_keys_round_trip_through_base64_and_files() {
        let key = MasterKey::generate();
        let again = MasterKey::from_base64(key.to_base64().expose_secret()).unwrap();
        assert_eq!(again.id(), key.id());
        assert_eq!(
            MasterKey::from_base64("c2hvcnQ=").unwrap_err(),
            SealError::BadMasterKey
        );
        assert!(!format!("{key:?}").contains(key.to_base64().expose_secret()));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let written = MasterKey::write_new(&path).unwrap();
        assert_eq!(MasterKey::from_file(&path).unwrap().id(), written.id());
        assert!(MasterKey::write_new(&path).is_err(), "never overwritten");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let error = MasterKey::from_file(&path).unwrap_err().to_string();
            assert!(error.contains("chmod 600"), "{error}");
        }
    }

    #[test]
    fn a_data_key_is_made_once_and_then_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.key");
        let made = MasterKey::load_or_create(&path).unwrap();
        let loaded = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(made.id(), loaded.id());
        assert_eq!(loaded.open(&made.seal("x")).unwrap().expose_secret(), "x");
    }

    #[test]
    fn errors_never_carry_the_key_or_the_plaintext() {
        let key = MasterKey::generate();
        let sealed = key.seal("s3cret-value");
        let other = MasterKey::generate();
        let text = other.open(&sealed).unwrap_err().to_string();
        assert!(!text.contains("s3cret-value"));
        assert!(!text.contains(other.to_base64().expose_secret()));
        assert!(
            text.contains(key.id()) && text.contains(other.id()),
            "{text}"
        );
    }
}
