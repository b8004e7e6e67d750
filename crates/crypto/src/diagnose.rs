//! "The bank says the signature is invalid": finds which of the usual
//! mistakes, if any, makes a signature verify.
//!
//! Given a public key, the message and the signature as received, it
//! verifies every combination of the common mistakes and reports only the
//! combinations that actually verify, fewest mistakes first:
//!
//! - SM2 distinguishing id: the empty id (OpenSSL 3's default), GM/T 0009's
//!   `1234567812345678`, the GM/T 0003 example id, or ids the caller adds;
//! - SM2 over `SM3(M)` without `Z` (the ECDSA habit);
//! - the signer signed the digest (SM3 or SHA-256 of the message) as if it
//!   were the message;
//! - the message was re-serialised between signing and verifying: a trailing
//!   newline added or dropped, CRLF vs LF, GBK vs UTF-8;
//! - the signature is base64 or hex text rather than bytes, or DER with
//!   non-minimal integers (some SDKs), or raw r‖s where DER is the standard.
//!
//! Every check is a real verification under the given key: a reported
//! mistake is one that makes the signature verify, never a guess.

use std::fmt;

use base64::Engine as _;

use crate::keys::PublicKey;
use crate::sign::SignatureFormat;
use crate::sm2_dsa::{decode_signature, DEFAULT_SM2_ID};
use crate::{hash, hex, rs_der};

/// A digest function (SM3 or SHA-256).
type Digest = fn(&[u8]) -> [u8; 32];

/// The GM/T 0003 example id, seen in sample code copied into production.
pub const GMT_0003_EXAMPLE_ID: &str = "ALICE123@YAHOO.COM";

/// Most combinations reported.
pub const MATCHES_MAX_LEN: usize = 8;

/// One mistake between signing and verifying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mistake {
    /// The signer used this SM2 id, not the expected one.
    WrongSm2Id { signer_id: String },
    /// SM2 signed `SM3(M)` without the `Z` prefix of the id and key.
    Sm2WithoutZ,
    /// The signer signed the digest of the message instead of the message.
    SignedDigest { hash: &'static str },
    /// The signer's message had a trailing newline that ours lacks.
    SignerHadTrailingNewline,
    /// Our message has a trailing newline the signer's lacked.
    SignerHadNoTrailingNewline,
    /// The signer's message had LF line ends where ours has CRLF.
    SignerUsedLf,
    /// The signer's message had CRLF line ends where ours has LF.
    SignerUsedCrlf,
    /// The signer signed the GBK bytes of the text we have as UTF-8.
    SignerUsedGbk,
    /// The signer signed the UTF-8 bytes of the text we have as GBK.
    SignerUsedUtf8,
    /// The signature file holds base64 text, not signature bytes.
    SignatureIsBase64,
    /// The signature file holds hex text, not signature bytes.
    SignatureIsHex,
    /// DER with non-minimal integers (missing or extra 0x00), which strict
    /// verifiers (OpenSSL, this gateway) refuse.
    NonCanonicalDer,
}

