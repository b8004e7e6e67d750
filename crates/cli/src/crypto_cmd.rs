//! `bankdirect crypto …`: the operator's toolbox for bank signatures and
//! ciphers (SM2, SM3, SM4, RSA), and `inspect`, which explains a key or a
//! certificate and, given a message and a signature that do not verify,
//! which of the usual mistakes does make them verify.
//!
//! Every command works on files (`--key`, `--in`, `--out`, `--sig`) so the
//! exact bytes are signed and verified; nothing is re-encoded on the way.
//! Exit status: 0 done (or verified), 1 the signature does not verify,
//! 2 the command could not run (unreadable file, bad key, bad option).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand, ValueEnum};
use crypto::cipher::{self, Padding, SymmetricKey};
use crypto::diagnose::diagnose;
use crypto::sm2_dsa::DEFAULT_SM2_ID;
use crypto::{hex, Certificate, KeyAlgorithm, PrivateKey, PublicKey, SignatureFormat, Zeroizing};

/// Largest message, ciphertext or plaintext file read (bank messages are
/// far smaller; files this large are not what these tools are for).
const DATA_FILE_MAX_LEN_BYTES: u64 = 64 * 1024 * 1024;
/// Largest key, certificate or signature file read.
const KEY_FILE_MAX_LEN_BYTES: u64 = 256 * 1024;

