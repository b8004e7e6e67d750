//! A local certificate authority for loopback mutual TLS: one CA, one
//! server certificate and one client certificate, generated together.
//!
//! The simulated host-to-host banks (`banksim`'s `iso20022` family) serve
//! HTTPS that requires a client certificate, as real bank gateways do; the
//! connector presents the client certificate and trusts only this CA, never
//! the system roots. Nothing here is meant for certificates that leave the
//! host: the CA key is thrown away after generation (a [`Pki`] keeps no CA
//! key), so nobody can issue more certificates under it later.
//!
//! Keys are ECDSA P-256 (`PKCS_ECDSA_P256_SHA256`), certificates are valid
//! from an hour ago (clock skew) for [`VALIDITY_DAYS`] days. Private keys are
//! PKCS#8 PEM held as [`SecretString`]s; on disk they are mode 0600, written
//! to a temporary file and renamed into place, so a reader never sees half a
//! key.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rand::rngs::OsRng;
use rand::RngCore as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
};

use crate::SecretString;

/// How long generated certificates are valid, in days (about two years).
pub const VALIDITY_DAYS: i64 = 730;
/// Certificates start to be valid this long before generation, in seconds,
/// so that a peer whose clock is a little behind accepts them.
pub const BACKDATE_S: i64 = 3_600;
/// Largest PEM file [`Pki::read_from_dir`] reads, in bytes.
pub const MAX_PEM_FILE_BYTES: u64 = 64 * 1024;
/// Most server names one [`Pki::generate`] accepts.
pub const MAX_SERVER_NAMES: usize = 16;
/// Longest client common name, in bytes.
pub const MAX_COMMON_NAME_BYTES: usize = 64;

/// File names inside the directory of [`Pki::write_to_dir`].
pub const CA_CERT_FILE: &str = "ca.pem";
pub const SERVER_CERT_FILE: &str = "server.pem";
pub const SERVER_KEY_FILE: &str = "server.key";
pub const CLIENT_CERT_FILE: &str = "client.pem";
pub const CLIENT_KEY_FILE: &str = "client.key";

/// What went wrong generating, writing or reading a PKI. Carries paths and
/// reasons, never key material.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// An argument cannot make a certificate (an empty or invalid name).
    #[error("invalid {what}: {reason}")]
    InvalidInput { what: &'static str, reason: String },
    /// The certificate library refused to generate or sign.
    #[error("could not generate the {what}: {reason}")]
    Generate { what: &'static str, reason: String },
    /// Reading, creating or renaming a file failed at the OS level.
    #[error("PKI file {path}: could not {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    /// A file exists but is not acceptable (size, permissions, content).
    #[error("PKI file {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

/// A local CA's certificate and the server and client certificates it
/// issued, with their private keys (PEM).
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca_cert_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: SecretString,
    pub client_cert_pem: String,
    pub client_key_pem: SecretString,
}

/// Where [`Pki::write_to_dir`] put each part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiFiles {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl PkiFiles {
    /// The paths of the five files inside `dir`.
    pub fn in_dir(dir: &Path) -> PkiFiles {
        PkiFiles {
            ca_cert: dir.join(CA_CERT_FILE),
            server_cert: dir.join(SERVER_CERT_FILE),
            server_key: dir.join(SERVER_KEY_FILE),
            client_cert: dir.join(CLIENT_CERT_FILE),
            client_key: dir.join(CLIENT_KEY_FILE),
        }
    }
}

fn generate_error(what: &'static str) -> impl FnOnce(rcgen::Error) -> PkiError {
    move |error| PkiError::Generate {
        what,
        reason: error.to_string(),
    }
}

/// When a certificate is valid: from `not_before` to `not_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: time::OffsetDateTime,
    pub not_after: time::OffsetDateTime,
}

impl Validity {
    /// From an hour ago (clock skew) for [`VALIDITY_DAYS`] days.
    pub fn standard() -> Validity {
        let now = time::OffsetDateTime::now_utc();
        Validity {
            not_before: now - time::Duration::seconds(BACKDATE_S),
            not_after: now + time::Duration::days(VALIDITY_DAYS),
        }
    }

