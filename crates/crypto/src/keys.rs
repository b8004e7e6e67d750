//! Keys of every signature scheme, read from PEM or DER as banks and
//! OpenSSL hand them over, and generated for operators.
//!
//! - Private keys: PKCS#8 (`PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`, SM2 or
//!   P-256, the curve taken from its parameters) and PKCS#1 (`RSA PRIVATE
//!   KEY`). Encrypted PKCS#8 is refused with what to do.
//! - Public keys: SPKI (`PUBLIC KEY`), PKCS#1 (`RSA PUBLIC KEY`) and the
//!   key of an X.509 certificate (`CERTIFICATE`).
//!
//! The algorithm is taken from the key's own object identifiers, never from
//! a file name or a guess; SM2 keys are id-ecPublicKey keys on the SM2 curve
//! (1.2.156.10197.1.301), as OpenSSL 3 writes them. Each key becomes a
//! `Box<dyn Signer>` / `Box<dyn Verifier>` so callers do not care which.

use std::fmt;

use ed25519_dalek::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _, EncodePublicKey as _};
use p256::pkcs8::ObjectIdentifier;
use rsa::pkcs1::{DecodeRsaPrivateKey as _, DecodeRsaPublicKey as _};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sec1::der::pem::LineEnding;
use sec1::der::Decode as _;
use zeroize::Zeroizing;

use crate::ecdsa_p256::{EcdsaP256Key, EcdsaP256PublicKey};
use crate::rsa_sha256::{RsaSha256Key, RsaSha256PublicKey};
use crate::sign::SignatureFormat;
use crate::sm2_dsa::{Sm2PrivateKey, Sm2PublicKey};
use crate::{CryptoError, Ed25519Key, Ed25519PublicKey, SecretString, Signer, Verifier};

pub(crate) const OID_RSA_ENCRYPTION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
pub(crate) const OID_EC_PUBLIC_KEY: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
pub(crate) const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
pub(crate) const OID_CURVE_SM2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.156.10197.1.301");
pub(crate) const OID_CURVE_P256: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// Largest key or certificate file read (a bundle of a few certificates).
pub const KEY_FILE_MAX_LEN_BYTES: usize = 256 * 1024;

/// The signature schemes a key can be for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// SM2 with SM3 (GB/T 32918).
    Sm2,
    /// RSA with SHA-256, PKCS#1 v1.5.
    Rsa,
    /// ECDSA on P-256 with SHA-256.
    P256,
    /// Ed25519.
    Ed25519,
}

impl KeyAlgorithm {
    /// From the operator's spelling: `sm2`, `rsa`, `p256`, `ed25519`.
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "sm2" => Some(Self::Sm2),
            "rsa" => Some(Self::Rsa),
            "p256" | "p-256" | "prime256v1" | "secp256r1" => Some(Self::P256),
            "ed25519" => Some(Self::Ed25519),
            _ => None,
        }
    }

    /// The signature scheme this crate uses with such a key.
    pub fn signature_scheme(self) -> &'static str {
        match self {
            Self::Sm2 => crate::sm2_dsa::SM2_SM3,
            Self::Rsa => crate::rsa_sha256::RSA_SHA256,
            Self::P256 => crate::ecdsa_p256::ECDSA_P256_SHA256,
            Self::Ed25519 => crate::ed25519::ED25519,
        }
    }
}

/// What a key is, for people: `inspect` prints this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub algorithm: KeyAlgorithm,
    /// `EC`, `RSA` or `Ed25519`.
    pub family: &'static str,
    /// The curve of an elliptic-curve key (`SM2`, `P-256`, `Curve25519`).
    pub curve: Option<&'static str>,
    /// Key size: the modulus for RSA, the field for curves.
    pub bits: usize,
}

impl fmt::Display for KeyInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.curve {
            Some(curve) => write!(
                f,
                "{} key on curve {}, {} bits",
                self.family, curve, self.bits
            ),
            None => write!(f, "{} key, {} bits", self.family, self.bits),
        }
    }
}