#[derive(Debug, Subcommand)]
pub enum CryptoCommand {
    /// Sign a file with an SM2 private key (SM2-with-SM3, GB/T 32918).
    ///
    /// Signs exactly the bytes of --in under the distinguishing id --id
    /// (default 1234567812345678, GM/T 0009). Writes the signature as DER
    /// (what OpenSSL and GM/T 0009 expect) or, with --raw, as r||s (64
    /// bytes). Without --out the signature is printed in base64.
    #[command(after_help = "Example:\n  \
bankdirect crypto sm2-sign --key sm2.pem --in request.xml --out request.sig\n  \
openssl pkeyutl -verify -pubin -inkey sm2.pub.pem -rawin -digest sm3 \\\n    \
-pkeyopt distid:1234567812345678 -in request.xml -sigfile request.sig")]
    Sm2Sign(SignArgs),
    /// Verify an SM2 signature (DER or raw r||s) over a file.
    ///
    /// --key is a public key (SPKI PEM), a certificate, or a private key.
    /// Exits 0 when the signature verifies over exactly the bytes of --in,
    /// 1 when it does not (then try `bankdirect crypto inspect`).
    #[command(after_help = "Example:\n  \
bankdirect crypto sm2-verify --key bank-cert.pem --in response.xml --sig response.sig\n  \
bankdirect crypto sm2-verify --key bank.pub.pem --in response.xml --sig response.sig --id ''")]
    Sm2Verify(VerifyArgs),
    /// Print the SM3 digest (GB/T 32905) of a file in hex.
    ///
    /// With --out, also writes the 32 digest bytes there.
    #[command(after_help = "Example:\n  bankdirect crypto sm3 --in payroll.xml\n  \
(same as: openssl dgst -sm3 -r payroll.xml)")]
    Sm3(DigestArgs),
    /// Encrypt a file with SM4 (GB/T 32907): CBC or ECB with PKCS#7
    /// padding, or GCM (RFC 8998; output is ciphertext||16-byte tag).
    ///
    /// --key is a file holding the 16-byte key as 32 hex digits (or the 16
    /// bytes themselves). --iv is hex: 16 bytes for CBC, a 12-byte nonce for
    /// GCM; it is never generated or prepended for you.
    #[command(after_help = "Example:\n  \
bankdirect crypto sm4-encrypt --key sm4.key --mode cbc --iv 000102030405060708090a0b0c0d0e0f \\\n    \
--in file.txt --out file.enc\n  \
(same as: openssl enc -sm4-cbc -K $(cat sm4.key) -iv 0001…0f -in file.txt -out file.enc)")]
    Sm4Encrypt(Sm4Args),
    /// Decrypt a file encrypted with SM4 (CBC, ECB or GCM); the reverse of
    /// sm4-encrypt, with the same options.
    #[command(after_help = "Example:\n  \
bankdirect crypto sm4-decrypt --key sm4.key --mode cbc --iv 000102030405060708090a0b0c0d0e0f \\\n    \
--in file.enc --out file.txt")]
    Sm4Decrypt(Sm4Args),
    /// Sign a file with an RSA private key (RSA-SHA256, PKCS#1 v1.5).
    ///
    /// Without --out the signature is printed in base64.
    #[command(after_help = "Example:\n  \
bankdirect crypto rsa-sign --key rsa.pem --in request.xml --out request.sig\n  \
openssl dgst -sha256 -verify rsa.pub.pem -signature request.sig request.xml")]
    RsaSign(RsaSignArgs),
    /// Verify an RSA-SHA256 (PKCS#1 v1.5) signature over a file.
    ///
    /// Exits 0 when it verifies, 1 when it does not.
    #[command(after_help = "Example:\n  \
bankdirect crypto rsa-verify --key bank-cert.pem --in response.xml --sig response.sig")]
    RsaVerify(RsaVerifyArgs),
    /// Generate a private key (PKCS#8 PEM, mode 0600) and optionally its
    /// public key (SPKI PEM).
    ///
    /// Never overwrites an existing file.
    #[command(after_help = "Examples:\n  \
bankdirect crypto keygen --alg sm2 --out sm2.pem --pub sm2.pub.pem\n  \
bankdirect crypto keygen --alg rsa --bits 3072 --out rsa.pem --pub rsa.pub.pem")]
    Keygen(KeygenArgs),
    /// Explain a key or certificate; given --in and --sig, say whether the
    /// signature verifies and, if not, which usual mistake makes it verify.
    ///
    /// For a key: algorithm, curve, size, SPKI SHA-256 fingerprint. For a
    /// certificate: subject, issuer, serial, validity (and whether it is
    /// valid now), SHA-256 fingerprint, its key. With a message and a
    /// signature it tries: other SM2 ids (empty, 1234567812345678, the GM/T
    /// example id, each --try-id), SM2 without Z, a signature over SM3 or
    /// SHA-256 of the message, a trailing newline added or dropped, CRLF vs
    /// LF, GBK vs UTF-8, a base64 or hex signature file, sloppy DER; each is
    /// reported only if it makes the signature verify.
    #[command(after_help = "Examples:\n  \
bankdirect crypto inspect --cert bank-cert.pem\n  \
bankdirect crypto inspect --key bank.pub.pem --in response.xml --sig response.sig\n  \
bankdirect crypto inspect --key bank.pub.pem --in response.xml --sig response.sig --try-id CMB0755")]
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// Private key: PKCS#8 or SEC1 PEM (or DER).
    #[arg(long)]
    key: PathBuf,
    /// The file whose exact bytes are signed.
    #[arg(long = "in")]
    input: PathBuf,
    /// Where to write the signature (binary); base64 on stdout without it.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write r||s (64 bytes) instead of DER.
    #[arg(long)]
    raw: bool,
    /// SM2 distinguishing id (user id).
    #[arg(long, default_value = DEFAULT_SM2_ID)]
    id: String,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Public key (SPKI PEM), certificate, or private key.
    #[arg(long)]
    key: PathBuf,
    /// The file exactly as received.
    #[arg(long = "in")]
    input: PathBuf,
    /// The signature file (binary DER, or raw r||s of 64 bytes).
    #[arg(long)]
    sig: PathBuf,
    /// SM2 distinguishing id the signer used.
    #[arg(long, default_value = DEFAULT_SM2_ID)]
    id: String,
}

#[derive(Debug, Args)]
pub struct RsaSignArgs {
    /// RSA private key: PKCS#8 or PKCS#1 PEM (or DER).
    #[arg(long)]
    key: PathBuf,
    /// The file whose exact bytes are signed.
    #[arg(long = "in")]
    input: PathBuf,
    /// Where to write the signature (binary); base64 on stdout without it.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RsaVerifyArgs {
    /// RSA public key (SPKI or PKCS#1 PEM), certificate, or private key.
    #[arg(long)]
    key: PathBuf,
    /// The file exactly as received.
    #[arg(long = "in")]
    input: PathBuf,
    /// The signature file (binary, as long as the modulus).
    #[arg(long)]
    sig: PathBuf,
}

#[derive(Debug, Args)]
pub struct DigestArgs {
    /// The file to hash.
    #[arg(long = "in")]
    input: PathBuf,
    /// Also write the 32 digest bytes here.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Sm4Mode {
    Cbc,
    Ecb,
    Gcm,
}