impl fmt::Display for Mistake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongSm2Id { signer_id } if signer_id.is_empty() => f.write_str(
                "the signer used the EMPTY SM2 id (OpenSSL 3's default); pass -pkeyopt distid:1234567812345678 when signing, or verify with --id ''",
            ),
            Self::WrongSm2Id { signer_id } => write!(
                f,
                "the signer used SM2 id {signer_id:?}, not the expected one; agree on the id (GM/T 0009 default 1234567812345678) or verify with --id {signer_id:?}"
            ),
            Self::Sm2WithoutZ => f.write_str(
                "the signer signed SM3(message) without the Z prefix (ENTL||ID||curve||public key): an ECDSA-style SM2 signature, not GB/T 32918",
            ),
            Self::SignedDigest { hash } => write!(
                f,
                "the signer signed {hash}(message) as the message: it hashed first and then signed with a scheme that hashes again"
            ),
            Self::SignerHadTrailingNewline => {
                f.write_str("the signed message ended with a newline that the received message lacks")
            }
            Self::SignerHadNoTrailingNewline => f.write_str(
                "the received message ends with a newline the signed one did not have (added by an editor, echo or a transport)",
            ),
            Self::SignerUsedLf => {
                f.write_str("the signed message had LF line ends; the received one has CRLF")
            }
            Self::SignerUsedCrlf => {
                f.write_str("the signed message had CRLF line ends; the received one has LF")
            }
            Self::SignerUsedGbk => f.write_str(
                "the signer signed the GBK bytes of this text; the received message is UTF-8 (re-encoded after signing)",
            ),
            Self::SignerUsedUtf8 => f.write_str(
                "the signer signed the UTF-8 bytes of this text; the received message is GBK (re-encoded after signing)",
            ),
            Self::SignatureIsBase64 => {
                f.write_str("the signature file holds base64 text; decode it (base64 -d) before verifying")
            }
            Self::SignatureIsHex => {
                f.write_str("the signature file holds hex text; decode it (xxd -r -p) before verifying")
            }
            Self::NonCanonicalDer => f.write_str(
                "the signature is DER with non-minimal integers (a missing or extra 0x00 byte); strict verifiers refuse it",
            ),
        }
    }
}

/// A combination of mistakes that makes the signature verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub mistakes: Vec<Mistake>,
}

/// The outcome of [`diagnose`].
#[derive(Debug, Clone)]
pub struct Diagnosis {
    /// The signature verifies as given (under the expected SM2 id).
    pub verifies_as_given: bool,
    /// How the signature bytes look (e.g. `DER (71 bytes)`).
    pub signature_shape: String,
    /// A signature that verifies as raw r‖s while GM/T 0009, X.509 and
    /// OpenSSL expect DER: worth telling even when it verifies.
    pub raw_where_der_expected: bool,
    /// Combinations of mistakes that make it verify, fewest first.
    pub matches: Vec<Match>,
    /// How many combinations were verified.
    pub tried: usize,
}

fn describe_signature(public: &PublicKey, signature: &[u8]) -> String {
    match public {
        PublicKey::Sm2(_) | PublicKey::P256(_) => match decode_signature("signature", signature) {
            Ok((_, SignatureFormat::Der)) => {
                format!("DER (SEQUENCE of r and s, {} bytes)", signature.len())
            }
            Ok((_, SignatureFormat::Raw)) => "raw r||s (64 bytes)".to_owned(),
            Err(_) => format!("neither DER nor raw r||s ({} bytes)", signature.len()),
        },
        _ => format!("{} bytes", signature.len()),
    }
}

fn signature_candidates(signature: &[u8]) -> Vec<(Vec<u8>, Vec<Mistake>)> {
    let mut out = vec![(signature.to_vec(), vec![])];
    let mut texts = Vec::new();
    if let Ok(text) = std::str::from_utf8(signature) {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        if !compact.is_empty() {
            if let Some(bytes) = hex::decode(&compact) {
                texts.push((bytes, Mistake::SignatureIsHex));
            } else if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&compact) {
                texts.push((bytes, Mistake::SignatureIsBase64));
            } else if let Ok(bytes) =
                base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&compact)
            {
                texts.push((bytes, Mistake::SignatureIsBase64));
            }
        }
    }
    for (bytes, mistake) in texts {
        out.push((bytes, vec![mistake]));
    }
    let mut lenient = Vec::new();
    for (bytes, mistakes) in &out {
        if rs_der::decode(bytes).is_none() {
            if let Some(raw) = rs_der::decode_lenient(bytes) {
                let mut m = mistakes.clone();
                m.push(Mistake::NonCanonicalDer);
                lenient.push((raw.to_vec(), m));
            }
        }
    }
    out.extend(lenient);
    out
}