/// A private key of any supported scheme. Wiped on drop; prints redacted.
#[derive(Clone)]
pub enum PrivateKey {
    Sm2(Sm2PrivateKey),
    Rsa(RsaSha256Key),
    P256(EcdsaP256Key),
    Ed25519(Ed25519Key),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({:?}, [redacted])", self.algorithm())
    }
}

fn invalid(what: &'static str, reason: &'static str) -> CryptoError {
    CryptoError::InvalidKey { what, reason }
}

/// One `-----BEGIN X-----` … `-----END X-----` block of a text.
pub(crate) struct PemBlock {
    pub(crate) label: String,
    pub(crate) der: Zeroizing<Vec<u8>>,
}

/// Every PEM block of `text` in order; text between blocks (OpenSSL's
/// `Bag Attributes`, comments) is skipped. CRLF line ends are accepted.
pub(crate) fn pem_blocks(text: &str) -> Result<Vec<PemBlock>, CryptoError> {
    let text = Zeroizing::new(text.replace("\r\n", "\n"));
    let mut blocks = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("-----BEGIN ") {
        let from_begin = &rest[start..];
        let label_end = from_begin[11..]
            .find("-----")
            .ok_or_else(|| invalid("PEM document", "a BEGIN line is not closed"))?;
        let label = &from_begin[11..11 + label_end];
        let end_marker = format!("-----END {label}-----");
        let end = from_begin
            .find(&end_marker)
            .ok_or_else(|| invalid("PEM document", "a BEGIN line has no matching END line"))?;
        let block = &from_begin[..end + end_marker.len()];
        let (_, der) = sec1::der::pem::decode_vec(block.as_bytes()).map_err(|_| {
            invalid(
                "PEM document",
                "the base64 between BEGIN and END is invalid",
            )
        })?;
        blocks.push(PemBlock {
            label: label.to_owned(),
            der: Zeroizing::new(der),
        });
        rest = &from_begin[end + end_marker.len()..];
    }
    Ok(blocks)
}

/// `bytes` as PEM text if it looks like PEM, else `None` (then it is DER).
pub(crate) fn as_pem(bytes: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(bytes).ok()?;
    text.contains("-----BEGIN ").then_some(text)
}

fn check_len(bytes: &[u8]) -> Result<(), CryptoError> {
    if bytes.len() > KEY_FILE_MAX_LEN_BYTES {
        return Err(invalid("key file", "larger than 256 KiB"));
    }
    Ok(())
}

impl PrivateKey {
    /// A new random key. `rsa_bits` is used for RSA only.
    pub fn generate(algorithm: KeyAlgorithm, rsa_bits: usize) -> Result<Self, CryptoError> {
        Ok(match algorithm {
            KeyAlgorithm::Sm2 => Self::Sm2(Sm2PrivateKey::generate()),
            KeyAlgorithm::Rsa => Self::Rsa(RsaSha256Key::generate(rsa_bits)?),
            KeyAlgorithm::P256 => Self::P256(EcdsaP256Key::generate()),
            KeyAlgorithm::Ed25519 => Self::Ed25519(Ed25519Key::generate()),
        })
    }

