//! SM2 signatures with SM3 (GB/T 32918.2, GM/T 0003.2; encoding GM/T 0009).
//!
//! The signer's distinguishing id enters the hash (`Z = SM3(ENTL‖ID‖a‖b‖G‖P)`,
//! then `e = SM3(Z‖M)`), so a verifier must use the same id as the signer.
//! The default is GM/T 0009's `1234567812345678`, set explicitly (OpenSSL
//! 3.0's default is the empty id). Signatures are written as DER unless a
//! bank wants raw r‖s; both are accepted on input.

use std::fmt;

use ::sm2::dsa::signature::hazmat::PrehashVerifier as _;
use ::sm2::dsa::signature::{Signer as _, Verifier as _};
use ::sm2::dsa::{Signature, SigningKey, VerifyingKey};
use ::sm2::elliptic_curve::sec1::ToEncodedPoint as _;
use ::sm2::pkcs8::der::pem::LineEnding;
use ::sm2::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _};
use ::sm2::{PublicKey, SecretKey};
use rand::rngs::OsRng;

use crate::sign::SignatureFormat;
use crate::{rs_der, CryptoError, SecretString, Signer, Verifier};

/// Name used by [`Signer::algorithm`] and [`Verifier::algorithm`].
pub const SM2_SM3: &str = "SM2-with-SM3";

/// GM/T 0009's default distinguishing id (user id), 16 ASCII bytes.
pub const DEFAULT_SM2_ID: &str = "1234567812345678";

/// Length of a raw r‖s SM2 signature.
pub const SM2_RAW_SIGNATURE_LEN_BYTES: usize = 64;

/// Longest id accepted: ENTL is a 16-bit count of bits.
pub const SM2_ID_MAX_LEN_BYTES: usize = 8191;

fn bad_id() -> CryptoError {
    CryptoError::InvalidKey {
        what: "SM2 distinguishing id",
        reason: "longer than 8191 bytes",
    }
}

/// An SM2 private key bound to a distinguishing id. Prints as `[redacted]`;
/// the secret scalar is wiped on drop.
pub struct Sm2PrivateKey {
    // Zeroizes itself on drop; kept for PKCS#8 export and re-binding the id.
    secret: SecretKey,
    // The sm2 crate's SigningKey does not wipe itself: overwritten on drop.
    signing: SigningKey,
    format: SignatureFormat,
}

impl Sm2PrivateKey {
    /// A new random key from the OS, with the default id, signing DER.
    pub fn generate() -> Self {
        let secret = SecretKey::random(&mut OsRng);
        let signing = signing_key(&secret, DEFAULT_SM2_ID);
        Self {
            secret,
            signing,
            format: SignatureFormat::Der,
        }
    }

    /// The key `secret` with the default id, signing DER.
    pub fn from_secret_key(secret: SecretKey) -> Self {
        let signing = signing_key(&secret, DEFAULT_SM2_ID);
        Self {
            secret,
            signing,
            format: SignatureFormat::Der,
        }
    }

    /// The key whose secret scalar is the big-endian `bytes` (tests, vectors).
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, CryptoError> {
        SecretKey::from_slice(bytes)
            .map(Self::from_secret_key)
            .map_err(|_| CryptoError::InvalidKey {
                what: "SM2 private key",
                reason: "not a scalar in [1, n-1]",
            })
    }

    /// The same key signing under another distinguishing id.
    pub fn with_id(mut self, id: &str) -> Result<Self, CryptoError> {
        if id.len() > SM2_ID_MAX_LEN_BYTES {
            return Err(bad_id());
        }
        self.signing = signing_key(&self.secret, id);
        Ok(self)
    }

    /// The same key writing signatures as `format`.
    pub fn with_format(mut self, format: SignatureFormat) -> Self {
        self.format = format;
        self
    }

    pub fn id(&self) -> &str {
        self.signing.distid()
    }

    pub fn public_key(&self) -> Sm2PublicKey {
        Sm2PublicKey {
            verifying: self.signing.verifying_key().clone(),
        }
    }

    #[cfg(test)]
    pub(crate) fn secret_key(&self) -> &SecretKey {
        &self.secret
    }

    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, id-ecPublicKey with the SM2
    /// curve), as OpenSSL 3 writes SM2 keys.
    pub fn to_pkcs8_pem(&self) -> Result<SecretString, CryptoError> {
        let pem = self
            .secret
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|_| CryptoError::Encoding {
                what: "SM2 private key as PKCS#8 PEM",
            })?;
        Ok(SecretString::new(pem.as_str().to_owned()))
    }

    /// The signature over exactly `message` as r‖s (deterministic nonce,
    /// RFC 6979 with SM3).
    pub fn sign_raw(&self, message: &[u8]) -> Result<[u8; 64], CryptoError> {
        let signature: Signature = self
            .signing
            .try_sign(message)
            .map_err(|_| CryptoError::BadSignature { algorithm: SM2_SM3 })?;
        Ok(signature.to_bytes())
    }
}