    /// Ended `days_ago` days ago, after a year of validity: an expired
    /// certificate, for tests of what refuses one.
    pub fn expired(days_ago: i64) -> Validity {
        let now = time::OffsetDateTime::now_utc();
        let not_after = now - time::Duration::days(days_ago.max(1));
        Validity {
            not_before: not_after - time::Duration::days(365),
            not_after,
        }
    }
}

/// The validity window given, a random positive serial and a common name.
fn base_params(
    common_name: &str,
    what: &'static str,
    validity: Validity,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(generate_error(what))?;
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    let mut serial = [0u8; 16];
    OsRng.fill_bytes(&mut serial);
    // Positive and without a leading zero byte: a DER INTEGER as RFC 5280 wants.
    serial[0] = (serial[0] & 0x7f) | 0x40;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name.push(DnType::OrganizationName, "bankdirect local PKI");
    params.distinguished_name = name;
    Ok(params)
}

fn new_key(what: &'static str) -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate_error(what))
}

impl Pki {
    /// A new CA and, signed by it, a server certificate for `server_names`
    /// (DNS names such as `localhost`, or IP addresses such as `127.0.0.1`,
    /// each a subject alternative name) and a client certificate with the
    /// common name `client_common_name`.
    pub fn generate(server_names: &[String], client_common_name: &str) -> Result<Pki, PkiError> {
        Self::generate_with_validity(
            server_names,
            client_common_name,
            Validity::standard(),
            Validity::standard(),
        )
    }

    /// As [`Pki::generate`], with the server certificate valid in `server`
    /// and the client certificate in `client` (the CA spans both): expired
    /// certificates for the tests of what refuses them.
    pub fn generate_with_validity(
        server_names: &[String],
        client_common_name: &str,
        server: Validity,
        client: Validity,
    ) -> Result<Pki, PkiError> {
        if server_names.is_empty() || server_names.len() > MAX_SERVER_NAMES {
            return Err(PkiError::InvalidInput {
                what: "server names",
                reason: format!(
                    "{} given; expected 1..={MAX_SERVER_NAMES}",
                    server_names.len()
                ),
            });
        }
        if client_common_name.is_empty() || client_common_name.len() > MAX_COMMON_NAME_BYTES {
            return Err(PkiError::InvalidInput {
                what: "client common name",
                reason: format!(
                    "{} bytes long; expected 1..={MAX_COMMON_NAME_BYTES}",
                    client_common_name.len()
                ),
            });
        }
        let mut sans = Vec::with_capacity(server_names.len());
        for name in server_names {
            let san = match name.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => {
                    let valid = !name.is_empty()
                        && name.len() <= 253
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
                    if !valid {
                        return Err(PkiError::InvalidInput {
                            what: "server name",
                            reason: format!(
                                "{:?} is neither an IP address nor a DNS name",
                                name.chars().take(64).collect::<String>()
                            ),
                        });
                    }
                    SanType::DnsName(name.clone().try_into().map_err(generate_error(
                        "server certificate's subject alternative name",
                    ))?)
                }
            };
            sans.push(san);
        }

        let ca_key = new_key("CA key")?;
        let ca_validity = Validity {
            not_before: server.not_before.min(client.not_before),
            not_after: server.not_after.max(client.not_after),
        };
        let mut ca_params = base_params("bankdirect local CA", "CA certificate", ca_validity)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .map_err(generate_error("CA certificate"))?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = new_key("server key")?;
        let server_cn = server_names
            .first()
            .map(String::as_str)
            .unwrap_or("localhost");
        let mut server_params = base_params(server_cn, "server certificate", server)?;
        server_params.subject_alt_names = sans;
        server_params.is_ca = IsCa::ExplicitNoCa;
        server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server_params.use_authority_key_identifier_extension = true;
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .map_err(generate_error("server certificate"))?;

        let client_key = new_key("client key")?;
        let mut client_params = base_params(client_common_name, "client certificate", client)?;
        client_params.is_ca = IsCa::ExplicitNoCa;
        client_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        client_params.use_authority_key_identifier_extension = true;
        let client_cert = client_params
            .signed_by(&client_key, &issuer)
            .map_err(generate_error("client certificate"))?;