    /// Reads the first private key of a PEM text, or a DER PKCS#8 / SEC1 /
    /// PKCS#1 key.
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<Self, CryptoError> {
        check_len(bytes)?;
        let Some(text) = as_pem(bytes) else {
            return Self::from_pkcs8_der(bytes)
                .or_else(|_| Self::from_sec1_der(bytes))
                .or_else(|_| Self::from_pkcs1_der(bytes))
                .map_err(|_| {
                    invalid(
                        "private key",
                        "neither PEM nor DER PKCS#8, SEC1 or PKCS#1 private key",
                    )
                });
        };
        for block in pem_blocks(text)? {
            match block.label.as_str() {
                "PRIVATE KEY" => return Self::from_pkcs8_der(&block.der),
                "EC PRIVATE KEY" => return Self::from_sec1_der(&block.der),
                "RSA PRIVATE KEY" => return Self::from_pkcs1_der(&block.der),
                "ENCRYPTED PRIVATE KEY" => {
                    return Err(invalid(
                        "private key",
                        "it is encrypted; decrypt it first (openssl pkcs8 -in F -out plain.pem) and keep the result 0600",
                    ))
                }
                _ => {}
            }
        }
        Err(invalid(
            "private key",
            "no PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY block in the PEM text",
        ))
    }

    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, CryptoError> {
        let info = p256::pkcs8::PrivateKeyInfo::try_from(der)
            .map_err(|_| invalid("private key", "not a PKCS#8 PrivateKeyInfo"))?;
        let oid = info.algorithm.oid;
        if oid == OID_RSA_ENCRYPTION {
            let key = <RsaPrivateKey as rsa::pkcs8::DecodePrivateKey>::from_pkcs8_der(der)
                .map_err(|_| invalid("RSA private key", "malformed PKCS#8 RSA key"))?;
            return Ok(Self::Rsa(RsaSha256Key::from_private_key(key)?));
        }
        if oid == OID_ED25519 {
            let signing = ed25519_dalek::SigningKey::from_pkcs8_der(der)
                .map_err(|_| invalid("Ed25519 private key", "malformed PKCS#8 Ed25519 key"))?;
            return Ok(Self::Ed25519(Ed25519Key::from_seed(signing.to_bytes())));
        }
        if oid == OID_EC_PUBLIC_KEY {
            let curve = info.algorithm.parameters_oid().ok();
            return match curve {
                Some(c) if c == OID_CURVE_SM2 => {
                    let secret =
                        <::sm2::SecretKey as ::sm2::pkcs8::DecodePrivateKey>::from_pkcs8_der(der)
                            .map_err(|_| invalid("SM2 private key", "malformed PKCS#8 SM2 key"))?;
                    Ok(Self::Sm2(Sm2PrivateKey::from_secret_key(secret)))
                }
                Some(c) if c == OID_CURVE_P256 => {
                    let secret =
                        <p256::SecretKey as p256::pkcs8::DecodePrivateKey>::from_pkcs8_der(der)
                            .map_err(|_| invalid("P-256 private key", "malformed PKCS#8 key"))?;
                    Ok(Self::P256(EcdsaP256Key::from_secret_key(&secret)))
                }
                Some(c) => Err(CryptoError::Unsupported {
                    what: "elliptic curve",
                    oid: c.to_string(),
                }),
                None => Err(invalid("EC private key", "PKCS#8 key names no curve")),
            };
        }
        Err(CryptoError::Unsupported {
            what: "private key algorithm",
            oid: oid.to_string(),
        })
    }

    pub fn from_sec1_der(der: &[u8]) -> Result<Self, CryptoError> {
        let key = sec1::EcPrivateKey::from_der(der)
            .map_err(|_| invalid("EC private key", "not a SEC1 ECPrivateKey"))?;
        let curve = key.parameters.and_then(|p| p.named_curve());
        match curve {
            Some(c) if c == OID_CURVE_SM2 => ::sm2::SecretKey::from_sec1_der(der)
                .map(|s| Self::Sm2(Sm2PrivateKey::from_secret_key(s)))
                .map_err(|_| invalid("SM2 private key", "malformed SEC1 key")),
            Some(c) if c == OID_CURVE_P256 => p256::SecretKey::from_sec1_der(der)
                .map(|s| Self::P256(EcdsaP256Key::from_secret_key(&s)))
                .map_err(|_| invalid("P-256 private key", "malformed SEC1 key")),
            Some(c) => Err(CryptoError::Unsupported {
                what: "elliptic curve",
                oid: c.to_string(),
            }),
            // No curve named: the embedded public key decides, since it must
            // equal d·G on the right curve only.
            None if key.public_key.is_some() => ::sm2::SecretKey::from_sec1_der(der)
                .map(|s| Self::Sm2(Sm2PrivateKey::from_secret_key(s)))
                .or_else(|_| {
                    p256::SecretKey::from_sec1_der(der)
                        .map(|s| Self::P256(EcdsaP256Key::from_secret_key(&s)))
                })
                .map_err(|_| invalid("EC private key", "a SEC1 key of an unknown curve")),
            None => Err(invalid(
                "EC private key",
                "the SEC1 key names no curve and holds no public key; convert it with openssl pkcs8 -topk8 -nocrypt",
            )),
        }
    }

