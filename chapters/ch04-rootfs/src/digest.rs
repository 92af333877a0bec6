//! sha256 digests: the one place the crate hashes content.
//!
//! Everything in an OCI image is named by the sha256 of its bytes: blobs in a layout
//! (`blobs/sha256/<hex>`), layers in a manifest (*digest*, of the blob as shipped), layers in a
//! config (*diff_id*, of the uncompressed tar). [`HashingReader`] hashes while bytes stream past,
//! so a blob is read once whether it is stored, unpacked or checked.
//!
//! Digests travel as `oci_spec::image::Digest` in the image code and as `sha256:<hex>` strings in
//! the unpacker's reports; [`parse`] turns one into the other and refuses anything but sha256.

use std::io::{self, Read};
use std::str::FromStr;

use oci_spec::image::{Digest, DigestAlgorithm, Sha256Digest};
use sha2::{Digest as _, Sha256};

/// A digest string that is not `sha256:` and 64 lowercase hex digits.
#[derive(Debug, thiserror::Error)]
#[error("digest {given:?} is not usable: {reason}; write it as `sha256:` followed by 64 lowercase hex digits")]
pub struct DigestError {
    /// The text given.
    pub given: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A reader that hashes (sha256) and counts every byte that passes through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Reads to the end (so the digest covers the whole stream, padding included) and returns
    /// the inner reader, `sha256:<hex>` and the byte count.
    pub fn finish(mut self) -> io::Result<(R, String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        let digest = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        Ok((self.inner, digest, self.bytes))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Checks that `digest` is `sha256:` and 64 lowercase hex digits; returns it unchanged.
pub fn parse_digest(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then_some(digest)
}

/// `sha256:<hex>` of everything `reader` yields.
pub fn sha256_of(reader: impl Read) -> io::Result<String> {
    let (_, digest, _) = HashingReader::new(reader).finish()?;
    Ok(digest)
}

/// The sha256 digest of `bytes`, as an OCI digest.
pub fn sha256_bytes(bytes: &[u8]) -> Digest {
    let hex = hex::encode(Sha256::digest(bytes));
    // 64 lowercase hex digits always parse.
    Sha256Digest::from_str(&hex)
        .map(Digest::from)
        .unwrap_or_else(|_| unreachable!("sha256 hex is always a valid digest"))
}

/// Parses `sha256:<hex>` into an OCI digest; any other algorithm or shape is refused.
pub fn parse(given: &str) -> Result<Digest, DigestError> {
    let fail = |reason: &str| DigestError {
        given: given.to_string(),
        reason: reason.to_string(),
    };
    if parse_digest(given).is_none() {
        return Err(fail(
            if given.contains(':') && !given.starts_with("sha256:") {
                "only sha256 is supported"
            } else {
                "it is not sha256 and 64 lowercase hex digits"
            },
        ));
    }
    Digest::from_str(given).map_err(|e| fail(&e.to_string()))
}

/// The hex part of a sha256 digest; other algorithms are refused.
pub fn sha256_hex(digest: &Digest) -> Result<&str, DigestError> {
    match digest.algorithm() {
        DigestAlgorithm::Sha256 => Ok(digest.digest()),
        other => Err(DigestError {
            given: digest.to_string(),
            reason: format!("algorithm {other} is not supported, only sha256"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_checked_for_shape() {
        let good = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(parse_digest(&good), Some(good.as_str()));
        assert_eq!(parse_digest("sha256:abc"), None);
        assert_eq!(parse_digest(&format!("sha512:{}", "ab".repeat(32))), None);
        assert_eq!(parse_digest(&format!("sha256:{}", "AB".repeat(32))), None);
        assert_eq!(parse(&good).unwrap().to_string(), good);
        assert!(parse(&format!("sha512:{}", "ab".repeat(64)))
            .unwrap_err()
            .to_string()
            .contains("only sha256"));
    }

    #[test]
    fn empty_input_hashes_to_the_empty_digest() {
        let empty = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(sha256_of(io::empty()).unwrap(), empty);
        assert_eq!(sha256_bytes(b"").to_string(), empty);
        assert_eq!(sha256_hex(&sha256_bytes(b"")).unwrap(), &empty[7..]);
    }
}