#[derive(Debug, Args)]
pub struct Sm4Args {
    /// Key file: 32 hex digits (or the 16 key bytes).
    #[arg(long)]
    key: PathBuf,
    /// Input file.
    #[arg(long = "in")]
    input: PathBuf,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
    /// Block mode.
    #[arg(long, value_enum, default_value_t = Sm4Mode::Cbc)]
    mode: Sm4Mode,
    /// IV in hex: 16 bytes for CBC, a 12-byte nonce for GCM; not for ECB.
    #[arg(long)]
    iv: Option<String>,
    /// GCM only: a file of associated data (authenticated, not encrypted).
    #[arg(long)]
    aad: Option<PathBuf>,
    /// CBC/ECB without PKCS#7 padding (input must be whole 16-byte blocks).
    #[arg(long)]
    no_padding: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Alg {
    Sm2,
    Rsa,
    P256,
    Ed25519,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Key algorithm.
    #[arg(long, value_enum)]
    alg: Alg,
    /// Where to write the private key (PKCS#8 PEM, mode 0600).
    #[arg(long)]
    out: PathBuf,
    /// Where to write the public key (SPKI PEM).
    #[arg(long = "pub")]
    public: Option<PathBuf>,
    /// RSA modulus size: 2048, 3072 or 4096.
    #[arg(long, default_value_t = 2048)]
    bits: usize,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A private or public key (PEM or DER).
    #[arg(long, conflicts_with = "cert", required_unless_present = "cert")]
    key: Option<PathBuf>,
    /// A certificate or a PEM bundle of certificates.
    #[arg(long)]
    cert: Option<PathBuf>,
    /// The message as received (with --sig).
    #[arg(long = "in", requires = "sig")]
    input: Option<PathBuf>,
    /// The signature as received (with --in).
    #[arg(long, requires = "input")]
    sig: Option<PathBuf>,
    /// The SM2 id the verifier expects.
    #[arg(long, default_value = DEFAULT_SM2_ID)]
    id: String,
    /// Another SM2 id to try (repeatable), e.g. a customer number.
    #[arg(long = "try-id")]
    try_id: Vec<String>,
}

/// Runs a crypto command: 0 done, 1 a signature does not verify, 2 error.
pub fn run(command: CryptoCommand) -> ExitCode {
    match dispatch(command) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::NotVerified) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

enum Outcome {
    Done,
    NotVerified,
}

fn dispatch(command: CryptoCommand) -> anyhow::Result<Outcome> {
    match command {
        CryptoCommand::Sm2Sign(a) => sign(
            KeyAlgorithm::Sm2,
            &a.key,
            &a.input,
            a.out.as_deref(),
            &a.id,
            if a.raw {
                SignatureFormat::Raw
            } else {
                SignatureFormat::Der
            },
        ),
        CryptoCommand::RsaSign(a) => sign(
            KeyAlgorithm::Rsa,
            &a.key,
            &a.input,
            a.out.as_deref(),
            DEFAULT_SM2_ID,
            SignatureFormat::Der,
        ),
        CryptoCommand::Sm2Verify(a) => verify(KeyAlgorithm::Sm2, &a.key, &a.input, &a.sig, &a.id),
        CryptoCommand::RsaVerify(a) => {
            verify(KeyAlgorithm::Rsa, &a.key, &a.input, &a.sig, DEFAULT_SM2_ID)
        }
        CryptoCommand::Sm3(a) => sm3(&a),
        CryptoCommand::Sm4Encrypt(a) => sm4(&a, true),
        CryptoCommand::Sm4Decrypt(a) => sm4(&a, false),
        CryptoCommand::Keygen(a) => keygen(&a),
        CryptoCommand::Inspect(a) => inspect(&a),
    }
}

fn read_limited(path: &Path, max_len_bytes: u64, what: &str) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?
        .len();
    if len > max_len_bytes {
        bail!(
            "{what} {} is {len} bytes; at most {max_len_bytes} are read",
            path.display()
        );
    }
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    Ok(Zeroizing::new(bytes))
}

fn read_data(path: &Path, what: &str) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    read_limited(path, DATA_FILE_MAX_LEN_BYTES, what)
}

fn private_key(path: &Path) -> anyhow::Result<PrivateKey> {
    let bytes = read_limited(path, KEY_FILE_MAX_LEN_BYTES, "key file")?;
    PrivateKey::from_pem_or_der(&bytes)
        .with_context(|| format!("{} is not a usable private key", path.display()))
}

