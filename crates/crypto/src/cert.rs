//! X.509 certificates of banks: the public key, the validity window, who it
//! names, and a fingerprint to compare with what the bank sent out of band.
//!
//! Nothing here decides trust by chain: a bank's signing certificates are
//! pinned in its configuration, several at a time ([`CertificateSet`]), each
//! used only inside its validity window, so a rollover can be configured
//! before it happens.

use std::time::SystemTime;

use x509_cert::der::{Decode as _, Encode as _};

use crate::keys::{as_pem, pem_blocks, PublicKey, KEY_FILE_MAX_LEN_BYTES};
use crate::{hex, CryptoError};

/// Most certificates accepted in one set (one bank's rollovers).
pub const CERTIFICATE_SET_MAX_LEN: usize = 16;

/// A parsed certificate and what `inspect` shows of it.
#[derive(Debug, Clone)]
pub struct Certificate {
    der: Vec<u8>,
    subject: String,
    issuer: String,
    serial_hex: String,
    not_before: SystemTime,
    not_after: SystemTime,
    signature_algorithm_oid: String,
    public_key: PublicKey,
}

fn bad(reason: &'static str) -> CryptoError {
    CryptoError::Certificate { reason }
}

impl Certificate {
    /// Parses one DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, CryptoError> {
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|_| bad("not a DER X.509 certificate"))?;
        let tbs = &cert.tbs_certificate;
        let spki = tbs
            .subject_public_key_info
            .to_der()
            .map_err(|_| bad("its public key cannot be re-encoded"))?;
        let public_key = PublicKey::from_spki_der(&spki)?;
        Ok(Self {
            der: der.to_vec(),
            subject: tbs.subject.to_string(),
            issuer: tbs.issuer.to_string(),
            serial_hex: hex::encode_colons(tbs.serial_number.as_bytes()),
            not_before: tbs.validity.not_before.to_system_time(),
            not_after: tbs.validity.not_after.to_system_time(),
            signature_algorithm_oid: cert.signature_algorithm.oid.to_string(),
            public_key,
        })
    }

    /// Every certificate of a PEM text (a bundle), or one DER certificate.
    pub fn all_from_pem_or_der(bytes: &[u8]) -> Result<Vec<Self>, CryptoError> {
        if bytes.len() > KEY_FILE_MAX_LEN_BYTES {
            return Err(bad("the file is larger than 256 KiB"));
        }
        let Some(text) = as_pem(bytes) else {
            return Self::from_der(bytes).map(|c| vec![c]);
        };
        let certs: Vec<Self> = pem_blocks(text)?
            .iter()
            .filter(|b| b.label == "CERTIFICATE")
            .map(|b| Self::from_der(&b.der))
            .collect::<Result<_, _>>()?;
        if certs.is_empty() {
            return Err(bad("no CERTIFICATE block in the PEM text"));
        }
        Ok(certs)
    }

    pub fn subject(&self) -> &str {
        &self.subject
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn serial_hex(&self) -> &str {
        &self.serial_hex
    }

    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }

    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// The dotted OID of the algorithm the issuer signed it with.
    pub fn signature_algorithm_oid(&self) -> &str {
        &self.signature_algorithm_oid
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// SHA-256 over the DER certificate (what `openssl x509 -fingerprint
    /// -sha256` prints).
    pub fn sha256_fingerprint(&self) -> [u8; 32] {
        crate::hash::sha256(&self.der)
    }

    /// Whether `at` lies inside [not before, not after] (both inclusive).
    pub fn is_valid_at(&self, at: SystemTime) -> bool {
        self.not_before <= at && at <= self.not_after
    }
}

/// Formats a time as RFC 3339 UTC (`2026-06-30T00:00:00Z`), seconds precision.
pub fn format_utc(time: SystemTime) -> String {
    match x509_cert::der::DateTime::from_system_time(time) {
        Ok(t) => t.to_string(),
        Err(_) => "(outside 1970..9999)".to_owned(),
    }
}

/// The certificates one peer (a bank) may sign with, each inside its own
/// validity window: verification tries those valid at the given time.
#[derive(Debug, Clone)]
pub struct CertificateSet {
    certs: Vec<Certificate>,
    sm2_id: String,
}

