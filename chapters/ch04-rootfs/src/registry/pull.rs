//! `pull`: an image from a registry into an OCI image layout.
//!
//! ```text
//! GET manifests/<tag|digest> ──> index? ──pick linux/amd64──> GET manifests/<digest>   (checked)
//!                                   └─ manifest ─────────────────┘
//! for config, layers:  in the layout and intact? skip : GET blobs/<digest> ──> put_blob (checked)
//! store manifest (and index), then name it in index.json
//! ```
//!
//! Every byte is checked against the digest that named it before it is kept: manifests are
//! small and hashed whole, blobs are hashed as they stream to disk
//! ([`OciLayout::put_blob_expecting`]).
//! The manifests are stored last and the ref name added after them, so a pull that fails halfway
//! leaves only verified blobs behind (reused by the next try), never a named, broken image.

use std::io::{self, Read};

use oci_spec::image::{Arch, Descriptor, Digest, ImageIndex, ImageManifest, Os};

use super::auth;
use super::client::{Client, FetchedManifest, ManifestKind};
use super::progress::{BlobProgress, Outcome, Progress};
use super::reference::Reference;
use super::RegistryError;
use crate::image::layout::select_platform;
use crate::image::{ImageError, OciLayout};

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Speak plain HTTP instead of HTTPS. Registries on loopback (`localhost`, `127.0.0.1`)
    /// always get plain HTTP, as docker does.
    pub insecure: bool,
    /// Show progress on stderr: bars on a terminal, a line per blob otherwise.
    pub progress: bool,
    /// The platform to pick from a multi-platform image (default: this machine's).
    pub platform: (Os, Arch),
}

