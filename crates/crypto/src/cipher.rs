//! Symmetric ciphers for bank payloads: SM4 (GB/T 32907) in CBC and ECB
//! with PKCS#7 or no padding and in GCM (RFC 8998), and AES-256-GCM.
//!
//! Keys are [`SymmetricKey`]s (wiped on drop, never printed). IVs and nonces
//! are always given by the caller: banks fix where the IV travels, so this
//! module never invents or prepends one. GCM output is ciphertext‖tag (a
//! 16-byte tag), as OpenSSL, Java and Go write it.

use std::fmt;

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead as _, Payload};
use aes_gcm::{Aes256Gcm, AesGcm};
use cbc::cipher::block_padding::{NoPadding, Pkcs7};
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyInit, KeyIvInit as _};
use rand::rngs::OsRng;
use rand::RngCore as _;
use sm4::Sm4;
use zeroize::Zeroizing;

use crate::CryptoError;

/// SM4's key and block length.
pub const SM4_KEY_LEN_BYTES: usize = 16;
/// Block length of SM4 and AES, and so the CBC IV length.
pub const BLOCK_LEN_BYTES: usize = 16;
/// AES-256's key length.
pub const AES256_KEY_LEN_BYTES: usize = 32;
/// The GCM nonce length accepted (96 bits, the only one RFC 8998 and most
/// peers use).
pub const GCM_NONCE_LEN_BYTES: usize = 12;
/// The GCM tag length written and expected.
pub const GCM_TAG_LEN_BYTES: usize = 16;

pub const SM4_CBC: &str = "SM4-CBC";
pub const SM4_ECB: &str = "SM4-ECB";
pub const SM4_GCM: &str = "SM4-GCM";
pub const AES_256_GCM: &str = "AES-256-GCM";

type Sm4Gcm = AesGcm<Sm4, U12>;

/// Padding of the block modes (CBC, ECB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Padding {
    /// PKCS#7 (as OpenSSL `enc` and Java's `PKCS5Padding`).
    #[default]
    Pkcs7,
    /// None: the input must be a whole number of blocks.
    None,
}

/// A symmetric key (SM4: 16 bytes, AES-256: 32 bytes). Wiped on drop;
/// prints as `[redacted]`.
#[derive(Clone)]
pub struct SymmetricKey(Zeroizing<Vec<u8>>);

impl SymmetricKey {
    /// The key made of `bytes`; its length is checked where it is used.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(Zeroizing::new(bytes.to_vec()))
    }

    /// A new random key of `len_bytes` from the OS.
    pub fn generate(len_bytes: usize) -> Self {
        let mut bytes = Zeroizing::new(vec![0u8; len_bytes]);
        OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The key bytes, for writing a key file. Named loudly on purpose.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    fn sm4(&self, algorithm: &'static str) -> Result<&[u8], CryptoError> {
        if self.0.len() == SM4_KEY_LEN_BYTES {
            Ok(&self.0)
        } else {
            Err(CryptoError::Cipher {
                algorithm,
                reason: "the key must be 16 bytes",
            })
        }
    }
}

impl fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SymmetricKey([redacted])")
    }
}

fn iv_of(algorithm: &'static str, iv: &[u8]) -> Result<(), CryptoError> {
    if iv.len() == BLOCK_LEN_BYTES {
        Ok(())
    } else {
        Err(CryptoError::Cipher {
            algorithm,
            reason: "the IV must be 16 bytes",
        })
    }
}

fn whole_blocks(algorithm: &'static str, data: &[u8]) -> Result<(), CryptoError> {
    if data.len() % BLOCK_LEN_BYTES == 0 {
        Ok(())
    } else {
        Err(CryptoError::Cipher {
            algorithm,
            reason: "without padding the input must be a multiple of 16 bytes",
        })
    }
}

const BAD_PADDING: &str =
    "bad padding after decryption (wrong key or IV, wrong mode, or not PKCS#7 padded)";

/// A block mode's key or IV refused by the cipher.
fn bad_key(algorithm: &'static str, reason: &'static str) -> CryptoError {
    CryptoError::Cipher { algorithm, reason }
}