fn message_candidates(
    message: &[u8],
    digest: Digest,
    hash: &'static str,
) -> Vec<(Vec<u8>, Vec<Mistake>)> {
    let mut out: Vec<(Vec<u8>, Vec<Mistake>)> = vec![(message.to_vec(), vec![])];
    if let Some(stripped) = message
        .strip_suffix(b"\r\n")
        .or_else(|| message.strip_suffix(b"\n"))
    {
        out.push((stripped.to_vec(), vec![Mistake::SignerHadNoTrailingNewline]));
    } else {
        let mut with = message.to_vec();
        with.push(b'\n');
        out.push((with, vec![Mistake::SignerHadTrailingNewline]));
    }
    if message.windows(2).any(|w| w == b"\r\n") {
        out.push((
            replace(message, b"\r\n", b"\n"),
            vec![Mistake::SignerUsedLf],
        ));
    } else if message.contains(&b'\n') {
        out.push((
            replace(message, b"\n", b"\r\n"),
            vec![Mistake::SignerUsedCrlf],
        ));
    }
    match std::str::from_utf8(message) {
        Ok(text) if !text.is_ascii() => {
            let (gbk, _, unmappable) = encoding_rs::GBK.encode(text);
            if !unmappable {
                out.push((gbk.into_owned(), vec![Mistake::SignerUsedGbk]));
            }
        }
        Ok(_) => {}
        Err(_) => {
            let (text, had_errors) = encoding_rs::GBK.decode_without_bom_handling(message);
            if !had_errors {
                out.push((text.as_bytes().to_vec(), vec![Mistake::SignerUsedUtf8]));
            }
        }
    }
    let digests: Vec<_> = out
        .iter()
        .map(|(m, mistakes)| {
            let mut mistakes = mistakes.clone();
            mistakes.push(Mistake::SignedDigest { hash });
            (digest(m).to_vec(), mistakes)
        })
        .collect();
    out.extend(digests);
    out
}

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len() + haystack.len() / 8);
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

