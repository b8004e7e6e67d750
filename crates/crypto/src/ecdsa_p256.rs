//! ECDSA on P-256 with SHA-256 (FIPS 186-4): signatures of international
//! banks and TLS-era tooling. Nonces are deterministic (RFC 6979).
//! Signatures are written as DER unless raw r‖s is asked for; both are read.

use std::fmt;

use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use rand::rngs::OsRng;

use crate::sign::SignatureFormat;
use crate::{CryptoError, SecretString, Signer, Verifier};

/// Name used by [`Signer::algorithm`] and [`Verifier::algorithm`].
pub const ECDSA_P256_SHA256: &str = "ECDSA-P256-SHA256";

/// An ECDSA P-256 private key. Wiped on drop; prints as `[redacted]`.
#[derive(Clone)]
pub struct EcdsaP256Key {
    signing: SigningKey,
    format: SignatureFormat,
}

impl EcdsaP256Key {
    pub fn generate() -> Self {
        Self {
            signing: SigningKey::random(&mut OsRng),
            format: SignatureFormat::Der,
        }
    }

    pub fn from_secret_key(secret: &p256::SecretKey) -> Self {
        Self {
            signing: SigningKey::from(secret),
            format: SignatureFormat::Der,
        }
    }

    pub fn with_format(mut self, format: SignatureFormat) -> Self {
        self.format = format;
        self
    }

    pub fn public_key(&self) -> EcdsaP256PublicKey {
        EcdsaP256PublicKey {
            verifying: *self.signing.verifying_key(),
        }
    }

    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn to_pkcs8_pem(&self) -> Result<SecretString, CryptoError> {
        let pem = self
            .signing
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|_| CryptoError::Encoding {
                what: "P-256 private key as PKCS#8 PEM",
            })?;
        Ok(SecretString::new(pem.as_str().to_owned()))
    }
}

impl fmt::Debug for EcdsaP256Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EcdsaP256Key([redacted])")
    }
}

impl Signer for EcdsaP256Key {
    fn algorithm(&self) -> &'static str {
        ECDSA_P256_SHA256
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let signature: Signature =
            self.signing
                .try_sign(message)
                .map_err(|_| CryptoError::Encoding {
                    what: "ECDSA P-256 signature",
                })?;
        Ok(match self.format {
            SignatureFormat::Der => signature.to_der().as_bytes().to_vec(),
            SignatureFormat::Raw => signature.to_bytes().to_vec(),
        })
    }
}

/// An ECDSA P-256 public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EcdsaP256PublicKey {
    verifying: VerifyingKey,
}

impl EcdsaP256PublicKey {
    pub fn from_public_key(public: p256::PublicKey) -> Self {
        Self {
            verifying: VerifyingKey::from(public),
        }
    }

    pub fn from_sec1_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        VerifyingKey::from_sec1_bytes(bytes)
            .map(|verifying| Self { verifying })
            .map_err(|_| CryptoError::InvalidKey {
                what: "P-256 public key",
                reason: "not a point on the P-256 curve",
            })
    }

    pub fn to_sec1_bytes(&self) -> Vec<u8> {
        self.verifying.to_encoded_point(false).as_bytes().to_vec()
    }

    pub fn to_spki_der(&self) -> Result<Vec<u8>, CryptoError> {
        self.verifying
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .map_err(|_| CryptoError::Encoding {
                what: "P-256 public key as SPKI DER",
            })
    }
}

impl fmt::Debug for EcdsaP256PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "EcdsaP256PublicKey({})",
            crate::hex::encode(&self.to_sec1_bytes())
        )
    }
}

impl Verifier for EcdsaP256PublicKey {
    fn algorithm(&self) -> &'static str {
        ECDSA_P256_SHA256
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), CryptoError> {
        let signature = Signature::from_der(signature)
            .or_else(|_| Signature::from_slice(signature))
            .map_err(|_| CryptoError::MalformedSignature {
                algorithm: ECDSA_P256_SHA256,
                reason: "neither DER (SEQUENCE of r and s) nor raw r||s of 64 bytes",
            })?;
        self.verifying
            .verify(message, &signature)
            .map_err(|_| CryptoError::BadSignature {
                algorithm: ECDSA_P256_SHA256,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex;

    // RFC 6979 Appendix A.2.5: P-256, SHA-256, message "sample".
    #[test]
    fn signs_the_rfc6979_a25_vector() {
        let x = hex::decode("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721")
            .unwrap();
        let secret = p256::SecretKey::from_slice(&x).unwrap();
        let key = EcdsaP256Key::from_secret_key(&secret).with_format(SignatureFormat::Raw);
        let signature = key.sign(b"sample").unwrap();
        assert_eq!(
            hex::encode(&signature).to_uppercase(),
            "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716\
             F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8"
        );
        key.public_key().verify(b"sample", &signature).unwrap();
    }

    #[test]
    fn der_by_default_raw_accepted_tampering_refused() {
        let key = EcdsaP256Key::generate();
        let public: Box<dyn Verifier> = Box::new(key.public_key());
        let der = key.sign(b"m").unwrap();
        assert_eq!(der[0], 0x30);
        public.verify(b"m", &der).unwrap();
        assert!(matches!(
            public.verify(b"n", &der),
            Err(CryptoError::BadSignature { .. })
        ));
        assert!(matches!(
            public.verify(b"m", b"xx"),
            Err(CryptoError::MalformedSignature { .. })
        ));
        assert_eq!(format!("{key:?}"), "EcdsaP256Key([redacted])");
    }
}