/// A public key from a public key, a certificate or a private key file.
fn public_key(path: &Path) -> anyhow::Result<PublicKey> {
    let bytes = read_limited(path, KEY_FILE_MAX_LEN_BYTES, "key file")?;
    PublicKey::from_pem_or_der(&bytes).with_context(|| {
        format!(
            "{} is not a public key, certificate or private key",
            path.display()
        )
    })
}

fn expect_algorithm(found: KeyAlgorithm, wanted: KeyAlgorithm, path: &Path) -> anyhow::Result<()> {
    if found != wanted {
        bail!(
            "{} is a {:?} key, not {:?}; use the command for its algorithm (see `bankdirect crypto inspect --key {}`)",
            path.display(),
            found,
            wanted,
            path.display()
        );
    }
    Ok(())
}

fn sign(
    algorithm: KeyAlgorithm,
    key: &Path,
    input: &Path,
    out: Option<&Path>,
    id: &str,
    format: SignatureFormat,
) -> anyhow::Result<Outcome> {
    let key_value = private_key(key)?;
    expect_algorithm(key_value.algorithm(), algorithm, key)?;
    let message = read_data(input, "input")?;
    let signer = key_value
        .into_signer(id, format)
        .context("cannot use the key")?;
    let signature = signer.sign(&message).context("signing failed")?;
    match out {
        Some(out) => {
            std::fs::write(out, &signature)
                .with_context(|| format!("cannot write {}", out.display()))?;
            eprintln!(
                "{}: {} signature of {} bytes written to {}",
                signer.algorithm(),
                shape(algorithm, format),
                signature.len(),
                out.display()
            );
        }
        None => println!("{}", hex::base64_encode(&signature)),
    }
    Ok(Outcome::Done)
}

fn shape(algorithm: KeyAlgorithm, format: SignatureFormat) -> &'static str {
    match (algorithm, format) {
        (KeyAlgorithm::Sm2 | KeyAlgorithm::P256, SignatureFormat::Der) => "DER",
        (KeyAlgorithm::Sm2 | KeyAlgorithm::P256, SignatureFormat::Raw) => "raw r||s",
        _ => "PKCS#1 v1.5",
    }
}

fn verify(
    algorithm: KeyAlgorithm,
    key: &Path,
    input: &Path,
    sig: &Path,
    id: &str,
) -> anyhow::Result<Outcome> {
    let public = public_key(key)?;
    expect_algorithm(public.algorithm(), algorithm, key)?;
    let message = read_data(input, "input")?;
    let signature = read_limited(sig, KEY_FILE_MAX_LEN_BYTES, "signature file")?;
    let verifier = public.verifier(id).context("cannot use the key")?;
    match verifier.verify(&message, &signature) {
        Ok(()) => {
            println!(
                "OK: the {} signature verifies over the {} bytes of {}",
                verifier.algorithm(),
                message.len(),
                input.display()
            );
            Ok(Outcome::Done)
        }
        Err(e) => {
            let id_note = if algorithm == KeyAlgorithm::Sm2 {
                format!(" under SM2 id {id:?}")
            } else {
                String::new()
            };
            eprintln!(
                "FAILED: {e}{id_note} over the {} bytes of {}.\nTo see which usual mistake it matches: bankdirect crypto inspect --key {} --in {} --sig {}",
                message.len(),
                input.display(),
                key.display(),
                input.display(),
                sig.display()
            );
            Ok(Outcome::NotVerified)
        }
    }
}

