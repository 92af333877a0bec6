//! OCI images on disk: the image layout (a directory of content-addressed blobs plus an index of
//! named manifests), and import from the archives `docker save` and `podman save` write.
//!
//! An image is three kinds of JSON and some tars, each a *blob* named by its sha256:
//!
//! ```text
//! index.json ──> manifest ──> config      (rootfs.diff_ids: sha256 of each *uncompressed* layer)
//!   (ref names)     └──────> layers       (digest: sha256 of each blob as stored)
//! ```
//!
//! Every JSON blob is checked (size and sha256) when it is read, so a flipped byte anywhere is
//! caught and named. Layer blobs are checked for presence and size when an image is resolved and
//! hashed while they are unpacked ([`crate::store`]), so a large layer is read once.
//!
//! - [`layout`]: [`OciLayout`] reads and writes an OCI image layout; [`ResolvedImage`] is what
//!   a reference (`busybox:1.36`, `latest`, `sha256:…`) resolves to.
//! - [`archive`]: [`import_archive`] brings a `docker save` / `podman save` tar into a layout.

pub mod archive;
mod error;
pub mod layout;
pub mod reference;

pub use archive::{import_archive, ImportedImage};
pub use error::ImageError;
pub use layout::{ImageSummary, OciLayout, ResolvedImage};

/// The annotation that names an image in `index.json` (`latest`, `busybox:1.36`).
pub use oci_spec::image::ANNOTATION_REF_NAME;

/// The annotation containerd (and Docker 25+ `docker save`) put the full image name in.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// The version written to and accepted in the `oci-layout` file.
pub const LAYOUT_VERSION: &str = "1.0.0";

/// The largest JSON blob (manifest, index, config) read into memory; real ones are kilobytes.
pub const MAX_JSON_BLOB: u64 = 8 * 1024 * 1024;