        Ok(Pki {
            ca_cert_pem: ca_cert.pem(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: SecretString::new(server_key.serialize_pem()),
            client_cert_pem: client_cert.pem(),
            client_key_pem: SecretString::new(client_key.serialize_pem()),
        })
    }

    /// The client certificate followed by its key, one PEM text: what
    /// `reqwest::Identity::from_pem` reads.
    pub fn client_identity_pem(&self) -> SecretString {
        let mut pem = String::with_capacity(
            self.client_cert_pem.len() + self.client_key_pem.expose_secret().len() + 1,
        );
        pem.push_str(&self.client_cert_pem);
        if !pem.ends_with('\n') {
            pem.push('\n');
        }
        pem.push_str(self.client_key_pem.expose_secret());
        SecretString::new(pem)
    }

    /// Writes the five files into `dir` (created 0700 if missing): the
    /// certificates 0644, the keys 0600. Each file is written to a temporary
    /// name, fsynced and renamed over the final name, so an existing PKI in
    /// `dir` is replaced file by file and a reader never sees a torn file.
    pub fn write_to_dir(&self, dir: &Path) -> Result<PkiFiles, PkiError> {
        create_private_dir(dir)?;
        let files = PkiFiles::in_dir(dir);
        write_atomic(&files.ca_cert, self.ca_cert_pem.as_bytes(), false)?;
        write_atomic(&files.server_cert, self.server_cert_pem.as_bytes(), false)?;
        write_atomic(
            &files.server_key,
            self.server_key_pem.expose_secret().as_bytes(),
            true,
        )?;
        write_atomic(&files.client_cert, self.client_cert_pem.as_bytes(), false)?;
        write_atomic(
            &files.client_key,
            self.client_key_pem.expose_secret().as_bytes(),
            true,
        )?;
        sync_dir(dir)?;
        Ok(files)
    }

    /// Reads what [`Pki::write_to_dir`] wrote. Keys that group or others
    /// may read are refused (as key files are everywhere in bankdirect);
    /// every file must be a PEM of the expected kind and at most
    /// [`MAX_PEM_FILE_BYTES`].
    pub fn read_from_dir(dir: &Path) -> Result<Pki, PkiError> {
        let files = PkiFiles::in_dir(dir);
        Ok(Pki {
            ca_cert_pem: read_pem(&files.ca_cert, false, "CERTIFICATE")?,
            server_cert_pem: read_pem(&files.server_cert, false, "CERTIFICATE")?,
            server_key_pem: SecretString::new(read_pem(&files.server_key, true, "PRIVATE KEY")?),
            client_cert_pem: read_pem(&files.client_cert, false, "CERTIFICATE")?,
            client_key_pem: SecretString::new(read_pem(&files.client_key, true, "PRIVATE KEY")?),
        })
    }
}

fn io_error<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> PkiError + 'a {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

fn file_error(path: &Path, reason: impl Into<String>) -> PkiError {
    PkiError::File {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn read_pem(path: &Path, private: bool, label: &str) -> Result<String, PkiError> {
    let file = File::open(path).map_err(io_error(path, "open"))?;
    let metadata = file
        .metadata()
        .map_err(io_error(path, "read metadata of"))?;
    if !metadata.is_file() {
        return Err(file_error(path, "is not a regular file"));
    }
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(file_error(
                path,
                format!("has mode {mode:o}; expected 600 (owner only): run chmod 600 on it"),
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_FILE_BYTES.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_error(path, "read"))?;
    if bytes.len() as u64 > MAX_PEM_FILE_BYTES {
        return Err(file_error(
            path,
            format!("is larger than {MAX_PEM_FILE_BYTES} bytes"),
        ));
    }
    let text = String::from_utf8(bytes).map_err(|_| file_error(path, "is not UTF-8 text"))?;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    match (text.find(&begin), text.find(&end)) {
        (Some(at), Some(until)) if at < until => Ok(text),
        _ => Err(file_error(path, format!("holds no PEM block {label:?}"))),
    }
}

fn create_private_dir(dir: &Path) -> Result<(), PkiError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(io_error(dir, "create directory"))
}

fn write_atomic(path: &Path, contents: &[u8], private: bool) -> Result<(), PkiError> {
    let file_name = path
        .file_name()
        .ok_or_else(|| file_error(path, "has no file name"))?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(
        ".{}.{:016x}.tmp",
        std::process::id(),
        OsRng.next_u64()
    ));
    let temp_path = dir.join(temp_name);
    let written = write_new(&temp_path, contents, private)
        .and_then(|()| fs::rename(&temp_path, path).map_err(io_error(path, "rename into")));
    if written.is_err() {
        // The temporary file may hold a key: never leave it behind.
        let _ = fs::remove_file(&temp_path);
    }
    written
}

fn write_new(path: &Path, contents: &[u8], private: bool) -> Result<(), PkiError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path).map_err(io_error(path, "create"))?;
    file.write_all(contents).map_err(io_error(path, "write"))?;
    file.sync_all().map_err(io_error(path, "fsync"))
}

