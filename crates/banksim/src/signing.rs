//! Signed cn-xml traffic on the simulator's side (docs/families/cn-xml.md,
//! "Signatures"): the bank's own SM2 key and certificate sign every answer,
//! and requests are checked against the client certificates it was given.
//!
//! The signature travels in the [`formats::cn_xml::SIGNATURE_HEADER`] HTTP
//! header: base64 of the DER SM2-with-SM3 signature over exactly the body
//! bytes. The simulator verifies with `crypto` directly, never with the
//! `banks` code it is testing.
//!
//! [`SigningIdentity::generate`] makes a self-signed SM2 certificate (X.509
//! v1, signature algorithm SM2-with-SM3, 1.2.156.10197.1.501) for the
//! simulator, tests and demos: rcgen has no SM2, so the certificate is
//! assembled from `x509-cert` types and signed with `crypto`'s SM2 key.

use std::fmt;
use std::str::FromStr as _;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use crypto::{Certificate, KeyAlgorithm, PrivateKey, SignatureFormat};
use x509_cert::der::asn1::BitString;
use x509_cert::der::pem::LineEnding;
use x509_cert::der::{Decode as _, Encode as _, EncodePem as _};
use x509_cert::spki::{AlgorithmIdentifierOwned, ObjectIdentifier, SubjectPublicKeyInfoOwned};

use crate::SimError;

/// GM/T 0009's default SM2 id, which the simulator signs and verifies under
/// unless told otherwise.
pub const DEFAULT_SM2_ID: &str = crypto::sm2_dsa::DEFAULT_SM2_ID;
/// SM2-with-SM3 (GM/T 0006).
const SM2_WITH_SM3: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.156.10197.1.501");
/// How long a generated identity is valid, from an hour before it was made.
pub const GENERATED_VALIDITY_DAYS: u64 = 365;

/// An SM2 key with its self-signed certificate. Prints no key.
#[derive(Clone)]
pub struct SigningIdentity {
    key: PrivateKey,
    certificate: Certificate,
    certificate_pem: String,
}

impl fmt::Debug for SigningIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningIdentity")
            .field("subject", &self.certificate.subject())
            .field("key", &"[redacted]")
            .finish()
    }
}

fn invalid(message: String) -> SimError {
    SimError::InvalidConfig { message }
}