    pub fn from_pkcs1_der(der: &[u8]) -> Result<Self, CryptoError> {
        let key = RsaPrivateKey::from_pkcs1_der(der)
            .map_err(|_| invalid("RSA private key", "not a PKCS#1 RSAPrivateKey"))?;
        Ok(Self::Rsa(RsaSha256Key::from_private_key(key)?))
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        match self {
            Self::Sm2(_) => KeyAlgorithm::Sm2,
            Self::Rsa(_) => KeyAlgorithm::Rsa,
            Self::P256(_) => KeyAlgorithm::P256,
            Self::Ed25519(_) => KeyAlgorithm::Ed25519,
        }
    }

    pub fn public_key(&self) -> PublicKey {
        match self {
            Self::Sm2(k) => PublicKey::Sm2(k.public_key()),
            Self::Rsa(k) => PublicKey::Rsa(k.public_key()),
            Self::P256(k) => PublicKey::P256(k.public_key()),
            Self::Ed25519(k) => PublicKey::Ed25519(k.public_key()),
        }
    }

    /// PKCS#8 PEM, as OpenSSL 3 writes keys.
    pub fn to_pkcs8_pem(&self) -> Result<SecretString, CryptoError> {
        match self {
            Self::Sm2(k) => k.to_pkcs8_pem(),
            Self::Rsa(k) => k.to_pkcs8_pem(),
            Self::P256(k) => k.to_pkcs8_pem(),
            Self::Ed25519(k) => k.to_pkcs8_pem(),
        }
    }

    /// The signer of this key: SM2 under `sm2_id`, EC signatures written as
    /// `format` (RSA and Ed25519 ignore both).
    pub fn into_signer(
        self,
        sm2_id: &str,
        format: SignatureFormat,
    ) -> Result<Box<dyn Signer>, CryptoError> {
        Ok(match self {
            Self::Sm2(k) => Box::new(k.with_id(sm2_id)?.with_format(format)),
            Self::Rsa(k) => Box::new(k),
            Self::P256(k) => Box::new(k.with_format(format)),
            Self::Ed25519(k) => Box::new(k),
        })
    }
}

/// A public key of any supported scheme.
#[derive(Debug, Clone)]
pub enum PublicKey {
    Sm2(Sm2PublicKey),
    Rsa(RsaSha256PublicKey),
    P256(EcdsaP256PublicKey),
    Ed25519(Ed25519PublicKey),
}

impl PublicKey {
    /// Reads the first public key of a PEM text (`PUBLIC KEY`, `RSA PUBLIC
    /// KEY`, or a `CERTIFICATE`'s key), or a DER SPKI or certificate.
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<Self, CryptoError> {
        check_len(bytes)?;
        let Some(text) = as_pem(bytes) else {
            return Self::from_spki_der(bytes)
                .or_else(|_| {
                    crate::cert::Certificate::from_der(bytes).map(|c| c.public_key().clone())
                })
                .map_err(|_| {
                    invalid(
                        "public key",
                        "neither PEM nor a DER SubjectPublicKeyInfo or certificate",
                    )
                });
        };
        for block in pem_blocks(text)? {
            match block.label.as_str() {
                "PUBLIC KEY" => return Self::from_spki_der(&block.der),
                "RSA PUBLIC KEY" => {
                    let key = RsaPublicKey::from_pkcs1_der(&block.der)
                        .map_err(|_| invalid("RSA public key", "not a PKCS#1 RSAPublicKey"))?;
                    return Ok(Self::Rsa(RsaSha256PublicKey::from_public_key(key)?));
                }
                "CERTIFICATE" => {
                    return crate::cert::Certificate::from_der(&block.der)
                        .map(|c| c.public_key().clone())
                }
                "PRIVATE KEY" | "EC PRIVATE KEY" | "RSA PRIVATE KEY" => {
                    return PrivateKey::from_pem_or_der(bytes).map(|k| k.public_key())
                }
                _ => {}
            }
        }
        Err(invalid(
            "public key",
            "no PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE block in the PEM text",
        ))
    }

