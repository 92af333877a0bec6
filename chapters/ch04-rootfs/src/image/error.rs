//! What can go wrong with an image layout or an archive, each failure naming the file or digest
//! and what to do.

use std::io;
use std::path::PathBuf;

use crate::digest::DigestError;

/// Why an image could not be read, written, resolved or imported.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A filesystem operation failed.
    #[error("could not {action} {path}: {source}")]
    Io {
        /// What we tried (`read`, `create`, `rename`, ...).
        action: &'static str,
        /// The path it was done on.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },

    /// The directory is not an OCI image layout.
    #[error("{dir} is not an OCI image layout: {reason}; create one with OciLayout::create or point at a directory with an oci-layout file and index.json")]
    NotALayout {
        /// The directory given.
        dir: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },

    /// The layout's `oci-layout` file names a version we do not read.
    #[error("{dir}/oci-layout says imageLayoutVersion {found:?}; only {expected:?} is supported")]
    LayoutVersion {
        /// The layout directory.
        dir: PathBuf,
        /// The version found.
        found: String,
        /// The version we read.
        expected: &'static str,
    },

    /// A JSON file or blob does not parse as what it should be.
    #[error(
        "{what} is not valid JSON for {kind}: {detail}; the file is corrupt or of another format"
    )]
    BadJson {
        /// The file or blob (path or digest).
        what: String,
        /// The OCI type expected (`image manifest`, `image index`, ...).
        kind: &'static str,
        /// The parser's message.
        detail: String,
    },

    /// A digest in a descriptor or a reference is malformed or not sha256.
    #[error(transparent)]
    Digest(#[from] DigestError),

    /// A blob a descriptor names is not in the layout.
    #[error("blob {digest} is missing from the layout (expected at {path}); pull or import the image again")]
    BlobMissing {
        /// The blob's digest.
        digest: String,
        /// Where it should be.
        path: PathBuf,
    },

    /// A blob's size differs from its descriptor's.
    #[error("blob {digest} at {path} is {actual} bytes, its descriptor says {expected}; the blob is truncated or corrupt: delete it and pull or import the image again")]
    BlobSize {
        /// The blob's digest.
        digest: String,
        /// Its path.
        path: PathBuf,
        /// The size the descriptor gives.
        expected: u64,
        /// The size on disk.
        actual: u64,
    },

    /// A blob's content does not hash to its name.
    #[error("blob {digest} at {path} has sha256 {actual}: its content is corrupt; delete it and pull or import the image again")]
    BlobDigest {
        /// The digest it should have (its name).
        digest: String,
        /// Its path.
        path: PathBuf,
        /// The digest of its bytes.
        actual: String,
    },

    /// A JSON blob claims to be larger than we read into memory.
    #[error("blob {digest} ({media_type}) claims {size} bytes, more than the {limit}-byte limit for JSON blobs; the descriptor is wrong or hostile")]
    BlobTooLarge {
        /// The blob's digest.
        digest: String,
        /// Its media type.
        media_type: String,
        /// Its claimed size.
        size: u64,
        /// The limit ([`super::MAX_JSON_BLOB`]).
        limit: u64,
    },

    /// No image in the index matches the reference.
    #[error("no image {reference:?} in {layout}; images there: {available}")]
    NotFound {
        /// The reference asked for.
        reference: String,
        /// The layout directory.
        layout: PathBuf,
        /// Ref names and digests present, comma-separated (or `none`).
        available: String,
    },

    /// More than one image matches the reference.
    #[error("reference {reference:?} matches several images ({candidates}); use the full name or the manifest digest")]
    Ambiguous {
        /// The reference asked for.
        reference: String,
        /// What matched.
        candidates: String,
    },

    /// A multi-platform image has no manifest for our platform.
    #[error("image {reference:?} ({index}) has no manifest for {wanted}; it offers: {available}")]
    NoPlatform {
        /// The reference asked for.
        reference: String,
        /// The index's digest.
        index: String,
        /// `os/arch` wanted.
        wanted: String,
        /// Platforms offered.
        available: String,
    },

    /// A descriptor's media type is not what its place calls for.
    #[error("{digest} has media type {media_type:?} where {expected} was expected; this is not a container image (or a kind we do not read)")]
    MediaType {
        /// The descriptor's digest.
        digest: String,
        /// The media type found.
        media_type: String,
        /// What was expected.
        expected: &'static str,
    },

    /// The config lists a different number of diff_ids than the manifest lists layers.
    #[error("image manifest {manifest} lists {layers} layers but its config {config} lists {diff_ids} diff_ids; the image is broken: rebuild or pull it again")]
    DiffIdCount {
        /// The manifest's digest.
        manifest: String,
        /// The config's digest.
        config: String,
        /// Layers in the manifest.
        layers: usize,
        /// diff_ids in the config.
        diff_ids: usize,
    },

    /// An archive is not in a format we read, or is inconsistent.
    #[error("archive {archive} cannot be imported: {detail}")]
    Archive {
        /// The archive file.
        archive: PathBuf,
        /// What is wrong, and what to do.
        detail: String,
    },

    /// An archive's manifest names a file the archive does not contain.
    #[error("archive {archive} names {name:?} in its {from} but does not contain it; the archive is truncated or corrupt: save it again")]
    ArchiveMissing {
        /// The archive file.
        archive: PathBuf,
        /// The missing member.
        name: String,
        /// Which file named it (`manifest.json`, `index.json`).
        from: &'static str,
    },
}

impl ImageError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| ImageError::Io {
            action,
            path,
            source,
        }
    }
}