/// Verifies `signature` over `message` under `public` as given and, failing
/// that, under every combination of the usual mistakes. `expected_sm2_id`
/// is the id the verifier expects; `extra_sm2_ids` are further ids to try.
pub fn diagnose(
    public: &PublicKey,
    message: &[u8],
    signature: &[u8],
    expected_sm2_id: &str,
    extra_sm2_ids: &[&str],
) -> Diagnosis {
    let signature_shape = describe_signature(public, signature);
    let (digest, hash): (Digest, &'static str) = match public {
        PublicKey::Sm2(_) => (hash::sm3, "SM3"),
        _ => (hash::sha256, "SHA-256"),
    };
    let mut ids: Vec<(String, Vec<Mistake>)> = vec![(expected_sm2_id.to_owned(), vec![])];
    if matches!(public, PublicKey::Sm2(_)) {
        for id in ["", DEFAULT_SM2_ID, GMT_0003_EXAMPLE_ID]
            .iter()
            .chain(extra_sm2_ids)
        {
            if !ids.iter().any(|(known, _)| known == id) {
                ids.push((
                    (*id).to_owned(),
                    vec![Mistake::WrongSm2Id {
                        signer_id: (*id).to_owned(),
                    }],
                ));
            }
        }
    }
    let verifiers: Vec<_> = ids
        .into_iter()
        .filter_map(|(id, mistakes)| public.verifier(&id).ok().map(|v| (v, mistakes)))
        .collect();
    let verifies_as_given = verifiers
        .first()
        .is_some_and(|(v, _)| v.verify(message, signature).is_ok());
    let raw_where_der_expected = verifies_as_given
        && matches!(public, PublicKey::Sm2(_) | PublicKey::P256(_))
        && matches!(
            decode_signature("signature", signature),
            Ok((_, SignatureFormat::Raw))
        );
    let mut diagnosis = Diagnosis {
        verifies_as_given,
        signature_shape,
        raw_where_der_expected,
        matches: Vec::new(),
        tried: 1,
    };
    if verifies_as_given {
        return diagnosis;
    }
    let signatures = signature_candidates(signature);
    let messages = message_candidates(message, digest, hash);
    let mut found: Vec<Match> = Vec::new();
    for (sig, sig_mistakes) in &signatures {
        for (msg, msg_mistakes) in &messages {
            for (verifier, id_mistakes) in &verifiers {
                if sig_mistakes.is_empty() && msg_mistakes.is_empty() && id_mistakes.is_empty() {
                    continue;
                }
                diagnosis.tried += 1;
                if verifier.verify(msg, sig).is_ok() {
                    let mut mistakes = id_mistakes.clone();
                    mistakes.extend(msg_mistakes.iter().cloned());
                    mistakes.extend(sig_mistakes.iter().cloned());
                    found.push(Match { mistakes });
                }
            }
            // Z is independent of the id: one check per message and signature.
            if let PublicKey::Sm2(key) = public {
                if let Ok((raw, _)) = decode_signature("SM2", sig) {
                    diagnosis.tried += 1;
                    if key.verify_raw_without_z(msg, &raw) {
                        let mut mistakes = vec![Mistake::Sm2WithoutZ];
                        mistakes.extend(msg_mistakes.iter().cloned());
                        mistakes.extend(sig_mistakes.iter().cloned());
                        found.push(Match { mistakes });
                    }
                }
            }
        }
    }
    found.sort_by_key(|m| m.mistakes.len());
    found.truncate(MATCHES_MAX_LEN);
    diagnosis.matches = found;
    diagnosis
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyAlgorithm, PrivateKey};
    use crate::sm2_dsa::Sm2PrivateKey;
    use crate::Signer as _;

    fn sm2() -> (Sm2PrivateKey, PublicKey) {
        let key = Sm2PrivateKey::generate();
        let public = PublicKey::Sm2(key.public_key());
        (key, public)
    }

    fn only(d: &Diagnosis) -> Vec<Mistake> {
        assert!(!d.verifies_as_given);
        assert_eq!(d.matches.len(), 1, "{:?}", d.matches);
        d.matches[0].mistakes.clone()
    }

    #[test]
    fn a_good_signature_verifies_as_given_and_raw_is_pointed_out() {
        let (key, public) = sm2();
        let der = key.sign(b"<xml/>").unwrap();
        let d = diagnose(&public, b"<xml/>", &der, DEFAULT_SM2_ID, &[]);
        assert!(d.verifies_as_given && d.matches.is_empty() && !d.raw_where_der_expected);
        let raw = key
            .with_format(SignatureFormat::Raw)
            .sign(b"<xml/>")
            .unwrap();
        let d = diagnose(&public, b"<xml/>", &raw, DEFAULT_SM2_ID, &[]);
        assert!(d.verifies_as_given && d.raw_where_der_expected);
        assert_eq!(d.signature_shape, "raw r||s (64 bytes)");
    }

    #[test]
    fn finds_the_empty_and_custom_ids() {
        let (key, public) = sm2();
        let sig = key.clone().with_id("").unwrap().sign(b"m").unwrap();
        let d = diagnose(&public, b"m", &sig, DEFAULT_SM2_ID, &[]);
        assert_eq!(
            only(&d),
            vec![Mistake::WrongSm2Id {
                signer_id: String::new()
            }]
        );
        let sig = key.with_id("CMB0755").unwrap().sign(b"m").unwrap();
        assert!(diagnose(&public, b"m", &sig, DEFAULT_SM2_ID, &[])
            .matches
            .is_empty());
        let d = diagnose(&public, b"m", &sig, DEFAULT_SM2_ID, &["CMB0755"]);
        assert_eq!(
            only(&d),
            vec![Mistake::WrongSm2Id {
                signer_id: "CMB0755".into()
            }]
        );
    }

    #[test]
    fn finds_a_signature_over_the_digest_and_one_without_z() {
        let (key, public) = sm2();
        let sig = key.sign(&hash::sm3(b"body")).unwrap();
        let d = diagnose(&public, b"body", &sig, DEFAULT_SM2_ID, &[]);
        assert_eq!(only(&d), vec![Mistake::SignedDigest { hash: "SM3" }]);
        // Without Z: sign the prehash SM3(M) directly with the sm2 crate.
        use ::sm2::dsa::signature::hazmat::PrehashSigner as _;
        let signing = ::sm2::dsa::SigningKey::new(DEFAULT_SM2_ID, key.secret_key()).unwrap();
        let sig: ::sm2::dsa::Signature = signing.sign_prehash(&hash::sm3(b"body")).unwrap();
        let d = diagnose(&public, b"body", &sig.to_bytes(), DEFAULT_SM2_ID, &[]);
        assert_eq!(only(&d), vec![Mistake::Sm2WithoutZ]);
    }

    #[test]
    fn finds_reserialised_messages() {
        let (key, public) = sm2();
        let cases: [(&[u8], &[u8], Mistake); 4] = [
            (b"a\nb", b"a\nb\n", Mistake::SignerHadNoTrailingNewline),
            (b"a\nb\n", b"a\nb", Mistake::SignerHadTrailingNewline),
            (b"a\nb", b"a\r\nb", Mistake::SignerUsedLf),
            (b"a\r\nb", b"a\nb", Mistake::SignerUsedCrlf),
        ];
        for (signed, received, mistake) in cases {
            let sig = key.sign(signed).unwrap();
            let d = diagnose(&public, received, &sig, DEFAULT_SM2_ID, &[]);
            assert!(
                d.matches
                    .iter()
                    .any(|m| m.mistakes == vec![mistake.clone()]),
                "{mistake:?}: {:?}",
                d.matches
            );
        }
        let text = "付款 100.00 元";
        let (gbk, _, _) = encoding_rs::GBK.encode(text);
        let sig = key.sign(&gbk).unwrap();
        assert_eq!(
            only(&diagnose(
                &public,
                text.as_bytes(),
                &sig,
                DEFAULT_SM2_ID,
                &[]
            )),
            vec![Mistake::SignerUsedGbk]
        );
        let sig = key.sign(text.as_bytes()).unwrap();
        assert_eq!(
            only(&diagnose(&public, &gbk, &sig, DEFAULT_SM2_ID, &[])),
            vec![Mistake::SignerUsedUtf8]
        );
    }

    #[test]
    fn finds_text_signatures_and_sloppy_der_and_reports_nothing_for_a_wrong_key() {
        let (key, public) = sm2();
        let der = key.sign(b"m").unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        let d = diagnose(
            &public,
            b"m",
            format!("{b64}\n").as_bytes(),
            DEFAULT_SM2_ID,
            &[],
        );
        assert_eq!(only(&d), vec![Mistake::SignatureIsBase64]);
        let d = diagnose(
            &public,
            b"m",
            hex::encode(&der).as_bytes(),
            DEFAULT_SM2_ID,
            &[],
        );
        assert_eq!(only(&d), vec![Mistake::SignatureIsHex]);
        // s written with an extra leading zero byte.
        let raw = rs_der::decode(&der).unwrap();
        let (r, s) = raw.split_at(32);
        let mut sloppy = vec![0x30, 0, 0x02, 33, 0];
        sloppy.extend_from_slice(r);
        sloppy.extend_from_slice(&[0x02, 34, 0, 0]);
        sloppy.extend_from_slice(s);
        sloppy[1] = u8::try_from(sloppy.len() - 2).unwrap();
        let d = diagnose(&public, b"m", &sloppy, DEFAULT_SM2_ID, &[]);
        assert_eq!(only(&d), vec![Mistake::NonCanonicalDer]);
        let other = PublicKey::Sm2(Sm2PrivateKey::generate().public_key());
        let d = diagnose(&other, b"m", &der, DEFAULT_SM2_ID, &[]);
        assert!(!d.verifies_as_given && d.matches.is_empty() && d.tried > 10);
    }

    #[test]
    fn works_for_other_schemes_with_sha256() {
        let key = PrivateKey::generate(KeyAlgorithm::P256, 0).unwrap();
        let public = key.public_key();
        let signer = key.into_signer("", SignatureFormat::Der).unwrap();
        let sig = signer.sign(&hash::sha256(b"body")).unwrap();
        let d = diagnose(&public, b"body", &sig, DEFAULT_SM2_ID, &[]);
        assert_eq!(only(&d), vec![Mistake::SignedDigest { hash: "SHA-256" }]);
    }
}
