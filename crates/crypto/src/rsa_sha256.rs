//! RSA signatures with SHA-256 and PKCS#1 v1.5 padding (RFC 8017 §8.2),
//! what most international banks and Chinese banks' RSA channels use.
//!
//! Signing uses blinding with OS randomness (the padding itself is
//! deterministic, so the signature bytes equal OpenSSL's for the same key).

use std::fmt;

use rand::rngs::OsRng;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use rsa::signature::{RandomizedSigner as _, SignatureEncoding as _, Verifier as _};
use rsa::traits::PublicKeyParts as _;
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;

use crate::{CryptoError, SecretString, Signer, Verifier};

/// Name used by [`Signer::algorithm`] and [`Verifier::algorithm`].
pub const RSA_SHA256: &str = "RSA-SHA256";

/// Sizes `generate` makes.
pub const RSA_GENERATE_BITS: [usize; 3] = [2048, 3072, 4096];

/// Smallest modulus accepted at all: some banks still sign with RSA-1024,
/// so their keys must at least load to be verified and explained.
pub const RSA_MIN_BITS: usize = 1024;

/// Largest modulus accepted (bounds the cost of a verification).
pub const RSA_MAX_BITS: usize = 8192;

/// An RSA private key signing RSA-SHA256. Wiped on drop (the rsa crate
/// zeroizes its private parts); prints as `[redacted]`.
#[derive(Clone)]
pub struct RsaSha256Key {
    signing: SigningKey<Sha256>,
}

impl RsaSha256Key {
    /// A new random key of `bits` (one of [`RSA_GENERATE_BITS`]).
    pub fn generate(bits: usize) -> Result<Self, CryptoError> {
        if !RSA_GENERATE_BITS.contains(&bits) {
            return Err(CryptoError::InvalidKey {
                what: "RSA key size",
                reason: "generate 2048, 3072 or 4096 bits",
            });
        }
        let key = RsaPrivateKey::new(&mut OsRng, bits).map_err(|_| CryptoError::InvalidKey {
            what: "RSA private key",
            reason: "generation failed",
        })?;
        Self::from_private_key(key)
    }

    pub fn from_private_key(key: RsaPrivateKey) -> Result<Self, CryptoError> {
        check_bits(key.size() * 8)?;
        key.validate().map_err(|_| CryptoError::InvalidKey {
            what: "RSA private key",
            reason: "inconsistent key parameters",
        })?;
        Ok(Self {
            signing: SigningKey::new(key),
        })
    }

    pub fn bits(&self) -> usize {
        self.signing.as_ref().size() * 8
    }

    pub fn public_key(&self) -> RsaSha256PublicKey {
        RsaSha256PublicKey {
            verifying: VerifyingKey::new(self.signing.as_ref().to_public_key()),
        }
    }

    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn to_pkcs8_pem(&self) -> Result<SecretString, CryptoError> {
        let pem = self
            .signing
            .as_ref()
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|_| CryptoError::Encoding {
                what: "RSA private key as PKCS#8 PEM",
            })?;
        Ok(SecretString::new(pem.as_str().to_owned()))
    }
}

fn check_bits(bits: usize) -> Result<(), CryptoError> {
    if (RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
        Ok(())
    } else {
        Err(CryptoError::InvalidKey {
            what: "RSA key",
            reason: "modulus must be 1024 to 8192 bits",
        })
    }
}

impl fmt::Debug for RsaSha256Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RsaSha256Key({} bits, [redacted])", self.bits())
    }
}

impl Signer for RsaSha256Key {
    fn algorithm(&self) -> &'static str {
        RSA_SHA256
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.signing
            .try_sign_with_rng(&mut OsRng, message)
            .map(|s| s.to_vec())
            .map_err(|_| CryptoError::Encoding {
                what: "RSA-SHA256 signature",
            })
    }
}

/// An RSA public key verifying RSA-SHA256 PKCS#1 v1.5 signatures.
#[derive(Clone)]
pub struct RsaSha256PublicKey {
    verifying: VerifyingKey<Sha256>,
}

impl RsaSha256PublicKey {
    pub fn from_public_key(key: RsaPublicKey) -> Result<Self, CryptoError> {
        check_bits(key.size() * 8)?;
        Ok(Self {
            verifying: VerifyingKey::new(key),
        })
    }

    pub fn bits(&self) -> usize {
        self.verifying.as_ref().size() * 8
    }

    pub fn to_spki_der(&self) -> Result<Vec<u8>, CryptoError> {
        self.verifying
            .as_ref()
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .map_err(|_| CryptoError::Encoding {
                what: "RSA public key as SPKI DER",
            })
    }
}

impl fmt::Debug for RsaSha256PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RsaSha256PublicKey({} bits)", self.bits())
    }
}

impl Verifier for RsaSha256PublicKey {
    fn algorithm(&self) -> &'static str {
        RSA_SHA256
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), CryptoError> {
        let expected_bytes = self.verifying.as_ref().size();
        if signature.len() != expected_bytes {
            return Err(CryptoError::SignatureLength {
                algorithm: RSA_SHA256,
                expected_bytes,
                actual_bytes: signature.len(),
            });
        }
        let signature =
            Signature::try_from(signature).map_err(|_| CryptoError::MalformedSignature {
                algorithm: RSA_SHA256,
                reason: "not an RSA signature",
            })?;
        self.verifying
            .verify(message, &signature)
            .map_err(|_| CryptoError::BadSignature {
                algorithm: RSA_SHA256,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    pub(crate) fn test_key() -> &'static RsaSha256Key {
        static KEY: OnceLock<RsaSha256Key> = OnceLock::new();
        KEY.get_or_init(|| RsaSha256Key::generate(2048).unwrap())
    }

    #[test]
    fn signs_and_verifies_exact_bytes() {
        let key = test_key();
        let signer: Box<dyn Signer> = Box::new(key.clone());
        let verifier: Box<dyn Verifier> = Box::new(key.public_key());
        let signature = signer.sign(b"<CMS>100.00</CMS>").unwrap();
        assert_eq!(signature.len(), 256);
        // PKCS#1 v1.5 is deterministic: the same bytes every time.
        assert_eq!(signer.sign(b"<CMS>100.00</CMS>").unwrap(), signature);
        verifier.verify(b"<CMS>100.00</CMS>", &signature).unwrap();
        assert!(matches!(
            verifier.verify(b"<CMS>100.00</CMS>\n", &signature),
            Err(CryptoError::BadSignature { .. })
        ));
        assert!(matches!(
            verifier.verify(b"<CMS>100.00</CMS>", &signature[1..]),
            Err(CryptoError::SignatureLength { .. })
        ));
        assert_eq!(key.bits(), 2048);
        assert!(format!("{key:?}").contains("[redacted]"));
        assert!(RsaSha256Key::generate(1000).is_err());
    }
}