fn sync_dir(dir: &Path) -> Result<(), PkiError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error(dir, "fsync directory"))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
    }

    #[test]
    fn generates_three_certificates_and_two_keys() {
        let pki = Pki::generate(&names(), "PARTNER01").unwrap();
        for cert in [&pki.ca_cert_pem, &pki.server_cert_pem, &pki.client_cert_pem] {
            assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
        }
        for key in [&pki.server_key_pem, &pki.client_key_pem] {
            assert!(key.expose_secret().contains("-----BEGIN PRIVATE KEY-----"));
        }
        assert_ne!(pki.server_cert_pem, pki.client_cert_pem);
        let debug = format!("{pki:?}");
        assert!(!debug.contains("PRIVATE KEY"), "{debug}");
        let identity = pki.client_identity_pem();
        assert!(identity.expose_secret().contains("CERTIFICATE"));
        assert!(identity.expose_secret().contains("PRIVATE KEY"));
        // Two generations are two different CAs.
        let other = Pki::generate(&names(), "PARTNER01").unwrap();
        assert_ne!(pki.ca_cert_pem, other.ca_cert_pem);
    }

    #[test]
    fn refuses_bad_names() {
        assert!(matches!(
            Pki::generate(&[], "X"),
            Err(PkiError::InvalidInput { .. })
        ));
        assert!(matches!(
            Pki::generate(&["bad name!".to_owned()], "X"),
            Err(PkiError::InvalidInput { .. })
        ));
        assert!(matches!(
            Pki::generate(&names(), ""),
            Err(PkiError::InvalidInput { .. })
        ));
    }

    #[test]
    fn writes_and_reads_back_with_private_keys() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("pki");
        let pki = Pki::generate(&names(), "PARTNER01").unwrap();
        let files = pki.write_to_dir(&target).unwrap();
        assert_eq!(files, PkiFiles::in_dir(&target));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&files.server_key), 0o600);
            assert_eq!(mode(&files.client_key), 0o600);
            assert_eq!(mode(&files.ca_cert), 0o644);
        }
        let back = Pki::read_from_dir(&target).unwrap();
        assert_eq!(back.ca_cert_pem, pki.ca_cert_pem);
        assert_eq!(back.server_cert_pem, pki.server_cert_pem);
        assert_eq!(
            back.client_key_pem.expose_secret(),
            pki.client_key_pem.expose_secret()
        );
        // Writing again replaces the files and leaves no temporary ones.
        let again = Pki::generate(&names(), "PARTNER02").unwrap();
        again.write_to_dir(&target).unwrap();
        assert_eq!(
            Pki::read_from_dir(&target).unwrap().client_cert_pem,
            again.client_cert_pem
        );
        assert_eq!(fs::read_dir(&target).unwrap().count(), 5);
    }

    #[cfg(unix)]
    #[test]
    fn refuses_a_readable_key_and_a_wrong_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::generate(&names(), "PARTNER01").unwrap();
        let files = pki.write_to_dir(dir.path()).unwrap();
        fs::set_permissions(&files.client_key, fs::Permissions::from_mode(0o644)).unwrap();
        let err = Pki::read_from_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
        fs::set_permissions(&files.client_key, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&files.ca_cert, "not a certificate").unwrap();
        let err = Pki::read_from_dir(dir.path()).unwrap_err();
        assert!(matches!(err, PkiError::File { .. }), "{err}");
    }
}
