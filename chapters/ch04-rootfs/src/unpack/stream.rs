//! The bytes before the tar: which compression a blob uses, and the two digests a layer has.
//!
//! An OCI layer has two names. The *digest* is the sha256 of the blob as stored and shipped
//! (compressed); manifests use it. The *diff_id* is the sha256 of the uncompressed tar; image
//! configs list those (`rootfs.diff_ids`). We compute both in one pass by hashing at both ends of
//! the decompressor.

use std::io::{self, BufReader, Chain, Cursor, Read};

use serde::Serialize;
use sha2::{Digest, Sha256};

/// How a layer blob is compressed, told by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip: starts with `1f 8b`.
    Gzip,
    /// zstd: starts with the frame magic `28 b5 2f fd`.
    Zstd,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

impl Compression {
    /// Tells the compression from the first bytes of a blob (a plain tar starts with a name).
    pub fn detect(head: &[u8]) -> Self {
        if head.starts_with(GZIP_MAGIC) {
            Compression::Gzip
        } else if head.starts_with(ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
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

/// The first bytes, put back in front of the rest.
type Peeked<R> = BufReader<Chain<Cursor<Vec<u8>>, R>>;

/// The decompressor chosen by [`Decoder::detect`].
pub enum Decoder<R: Read> {
    /// No compression.
    Plain(Peeked<R>),
    /// gzip; *multi*-member, as the gzip format allows and `pigz` may write.
    Gzip(flate2::bufread::MultiGzDecoder<Peeked<R>>),
    /// zstd.
    Zstd(zstd::stream::read::Decoder<'static, Peeked<R>>),
}

impl<R: Read> Decoder<R> {
    /// Reads the first four bytes of `reader`, picks the decompressor, and puts them back.
    pub fn detect(mut reader: R) -> io::Result<(Compression, Self)> {
        let mut head = Vec::with_capacity(4);
        (&mut reader).take(4).read_to_end(&mut head)?;
        let compression = Compression::detect(&head);
        let peeked = BufReader::new(Cursor::new(head).chain(reader));
        let decoder = match compression {
            Compression::None => Decoder::Plain(peeked),
            Compression::Gzip => Decoder::Gzip(flate2::bufread::MultiGzDecoder::new(peeked)),
            Compression::Zstd => Decoder::Zstd(zstd::stream::read::Decoder::with_buffer(peeked)?),
        };
        Ok((compression, decoder))
    }

    /// Drops the decompressor and returns the original reader after reading it to the end, so
    /// that bytes after the compressed stream are hashed too.
    pub fn finish(self) -> io::Result<R> {
        let mut peeked = match self {
            Decoder::Plain(peeked) => peeked,
            Decoder::Gzip(gz) => gz.into_inner(),
            Decoder::Zstd(zst) => zst.finish(),
        };
        io::copy(&mut peeked, &mut io::sink())?;
        Ok(peeked.into_inner().into_inner().1)
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(r) => r.read(buf),
            Decoder::Zstd(r) => r.read(buf),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_compression_by_magic() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"etc/"), Compression::None);
        assert_eq!(Compression::detect(b""), Compression::None);
    }

    #[test]
    fn digests_are_checked_for_shape() {
        let good = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(parse_digest(&good), Some(good.as_str()));
        assert_eq!(parse_digest("sha256:abc"), None);
        assert_eq!(parse_digest(&format!("sha512:{}", "ab".repeat(32))), None);
        assert_eq!(parse_digest(&format!("sha256:{}", "AB".repeat(32))), None);
    }

    #[test]
    fn empty_input_hashes_to_the_empty_digest() {
        assert_eq!(
            sha256_of(io::empty()).unwrap(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