impl SigningIdentity {
    /// A fresh SM2 key and a certificate for it named `CN=<common_name>`,
    /// valid in [`not_before`, `not_after`].
    pub fn generate(
        common_name: &str,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<SigningIdentity, SimError> {
        let key = PrivateKey::generate(KeyAlgorithm::Sm2, 0)
            .map_err(|e| invalid(format!("SM2 key: {e}")))?;
        let cert_error = |e: x509_cert::der::Error| invalid(format!("SM2 certificate: {e}"));
        let name =
            x509_cert::name::Name::from_str(&format!("CN={common_name}")).map_err(cert_error)?;
        let spki_der = key
            .public_key()
            .to_spki_der()
            .map_err(|e| invalid(format!("SM2 public key: {e}")))?;
        let algorithm = AlgorithmIdentifierOwned {
            oid: SM2_WITH_SM3,
            parameters: None,
        };
        let serial: [u8; 8] = rand::random();
        let mut serial = serial.to_vec();
        serial[0] &= 0x7F; // positive
        serial[0] |= 0x01; // and minimal
        let tbs = x509_cert::TbsCertificate {
            version: x509_cert::Version::V1,
            serial_number: x509_cert::serial_number::SerialNumber::new(&serial)
                .map_err(cert_error)?,
            signature: algorithm.clone(),
            issuer: name.clone(),
            validity: x509_cert::time::Validity {
                not_before: x509_cert::time::Time::try_from(not_before).map_err(cert_error)?,
                not_after: x509_cert::time::Time::try_from(not_after).map_err(cert_error)?,
            },
            subject: name,
            subject_public_key_info: SubjectPublicKeyInfoOwned::from_der(&spki_der)
                .map_err(cert_error)?,
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions: None,
        };
        let tbs_der = tbs.to_der().map_err(cert_error)?;
        let signature = key
            .clone()
            .into_signer(DEFAULT_SM2_ID, SignatureFormat::Der)
            .and_then(|signer| signer.sign(&tbs_der))
            .map_err(|e| invalid(format!("SM2 certificate signature: {e}")))?;
        let cert = x509_cert::Certificate {
            tbs_certificate: tbs,
            signature_algorithm: algorithm,
            signature: BitString::from_bytes(&signature).map_err(cert_error)?,
        };
        let der = cert.to_der().map_err(cert_error)?;
        let certificate_pem = cert.to_pem(LineEnding::LF).map_err(cert_error)?;
        let certificate =
            Certificate::from_der(&der).map_err(|e| invalid(format!("SM2 certificate: {e}")))?;
        Ok(SigningIdentity {
            key,
            certificate,
            certificate_pem,
        })
    }

    /// As [`SigningIdentity::generate`], valid from an hour ago for
    /// [`GENERATED_VALIDITY_DAYS`].
    pub fn generate_now(common_name: &str) -> Result<SigningIdentity, SimError> {
        let now = SystemTime::now();
        SigningIdentity::generate(
            common_name,
            now - Duration::from_secs(3_600),
            now + Duration::from_secs(GENERATED_VALIDITY_DAYS * 86_400),
        )
    }

    pub fn key(&self) -> &PrivateKey {
        &self.key
    }

    /// The private key as PKCS#8 PEM (for a key file in tests and demos).
    pub fn key_pem(&self) -> Result<crypto::SecretString, SimError> {
        self.key
            .to_pkcs8_pem()
            .map_err(|e| invalid(format!("SM2 key: {e}")))
    }

    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// The header value signing `body` under `sm2_id`.
    pub(crate) fn sign(&self, body: &[u8], sm2_id: &str) -> Result<String, SimError> {
        let signature = self
            .key
            .clone()
            .into_signer(sm2_id, SignatureFormat::Der)
            .and_then(|signer| signer.sign(body))
            .map_err(|e| invalid(format!("signing an answer: {e}")))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(signature))
    }
}

/// How a simulated cn-xml bank signs and checks signatures.
#[derive(Debug, Clone)]
pub struct SimSigning {
    /// The bank's own identity, signing every answer; `None` generates one
    /// at start (CN = the bank id, valid from an hour ago for a year).
    pub bank: Option<SigningIdentity>,
    /// The certificates a request must be signed under (any one valid
    /// now); empty: requests are not checked.
    pub client_certificates: Vec<Certificate>,
    /// The SM2 id of both directions.
    pub sm2_id: String,
}

impl Default for SimSigning {
    fn default() -> SimSigning {
        SimSigning {
            bank: None,
            client_certificates: Vec::new(),
            sm2_id: DEFAULT_SM2_ID.to_owned(),
        }
    }
}

/// What a cn-xml bank needs besides [`crate::SimOptions`]: signing and the
/// login's password. Ignored by an iso20022 bank.
#[derive(Debug, Clone, Default)]
pub struct CnXmlSimOptions {
    /// Sign answers (and check requests); `None`: no signatures at all.
    pub signing: Option<SimSigning>,
    /// The password `PASSWD` must carry; `None`: not checked.
    pub password: Option<crypto::SecretString>,
}

/// The signing state of a running bank.
#[derive(Debug)]
pub(crate) struct SigningState {
    pub(crate) bank: SigningIdentity,
    pub(crate) client_certificates: Option<crypto::CertificateSet>,
    pub(crate) sm2_id: String,
    /// Signs the `wrong_signature` fault's answers: a well-formed signature
    /// under a key that is not the bank's.
    pub(crate) impostor: SigningIdentity,
}

impl SigningState {
    pub(crate) fn new(bank_id: &str, signing: SimSigning) -> Result<SigningState, SimError> {
        let bank = match signing.bank {
            Some(bank) => bank,
            None => SigningIdentity::generate_now(&format!("{bank_id} signing"))?,
        };
        let client_certificates = if signing.client_certificates.is_empty() {
            None
        } else {
            Some(
                crypto::CertificateSet::new(signing.client_certificates, &signing.sm2_id)
                    .map_err(|e| invalid(format!("client certificates: {e}")))?,
            )
        };
        Ok(SigningState {
            bank,
            client_certificates,
            sm2_id: signing.sm2_id,
            impostor: SigningIdentity::generate_now("impostor")?,
        })
    }

