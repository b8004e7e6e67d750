//! Ed25519 keys (RFC 8032): signing tokens and, later, audit checkpoints.
//!
//! [`Ed25519Key`] is the private key (PKCS#8 on disk, redacted in `Debug`);
//! [`Ed25519PublicKey`] verifies. Verification is strict (`verify_strict`):
//! it rejects small-order keys and non-canonical signatures, so a signature
//! cannot be malleated into a second valid one.

use std::fmt;
use std::path::Path;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use rand::rngs::OsRng;
use zeroize::Zeroizing;

use crate::{keyfile, CryptoError, SecretString, Signer, Verifier};

/// Name used by [`Signer::algorithm`] and [`Verifier::algorithm`].
pub const ED25519: &str = "Ed25519";

/// Length of an Ed25519 signature.
pub const ED25519_SIGNATURE_LEN_BYTES: usize = 64;

/// Largest PEM key file accepted; a PKCS#8 Ed25519 PEM is under 200 bytes.
const PEM_FILE_MAX_LEN_BYTES: u64 = 16 * 1024;

/// An Ed25519 private key. Wiped on drop; prints as `[redacted]`.
#[derive(Clone)]
pub struct Ed25519Key {
    signing: SigningKey,
}

impl Ed25519Key {
    /// A new random key from the OS.
    pub fn generate() -> Self {
        Self {
            signing: SigningKey::generate(&mut OsRng),
        }
    }

    /// The key whose RFC 8032 secret seed is `seed`. For tests and for keys
    /// unsealed from elsewhere; new keys come from [`Ed25519Key::generate`].
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let seed = Zeroizing::new(seed);
        Self {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    /// Parses a PKCS#8 (`-----BEGIN PRIVATE KEY-----`) PEM document.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, CryptoError> {
        SigningKey::from_pkcs8_pem(pem)
            .map(|signing| Self { signing })
            .map_err(|_| CryptoError::InvalidKey {
                what: "Ed25519 private key",
                reason: "not a PKCS#8 PEM Ed25519 private key",
            })
    }

    pub fn to_pkcs8_pem(&self) -> Result<SecretString, CryptoError> {
        let pem = self
            .signing
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|_| CryptoError::Encoding {
                what: "Ed25519 private key as PKCS#8 PEM",
            })?;
        Ok(SecretString::new(pem.as_str().to_owned()))
    }

    /// PKCS#8 v2 DER (private and public key), e.g. for a JWT library.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let document = self
            .signing
            .to_pkcs8_der()
            .map_err(|_| CryptoError::Encoding {
                what: "Ed25519 private key as PKCS#8 DER",
            })?;
        Ok(Zeroizing::new(document.as_bytes().to_vec()))
    }

    pub fn public_key_bytes(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    pub fn public_key(&self) -> Ed25519PublicKey {
        Ed25519PublicKey {
            verifying: self.signing.verifying_key(),
        }
    }

    /// Ed25519 signing cannot fail, so this is the infallible form of
    /// [`Signer::sign`].
    pub fn sign_bytes(&self, message: &[u8]) -> [u8; ED25519_SIGNATURE_LEN_BYTES] {
        self.signing.sign(message).to_bytes()
    }

    /// Loads a PKCS#8 PEM key from `path`, or creates the file with a new key
    /// (mode 0600, parent directories 0700) if it does not exist. An
    /// unreadable, malformed or group/other-accessible file is an error, never
    /// replaced: tokens and checkpoints already signed depend on the key.
    pub fn load_or_create(path: &Path) -> Result<Self, CryptoError> {
        keyfile::load_or_create(
            path,
            PEM_FILE_MAX_LEN_BYTES,
            |bytes| {
                let text = std::str::from_utf8(bytes)
                    .map_err(|_| "is not text; expected a PKCS#8 PEM private key".to_owned())?;
                Self::from_pkcs8_pem(text)
                    .map_err(|_| "is not a PKCS#8 PEM Ed25519 private key".to_owned())
            },
            || {
                let key = Self::generate();
                let pem = key.to_pkcs8_pem()?;
                let bytes = Zeroizing::new(pem.expose_secret().as_bytes().to_vec());
                Ok((key, bytes))
            },
        )
    }
}

impl fmt::Debug for Ed25519Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ed25519Key([redacted])")
    }
}

impl Signer for Ed25519Key {
    fn algorithm(&self) -> &'static str {
        ED25519
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        Ok(self.sign_bytes(message).to_vec())
    }
}

/// An Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Ed25519PublicKey {
    verifying: VerifyingKey,
}

impl Ed25519PublicKey {
    /// Parses the 32-byte compressed point; refuses bytes that are not a
    /// point on the curve and weak (small-order) keys.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, CryptoError> {
        let verifying = VerifyingKey::from_bytes(bytes).map_err(|_| CryptoError::InvalidKey {
            what: "Ed25519 public key",
            reason: "not a valid curve point",
        })?;
        if verifying.is_weak() {
            return Err(CryptoError::InvalidKey {
                what: "Ed25519 public key",
                reason: "small-order (weak) key",
            });
        }
        Ok(Self { verifying })
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.verifying.to_bytes()
    }
}