// The id is at most SM2_ID_MAX_LEN_BYTES (checked by callers), so the sm2
// crate cannot refuse it; the scalar is non-zero by SecretKey's invariant.
fn signing_key(secret: &SecretKey, id: &str) -> SigningKey {
    let id = if id.len() > SM2_ID_MAX_LEN_BYTES {
        DEFAULT_SM2_ID
    } else {
        id
    };
    match SigningKey::new(id, secret) {
        Ok(key) => key,
        Err(_) => unreachable!("an SM2 id of at most 8191 bytes is always accepted"),
    }
}

impl Clone for Sm2PrivateKey {
    fn clone(&self) -> Self {
        Self {
            secret: self.secret.clone(),
            signing: self.signing.clone(),
            format: self.format,
        }
    }
}

impl Drop for Sm2PrivateKey {
    fn drop(&mut self) {
        // Overwrite the signing key's scalar in place with the public scalar
        // one; black_box keeps the store from being optimised away.
        let mut one = [0u8; 32];
        one[31] = 1;
        if let Ok(wiped) = SigningKey::from_slice("", &one) {
            self.signing = wiped;
            std::hint::black_box(&self.signing);
        }
    }
}

impl fmt::Debug for Sm2PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sm2PrivateKey([redacted])")
    }
}

impl Signer for Sm2PrivateKey {
    fn algorithm(&self) -> &'static str {
        SM2_SM3
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let raw = self.sign_raw(message)?;
        match self.format {
            SignatureFormat::Raw => Ok(raw.to_vec()),
            SignatureFormat::Der => rs_der::encode(&raw).ok_or(CryptoError::Encoding {
                what: "SM2 signature as DER",
            }),
        }
    }
}

/// An SM2 public key bound to the distinguishing id its signer used.
#[derive(Clone)]
pub struct Sm2PublicKey {
    verifying: VerifyingKey,
}

impl Sm2PublicKey {
    /// The key `public` verifying under the default id.
    pub fn from_public_key(public: PublicKey) -> Self {
        Self {
            verifying: verifying_key(public, DEFAULT_SM2_ID),
        }
    }

    /// Parses an uncompressed or compressed SEC1 point (`04‖x‖y`).
    pub fn from_sec1_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        PublicKey::from_sec1_bytes(bytes)
            .map(Self::from_public_key)
            .map_err(|_| CryptoError::InvalidKey {
                what: "SM2 public key",
                reason: "not a point on the SM2 curve",
            })
    }

    /// The same key verifying under another distinguishing id.
    pub fn with_id(&self, id: &str) -> Result<Self, CryptoError> {
        if id.len() > SM2_ID_MAX_LEN_BYTES {
            return Err(bad_id());
        }
        Ok(Self {
            verifying: verifying_key(self.public(), id),
        })
    }

    pub fn id(&self) -> &str {
        self.verifying.distid()
    }

    fn public(&self) -> PublicKey {
        PublicKey::from(&self.verifying)
    }

    /// The uncompressed SEC1 point `04‖x‖y` (65 bytes).
    pub fn to_sec1_bytes(&self) -> Vec<u8> {
        self.public().to_encoded_point(false).as_bytes().to_vec()
    }

    /// SubjectPublicKeyInfo DER.
    pub fn to_spki_der(&self) -> Result<Vec<u8>, CryptoError> {
        self.public()
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .map_err(|_| CryptoError::Encoding {
                what: "SM2 public key as SPKI DER",
            })
    }

    /// Verifies raw r‖s over exactly `message` under this key's id.
    pub fn verify_raw(&self, message: &[u8], raw: &[u8; 64]) -> Result<(), CryptoError> {
        let signature =
            Signature::from_bytes(raw).map_err(|_| CryptoError::MalformedSignature {
                algorithm: SM2_SM3,
                reason: "r or s is zero or not below the group order",
            })?;
        self.verifying
            .verify(message, &signature)
            .map_err(|_| CryptoError::BadSignature { algorithm: SM2_SM3 })
    }

    /// Verifies a signature made over `e = SM3(message)` without `Z` (the
    /// ECDSA habit, a common SM2 mistake). For diagnosis only.
    pub(crate) fn verify_raw_without_z(&self, message: &[u8], raw: &[u8; 64]) -> bool {
        let Ok(signature) = Signature::from_bytes(raw) else {
            return false;
        };
        self.verifying
            .verify_prehash(&crate::hash::sm3(message), &signature)
            .is_ok()
    }
}

fn verifying_key(public: PublicKey, id: &str) -> VerifyingKey {
    let id = if id.len() > SM2_ID_MAX_LEN_BYTES {
        DEFAULT_SM2_ID
    } else {
        id
    };
    match VerifyingKey::new(id, public) {
        Ok(key) => key,
        Err(_) => unreachable!("an SM2 id of at most 8191 bytes is always accepted"),
    }
}

impl fmt::Debug for Sm2PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Sm2PublicKey({}, id {:?})",
            crate::hex::encode(&self.to_sec1_bytes()),
            self.id()
        )
    }
}