fn sm3(args: &DigestArgs) -> anyhow::Result<Outcome> {
    let data = read_data(&args.input, "input")?;
    let digest = crypto::hash::sm3(&data);
    println!("{}", hex::encode(&digest));
    if let Some(out) = &args.out {
        std::fs::write(out, digest).with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok(Outcome::Done)
}

fn symmetric_key(path: &Path) -> anyhow::Result<SymmetricKey> {
    let bytes = read_limited(path, 1024, "key file")?;
    let key = match std::str::from_utf8(&bytes)
        .ok()
        .and_then(|t| hex::decode(t.trim()))
    {
        Some(decoded) => SymmetricKey::from_bytes(&Zeroizing::new(decoded)),
        None => SymmetricKey::from_bytes(&bytes),
    };
    if key.len() != cipher::SM4_KEY_LEN_BYTES {
        bail!(
            "{}: an SM4 key is 16 bytes (32 hex digits); this file holds {} bytes",
            path.display(),
            key.len()
        );
    }
    Ok(key)
}

fn sm4(args: &Sm4Args, encrypt: bool) -> anyhow::Result<Outcome> {
    let key = symmetric_key(&args.key)?;
    let input = read_data(&args.input, "input")?;
    let padding = if args.no_padding {
        Padding::None
    } else {
        Padding::Pkcs7
    };
    let iv = match (&args.iv, args.mode) {
        (Some(_), Sm4Mode::Ecb) => bail!("--iv: ECB takes no IV; drop --iv or use --mode cbc"),
        (None, Sm4Mode::Ecb) => Vec::new(),
        (None, Sm4Mode::Cbc) => bail!("--iv: CBC needs a 16-byte IV in hex (32 digits), e.g. --iv 000102030405060708090a0b0c0d0e0f; agree with the bank where it travels"),
        (None, Sm4Mode::Gcm) => bail!("--iv: GCM needs a 12-byte nonce in hex (24 digits), unique per key"),
        (Some(text), _) => hex::decode(text).context("--iv: expected hex digits")?,
    };
    if args.aad.is_some() && args.mode != Sm4Mode::Gcm {
        bail!("--aad is for --mode gcm only");
    }
    if args.no_padding && args.mode == Sm4Mode::Gcm {
        bail!("--no-padding is for CBC and ECB; GCM has no padding");
    }
    let aad = match &args.aad {
        Some(path) => read_data(path, "associated data")?,
        None => Zeroizing::new(Vec::new()),
    };
    let output: Zeroizing<Vec<u8>> = match (args.mode, encrypt) {
        (Sm4Mode::Cbc, true) => {
            Zeroizing::new(cipher::sm4_cbc_encrypt(&key, &iv, &input, padding)?)
        }
        (Sm4Mode::Cbc, false) => cipher::sm4_cbc_decrypt(&key, &iv, &input, padding)?,
        (Sm4Mode::Ecb, true) => Zeroizing::new(cipher::sm4_ecb_encrypt(&key, &input, padding)?),
        (Sm4Mode::Ecb, false) => cipher::sm4_ecb_decrypt(&key, &input, padding)?,
        (Sm4Mode::Gcm, true) => Zeroizing::new(cipher::sm4_gcm_seal(&key, &iv, &aad, &input)?),
        (Sm4Mode::Gcm, false) => cipher::sm4_gcm_open(&key, &iv, &aad, &input)?,
    };
    std::fs::write(&args.out, &*output)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!(
        "SM4-{:?}: {} bytes {} to {}",
        args.mode,
        output.len(),
        if encrypt { "encrypted" } else { "decrypted" },
        args.out.display()
    );
    Ok(Outcome::Done)
}

/// Creates `path` with `contents`, mode 0600 on Unix, never replacing a file.
fn write_new(path: &Path, contents: &[u8], private: bool) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path).with_context(|| {
        format!(
            "cannot create {} (an existing file is never overwritten)",
            path.display()
        )
    })?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn keygen(args: &KeygenArgs) -> anyhow::Result<Outcome> {
    let algorithm = match args.alg {
        Alg::Sm2 => KeyAlgorithm::Sm2,
        Alg::Rsa => KeyAlgorithm::Rsa,
        Alg::P256 => KeyAlgorithm::P256,
        Alg::Ed25519 => KeyAlgorithm::Ed25519,
    };
    if let Some(public) = &args.public {
        if public.exists() {
            bail!("{} exists; it is never overwritten", public.display());
        }
    }
    let key = PrivateKey::generate(algorithm, args.bits).context("key generation failed")?;
    let pem = key.to_pkcs8_pem()?;
    write_new(&args.out, pem.expose_secret().as_bytes(), true)?;
    let public = key.public_key();
    eprintln!(
        "{}: private key (PKCS#8 PEM, 0600) written to {}",
        public.info(),
        args.out.display()
    );
    if let Some(path) = &args.public {
        write_new(path, public.to_spki_pem()?.as_bytes(), false)?;
        eprintln!("public key (SPKI PEM) written to {}", path.display());
    }
    Ok(Outcome::Done)
}

