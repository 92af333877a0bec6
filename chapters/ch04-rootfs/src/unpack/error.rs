//! What can go wrong while unpacking a layer, each failure naming the entry and what to do.

use std::io;
use std::path::PathBuf;

/// Why a layer could not be unpacked.
///
/// Unless a variant says otherwise, the target directory may hold part of the layer when this is
/// returned: unpack into a fresh directory and throw it away on error (the layer store does).
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The layer file could not be opened or hashed.
    #[error("cannot read layer file {layer}: {source}; check the path and its permissions")]
    OpenLayer {
        /// The layer file.
        layer: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },

    /// The target exists and is not a directory, or could not be created.
    #[error("cannot use {target} as the unpack target: {reason}; pass a directory (it is created if missing)")]
    Target {
        /// The target given.
        target: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The compressed or tar stream is corrupt or truncated.
    #[error("reading the layer stream failed ({context}): {source}; the blob is truncated, corrupt or not a tar/gzip/zstd layer")]
    Stream {
        /// Where in the stream.
        context: String,
        /// The decoder's or tar reader's error.
        #[source]
        source: io::Error,
    },

    /// `expected_digest` is not of the form `sha256:<64 hex digits>`.
    #[error("expected digest {given:?} is not `sha256:` followed by 64 lowercase hex digits; only sha256 is supported")]
    BadDigest {
        /// The digest given.
        given: String,
    },

    /// The layer file's digest differs from the expected one; found *before* unpacking, so the
    /// target was not touched.
    #[error("layer {layer} has digest {actual}, expected {expected}; the blob is corrupt or not the one asked for (nothing was unpacked)")]
    DigestMismatch {
        /// The layer file.
        layer: PathBuf,
        /// The digest asked for.
        expected: String,
        /// The digest of the bytes read.
        actual: String,
    },

    /// The stream's digest differs from the expected one; found at the end of the stream, so the
    /// target already holds the unverified content.
    #[error("layer stream has digest {actual}, expected {expected}; the blob is corrupt or not the one asked for, and {target} now holds unverified files: delete it")]
    DigestMismatchAfterUnpack {
        /// The digest asked for.
        expected: String,
        /// The digest of the bytes read.
        actual: String,
        /// The target that must be discarded.
        target: PathBuf,
    },

    /// An entry's name (or hard link target) leads outside the target: the layer is refused.
    #[error("entry {entry:?} refused: {detail}; the layer is hostile or broken, nothing was written outside the target")]
    Escape {
        /// The entry's name as stored in the archive.
        entry: PathBuf,
        /// What it tried.
        detail: String,
    },

    /// A whiteout entry that makes no sense (`.wh..`, a `.wh.` name used as a directory).
    #[error("entry {entry:?} is not a valid whiteout: {detail}; the layer is broken or hostile")]
    BadWhiteout {
        /// The entry's name.
        entry: PathBuf,
        /// What is wrong.
        detail: String,
    },

    /// Resolving symlinks inside the target went round in circles.
    #[error("entry {entry:?}: more than {limit} symlinks while resolving its parent directories inside the target (a symlink loop?)")]
    SymlinkLoop {
        /// The entry's name.
        entry: PathBuf,
        /// The hop limit.
        limit: usize,
    },

    /// A hard link whose target is missing or is a directory.
    #[error("entry {entry:?}: hard link to {link:?} is impossible: {detail}")]
    HardLink {
        /// The entry's name.
        entry: PathBuf,
        /// Its link target as stored.
        link: PathBuf,
        /// Why.
        detail: String,
    },

    /// An entry that would replace the target directory itself with a non-directory.
    #[error("entry {entry:?} names the target directory itself but is not a directory; the layer is broken")]
    ReplacesRoot {
        /// The entry's name.
        entry: PathBuf,
    },

    /// `preserve_ownership` without the privilege to chown.
    #[error("preserve_ownership needs root (CAP_CHOWN); run as root or unpack without it")]
    NeedsRoot,

    /// An overlayfs whiteout marker (device 0:0 or opaque xattr) could not be made.
    #[error("entry {entry:?}: could not write the overlayfs whiteout marker at {path}: {source}; a character device 0:0 and the trusted.overlay.opaque xattr need root (and a filesystem with xattrs): run as root, or unpack with WhiteoutMode::Apply into one merged directory")]
    OverlayMarker {
        /// The whiteout entry's name.
        entry: PathBuf,
        /// The host path of the marker.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },

    /// A filesystem operation for an entry failed.
    #[error("entry {entry:?}: could not {action} {path}: {source}")]
    Io {
        /// The entry's name.
        entry: PathBuf,
        /// What we tried (`create file`, `make directory`, ...).
        action: &'static str,
        /// The host path it was done on.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}