impl Default for PullOptions {
    fn default() -> Self {
        Self {
            insecure: false,
            progress: true,
            platform: (Os::default(), Arch::default()),
        }
    }
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct PullReport {
    /// The full reference pulled (`docker.io/library/busybox:1.36`).
    pub reference: String,
    /// The digest of the image manifest stored (the platform's, for a multi-platform image).
    pub manifest_digest: Digest,
    /// The number of layers.
    pub layers: usize,
    /// Bytes of config and layer blobs downloaded (manifests not counted).
    pub downloaded: u64,
    /// Config and layer blobs not downloaded because the layout had them (verified).
    pub already_present: usize,
    /// The name written to `index.json` (`busybox:1.36`, `127.0.0.1:5000/team/app:v1`).
    pub ref_name: String,
}

// ANCHOR: pull
/// Pulls `reference` into `layout` and names it there ([`PullReport::ref_name`]).
pub fn pull(
    reference: &str,
    layout: &OciLayout,
    options: &PullOptions,
) -> Result<PullReport, RegistryError> {
    let reference = Reference::parse(reference)?;
    let scope = auth::pull_scope(reference.repository());
    let mut client = Client::new(&reference, options.insecure, scope);
    let progress = Progress::new(options.progress);

    let (entry, manifest_doc, indexes) = fetch_manifest(&mut client, &options.platform)?;
    let manifest = ImageManifest::from_reader(&manifest_doc.bytes[..]).map_err(|e| {
        RegistryError::BadJson {
            url: manifest_doc.url.clone(),
            kind: "an image manifest",
            detail: e.to_string(),
        }
    })?;

    let mut report = PullReport {
        reference: reference.to_string(),
        manifest_digest: manifest_doc.digest.clone(),
        layers: manifest.layers().len(),
        downloaded: 0,
        already_present: 0,
        ref_name: reference.ref_name(),
    };
    let blobs = std::iter::once(("config", manifest.config()))
        .chain(manifest.layers().iter().map(|layer| ("layer", layer)));
    for (what, desc) in blobs {
        let bar = progress.blob(what, desc, "downloaded");
        match fetch_blob(&mut client, layout, desc, bar)? {
            Some(bytes) => report.downloaded += bytes,
            None => report.already_present += 1,
        }
    }

    // Manifests after their blobs, the name last: a name never points to a partial image.
    for doc in std::iter::once(&manifest_doc).chain(&indexes) {
        let stored = layout.put_bytes(&doc.bytes, doc.media_type.clone())?;
        debug_assert_eq!(stored.digest(), &doc.digest);
    }
    layout.add_to_index(&entry, Some(&report.ref_name))?;
    Ok(report)
}
// ANCHOR_END: pull

// ANCHOR: manifest
/// Fetches what the reference names; for a multi-platform image, also the platform's manifest.
/// Returns the descriptor to put in `index.json` (the platform manifest's), the manifest, and
/// the indexes passed through (stored too, so the pulled digest can be looked up again).
fn fetch_manifest(
    client: &mut Client,
    (os, arch): &(Os, Arch),
) -> Result<(Descriptor, FetchedManifest, Vec<FetchedManifest>), RegistryError> {
    let reference = client.reference().clone();
    let mut current = client.manifest(&reference.object())?;
    if let Some(wanted) = reference.digest() {
        check_manifest(&current, wanted, None)?;
    }
    let mut entry = Descriptor::new(
        current.media_type.clone(),
        current.bytes.len() as u64,
        current.digest.clone(),
    );
    let mut indexes = Vec::new();
    // An index of indexes is legal; more than two levels is a loop or hostile.
    for _ in 0..3 {
        if current.kind == ManifestKind::Manifest {
            return Ok((entry, current, indexes));
        }
        let index =
            ImageIndex::from_reader(&current.bytes[..]).map_err(|e| RegistryError::BadJson {
                url: current.url.clone(),
                kind: "an image index",
                detail: e.to_string(),
            })?;
        let chosen =
            select_platform(&index, os, arch).map_err(|available| RegistryError::NoPlatform {
                reference: reference.to_string(),
                wanted: format!("{os}/{arch}"),
                available,
            })?;
        let next = client.manifest(chosen.digest().as_ref())?;
        check_manifest(&next, chosen.digest(), Some(chosen.size()))?;
        entry = chosen.clone();
        entry.set_media_type(next.media_type.clone());
        indexes.push(std::mem::replace(&mut current, next));
    }
    Err(RegistryError::UnsupportedManifest {
        url: current.url,
        media_type: current.media_type.to_string(),
        hint: " (image indexes nested more than two deep)",
    })
}

/// A manifest fetched by digest must hash to it (and have the descriptor's size).
fn check_manifest(
    doc: &FetchedManifest,
    wanted: &Digest,
    size: Option<u64>,
) -> Result<(), RegistryError> {
    if &doc.digest != wanted {
        return Err(RegistryError::DigestMismatch {
            what: "manifest",
            url: doc.url.clone(),
            expected: wanted.to_string(),
            actual: doc.digest.to_string(),
        });
    }
    match size {
        Some(expected) if expected != doc.bytes.len() as u64 => Err(RegistryError::SizeMismatch {
            what: "manifest",
            digest: wanted.to_string(),
            url: doc.url.clone(),
            expected,
            actual: doc.bytes.len() as u64,
        }),
        _ => Ok(()),
    }
}
// ANCHOR_END: manifest

// ANCHOR: fetch_blob
/// Makes sure the layout has blob `desc`: kept if present and intact, else downloaded,
/// streamed to disk and checked on the way. Returns the bytes downloaded, `None` if kept.
fn fetch_blob(
    client: &mut Client,
    layout: &OciLayout,
    desc: &Descriptor,
    bar: BlobProgress,
) -> Result<Option<u64>, RegistryError> {
    if layout.has_blob(desc.digest()) && layout.verify_blob(desc).is_ok() {
        bar.finish(Outcome::AlreadyPresent);
        return Ok(None);
    }
    // Absent, or damaged: a good copy renamed over it replaces it.
    let result = download_blob(client, layout, desc, &bar);
    bar.finish(match &result {
        Ok(bytes) => Outcome::Transferred(*bytes),
        Err(_) => Outcome::Failed,
    });
    result.map(Some)
}

fn download_blob(
    client: &mut Client,
    layout: &OciLayout,
    desc: &Descriptor,
    bar: &BlobProgress,
) -> Result<u64, RegistryError> {
    let (response, url) = client.blob(desc.digest())?;
    let mut body = NetworkReader {
        inner: response.into_body().into_reader(),
        received: 0,
    };
    // put_blob_expecting streams into a temporary file and checks size and digest before the
    // blob gets its name; on a mismatch the file is deleted and nothing is stored.
    match layout.put_blob_expecting(bar.wrap(&mut body), desc) {
        Ok(stored) => Ok(stored.size()),
        Err(e) => Err(store_error(e, url, body.received)),
    }
}

/// Why storing a download failed: the content was wrong, the connection broke, or the disk.
fn store_error(e: ImageError, url: String, received: u64) -> RegistryError {
    match e {
        ImageError::BlobDigest { digest, actual, .. } => RegistryError::DigestMismatch {
            what: "blob",
            url,
            expected: digest,
            actual,
        },
        ImageError::BlobSize {
            digest,
            expected,
            actual,
            ..
        } => RegistryError::SizeMismatch {
            what: "blob",
            digest,
            url,
            expected,
            actual,
        },
        ImageError::Io { source, .. } if NetworkError::is(&source) => RegistryError::Download {
            url,
            received,
            source,
        },
        other => other.into(),
    }
}
// ANCHOR_END: fetch_blob

/// Marks read errors of a response body as the network's (not the disk's), and counts what
/// arrived for the error.
struct NetworkReader<R> {
    inner: R,
    received: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("the connection failed: {0}")]
struct NetworkError(io::Error);

impl NetworkError {
    fn is(error: &io::Error) -> bool {
        error
            .get_ref()
            .is_some_and(|inner| inner.is::<NetworkError>())
    }
}

impl<R: Read> Read for NetworkReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .inner
            .read(buf)
            .map_err(|e| io::Error::new(e.kind(), NetworkError(e)))?;
        self.received += n as u64;
        Ok(n)
    }
}
