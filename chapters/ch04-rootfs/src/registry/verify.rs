//! A reader that lets a download through only if it is exactly what its descriptor promised.
//!
//! The bytes stream from the network into [`OciLayout::put_blob`](crate::image::OciLayout::put_blob)'s
//! temporary file through a [`VerifyingReader`]. At the end of the stream it compares the
//! sha256 and the size with the descriptor's; on a mismatch it fails the read instead of
//! reporting the end, so `put_blob` never renames the temporary file into place (it deletes it)
//! and nothing with the wrong content is ever stored under any name. More bytes than the
//! descriptor's size fail at once, so a hostile server cannot fill the disk.

use std::io::{self, Read};

use oci_spec::image::Digest;

use crate::digest::HashingReader;

/// What a [`VerifyingReader`] found wrong; travels inside the `io::Error` it returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    /// The content hashes to another digest.
    #[error("content has digest {actual}, expected {expected}")]
    Digest {
        /// The descriptor's digest.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// More or fewer bytes than the descriptor says.
    #[error("content is {actual} bytes (at least), expected {expected}")]
    Size {
        /// The descriptor's size.
        expected: u64,
        /// What arrived.
        actual: u64,
    },
}

impl Mismatch {
    /// The mismatch carried by `error`, if it came from a [`VerifyingReader`].
    pub fn from_io(error: &io::Error) -> Option<&Mismatch> {
        error.get_ref().and_then(|inner| inner.downcast_ref())
    }
}

// ANCHOR: verifying_reader
/// Passes `inner` through, hashing it; at its end, fails unless size and digest match.
pub struct VerifyingReader<R> {
    hashing: Option<HashingReader<R>>,
    expected_digest: Digest,
    expected_size: u64,
}

impl<R: Read> VerifyingReader<R> {
    /// Wraps `inner`, which must yield exactly `size` bytes hashing to `digest`.
    pub fn new(inner: R, digest: &Digest, size: u64) -> Self {
        Self {
            hashing: Some(HashingReader::new(inner)),
            expected_digest: digest.clone(),
            expected_size: size,
        }
    }

    /// Bytes passed through so far.
    pub fn received(&self) -> u64 {
        self.hashing
            .as_ref()
            .map_or(self.expected_size, HashingReader::bytes)
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(hashing) = self.hashing.as_mut() else {
            return Ok(0); // verified and finished
        };
        let n = hashing.read(buf)?;
        if HashingReader::bytes(hashing) > self.expected_size {
            return Err(mismatch(Mismatch::Size {
                expected: self.expected_size,
                actual: HashingReader::bytes(hashing),
            }));
        }
        if n > 0 || buf.is_empty() {
            return Ok(n);
        }
        // The end: check everything before saying so.
        let Some(hashing) = self.hashing.take() else {
            return Ok(0);
        };
        let (_, actual, size) = hashing.finish()?;
        if size != self.expected_size {
            return Err(mismatch(Mismatch::Size {
                expected: self.expected_size,
                actual: size,
            }));
        }
        if actual != self.expected_digest.as_ref() {
            return Err(mismatch(Mismatch::Digest {
                expected: self.expected_digest.to_string(),
                actual,
            }));
        }
        Ok(0)
    }
}
// ANCHOR_END: verifying_reader

fn mismatch(m: Mismatch) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256_bytes;

    fn read_all(data: &[u8], digest: &Digest, size: u64) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        VerifyingReader::new(data, digest, size).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn exact_content_passes() {
        let data = b"hello layer";
        let out = read_all(data, &sha256_bytes(data), data.len() as u64).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn wrong_digest_fails_at_the_end() {
        let data = b"hello layer";
        let expected = sha256_bytes(b"hello LAYER");
        let err = read_all(data, &expected, data.len() as u64).unwrap_err();
        match Mismatch::from_io(&err) {
            Some(Mismatch::Digest {
                expected: e,
                actual,
            }) => {
                assert_eq!(e, &expected.to_string());
                assert_eq!(actual, &sha256_bytes(data).to_string());
            }
            other => panic!("expected a digest mismatch, got {other:?} ({err})"),
        }
    }

    #[test]
    fn too_long_and_too_short_fail() {
        let data = b"0123456789";
        let digest = sha256_bytes(data);
        let long = read_all(data, &digest, 4).unwrap_err();
        assert!(matches!(
            Mismatch::from_io(&long),
            Some(Mismatch::Size { expected: 4, .. })
        ));
        let short = read_all(data, &digest, 20).unwrap_err();
        assert_eq!(
            Mismatch::from_io(&short),
            Some(&Mismatch::Size {
                expected: 20,
                actual: 10
            })
        );
    }
}