/// Encrypts with a keyed block mode (CBC or ECB): PKCS#7, or whole blocks only.
fn encrypt_blocks<C: BlockEncryptMut>(
    algorithm: &'static str,
    cipher: C,
    plaintext: &[u8],
    padding: Padding,
) -> Result<Vec<u8>, CryptoError> {
    Ok(match padding {
        Padding::Pkcs7 => cipher.encrypt_padded_vec_mut::<Pkcs7>(plaintext),
        Padding::None => {
            whole_blocks(algorithm, plaintext)?;
            cipher.encrypt_padded_vec_mut::<NoPadding>(plaintext)
        }
    })
}

/// Decrypts with a keyed block mode (CBC or ECB); a padding that does not
/// check out is [`BAD_PADDING`].
fn decrypt_blocks<C: BlockDecryptMut>(
    algorithm: &'static str,
    cipher: C,
    ciphertext: &[u8],
    padding: Padding,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    whole_blocks(algorithm, ciphertext)?;
    let plain = match padding {
        Padding::Pkcs7 => cipher.decrypt_padded_vec_mut::<Pkcs7>(ciphertext),
        Padding::None => cipher.decrypt_padded_vec_mut::<NoPadding>(ciphertext),
    };
    plain
        .map(Zeroizing::new)
        .map_err(|_| bad_key(algorithm, BAD_PADDING))
}

pub fn sm4_cbc_encrypt(
    key: &SymmetricKey,
    iv: &[u8],
    plaintext: &[u8],
    padding: Padding,
) -> Result<Vec<u8>, CryptoError> {
    iv_of(SM4_CBC, iv)?;
    let cipher = cbc::Encryptor::<Sm4>::new_from_slices(key.sm4(SM4_CBC)?, iv)
        .map_err(|_| bad_key(SM4_CBC, "bad key or IV length"))?;
    encrypt_blocks(SM4_CBC, cipher, plaintext, padding)
}

pub fn sm4_cbc_decrypt(
    key: &SymmetricKey,
    iv: &[u8],
    ciphertext: &[u8],
    padding: Padding,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    iv_of(SM4_CBC, iv)?;
    let cipher = cbc::Decryptor::<Sm4>::new_from_slices(key.sm4(SM4_CBC)?, iv)
        .map_err(|_| bad_key(SM4_CBC, "bad key or IV length"))?;
    decrypt_blocks(SM4_CBC, cipher, ciphertext, padding)
}

pub fn sm4_ecb_encrypt(
    key: &SymmetricKey,
    plaintext: &[u8],
    padding: Padding,
) -> Result<Vec<u8>, CryptoError> {
    let cipher = ecb::Encryptor::<Sm4>::new_from_slice(key.sm4(SM4_ECB)?)
        .map_err(|_| bad_key(SM4_ECB, "bad key length"))?;
    encrypt_blocks(SM4_ECB, cipher, plaintext, padding)
}

pub fn sm4_ecb_decrypt(
    key: &SymmetricKey,
    ciphertext: &[u8],
    padding: Padding,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let cipher = ecb::Decryptor::<Sm4>::new_from_slice(key.sm4(SM4_ECB)?)
        .map_err(|_| bad_key(SM4_ECB, "bad key length"))?;
    decrypt_blocks(SM4_ECB, cipher, ciphertext, padding)
}

fn nonce_of(algorithm: &'static str, nonce: &[u8]) -> Result<(), CryptoError> {
    if nonce.len() == GCM_NONCE_LEN_BYTES {
        Ok(())
    } else {
        Err(CryptoError::Cipher {
            algorithm,
            reason: "the nonce must be 12 bytes",
        })
    }
}

const NOT_AUTHENTIC: &str =
    "the ciphertext does not authenticate (wrong key, nonce or associated data, or tampered)";

/// SM4-GCM (RFC 8998): ciphertext‖tag of `plaintext` with `aad`.
pub fn sm4_gcm_seal(
    key: &SymmetricKey,
    nonce: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    nonce_of(SM4_GCM, nonce)?;
    let cipher = Sm4Gcm::new_from_slice(key.sm4(SM4_GCM)?).map_err(|_| CryptoError::Cipher {
        algorithm: SM4_GCM,
        reason: "bad key length",
    })?;
    cipher
        .encrypt(
            nonce.into(),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| CryptoError::Cipher {
            algorithm: SM4_GCM,
            reason: "the plaintext is too long",
        })
}

