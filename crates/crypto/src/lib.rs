//! Keys, signatures, ciphers and keyed hashes behind small traits.
//!
//! Everything that touches key material lives here, so the rest of the
//! workspace handles keys only through types that do not print and wipe
//! themselves on drop.
//!
//! Layout:
//! - [`secret`]: [`SecretString`] and [`generate_client_secret`].
//! - [`keyed_hash`]: [`KeyedHasher`] (HMAC-SHA256) for storing client
//!   secrets, and the infallible [`hmac_sha256`] primitive.
//! - [`sign`]: the [`Signer`] / [`Verifier`] traits that every signature
//!   scheme implements (object safe: a hardware key or a signing server can
//!   stand in), and [`SignatureFormat`] (DER or raw r‖s).
//! - [`ed25519`]: [`Ed25519Key`] and [`Ed25519PublicKey`].
//! - [`sm2_dsa`]: SM2-with-SM3 signatures (GB/T 32918, id
//!   `1234567812345678` unless told otherwise).
//! - [`rsa_sha256`]: RSA-SHA256 PKCS#1 v1.5; [`ecdsa_p256`]: ECDSA P-256.
//! - [`keys`]: [`PrivateKey`] / [`PublicKey`] of any scheme from PEM or DER
//!   (PKCS#8, SEC1, PKCS#1, SPKI, certificates) and generation.
//! - [`cert`]: X.509 certificates (key, validity, subject, fingerprint) and
//!   [`CertificateSet`], several pinned certificates with validity windows.
//! - [`hash`]: SM3 and SHA-256. [`cipher`]: SM4-CBC/ECB/GCM, AES-256-GCM.
//! - [`diagnose`]: which usual mistake makes a failing signature verify.
//! - [`hex`]: hexadecimal for digests, fingerprints and operator input.
//! - [`password`]: argon2id password hashes of people (`[[users]]`).
//! - [`totp`]: one-time codes of authenticator apps (RFC 6238), the
//!   optional second factor of people's logins.
//! - `keyfile` (private): create-once, mode-0600, atomic key files.
//! - [`pki`]: [`pki::Pki`], a local CA with a server and a client
//!   certificate (ECDSA P-256, rcgen) for loopback mutual TLS, written to
//!   and read from a directory (keys 0600).
//!
//! Randomness for keys and secrets always comes from the operating system
//! (`OsRng`), never from the seeded RNG the simulators use: a reproducible
//! secret is not a secret. Tests that need fixed keys use the `from_*`
//! constructors.

pub mod cert;
pub mod cipher;
pub mod diagnose;
pub mod ecdsa_p256;
pub mod ed25519;
pub mod hash;
pub mod hex;
pub mod keyed_hash;
mod keyfile;
pub mod keys;
pub mod password;
pub mod pki;
mod rs_der;
pub mod rsa_sha256;
pub mod sealed;
pub mod secret;
pub mod sign;
pub mod sm2_dsa;
pub mod totp;

use std::path::PathBuf;

pub use cert::{Certificate, CertificateSet};
pub use ed25519::{Ed25519Key, Ed25519PublicKey};
pub use keyed_hash::{hmac_sha256, KeyedHasher, KEYED_HASH_STORED_LEN};
pub use keys::{KeyAlgorithm, PrivateKey, PublicKey};
pub use secret::{generate_client_secret, SecretString};
pub use sign::{SignatureFormat, Signer, Verifier};
pub use zeroize::Zeroizing;

/// What went wrong with a key, a key file or a signature.
///
/// Variants carry paths and short reasons, never key material, so they are
/// safe to log.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Reading, creating or renaming a key file failed at the OS level.
    #[error("key file {path}: could not {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A key file exists but its content or permissions are not acceptable.
    #[error("key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    /// Key bytes or an encoded key could not be parsed.
    #[error("invalid {what}: {reason}")]
    InvalidKey {
        what: &'static str,
        reason: &'static str,
    },
    /// A password could not be hashed (never carries the password).
    #[error("password hashing: {0}")]
    Password(String),
    /// Encoding a key (PKCS#8 DER or PEM) failed.
    #[error("could not encode {what}")]
    Encoding { what: &'static str },
    /// A signature did not have the length the algorithm requires.
    #[error("{algorithm} signature must be {expected_bytes} bytes, got {actual_bytes}")]
    SignatureLength {
        algorithm: &'static str,
        expected_bytes: usize,
        actual_bytes: usize,
    },
    /// The signature is well-formed but does not verify under the key.
    #[error("{algorithm} signature does not verify")]
    BadSignature { algorithm: &'static str },
    /// The signature bytes are in none of the encodings the algorithm has.
    #[error("{algorithm} signature is malformed: {reason}")]
    MalformedSignature {
        algorithm: &'static str,
        reason: &'static str,
    },
    /// Encryption or decryption failed: wrong key, IV or nonce length, bad
    /// padding, or (AEAD) a ciphertext or tag that does not authenticate.
    #[error("{algorithm}: {reason}")]
    Cipher {
        algorithm: &'static str,
        reason: &'static str,
    },
    /// A key or certificate of an algorithm or curve this crate does not
    /// handle (the object identifier is public information).
    #[error("unsupported {what}: {oid}")]
    Unsupported { what: &'static str, oid: String },
    /// A certificate that could not be parsed or used.
    #[error("invalid X.509 certificate: {reason}")]
    Certificate { reason: &'static str },
}