fn describe_key(public: &PublicKey, private: bool) -> anyhow::Result<()> {
    let info = public.info();
    println!(
        "kind:              {}",
        if private { "private key" } else { "public key" }
    );
    println!("algorithm:         {}", info.family);
    if let Some(curve) = info.curve {
        println!("curve:             {curve}");
    }
    println!("key size:          {} bits", info.bits);
    println!("signature scheme:  {}", info.algorithm.signature_scheme());
    if info.algorithm == KeyAlgorithm::Sm2 {
        println!(
            "SM2 id:            the signer's id enters the hash; GM/T 0009 default {DEFAULT_SM2_ID}, OpenSSL 3 default empty"
        );
    }
    if info.algorithm == KeyAlgorithm::Rsa && info.bits < 2048 {
        println!("warning:           RSA below 2048 bits is weak; ask the bank for a new key");
    }
    println!(
        "SPKI SHA-256:      {}",
        hex::encode_colons(&public.spki_sha256()?)
    );
    Ok(())
}

fn describe_certificate(cert: &Certificate, now: SystemTime) -> anyhow::Result<()> {
    println!("subject:           {}", cert.subject());
    println!("issuer:            {}", cert.issuer());
    println!("serial:            {}", cert.serial_hex());
    println!(
        "valid from:        {}",
        crypto::cert::format_utc(cert.not_before())
    );
    println!(
        "valid until:       {}",
        crypto::cert::format_utc(cert.not_after())
    );
    let status = if now < cert.not_before() {
        "NOT YET VALID"
    } else if now > cert.not_after() {
        "EXPIRED"
    } else {
        "valid"
    };
    println!("now:               {status}");
    println!("signed with (OID): {}", cert.signature_algorithm_oid());
    println!(
        "SHA-256 fingerprint: {}",
        hex::encode_colons(&cert.sha256_fingerprint())
    );
    describe_key(cert.public_key(), false)
}

fn inspect(args: &InspectArgs) -> anyhow::Result<Outcome> {
    let now = SystemTime::now();
    let public = match (&args.key, &args.cert) {
        (_, Some(path)) => {
            let bytes = read_limited(path, KEY_FILE_MAX_LEN_BYTES, "certificate file")?;
            let certs = Certificate::all_from_pem_or_der(&bytes)
                .with_context(|| format!("{} is not a certificate", path.display()))?;
            for (i, cert) in certs.iter().enumerate() {
                if certs.len() > 1 {
                    println!("--- certificate {} of {}", i + 1, certs.len());
                }
                describe_certificate(cert, now)?;
            }
            match certs.first() {
                Some(c) => c.public_key().clone(),
                None => bail!("{} holds no certificate", path.display()),
            }
        }
        (Some(path), None) => {
            let bytes = read_limited(path, KEY_FILE_MAX_LEN_BYTES, "key file")?;
            match PrivateKey::from_pem_or_der(&bytes) {
                Ok(private) => {
                    let public = private.public_key();
                    describe_key(&public, true)?;
                    public
                }
                Err(_) => {
                    let public = PublicKey::from_pem_or_der(&bytes).with_context(|| {
                        format!("{} is not a key or certificate", path.display())
                    })?;
                    describe_key(&public, false)?;
                    public
                }
            }
        }
        (None, None) => bail!("give --key or --cert"),
    };
    let (Some(input), Some(sig)) = (&args.input, &args.sig) else {
        return Ok(Outcome::Done);
    };
    let message = read_data(input, "input")?;
    let signature = read_limited(sig, KEY_FILE_MAX_LEN_BYTES, "signature file")?;
    let extra: Vec<&str> = args.try_id.iter().map(String::as_str).collect();
    let d = diagnose(&public, &message, &signature, &args.id, &extra);
    println!();
    println!("message:           {} bytes", message.len());
    println!("signature:         {}", d.signature_shape);
    if d.verifies_as_given {
        println!("result:            VERIFIES as given");
        if d.raw_where_der_expected {
            println!("note:              the signature is raw r||s; GM/T 0009, X.509 and OpenSSL expect DER, so peers other than this gateway may refuse it");
        }
        return Ok(Outcome::Done);
    }
    println!(
        "result:            does NOT verify as given ({} combinations of usual mistakes tried)",
        d.tried
    );
    if d.matches.is_empty() {
        println!("diagnosis:         no usual mistake makes it verify: most likely another key (compare the SPKI SHA-256 above with the bank's), or the message was changed beyond re-serialisation");
    } else {
        println!("diagnosis:         it verifies if:");
        for m in &d.matches {
            let text: Vec<String> = m.mistakes.iter().map(ToString::to_string).collect();
            println!("  - {}", text.join("; AND "));
        }
    }
    Ok(Outcome::NotVerified)
}