/// Opens SM4-GCM ciphertext‖tag; fails unless it authenticates.
pub fn sm4_gcm_open(
    key: &SymmetricKey,
    nonce: &[u8],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    nonce_of(SM4_GCM, nonce)?;
    let cipher = Sm4Gcm::new_from_slice(key.sm4(SM4_GCM)?).map_err(|_| CryptoError::Cipher {
        algorithm: SM4_GCM,
        reason: "bad key length",
    })?;
    cipher
        .decrypt(nonce.into(), Payload { msg: sealed, aad })
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Cipher {
            algorithm: SM4_GCM,
            reason: NOT_AUTHENTIC,
        })
}

fn aes256(key: &SymmetricKey) -> Result<Aes256Gcm, CryptoError> {
    Aes256Gcm::new_from_slice(key.expose_secret()).map_err(|_| CryptoError::Cipher {
        algorithm: AES_256_GCM,
        reason: "the key must be 32 bytes",
    })
}

/// AES-256-GCM: ciphertext‖tag of `plaintext` with `aad`.
pub fn aes256_gcm_seal(
    key: &SymmetricKey,
    nonce: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    nonce_of(AES_256_GCM, nonce)?;
    aes256(key)?
        .encrypt(
            nonce.into(),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| CryptoError::Cipher {
            algorithm: AES_256_GCM,
            reason: "the plaintext is too long",
        })
}

