//! Keyed hashes (HMAC-SHA256) for storing client secrets.
//!
//! Client secrets are 256-bit random values, so they need no slow password
//! hash: brute force is hopeless anyway, and a cheap check keeps the token
//! endpoint from being a CPU sink. The key makes a stolen table of hashes
//! useless without the key file, which lives outside the database.
//!
//! Stored form: `hmac-sha256:` followed by the 32-byte MAC in unpadded
//! base64url. The prefix names the scheme so it can change later without
//! guessing.

use std::fmt;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac as _};
use rand::rngs::OsRng;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::{keyfile, CryptoError};

/// Length of a [`KeyedHasher`] key.
pub const KEYED_HASH_KEY_LEN_BYTES: usize = 32;

/// Prefix of every stored hash produced by [`KeyedHasher::hash`].
pub const KEYED_HASH_PREFIX: &str = "hmac-sha256:";

/// Largest key file accepted; the real one is 44 bytes (43 + newline).
const KEY_FILE_MAX_LEN_BYTES: u64 = 1024;

/// SHA-256's block size; HMAC pads (or pre-hashes) its key to this length.
const SHA256_BLOCK_LEN_BYTES: usize = 64;

/// HMAC-SHA256 (RFC 2104) of `message` under a key of any length.
///
/// Infallible, unlike `Hmac::new_from_slice`: the key is brought to the block
/// size here exactly as RFC 2104 prescribes (hashed if longer, zero-padded),
/// which is what `new_from_slice` would do internally.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = keyed_state(key);
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA256's state after `key`, of any length: the key brought to the
/// block size (hashed if longer, zero-padded) and its pads hashed.
fn keyed_state(key: &[u8]) -> Hmac<Sha256> {
    let mut block = Zeroizing::new([0u8; SHA256_BLOCK_LEN_BYTES]);
    if key.len() > SHA256_BLOCK_LEN_BYTES {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    <Hmac<Sha256> as KeyInit>::new(block.as_ref().into())
}

/// Length of [`KeyedHasher::stored_hash`]'s answer: the prefix and the
/// 43 characters of the MAC in unpadded base64url.
pub const KEYED_HASH_STORED_LEN: usize = KEYED_HASH_PREFIX.len() + 43;

/// HMAC-SHA256 under a 32-byte secret key. Does not print its key.
#[derive(Clone)]
pub struct KeyedHasher {
    key: Zeroizing<[u8; KEYED_HASH_KEY_LEN_BYTES]>,
    /// HMAC's state after the key (its inner and outer pads hashed): each
    /// MAC starts from a copy of it, which saves the two block compressions
    /// keying would cost per message. Derived from the key, so as secret,
    /// but not wiped on drop: the hmac crate's state has no zeroize (nor had
    /// the short-lived state each MAC used to build), and the key it comes
    /// from is held for the process's life anyway.
    keyed: Hmac<Sha256>,
}

impl KeyedHasher {
    /// A new random key from the OS.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; KEYED_HASH_KEY_LEN_BYTES]);
        OsRng.fill_bytes(key.as_mut());
        Self::keyed(key)
    }

    pub fn from_bytes(key: [u8; KEYED_HASH_KEY_LEN_BYTES]) -> Self {
        Self::keyed(Zeroizing::new(key))
    }

    fn keyed(key: Zeroizing<[u8; KEYED_HASH_KEY_LEN_BYTES]>) -> Self {
        let keyed = keyed_state(key.as_ref());
        Self { key, keyed }
    }

    /// Loads the key from `path` (unpadded base64url of 32 bytes), or creates
    /// the file with a fresh key (mode 0600, parent directories 0700) if it
    /// does not exist. A file of any other size or with group/other
    /// permissions is refused rather than silently replaced: replacing it
    /// would invalidate every stored client secret.
    pub fn load_or_create(path: &Path) -> Result<Self, CryptoError> {
        keyfile::load_or_create(
            path,
            KEY_FILE_MAX_LEN_BYTES,
            |bytes| {
                let text = std::str::from_utf8(bytes)
                    .map_err(|_| "is not text; expected base64url of 32 bytes".to_owned())?
                    .trim();
                let decoded = Zeroizing::new(
                    URL_SAFE_NO_PAD
                        .decode(text)
                        .map_err(|_| "is not unpadded base64url".to_owned())?,
                );
                let key: [u8; KEYED_HASH_KEY_LEN_BYTES] =
                    decoded.as_slice().try_into().map_err(|_| {
                        format!(
                            "holds a {}-byte key; expected {KEYED_HASH_KEY_LEN_BYTES}",
                            decoded.len()
                        )
                    })?;
                Ok(Self::from_bytes(key))
            },
            || {
                let hasher = Self::generate();
                let mut encoded = URL_SAFE_NO_PAD.encode(hasher.key.as_ref());
                encoded.push('\n');
                Ok((hasher, Zeroizing::new(encoded.into_bytes())))
            },
        )
    }

    /// Whether `stored` has the shape [`KeyedHasher::hash`] produces, so a
    /// configuration typo is caught at load time rather than as a client that
    /// can never log in.
    pub fn is_well_formed_hash(stored: &str) -> bool {
        stored
            .strip_prefix(KEYED_HASH_PREFIX)
            .and_then(|encoded| URL_SAFE_NO_PAD.decode(encoded).ok())
            .is_some_and(|mac| mac.len() == 32)
    }

    fn mac(&self, secret: &[u8]) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        mac.update(secret);
        mac.finalize().into_bytes().into()
    }

    /// The stored form of `secret`: `hmac-sha256:<base64url MAC>`.
    pub fn hash(&self, secret: &str) -> String {
        let stored = self.stored_hash(secret.as_bytes());
        // The stored form is ASCII: the prefix and base64url.
        String::from_utf8_lossy(&stored).into_owned()
    }

    /// [`KeyedHasher::hash`]'s stored form of `secret`, as bytes, without
    /// allocating: for a caller that writes it into a buffer of its own.
    pub fn stored_hash(&self, secret: &[u8]) -> [u8; KEYED_HASH_STORED_LEN] {
        let mut stored = [0u8; KEYED_HASH_STORED_LEN];
        stored[..KEYED_HASH_PREFIX.len()].copy_from_slice(KEYED_HASH_PREFIX.as_bytes());
        // 32 bytes are exactly 43 characters of unpadded base64url.
        let written =
            URL_SAFE_NO_PAD.encode_slice(self.mac(secret), &mut stored[KEYED_HASH_PREFIX.len()..]);
        debug_assert_eq!(written.ok(), Some(43));
        stored
    }

    /// Whether `secret` hashes to `stored`. The MAC comparison is constant
    /// time; a `stored` value that is not a well-formed hash never matches.
    pub fn verify(&self, secret: &str, stored: &str) -> bool {
        // Compute the MAC first so a malformed stored value does not answer
        // measurably faster than a wrong secret.
        let actual = self.mac(secret.as_bytes());
        let Some(encoded) = stored.strip_prefix(KEYED_HASH_PREFIX) else {
            return false;
        };
        let Ok(expected) = URL_SAFE_NO_PAD.decode(encoded) else {
            return false;
        };
        expected.len() == actual.len() && bool::from(actual.as_slice().ct_eq(&expected))
    }
}

