//! The offline queue's payload codecs that are pure Rust: `lz4` (the LZ4 block format with the
//! raw length prepended, little-endian u32) and `none`. The gateway stores queue entries with
//! these, or with `zstd`, which links the zstd C library and so stays in the gateway. The name
//! is stored beside each entry's bytes.

use std::fmt;

/// A queue payload codec this crate implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None,
    Lz4,
}

impl Codec {
    /// The name stored beside the bytes.
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Lz4 => "lz4",
        }
    }

    /// The codec of a stored name; `None` for a codec this crate does not implement.
    pub fn from_name(name: &str) -> Option<Codec> {
        match name {
            "none" => Some(Codec::None),
            "lz4" => Some(Codec::Lz4),
            _ => None,
        }
    }

    pub fn encode(self, raw: &[u8]) -> Vec<u8> {
        match self {
            Codec::None => raw.to_vec(),
            Codec::Lz4 => lz4_flex::compress_prepend_size(raw),
        }
    }

    pub fn decode(self, stored: &[u8]) -> Result<Vec<u8>, DecodeError> {
        match self {
            Codec::None => Ok(stored.to_vec()),
            Codec::Lz4 => {
                let (size, block) = lz4_flex::block::uncompressed_size(stored)
                    .map_err(|e| DecodeError(e.to_string()))?;
                // LZ4 expands at most 255:1: a larger stated size is corrupt, and is refused
                // before it is allocated.
                if size > block.len().saturating_mul(255) {
                    return Err(DecodeError(format!(
                        "states {size} bytes for a block of {} bytes, more than LZ4 can expand to",
                        block.len()
                    )));
                }
                lz4_flex::block::decompress(block, size).map_err(|e| DecodeError(e.to_string()))
            }
        }
    }
}

/// Stored bytes that are not what their codec produces (truncated, corrupt, or another codec's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_codecs_round_trip_and_lz4_shrinks_repetitive_json() {
        let raw = br#"{"messages":[{"role":"user","content":"ping ping ping ping ping ping ping ping"}]}"#;
        for codec in [Codec::None, Codec::Lz4] {
            assert_eq!(Codec::from_name(codec.name()), Some(codec));
            assert_eq!(codec.decode(&codec.encode(raw)).unwrap(), raw);
        }
        assert!(Codec::Lz4.encode(raw).len() < raw.len());
        // At LZ4's best ratio the stated size is still within the bound the decoder checks.
        let zeros = vec![0u8; 4 << 20];
        assert_eq!(
            Codec::Lz4.decode(&Codec::Lz4.encode(&zeros)).unwrap(),
            zeros
        );
        assert_eq!(Codec::from_name("zstd"), None);
    }

    #[test]
    fn corrupt_lz4_is_an_error_not_a_panic() {
        let stored = Codec::Lz4.encode(b"a payload long enough to be compressed, compressed");
        assert!(Codec::Lz4.decode(&stored[..stored.len() / 2]).is_err());
        // A stated size of 2 GiB is refused, not allocated.
        let huge = Codec::Lz4
            .decode(&[0xff, 0xff, 0xff, 0x7f, 1, 2])
            .unwrap_err();
        assert!(
            huge.to_string().contains("more than LZ4 can expand to"),
            "{huge}"
        );
        assert!(Codec::Lz4.decode(&[]).is_err());
    }
}
