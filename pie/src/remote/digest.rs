//! [`Digest`]: the SHA-256 hash and size of some bytes, the key of the content store.

use std::fmt;
use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

/// The identity of some bytes in the remote cache: their SHA-256 hash and their length.
///
/// The content store (CAS) keys a blob by its digest, and every client of the protocol computes it the same way,
/// so a digest made here names the same blob for Bazel, bazel-remote or another pie. The size is part of the
/// identity because the protocol's `Digest` message carries it, and because it lets a download be bounded before
/// a byte arrives.
///
/// ```
/// use pie::remote::Digest;
///
/// let digest = Digest::of(b"hello");
/// assert_eq!(digest.size_bytes(), 5);
/// assert_eq!(digest.hex(), "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
/// assert_eq!(digest.to_string(), format!("{}/5", digest.hex()));
/// assert_eq!(Digest::from_hex(&digest.hex(), 5), Some(digest));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hash: [u8; 32],
    size_bytes: u64,
}

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            hash: Sha256::digest(bytes).into(),
            size_bytes: bytes.len() as u64,
        }
    }

    /// The digest of everything `reader` yields, read to its end in pieces (a large file need not be in memory).
    pub fn of_reader(mut reader: impl Read) -> io::Result<Self> {
        let mut hasher = Sha256::new();
        let mut buffer = vec![0; 64 * 1024];
        let mut size_bytes = 0u64;
        loop {
            match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => {
                    hasher.update(&buffer[..n]);
                    size_bytes += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Self {
            hash: hasher.finalize().into(),
            size_bytes,
        })
    }

    /// The digest with the given SHA-256 hash in lower- or upper-case hexadecimal (64 digits) and size; `None` when
    /// `hex` is not such a hash.
    pub fn from_hex(hex: &str, size_bytes: u64) -> Option<Self> {
        let digits = hex.as_bytes();
        if digits.len() != 64 {
            return None;
        }
        let mut hash = [0u8; 32];
        for (byte, pair) in hash.iter_mut().zip(digits.chunks_exact(2)) {
            *byte = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
        }
        Some(Self { hash, size_bytes })
    }

    /// The SHA-256 hash.
    pub fn hash(&self) -> &[u8; 32] {
        &self.hash
    }

    /// The number of bytes.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// The hash in lower-case hexadecimal (64 digits), as the protocol spells it in URLs and messages.
    pub fn hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = String::with_capacity(64);
        for byte in self.hash {
            hex.push(DIGITS[usize::from(byte >> 4)] as char);
            hex.push(DIGITS[usize::from(byte & 0xf)] as char);
        }
        hex
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// `HASH/SIZE`, the form Bazel uses in its messages.
impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.hex(), self.size_bytes)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_has_the_well_known_hash() {
        let digest = Digest::of(b"");
        assert_eq!(
            digest.hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(digest.size_bytes(), 0);
    }

    #[test]
    fn reader_digest_equals_slice_digest() {
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(Digest::of_reader(&bytes[..]).unwrap(), Digest::of(&bytes));
    }

    #[test]
    fn hex_round_trips_and_accepts_upper_case() {
        let digest = Digest::of(b"pie");
        assert_eq!(Digest::from_hex(&digest.hex(), 3), Some(digest));
        assert_eq!(Digest::from_hex(&digest.hex().to_uppercase(), 3), Some(digest));
    }

    #[test]
    fn malformed_hex_is_refused() {
        let hex = Digest::of(b"pie").hex();
        assert_eq!(Digest::from_hex(&hex[..63], 3), None);
        assert_eq!(Digest::from_hex(&format!("{hex}0"), 3), None);
        assert_eq!(Digest::from_hex(&format!("g{}", &hex[1..]), 3), None);
        // 64 bytes, but not 64 digits.
        assert_eq!(Digest::from_hex(&format!("é{}", &hex[2..]), 3), None);
    }
}