    /// Whether a request's signature header verifies over `body` under a
    /// client certificate valid now; `Ok` when requests are not checked.
    pub(crate) fn check_request(&self, body: &[u8], header: Option<&[u8]>) -> Result<(), String> {
        let Some(set) = &self.client_certificates else {
            return Ok(());
        };
        let header = header.ok_or_else(|| "请求未签名".to_owned())?;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(header.trim_ascii())
            .map_err(|_| "签名格式错误".to_owned())?;
        set.verify_at(body, &signature, SystemTime::now())
            .map(|_| ())
            .map_err(|_| "签名验证失败".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_identity_is_an_sm2_certificate_that_verifies_its_signatures() {
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        let id = SigningIdentity::generate("bank signing", now - day, now + day).unwrap();
        let cert = id.certificate();
        assert!(
            cert.subject().contains("CN=bank signing"),
            "{}",
            cert.subject()
        );
        assert_eq!(cert.public_key().algorithm(), KeyAlgorithm::Sm2);
        assert_eq!(cert.signature_algorithm_oid(), "1.2.156.10197.1.501");
        assert!(cert.is_valid_at(now) && !cert.is_valid_at(now + 2 * day));
        // The PEM reads back as the same certificate.
        let again = Certificate::all_from_pem_or_der(id.certificate_pem().as_bytes()).unwrap();
        assert_eq!(again[0].der(), cert.der());
        // Self-signed: the certificate's own signature verifies under its key.
        let parsed = x509_cert::Certificate::from_der(cert.der()).unwrap();
        let tbs = parsed.tbs_certificate.to_der().unwrap();
        cert.public_key()
            .verifier(DEFAULT_SM2_ID)
            .unwrap()
            .verify(&tbs, parsed.signature.raw_bytes())
            .unwrap();
        // A signed body verifies under the certificate, a changed one not.
        let header = id.sign(b"<CNXML/>", DEFAULT_SM2_ID).unwrap();
        let signature = base64::engine::general_purpose::STANDARD
            .decode(header)
            .unwrap();
        let set = crypto::CertificateSet::new(vec![cert.clone()], DEFAULT_SM2_ID).unwrap();
        assert!(set.verify_at(b"<CNXML/>", &signature, now).is_ok());
        assert!(set.verify_at(b"<CNXML/> ", &signature, now).is_err());
        assert!(!format!("{id:?}").contains("PRIVATE"));
    }

    #[test]
    fn requests_are_checked_only_against_the_client_certificates_given() {
        let client = SigningIdentity::generate_now("client").unwrap();
        let state = SigningState::new(
            "cmb",
            SimSigning {
                client_certificates: vec![client.certificate().clone()],
                ..SimSigning::default()
            },
        )
        .unwrap();
        let body = b"<CNXML>request</CNXML>";
        let good = client.sign(body, DEFAULT_SM2_ID).unwrap();
        assert!(state.check_request(body, Some(good.as_bytes())).is_ok());
        assert!(state
            .check_request(b"other", Some(good.as_bytes()))
            .is_err());
        assert!(state.check_request(body, None).is_err());
        assert!(state.check_request(body, Some(b"%%%")).is_err());
        let impostor = state.impostor.sign(body, DEFAULT_SM2_ID).unwrap();
        assert!(state
            .check_request(body, Some(impostor.as_bytes()))
            .is_err());

        let open = SigningState::new("cmb", SimSigning::default()).unwrap();
        assert!(open.check_request(body, None).is_ok());
    }

    #[test]
    fn the_fault_kind_reads_from_json() {
        let fault: crate::Fault = serde_json::from_str(r#"{"kind":"wrong_signature"}"#).unwrap();
        assert_eq!(fault, crate::Fault::WrongSignature);
    }
}