    /// From a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, CryptoError> {
        let spki = p256::pkcs8::SubjectPublicKeyInfoRef::try_from(der)
            .map_err(|_| invalid("public key", "not a DER SubjectPublicKeyInfo"))?;
        let oid = spki.algorithm.oid;
        if oid == OID_RSA_ENCRYPTION {
            let key = <RsaPublicKey as rsa::pkcs8::DecodePublicKey>::from_public_key_der(der)
                .map_err(|_| invalid("RSA public key", "malformed or over 4096 bits"))?;
            return Ok(Self::Rsa(RsaSha256PublicKey::from_public_key(key)?));
        }
        if oid == OID_ED25519 {
            let key = ed25519_dalek::VerifyingKey::from_public_key_der(der)
                .map_err(|_| invalid("Ed25519 public key", "malformed SPKI"))?;
            return Ok(Self::Ed25519(Ed25519PublicKey::from_bytes(key.as_bytes())?));
        }
        if oid == OID_EC_PUBLIC_KEY {
            let point = spki.subject_public_key.raw_bytes();
            return match spki.algorithm.parameters_oid().ok() {
                Some(c) if c == OID_CURVE_SM2 => {
                    Ok(Self::Sm2(Sm2PublicKey::from_sec1_bytes(point)?))
                }
                Some(c) if c == OID_CURVE_P256 => {
                    Ok(Self::P256(EcdsaP256PublicKey::from_sec1_bytes(point)?))
                }
                Some(c) => Err(CryptoError::Unsupported {
                    what: "elliptic curve",
                    oid: c.to_string(),
                }),
                None => Err(invalid("EC public key", "the SPKI names no curve")),
            };
        }
        Err(CryptoError::Unsupported {
            what: "public key algorithm",
            oid: oid.to_string(),
        })
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        match self {
            Self::Sm2(_) => KeyAlgorithm::Sm2,
            Self::Rsa(_) => KeyAlgorithm::Rsa,
            Self::P256(_) => KeyAlgorithm::P256,
            Self::Ed25519(_) => KeyAlgorithm::Ed25519,
        }
    }

    pub fn info(&self) -> KeyInfo {
        let (family, curve, bits) = match self {
            Self::Sm2(_) => ("EC", Some("SM2"), 256),
            Self::Rsa(k) => ("RSA", None, k.bits()),
            Self::P256(_) => ("EC", Some("P-256"), 256),
            Self::Ed25519(_) => ("Ed25519", Some("Curve25519"), 255),
        };
        KeyInfo {
            algorithm: self.algorithm(),
            family,
            curve,
            bits,
        }
    }

    pub fn to_spki_der(&self) -> Result<Vec<u8>, CryptoError> {
        match self {
            Self::Sm2(k) => k.to_spki_der(),
            Self::Rsa(k) => k.to_spki_der(),
            Self::P256(k) => k.to_spki_der(),
            Self::Ed25519(k) => ed25519_dalek::VerifyingKey::from_bytes(&k.to_bytes())
                .ok()
                .and_then(|v| v.to_public_key_der().ok())
                .map(|d| d.as_bytes().to_vec())
                .ok_or(CryptoError::Encoding {
                    what: "Ed25519 public key as SPKI DER",
                }),
        }
    }

    /// SPKI PEM (`-----BEGIN PUBLIC KEY-----`), as `openssl pkey -pubout`.
    pub fn to_spki_pem(&self) -> Result<String, CryptoError> {
        let der = self.to_spki_der()?;
        sec1::der::pem::encode_string("PUBLIC KEY", LineEnding::LF, &der).map_err(|_| {
            CryptoError::Encoding {
                what: "public key as PEM",
            }
        })
    }

    /// SHA-256 of the DER SubjectPublicKeyInfo: names a key independently
    /// of the certificates it appears in.
    pub fn spki_sha256(&self) -> Result<[u8; 32], CryptoError> {
        Ok(crate::hash::sha256(&self.to_spki_der()?))
    }

    /// The verifier of this key; SM2 under `sm2_id`.
    pub fn verifier(&self, sm2_id: &str) -> Result<Box<dyn Verifier>, CryptoError> {
        Ok(match self {
            Self::Sm2(k) => Box::new(k.with_id(sm2_id)?),
            Self::Rsa(k) => Box::new(k.clone()),
            Self::P256(k) => Box::new(*k),
            Self::Ed25519(k) => Box::new(*k),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sm2_dsa::DEFAULT_SM2_ID;

    #[test]
    fn every_generated_key_round_trips_through_pkcs8_and_spki_and_signs() {
        for algorithm in [KeyAlgorithm::Sm2, KeyAlgorithm::P256, KeyAlgorithm::Ed25519] {
            let key = PrivateKey::generate(algorithm, 2048).unwrap();
            let pem = key.to_pkcs8_pem().unwrap();
            assert!(pem
                .expose_secret()
                .starts_with("-----BEGIN PRIVATE KEY-----\n"));
            let back = PrivateKey::from_pem_or_der(pem.expose_secret().as_bytes()).unwrap();
            assert_eq!(back.algorithm(), algorithm);
            let public_pem = key.public_key().to_spki_pem().unwrap();
            let public = PublicKey::from_pem_or_der(public_pem.as_bytes()).unwrap();
            assert_eq!(public.algorithm(), algorithm);
            assert_eq!(
                public.spki_sha256().unwrap(),
                back.public_key().spki_sha256().unwrap()
            );
            let signer = back
                .into_signer(DEFAULT_SM2_ID, SignatureFormat::Der)
                .unwrap();
            let signature = signer.sign(b"exact bytes").unwrap();
            let verifier = public.verifier(DEFAULT_SM2_ID).unwrap();
            verifier.verify(b"exact bytes", &signature).unwrap();
            assert!(verifier.verify(b"exact bytes ", &signature).is_err());
            assert!(!format!("{key:?}").contains(pem.expose_secret()));
        }
    }

    #[test]
    fn reads_sec1_and_crlf_and_refuses_encrypted_and_garbage() {
        let key = Sm2PrivateKey::generate();
        // As OpenSSL writes it: the curve named in the parameters.
        let bare = key.secret_key().to_sec1_der().unwrap();
        let mut parsed = sec1::EcPrivateKey::from_der(&bare).unwrap();
        assert!(parsed.parameters.is_none());
        assert!(
            PrivateKey::from_pem_or_der(&bare).is_ok(),
            "curve found by public key"
        );
        parsed.parameters = Some(sec1::EcParameters::NamedCurve(OID_CURVE_SM2));
        let sec1 = sec1::der::Encode::to_der(&parsed).unwrap();
        let pem = sec1::der::pem::encode_string("EC PRIVATE KEY", LineEnding::CRLF, &sec1).unwrap();
        let text = format!(
            "-----BEGIN EC PARAMETERS-----\nBggqgRzPVQGCLQ==\n-----END EC PARAMETERS-----\n{pem}"
        );
        let back = PrivateKey::from_pem_or_der(text.as_bytes()).unwrap();
        assert_eq!(back.algorithm(), KeyAlgorithm::Sm2);
        assert!(PrivateKey::from_pem_or_der(&sec1).is_ok(), "DER SEC1");
        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let err = PrivateKey::from_pem_or_der(encrypted.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("decrypt it first"), "{err}");
        assert!(PrivateKey::from_pem_or_der(b"hello").is_err());
        assert!(PublicKey::from_pem_or_der(b"-----BEGIN PUBLIC KEY-----\n").is_err());
    }
}