impl CertificateSet {
    /// At most [`CERTIFICATE_SET_MAX_LEN`] certificates; SM2 ones verify
    /// under `sm2_id`.
    pub fn new(certs: Vec<Certificate>, sm2_id: &str) -> Result<Self, CryptoError> {
        if certs.is_empty() || certs.len() > CERTIFICATE_SET_MAX_LEN {
            return Err(bad("a set holds 1 to 16 certificates"));
        }
        Ok(Self {
            certs,
            sm2_id: sm2_id.to_owned(),
        })
    }

    pub fn certificates(&self) -> &[Certificate] {
        &self.certs
    }

    /// The certificate under which `signature` verifies over exactly
    /// `message` at time `at`. Certificates outside their window are not
    /// tried; if none is inside it, the error says so.
    pub fn verify_at(
        &self,
        message: &[u8],
        signature: &[u8],
        at: SystemTime,
    ) -> Result<&Certificate, CryptoError> {
        let mut last = bad("no certificate of the set is valid at this time");
        for cert in self.certs.iter().filter(|c| c.is_valid_at(at)) {
            match cert
                .public_key
                .verifier(&self.sm2_id)
                .and_then(|v| v.verify(message, signature))
            {
                Ok(()) => return Ok(cert),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

/// Makes test certificates with OpenSSL-independent tooling (rcgen), for
/// this crate's and the binary's tests.
#[cfg(test)]
pub(crate) mod testing {
    use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256};
    use time::OffsetDateTime;

    /// A self-signed P-256 certificate valid in [from, to] and its key PEM.
    pub(crate) fn p256_cert(
        cn: &str,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> (String, String) {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(vec!["bank.example".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.not_before = from;
        params.not_after = to;
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyAlgorithm, PrivateKey};
    use crate::sign::SignatureFormat;
    use std::time::Duration;

    fn at(unix_s: i64) -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp(unix_s).unwrap()
    }

    #[test]
    fn explains_a_certificate_and_verifies_inside_its_window_only() {
        let (old_pem, old_key) =
            testing::p256_cert("Bank signing 2025", at(1_735_689_600), at(1_767_225_599));
        let (new_pem, new_key) =
            testing::p256_cert("Bank signing 2026", at(1_764_547_200), at(1_798_761_599));
        let bundle = format!("{old_pem}{new_pem}");
        let certs = Certificate::all_from_pem_or_der(bundle.as_bytes()).unwrap();
        assert_eq!(certs.len(), 2);
        let cert = &certs[0];
        assert!(
            cert.subject().contains("CN=Bank signing 2025"),
            "{}",
            cert.subject()
        );
        assert_eq!(cert.public_key().algorithm(), KeyAlgorithm::P256);
        assert_eq!(format_utc(cert.not_before()), "2025-01-01T00:00:00Z");
        assert_eq!(cert.sha256_fingerprint(), crate::hash::sha256(cert.der()));

        let sign = |key_pem: &str| {
            PrivateKey::from_pem_or_der(key_pem.as_bytes())
                .unwrap()
                .into_signer("", SignatureFormat::Der)
                .unwrap()
                .sign(b"statement")
                .unwrap()
        };
        let set = CertificateSet::new(certs.clone(), crate::sm2_dsa::DEFAULT_SM2_ID).unwrap();
        let june_2025 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
        let june_2026 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_781_000_000);
        let old_sig = sign(&old_key);
        let new_sig = sign(&new_key);
        assert_eq!(
            set.verify_at(b"statement", &old_sig, june_2025)
                .unwrap()
                .subject(),
            cert.subject()
        );
        // The old certificate has expired by June 2026.
        assert!(set.verify_at(b"statement", &old_sig, june_2026).is_err());
        assert!(set.verify_at(b"statement", &new_sig, june_2026).is_ok());
        // The new one was not valid yet in June 2025.
        assert!(set.verify_at(b"statement", &new_sig, june_2025).is_err());
        assert!(set.verify_at(b"statement!", &new_sig, june_2026).is_err());
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000);
        let err = set.verify_at(b"statement", &new_sig, far).unwrap_err();
        assert!(err.to_string().contains("no certificate"), "{err}");
        assert!(CertificateSet::new(vec![], "").is_err());
        assert!(Certificate::all_from_pem_or_der(b"nope").is_err());
    }
}