/// Reads an SM2 (or ECDSA) signature given as strict DER or as raw r‖s.
pub(crate) fn decode_signature(
    algorithm: &'static str,
    bytes: &[u8],
) -> Result<([u8; 64], SignatureFormat), CryptoError> {
    if let Some(raw) = rs_der::decode(bytes) {
        return Ok((raw, SignatureFormat::Der));
    }
    if let Ok(raw) = <[u8; 64]>::try_from(bytes) {
        return Ok((raw, SignatureFormat::Raw));
    }
    Err(CryptoError::MalformedSignature {
        algorithm,
        reason: "neither DER (SEQUENCE of r and s) nor raw r||s of 64 bytes",
    })
}

impl Verifier for Sm2PublicKey {
    fn algorithm(&self) -> &'static str {
        SM2_SM3
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), CryptoError> {
        let (raw, _) = decode_signature(SM2_SM3, signature)?;
        self.verify_raw(message, &raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex;

    // GM/T 0003.5-2012 / GB/T 32918.5-2017 Appendix A: the signature example
    // on the recommended curve (message "message digest", id
    // 1234567812345678, k = 59276E27...BC21).
    const SAMPLE_D: &str = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8";
    const SAMPLE_PUBLIC_X: &str =
        "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020";
    const SAMPLE_PUBLIC_Y: &str =
        "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13";
    const SAMPLE_R: &str = "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3";
    const SAMPLE_S: &str = "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA";

    fn sample_key() -> Sm2PrivateKey {
        let d: [u8; 32] = hex::decode(SAMPLE_D).unwrap().try_into().unwrap();
        Sm2PrivateKey::from_bytes(&d).unwrap()
    }

    fn sample_signature() -> [u8; 64] {
        hex::decode(&format!("{SAMPLE_R}{SAMPLE_S}"))
            .unwrap()
            .try_into()
            .unwrap()
    }

    #[test]
    fn verifies_the_gmt_0003_5_sample_signature() {
        let key = sample_key();
        let public = key.public_key();
        assert_eq!(
            hex::encode(&public.to_sec1_bytes()).to_uppercase(),
            format!("04{SAMPLE_PUBLIC_X}{SAMPLE_PUBLIC_Y}")
        );
        assert_eq!(public.id(), DEFAULT_SM2_ID);
        let raw = sample_signature();
        public.verify_raw(b"message digest", &raw).unwrap();
        // The same signature in DER, through the object-safe trait.
        let verifier: Box<dyn Verifier> = Box::new(public.clone());
        verifier
            .verify(b"message digest", &rs_der::encode(&raw).unwrap())
            .unwrap();
        verifier.verify(b"message digest", &raw).unwrap();
        assert!(matches!(
            verifier.verify(b"message digesT", &raw),
            Err(CryptoError::BadSignature { .. })
        ));
        // Another id gives another Z: the signature no longer verifies.
        assert!(public
            .with_id("")
            .unwrap()
            .verify(b"message digest", &raw)
            .is_err());
    }

    #[test]
    fn signs_der_by_default_and_raw_when_asked() {
        let key = Sm2PrivateKey::generate();
        let public = key.public_key();
        let der = key.sign(b"pay 100.00 CNY").unwrap();
        assert_eq!(der[0], 0x30);
        assert!(rs_der::decode(&der).is_some());
        public.verify(b"pay 100.00 CNY", &der).unwrap();
        let key = key.with_format(SignatureFormat::Raw);
        let raw = key.sign(b"pay 100.00 CNY").unwrap();
        assert_eq!(raw.len(), SM2_RAW_SIGNATURE_LEN_BYTES);
        public.verify(b"pay 100.00 CNY", &raw).unwrap();
        assert!(public.verify(b"pay 100.00 CNY", &raw[..63]).is_err());
        assert!(matches!(
            public.verify(b"pay 100.00 CNY", b"garbage"),
            Err(CryptoError::MalformedSignature { .. })
        ));
    }

    #[test]
    fn the_id_must_match_between_signer_and_verifier() {
        let key = Sm2PrivateKey::generate()
            .with_id("ALICE123@YAHOO.COM")
            .unwrap();
        let signature = key.sign(b"m").unwrap();
        assert!(key.public_key().verify(b"m", &signature).is_ok());
        assert_eq!(key.public_key().id(), "ALICE123@YAHOO.COM");
        let default_id = key.public_key().with_id(DEFAULT_SM2_ID).unwrap();
        assert!(default_id.verify(b"m", &signature).is_err());
        assert!(key.clone().with_id(&"x".repeat(9000)).is_err());
    }

    #[test]
    fn debug_is_redacted_and_pkcs8_round_trips() {
        use ::sm2::pkcs8::DecodePrivateKey as _;
        let key = sample_key();
        assert_eq!(format!("{key:?}"), "Sm2PrivateKey([redacted])");
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(!format!("{key:?}{pem:?}").contains(&SAMPLE_D.to_lowercase()));
        let back = SecretKey::from_pkcs8_pem(pem.expose_secret()).unwrap();
        assert_eq!(
            Sm2PrivateKey::from_secret_key(back)
                .public_key()
                .to_sec1_bytes(),
            key.public_key().to_sec1_bytes()
        );
    }
}
