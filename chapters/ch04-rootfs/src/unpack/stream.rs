//! The bytes before the tar: which compression a blob uses, and the two digests a layer has.
//!
//! An OCI layer has two names. The *digest* is the sha256 of the blob as stored and shipped
//! (compressed); manifests use it. The *diff_id* is the sha256 of the uncompressed tar; image
//! configs list those (`rootfs.diff_ids`). We compute both in one pass by hashing at both ends of
//! the decompressor ([`crate::digest::HashingReader`]).

use std::io::{self, BufReader, Chain, Cursor, Read};

use serde::Serialize;

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
}