impl fmt::Debug for KeyedHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyedHasher([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    // RFC 4231 test cases 1, 2 and 6 (key longer than the block size).
    #[test]
    fn hmac_sha256_matches_rfc4231_vectors() {
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn hmac_sha256_agrees_with_the_hmac_crate_at_block_size_boundaries() {
        for key_len in [0, 1, 32, 63, 64, 65, 200] {
            let key = vec![0x5a; key_len];
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
            mac.update(b"message");
            let expected: [u8; 32] = mac.finalize().into_bytes().into();
            assert_eq!(hmac_sha256(&key, b"message"), expected, "key_len {key_len}");
        }
    }

    #[test]
    fn keyed_hash_verifies_right_secret_only() {
        let hasher = KeyedHasher::generate();
        let stored = hasher.hash("s3cret");
        assert!(stored.starts_with(KEYED_HASH_PREFIX));
        assert_eq!(stored.len(), KEYED_HASH_PREFIX.len() + 43);
        assert!(hasher.verify("s3cret", &stored));
        assert!(!hasher.verify("s3cret ", &stored));
        assert!(!hasher.verify("", &stored));
    }

    #[test]
    fn the_kept_keyed_state_gives_the_one_shot_mac_every_time() {
        let key = [0x42; KEYED_HASH_KEY_LEN_BYTES];
        let hasher = KeyedHasher::from_bytes(key);
        // Twice each, in turn: a MAC must not leave anything behind for the next.
        for message in [
            "",
            "a1|sim-east-cny-1|50",
            "",
            "x".repeat(200).as_str(),
            "a1|sim-east-cny-1|50",
        ] {
            let stored = hasher.stored_hash(message.as_bytes());
            let mut expected = KEYED_HASH_PREFIX.to_owned();
            URL_SAFE_NO_PAD.encode_string(hmac_sha256(&key, message.as_bytes()), &mut expected);
            assert_eq!(
                std::str::from_utf8(&stored).unwrap(),
                expected,
                "{message:?}"
            );
            assert_eq!(hasher.hash(message), expected);
            assert!(hasher.verify(message, &expected));
        }
    }

    #[test]
    fn keyed_hash_depends_on_the_key() {
        let a = KeyedHasher::from_bytes([1; 32]);
        let b = KeyedHasher::from_bytes([2; 32]);
        assert_ne!(a.hash("x"), b.hash("x"));
        assert!(!b.verify("x", &a.hash("x")));
        assert_eq!(a.hash("x"), KeyedHasher::from_bytes([1; 32]).hash("x"));
    }

    #[test]
    fn malformed_stored_hash_never_matches() {
        let hasher = KeyedHasher::from_bytes([7; 32]);
        let good = hasher.hash("x");
        let body = good.trim_start_matches(KEYED_HASH_PREFIX);
        for stored in [
            "",
            body,
            "hmac-sha256:",
            "hmac-sha256:!!!!",
            &format!("sha256:{body}"),
            &good[..good.len() - 2],
        ] {
            assert!(!hasher.verify("x", stored), "{stored:?} matched");
            assert!(!KeyedHasher::is_well_formed_hash(stored), "{stored:?}");
        }
        assert!(KeyedHasher::is_well_formed_hash(&good));
    }

    #[test]
    fn debug_does_not_print_the_key() {
        let hasher = KeyedHasher::from_bytes([0xab; 32]);
        let printed = format!("{hasher:?}");
        assert_eq!(printed, "KeyedHasher([redacted])");
    }

    #[test]
    fn load_or_create_creates_once_then_reloads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("deeper").join("hash.key");
        let first = KeyedHasher::load_or_create(&path).unwrap();
        let second = KeyedHasher::load_or_create(&path).unwrap();
        assert_eq!(first.hash("x"), second.hash("x"));
        assert_ne!(first.hash("x"), KeyedHasher::generate().hash("x"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let dir_mode = std::fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(dir_mode & 0o777, 0o700);
        }
        // No temporary files left next to the key.
        let entries: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(entries, vec![std::ffi::OsString::from("hash.key")]);
    }

    #[cfg(unix)]
    fn write_0600(path: &Path, contents: &[u8]) {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::write(path, contents).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn load_or_create_refuses_a_key_of_the_wrong_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hash.key");
        write_0600(&path, URL_SAFE_NO_PAD.encode([1u8; 16]).as_bytes());
        let err = KeyedHasher::load_or_create(&path).unwrap_err();
        assert!(
            matches!(&err, CryptoError::KeyFile { reason, .. } if reason.contains("16-byte")),
            "{err}"
        );
        // The bad file is left for the operator, not overwritten.
        assert_eq!(
            std::fs::read(&path).unwrap(),
            URL_SAFE_NO_PAD.encode([1u8; 16]).as_bytes()
        );
    }

    #[cfg(unix)]
    #[test]
    fn load_or_create_refuses_garbage_and_oversized_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hash.key");
        write_0600(&path, b"not base64 at all!");
        assert!(matches!(
            KeyedHasher::load_or_create(&path),
            Err(CryptoError::KeyFile { .. })
        ));
        write_0600(&path, &vec![b'A'; 4096]);
        let err = KeyedHasher::load_or_create(&path).unwrap_err();
        assert!(err.to_string().contains("at most"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn load_or_create_refuses_a_group_readable_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hash.key");
        KeyedHasher::load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = KeyedHasher::load_or_create(&path).unwrap_err();
        assert!(err.to_string().contains("mode 640"), "{err}");
    }

    #[test]
    fn loaded_key_round_trips_through_the_file_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hash.key");
        let created = KeyedHasher::load_or_create(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let bytes: [u8; 32] = URL_SAFE_NO_PAD
            .decode(text.trim())
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(KeyedHasher::from_bytes(bytes).hash("y"), created.hash("y"));
    }
}