/// Opens AES-256-GCM ciphertext‖tag; fails unless it authenticates.
pub fn aes256_gcm_open(
    key: &SymmetricKey,
    nonce: &[u8],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    nonce_of(AES_256_GCM, nonce)?;
    aes256(key)?
        .decrypt(nonce.into(), Payload { msg: sealed, aad })
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Cipher {
            algorithm: AES_256_GCM,
            reason: NOT_AUTHENTIC,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex;

    fn h(text: &str) -> Vec<u8> {
        hex::decode(text).unwrap()
    }

    // GB/T 32907-2016 Appendix A, example 1: one block, key = plaintext.
    const GBT_KEY: &str = "0123456789abcdeffedcba9876543210";
    const GBT_CIPHERTEXT: &str = "681edf34d206965e86b3e94f536e4246";

    #[test]
    fn sm4_gbt32907_example_1() {
        let key = SymmetricKey::from_bytes(&h(GBT_KEY));
        let ct = sm4_ecb_encrypt(&key, &h(GBT_KEY), Padding::None).unwrap();
        assert_eq!(hex::encode(&ct), GBT_CIPHERTEXT);
        let back = sm4_ecb_decrypt(&key, &ct, Padding::None).unwrap();
        assert_eq!(hex::encode(&back), GBT_KEY);
        // CBC of one block with a zero IV is the same single block.
        let ct = sm4_cbc_encrypt(&key, &[0u8; 16], &h(GBT_KEY), Padding::None).unwrap();
        assert_eq!(hex::encode(&ct), GBT_CIPHERTEXT);
    }

    #[test]
    fn sm4_gbt32907_example_2_one_million_encryptions() {
        // Same key, the plaintext encrypted 1,000,000 times.
        let key = SymmetricKey::from_bytes(&h(GBT_KEY));
        let mut block = h(GBT_KEY);
        for _ in 0..1_000_000 {
            block = sm4_ecb_encrypt(&key, &block, Padding::None).unwrap();
        }
        assert_eq!(hex::encode(&block), "595298c7c6fd271f0402f804c33d3f66");
    }

    // RFC 8998 Appendix A.1: SM4-GCM (OpenSSL 3.0 has no SM4-GCM to compare with).
    #[test]
    fn sm4_gcm_rfc8998_a1() {
        let key = SymmetricKey::from_bytes(&h("0123456789ABCDEFFEDCBA9876543210"));
        let nonce = h("00001234567800000000ABCD");
        let aad = h("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2");
        let plaintext = h("AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBB\
                           CCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD\
                           EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFF\
                           EEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA");
        let expected_ct = "17F399F08C67D5EE19D0DC9969C4BB7D\
                           5FD46FD3756489069157B282BB200735\
                           D82710CA5C22F0CCFA7CBF93D496AC15\
                           A56834CBCF98C397B4024A2691233B8D";
        let expected_tag = "83DE3541E4C2B58177E065A9BF7B62EC";
        let sealed = sm4_gcm_seal(&key, &nonce, &aad, &plaintext).unwrap();
        assert_eq!(
            hex::encode(&sealed[..plaintext.len()]).to_uppercase(),
            expected_ct
        );
        assert_eq!(
            hex::encode(&sealed[plaintext.len()..]).to_uppercase(),
            expected_tag
        );
        let opened = sm4_gcm_open(&key, &nonce, &aad, &sealed).unwrap();
        assert_eq!(*opened, plaintext);
        let mut tampered = sealed.clone();
        tampered[0] ^= 1;
        assert!(matches!(
            sm4_gcm_open(&key, &nonce, &aad, &tampered),
            Err(CryptoError::Cipher { .. })
        ));
        assert!(sm4_gcm_open(&key, &nonce, b"other aad", &sealed).is_err());
    }

    #[test]
    fn sm4_cbc_pkcs7_round_trips_every_length_and_refuses_bad_inputs() {
        let key = SymmetricKey::generate(SM4_KEY_LEN_BYTES);
        let iv = [7u8; 16];
        for len in 0..=48 {
            let plain = vec![0x5au8; len];
            let ct = sm4_cbc_encrypt(&key, &iv, &plain, Padding::Pkcs7).unwrap();
            assert_eq!(ct.len(), (len / 16 + 1) * 16);
            assert_eq!(
                *sm4_cbc_decrypt(&key, &iv, &ct, Padding::Pkcs7).unwrap(),
                plain
            );
            let ct = sm4_ecb_encrypt(&key, &plain, Padding::Pkcs7).unwrap();
            assert_eq!(*sm4_ecb_decrypt(&key, &ct, Padding::Pkcs7).unwrap(), plain);
        }
        assert!(sm4_cbc_encrypt(&key, &[0u8; 8], b"x", Padding::Pkcs7).is_err());
        assert!(sm4_cbc_encrypt(&key, &iv, b"x", Padding::None).is_err());
        assert!(sm4_cbc_decrypt(&key, &iv, &[0u8; 15], Padding::Pkcs7).is_err());
        let short = SymmetricKey::from_bytes(&[1u8; 15]);
        let err = sm4_ecb_encrypt(&short, b"x", Padding::Pkcs7).unwrap_err();
        assert_eq!(err.to_string(), "SM4-ECB: the key must be 16 bytes");
        assert_eq!(format!("{key:?}"), "SymmetricKey([redacted])");
    }

    // The "Test Case 16" of the GCM specification (McGrew and Viega), as
    // used by NIST's AES-GCM validation: AES-256, 60-byte plaintext, AAD.
    #[test]
    fn aes256_gcm_spec_test_case_16() {
        let key = SymmetricKey::from_bytes(&h(
            "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        ));
        let nonce = h("cafebabefacedbaddecaf888");
        let plaintext = h(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
                           1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        );
        let aad = h("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let sealed = aes256_gcm_seal(&key, &nonce, &aad, &plaintext).unwrap();
        assert_eq!(
            hex::encode(&sealed),
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
             8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662\
             76fc6ece0f4e1768cddf8853bb2d551b"
        );
        assert_eq!(
            *aes256_gcm_open(&key, &nonce, &aad, &sealed).unwrap(),
            plaintext
        );
        assert!(aes256_gcm_open(&key, &nonce, &[], &sealed).is_err());
        let short = SymmetricKey::from_bytes(&[0u8; 16]);
        assert!(aes256_gcm_seal(&short, &nonce, &[], b"x").is_err());
        assert!(aes256_gcm_seal(&key, &nonce[..8], &[], b"x").is_err());
    }
}
