//! The signature traits every scheme implements.
//!
//! Kept deliberately small: a bank connector or the token service holds a
//! `Box<dyn Signer>` / `Box<dyn Verifier>` and does not care whether it is
//! Ed25519, SM2-with-SM3 or RSA. Each scheme decides its own hashing (SM2
//! hashes with a distinguishing id, RSA with PKCS#1 v1.5 or PSS), so the
//! traits take the message itself, not a digest.

use crate::CryptoError;

/// Signs messages with a private key.
pub trait Signer: Send + Sync {
    /// Stable name of the scheme, e.g. `"Ed25519"`.
    fn algorithm(&self) -> &'static str;

    /// The signature over exactly `message`, in the scheme's raw encoding.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError>;
}

/// Verifies signatures with a public key.
pub trait Verifier: Send + Sync {
    /// Stable name of the scheme, e.g. `"Ed25519"`.
    fn algorithm(&self) -> &'static str;

    /// `Ok(())` only if `signature` is valid for exactly `message`.
    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), CryptoError>;
}

/// How an elliptic-curve (SM2, ECDSA) signature is written.
///
/// Verifiers of this crate accept both; signers write [`SignatureFormat::Der`]
/// unless a bank asks for the raw form. RSA and Ed25519 signatures have one
/// encoding and ignore this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignatureFormat {
    /// `SEQUENCE { r INTEGER, s INTEGER }` (GM/T 0009, X.509, OpenSSL).
    #[default]
    Der,
    /// r‖s, each big-endian and 32 bytes long: 64 bytes.
    Raw,
}
