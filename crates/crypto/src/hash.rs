//! Message digests: SM3 (GB/T 32905) and SHA-256.

use sha2::Digest as _;

/// Length of an SM3 or SHA-256 digest.
pub const DIGEST_LEN_BYTES: usize = 32;

/// SM3 of exactly `data`.
pub fn sm3(data: &[u8]) -> [u8; DIGEST_LEN_BYTES] {
    sm3::Sm3::digest(data).into()
}

/// SHA-256 of exactly `data`.
pub fn sha256(data: &[u8]) -> [u8; DIGEST_LEN_BYTES] {
    sha2::Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex;

    // GB/T 32905-2016 Appendix A, examples 1 and 2.
    #[test]
    fn sm3_gbt32905_examples() {
        assert_eq!(
            hex::encode(&sm3(b"abc")),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        assert_eq!(
            hex::encode(&sm3(&b"abcd".repeat(16))),
            "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
        );
    }

    #[test]
    fn sha256_fips180_abc() {
        assert_eq!(
            hex::encode(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
