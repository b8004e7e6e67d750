//! Lower-case hexadecimal, for digests, fingerprints and operator input
//! (keys and IVs typed as hex). A few lines, so no crate. Also standard
//! base64, as signatures are printed for operators.

use base64::Engine as _;

/// `bytes` as standard, padded base64.
pub fn base64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `bytes` as lower-case hex.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// `bytes` as upper-case hex pairs joined by `:`, as certificate tools
/// print fingerprints.
pub fn encode_colons(bytes: &[u8]) -> String {
    let hex = encode(bytes).to_ascii_uppercase();
    let pairs: Vec<&str> = (0..hex.len())
        .step_by(2)
        .filter_map(|i| hex.get(i..i + 2))
        .collect();
    pairs.join(":")
}

/// Hex (either case; spaces, `:` and a `0x` prefix ignored) to bytes;
/// `None` on any other character or an odd number of digits.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    let text = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    let digits: Vec<u8> = text
        .bytes()
        .filter(|b| !matches!(b, b' ' | b':' | b'\n' | b'\r' | b'\t'))
        .map(|b| match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        })
        .collect::<Option<_>>()?;
    if digits.len() % 2 != 0 {
        return None;
    }
    Some(digits.chunks(2).map(|p| (p[0] << 4) | p[1]).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips() {
        assert_eq!(super::encode(&[0x00, 0xab, 0x7f]), "00ab7f");
        assert_eq!(super::encode_colons(&[0x0a, 0xbc]), "0A:BC");
        assert_eq!(super::decode("0x00AB 7f").unwrap(), vec![0x00, 0xab, 0x7f]);
        assert_eq!(super::decode("").unwrap(), Vec::<u8>::new());
        assert!(super::decode("abc").is_none());
        assert!(super::decode("zz").is_none());
    }
}
