//! A 256-bit perceptual hash (PDQ's size): hex conversion and Hamming distance.
//!
//! The bits are kept as four big-endian `u64` words in the order the hex string is written:
//! the first two hex digits are the top byte of `words()[0]`. Sorting hashes therefore sorts
//! them as their hex strings sort.

use std::fmt;

/// Number of hex digits in a hash's text form.
pub const HEX_LEN: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash256([u64; 4]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    #[error("expected {HEX_LEN} hex digits, found {0} characters")]
    WrongLength(usize),
    #[error("non-hex character {character:?} at position {position}")]
    NotHex { position: usize, character: char },
}

impl Hash256 {
    pub const fn from_words(words: [u64; 4]) -> Hash256 {
        Hash256(words)
    }

    pub const fn words(&self) -> [u64; 4] {
        self.0
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Hash256 {
        let mut words = [0u64; 4];
        for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut be = [0u8; 8];
            be.copy_from_slice(chunk);
            *word = u64::from_be_bytes(be);
        }
        Hash256(words)
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        let mut bytes = [0u8; 32];
        for (chunk, word) in bytes.chunks_exact_mut(8).zip(self.0) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        bytes
    }

    /// Whether bit `k` (0–255) is set, in PDQ's numbering (Meta's `Hash256::setBit`): bit
    /// `k` is for DCT coefficient row `k / 16`, column `k % 16`, and the hex text prints
    /// bit 255 first, so bit `k` is bit `k % 8` of byte `31 - k / 8`.
    pub fn bit(&self, k: usize) -> bool {
        self.0[3 - k / 64] >> (k % 64) & 1 == 1
    }

    /// Sets bit `k` (0–255) in PDQ's numbering (see [`Hash256::bit`]).
    pub fn set_bit(&mut self, k: usize) {
        self.0[3 - k / 64] |= 1 << (k % 64);
    }

    /// Parses 64 hex digits (either case), left to right into bytes.
    pub fn from_hex(text: &str) -> Result<Hash256, HexError> {
        Hash256::from_hex_bytes(text.as_bytes())
    }

    /// [`Hash256::from_hex`] over raw bytes, for parsers that have not checked UTF-8.
    pub fn from_hex_bytes(text: &[u8]) -> Result<Hash256, HexError> {
        if text.len() != HEX_LEN {
            return Err(HexError::WrongLength(text.len()));
        }
        let mut words = [0u64; 4];
        for (position, &byte) in text.iter().enumerate() {
            let nibble = hex_value(byte).ok_or(HexError::NotHex {
                position,
                character: char::from(byte),
            })?;
            words[position / 16] = (words[position / 16] << 4) | u64::from(nibble);
        }
        Ok(Hash256(words))
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }

    /// Hamming distance: the number of differing bits (0..=256).
    #[inline(always)]
    pub fn distance(&self, other: &Hash256) -> u32 {
        (self.0[0] ^ other.0[0]).count_ones()
            + (self.0[1] ^ other.0[1]).count_ones()
            + (self.0[2] ^ other.0[2]).count_ones()
            + (self.0[3] ^ other.0[3]).count_ones()
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for word in self.0 {
            write!(f, "{word:016x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash256({self})")
    }
}

impl std::str::FromStr for Hash256 {
    type Err = HexError;
    fn from_str(text: &str) -> Result<Hash256, HexError> {
        Hash256::from_hex(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";

    #[test]
    fn bits_follow_pdq_numbering() {
        let mut hash = Hash256::default();
        hash.set_bit(0);
        hash.set_bit(255);
        hash.set_bit(17);
        // Bit 255 is the top bit of the reference's word 15 (printed first); bit 17 is
        // bit 1 of word 1.
        assert_eq!(
            hash.to_hex(),
            "8000000000000000000000000000000000000000000000000000000000020001"
        );
        assert!(hash.bit(17) && !hash.bit(16) && hash.bit(255));
        let mut bytes = [0u8; 32];
        bytes[31 - 17 / 8] = 1 << (17 % 8);
        assert!(Hash256::from_bytes(bytes).bit(17));
    }

    #[test]
    fn hex_round_trips_in_written_byte_order() {
        let hash = Hash256::from_hex(SAMPLE).unwrap();
        assert_eq!(hash.to_hex(), SAMPLE);
        assert_eq!(hash.to_bytes()[0], 0xf8);
        assert_eq!(hash.to_bytes()[31], 0x22);
        assert_eq!(Hash256::from_bytes(hash.to_bytes()), hash);
        let upper = Hash256::from_hex(&SAMPLE.to_uppercase()).unwrap();
        assert_eq!(upper, hash);
    }

    #[test]
    fn bad_hex_is_rejected_with_the_reason() {
        assert_eq!(Hash256::from_hex("abc"), Err(HexError::WrongLength(3)));
        let mut text = SAMPLE.to_string();
        text.replace_range(5..6, "g");
        assert_eq!(
            Hash256::from_hex(&text),
            Err(HexError::NotHex {
                position: 5,
                character: 'g'
            })
        );
    }

    #[test]
    fn distance_counts_differing_bits_and_order_follows_hex() {
        let zero = Hash256::default();
        let ones = Hash256::from_words([u64::MAX; 4]);
        assert_eq!(zero.distance(&ones), 256);
        assert_eq!(zero.distance(&zero), 0);
        let one_bit = Hash256::from_words([1 << 63, 0, 0, 1]);
        assert_eq!(one_bit.distance(&zero), 2);
        let low = Hash256::from_hex(&format!("0{}", &SAMPLE[1..])).unwrap();
        let high = Hash256::from_hex(SAMPLE).unwrap();
        assert!(low < high);
    }
}