impl fmt::Debug for Ed25519PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex: String = self.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
        write!(f, "Ed25519PublicKey({hex})")
    }
}

impl Verifier for Ed25519PublicKey {
    fn algorithm(&self) -> &'static str {
        ED25519
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), CryptoError> {
        let bytes: &[u8; ED25519_SIGNATURE_LEN_BYTES] =
            signature
                .try_into()
                .map_err(|_| CryptoError::SignatureLength {
                    algorithm: ED25519,
                    expected_bytes: ED25519_SIGNATURE_LEN_BYTES,
                    actual_bytes: signature.len(),
                })?;
        self.verifying
            .verify_strict(message, &Signature::from_bytes(bytes))
            .map_err(|_| CryptoError::BadSignature { algorithm: ED25519 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 8032 §7.1, TEST 2: a one-byte message.
    const RFC8032_SEED: [u8; 32] = [
        0x4c, 0xcd, 0x08, 0x9b, 0x28, 0xff, 0x96, 0xda, 0x9d, 0xb6, 0xc3, 0x46, 0xec, 0x11, 0x4e,
        0x0f, 0x5b, 0x8a, 0x31, 0x9f, 0x35, 0xab, 0xa6, 0x24, 0xda, 0x8c, 0xf6, 0xed, 0x4f, 0xb8,
        0xa6, 0xfb,
    ];
    const RFC8032_PUBLIC: &str = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
    const RFC8032_SIGNATURE: &str = "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
                                     085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00";

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn signs_rfc8032_test_vector() {
        let key = Ed25519Key::from_seed(RFC8032_SEED);
        assert_eq!(hex(&key.public_key_bytes()), RFC8032_PUBLIC);
        assert_eq!(hex(&key.sign_bytes(&[0x72])), RFC8032_SIGNATURE);
        assert_eq!(key.algorithm(), "Ed25519");
    }

    #[test]
    fn verifier_accepts_own_signature_and_rejects_tampering() {
        let key = Ed25519Key::generate();
        let public: Box<dyn Verifier> = Box::new(key.public_key());
        let signer: Box<dyn Signer> = Box::new(key.clone());
        let signature = signer.sign(b"pay 100.00 CNY").unwrap();
        public.verify(b"pay 100.00 CNY", &signature).unwrap();
        assert!(matches!(
            public.verify(b"pay 900.00 CNY", &signature),
            Err(CryptoError::BadSignature { .. })
        ));
        let mut flipped = signature.clone();
        flipped[10] ^= 1;
        assert!(public.verify(b"pay 100.00 CNY", &flipped).is_err());
        assert!(matches!(
            public.verify(b"pay 100.00 CNY", &signature[..63]),
            Err(CryptoError::SignatureLength {
                actual_bytes: 63,
                ..
            })
        ));
        let other = Ed25519Key::generate().public_key();
        assert!(other.verify(b"pay 100.00 CNY", &signature).is_err());
    }

    #[test]
    fn public_key_from_bytes_refuses_weak_and_invalid_points() {
        // The identity point is small-order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(Ed25519PublicKey::from_bytes(&identity).is_err());
        let key = Ed25519Key::generate();
        let parsed = Ed25519PublicKey::from_bytes(&key.public_key_bytes()).unwrap();
        assert_eq!(parsed, key.public_key());
    }

    #[test]
    fn pkcs8_pem_round_trips_and_debug_is_redacted() {
        let key = Ed25519Key::generate();
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(pem
            .expose_secret()
            .starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(format!("{pem:?}"), "[redacted]");
        let back = Ed25519Key::from_pkcs8_pem(pem.expose_secret()).unwrap();
        assert_eq!(back.public_key_bytes(), key.public_key_bytes());
        assert_eq!(format!("{key:?}"), "Ed25519Key([redacted])");
        assert!(!key.to_pkcs8_der().unwrap().is_empty());
    }

    #[test]
    fn from_pkcs8_pem_rejects_garbage() {
        for pem in [
            "",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "hello",
        ] {
            assert!(matches!(
                Ed25519Key::from_pkcs8_pem(pem),
                Err(CryptoError::InvalidKey { .. })
            ));
        }
    }

    #[test]
    fn load_or_create_creates_once_then_reloads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys").join("token.pem");
        let first = Ed25519Key::load_or_create(&path).unwrap();
        let second = Ed25519Key::load_or_create(&path).unwrap();
        assert_eq!(first.public_key_bytes(), second.public_key_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    #[test]
    fn concurrent_load_or_create_agrees_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.pem");
        let keys: Vec<[u8; 32]> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| Ed25519Key::load_or_create(&path).unwrap()))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap().public_key_bytes())
                .collect()
        });
        assert!(keys.iter().all(|k| *k == keys[0]));
        assert_eq!(
            Ed25519Key::load_or_create(&path)
                .unwrap()
                .public_key_bytes(),
            keys[0]
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn load_or_create_refuses_a_corrupt_pem() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.pem");
        std::fs::write(&path, "-----BEGIN PRIVATE KEY-----\nxx\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            Ed25519Key::load_or_create(&path),
            Err(CryptoError::KeyFile { .. })
        ));
    }
}
