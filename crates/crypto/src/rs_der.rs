//! The `ECDSA-Sig-Value` DER encoding (`SEQUENCE { r INTEGER, s INTEGER }`)
//! of a 256-bit (r, s) pair, as SM2 signatures travel (GM/T 0009, OpenSSL).
//!
//! The sm2 crate of this generation knows only the raw r‖s form, so the
//! encoding is written here with the `der` crate: strict DER on input (one
//! encoding per signature), never hand-rolled length arithmetic.

use sec1::der::asn1::UintRef;
use sec1::der::{
    self, Decode as _, DecodeValue, Encode as _, EncodeValue, Header, Length, Reader, Sequence,
    Writer,
};

/// Length of each of r and s, and half of a raw r‖s signature.
pub(crate) const SCALAR_LEN_BYTES: usize = 32;

struct RsPair<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

impl<'a> DecodeValue<'a> for RsPair<'a> {
    fn decode_value<R: Reader<'a>>(reader: &mut R, header: Header) -> der::Result<Self> {
        reader.read_nested(header.length, |reader| {
            Ok(Self {
                r: UintRef::decode(reader)?,
                s: UintRef::decode(reader)?,
            })
        })
    }
}

impl EncodeValue for RsPair<'_> {
    fn value_len(&self) -> der::Result<Length> {
        self.r.encoded_len()? + self.s.encoded_len()?
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        self.r.encode(writer)?;
        self.s.encode(writer)
    }
}

impl<'a> Sequence<'a> for RsPair<'a> {}

/// DER of the pair whose big-endian halves are `raw` (r‖s, 64 bytes).
pub(crate) fn encode(raw: &[u8; 2 * SCALAR_LEN_BYTES]) -> Option<Vec<u8>> {
    let (r, s) = raw.split_at(SCALAR_LEN_BYTES);
    let pair = RsPair {
        r: UintRef::new(r).ok()?,
        s: UintRef::new(s).ok()?,
    };
    pair.to_der().ok()
}

/// r‖s from a strict DER `SEQUENCE { r, s }` that holds nothing else; `None`
/// when `bytes` is not exactly that or a value is wider than 256 bits.
pub(crate) fn decode(bytes: &[u8]) -> Option<[u8; 2 * SCALAR_LEN_BYTES]> {
    let pair = RsPair::from_der(bytes).ok()?;
    let mut raw = [0u8; 2 * SCALAR_LEN_BYTES];
    left_pad(pair.r.as_bytes(), &mut raw[..SCALAR_LEN_BYTES])?;
    left_pad(pair.s.as_bytes(), &mut raw[SCALAR_LEN_BYTES..])?;
    Some(raw)
}

/// r‖s from a BER-ish `SEQUENCE { INTEGER, INTEGER }` as some SDKs write
/// it: non-minimal integers (missing or extra leading zero bytes). Only
/// for diagnosing what a peer did wrong, never for verification itself.
pub(crate) fn decode_lenient(bytes: &[u8]) -> Option<[u8; 2 * SCALAR_LEN_BYTES]> {
    let (&tag, rest) = bytes.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (&len, mut rest) = rest.split_first()?;
    if usize::from(len) != rest.len() || len >= 0x80 {
        return None;
    }
    let mut raw = [0u8; 2 * SCALAR_LEN_BYTES];
    for half in raw.chunks_mut(SCALAR_LEN_BYTES) {
        let (&tag, after) = rest.split_first()?;
        let (&len, after) = after.split_first()?;
        if tag != 0x02 || len >= 0x80 || after.len() < usize::from(len) {
            return None;
        }
        let (value, after) = after.split_at(usize::from(len));
        let first_nonzero = value.iter().position(|b| *b != 0).unwrap_or(value.len());
        left_pad(&value[first_nonzero..], half)?;
        rest = after;
    }
    rest.is_empty().then_some(raw)
}

fn left_pad(value: &[u8], out: &mut [u8]) -> Option<()> {
    let start = out.len().checked_sub(value.len())?;
    out[start..].copy_from_slice(value);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_pads_high_bit_values() {
        let mut raw = [0u8; 64];
        raw[0] = 0x80; // r needs a 0x00 pad byte in DER
        raw[31] = 1;
        raw[63] = 7; // s is small: one content byte
        let der = encode(&raw).unwrap();
        assert_eq!(&der[..5], &[0x30, 0x26, 0x02, 0x21, 0x00]);
        assert_eq!(decode(&der).unwrap(), raw);
    }

    #[test]
    fn strict_decode_refuses_what_lenient_accepts() {
        // s = 7 written with a superfluous leading zero byte.
        let mut der = encode(&[1u8; 64]).unwrap();
        assert!(decode(&der).is_some());
        der.push(0);
        assert!(decode(&der).is_none(), "trailing bytes");
        let sloppy = [0x30, 0x07, 0x02, 0x01, 0x05, 0x02, 0x02, 0x00, 0x07];
        assert!(decode(&sloppy).is_none());
        let raw = decode_lenient(&sloppy).unwrap();
        assert_eq!((raw[31], raw[63]), (5, 7));
        assert!(decode_lenient(&[0x30, 0x00]).is_none());
        assert!(decode_lenient(&[]).is_none());
    }
}
