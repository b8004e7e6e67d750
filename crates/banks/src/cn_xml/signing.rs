//! Signed cn-xml traffic (docs/families/cn-xml.md, "Signatures"): our SM2
//! key signs the exact bytes of every packet we send; the bank's answer is
//! verified over the exact bytes received, under the bank's pinned
//! certificates that are valid now, before anything in it is read.
//!
//! The signature travels in the HTTP header
//! [`formats::cn_xml::SIGNATURE_HEADER`] as base64 (standard alphabet, with
//! padding) of the DER `SEQUENCE { r, s }` of SM2-with-SM3 under the
//! connection's SM2 id. A header keeps the signed bytes and the sent bytes
//! the same bytes: nothing is cut out of or spliced into the packet.
//!
//! Key material never leaves this module's types: errors name the bank, the
//! certificates' windows and what failed, never a key.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use crypto::{Certificate, CertificateSet, KeyAlgorithm, PrivateKey, SignatureFormat, Signer};
use domain::Clock;

/// GM/T 0009's default SM2 distinguishing id, used unless the connection
/// names another.
pub const DEFAULT_SM2_ID: &str = crypto::sm2_dsa::DEFAULT_SM2_ID;
/// Longest signature header value read, in bytes (a DER SM2 signature is at
/// most 72 bytes, 96 in base64; the cap only guards against junk).
pub const MAX_SIGNATURE_HEADER_BYTES: usize = 512;

/// How one cn-xml connection signs its requests and checks the bank's
/// answers. Prints no key.
#[derive(Clone)]
pub struct CnXmlSigning {
    signer: Arc<dyn Signer>,
    bank_certificates: CertificateSet,
}

impl fmt::Debug for CnXmlSigning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CnXmlSigning")
            .field("key", &"[redacted]")
            .field(
                "bank_certificates",
                &self.bank_certificates.certificates().len(),
            )
            .finish()
    }
}

impl CnXmlSigning {
    /// Our SM2 private key and the bank's SM2 certificates (1 to 16, each
    /// used inside its own validity window), both under `sm2_id`. The
    /// message says what is wrong, never what the key holds.
    pub fn new(
        key: PrivateKey,
        sm2_id: &str,
        bank_certificates: Vec<Certificate>,
    ) -> Result<CnXmlSigning, String> {
        if key.algorithm() != KeyAlgorithm::Sm2 {
            return Err(format!(
                "the signing key is {:?}; the cn-xml family signs with SM2",
                key.algorithm()
            ));
        }
        if sm2_id.is_empty() {
            return Err(format!(
                "the SM2 id is empty; expected the bank's, usually {DEFAULT_SM2_ID}"
            ));
        }
        for (i, cert) in bank_certificates.iter().enumerate() {
            if cert.public_key().algorithm() != KeyAlgorithm::Sm2 {
                return Err(format!(
                    "bank certificate {} ({}) holds a {:?} key; the cn-xml family verifies SM2 signatures",
                    i + 1,
                    cert.subject(),
                    cert.public_key().algorithm()
                ));
            }
        }
        let bank_certificates =
            CertificateSet::new(bank_certificates, sm2_id).map_err(|e| e.to_string())?;
        let signer = key
            .into_signer(sm2_id, SignatureFormat::Der)
            .map_err(|e| format!("the signing key cannot sign: {e}"))?;
        Ok(CnXmlSigning {
            signer: Arc::from(signer),
            bank_certificates,
        })
    }

    /// The header value for a request body: base64 of the DER signature.
    pub(crate) fn sign(&self, body: &[u8]) -> Result<String, String> {
        let signature = self
            .signer
            .sign(body)
            .map_err(|e| format!("signing failed: {e}"))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(signature))
    }

    /// Fails unless some bank certificate is valid at `now`: a request
    /// whose answer could not be verified is better not sent. The message
    /// gives every certificate's window.
    pub(crate) fn check_certificates_valid(&self, now: SystemTime) -> Result<(), String> {
        if self
            .bank_certificates
            .certificates()
            .iter()
            .any(|c| c.is_valid_at(now))
        {
            return Ok(());
        }
        Err(format!(
            "no bank certificate is valid now ({}); configure the bank's current certificate",
            self.windows()
        ))
    }

    /// Checks the answer's signature header over exactly `body` at `now`.
    /// The message says what failed (missing, not base64, does not verify
    /// under any certificate valid now), never the signature or a key.
    pub(crate) fn verify(
        &self,
        body: &[u8],
        header: Option<&[u8]>,
        now: SystemTime,
    ) -> Result<(), String> {
        let Some(header) = header else {
            return Err(format!(
                "the answer carries no {} header; expected the bank's signature",
                formats::cn_xml::SIGNATURE_HEADER
            ));
        };
        if header.len() > MAX_SIGNATURE_HEADER_BYTES {
            return Err(format!(
                "the {} header is {} bytes; expected at most {MAX_SIGNATURE_HEADER_BYTES}",
                formats::cn_xml::SIGNATURE_HEADER,
                header.len()
            ));
        }
        let signature = base64::engine::general_purpose::STANDARD
            .decode(header.trim_ascii())
            .map_err(|_| {
                format!(
                    "the {} header is not base64",
                    formats::cn_xml::SIGNATURE_HEADER
                )
            })?;
        self.bank_certificates
            .verify_at(body, &signature, now)
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "the answer's signature does not verify under the bank's certificates ({}): {e}",
                    self.windows()
                )
            })
    }

    /// Each certificate's subject and window, for messages.
    fn windows(&self) -> String {
        self.bank_certificates
            .certificates()
            .iter()
            .map(|c| {
                format!(
                    "{} valid {} to {}",
                    c.subject(),
                    crypto::cert::format_utc(c.not_before()),
                    crypto::cert::format_utc(c.not_after())
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// What a cn-xml connection adds to [`crate::ConnectionSettings`]: the
/// login's password (sent in `PASSWD`) and signing. Both optional; the
/// clock decides which bank certificates are valid.
#[derive(Clone)]
pub struct CnXmlOptions {
    pub password: Option<crypto::SecretString>,
    pub signing: Option<CnXmlSigning>,
    pub clock: Arc<dyn Clock>,
}

impl Default for CnXmlOptions {
    fn default() -> CnXmlOptions {
        CnXmlOptions {
            password: None,
            signing: None,
            clock: Arc::new(domain::SystemClock),
        }
    }
}

impl fmt::Debug for CnXmlOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CnXmlOptions")
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("signing", &self.signing)
            .finish_non_exhaustive()
    }
}
