//! `push`: an image from an OCI image layout to a registry.
//!
//! ```text
//! for config, layers:  HEAD blobs/<digest> ── 404 ──> POST blobs/uploads/ ──> PUT <Location>&digest=
//! PUT manifests/<digest>    each platform manifest of a multi-platform image
//! PUT manifests/<tag>       the manifest (or index) named
//! ```
//!
//! Blobs before the manifests that name them, platform manifests before their index: a registry
//! refuses a manifest whose blobs it does not have. Manifests are sent byte for byte as stored,
//! so their digests stay what the layout says.

use oci_spec::image::{Descriptor, Digest, ImageIndex, ImageManifest};

use super::auth;
use super::client::{manifest_kind, Client, ManifestKind};
use super::progress::{Outcome, Progress};
use super::reference::Reference;
use super::RegistryError;
use crate::image::{ImageError, OciLayout};

/// How to push.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// Speak plain HTTP instead of HTTPS (always so for registries on loopback).
    pub insecure: bool,
    /// Show a line (or bar) per blob on stderr.
    pub progress: bool,
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct PushReport {
    /// The full destination reference (`127.0.0.1:5000/team/app:v1`).
    pub destination: String,
    /// The digest of what the tag now names (an index, for a multi-platform image): pull
    /// `REPOSITORY@<digest>` to get exactly this.
    pub manifest_digest: Digest,
    /// Manifests (and indexes) uploaded.
    pub manifests: usize,
    /// Blobs uploaded.
    pub blobs_uploaded: usize,
    /// Blobs the registry already had.
    pub blobs_present: usize,
    /// Bytes of blobs uploaded.
    pub uploaded: u64,
}

/// Pushes the image `image_ref_in_layout` names in `layout` (a ref name or `sha256:` digest of
/// an `index.json` entry) to `destination` (`registry/repository:tag`).
pub fn push(
    layout: &OciLayout,
    image_ref_in_layout: &str,
    destination: &str,
    options: &PushOptions,
) -> Result<PushReport, RegistryError> {
    let dest = Reference::parse(destination)?;
    let (top, _) = layout.find(image_ref_in_layout)?;
    let object = match (dest.tag(), dest.digest()) {
        (_, Some(digest)) if digest != top.digest() => {
            return Err(RegistryError::BadReference {
                given: destination.to_string(),
                reason: format!(
                    "it names digest {digest}, but {image_ref_in_layout} is {}",
                    top.digest()
                ),
            })
        }
        (Some(tag), _) => tag.to_string(),
        (None, _) => top.digest().to_string(),
    };
    let mut client = Client::new(&dest, options.insecure, auth::push_scope(dest.repository()));
    let mut pusher = Pusher {
        client: &mut client,
        layout,
        progress: Progress::new(options.progress),
        report: PushReport {
            destination: dest.to_string(),
            manifest_digest: top.digest().clone(),
            manifests: 0,
            blobs_uploaded: 0,
            blobs_present: 0,
            uploaded: 0,
        },
    };
    pusher.push_manifest(&top, &object, 0)?;
    Ok(pusher.report)
}

struct Pusher<'a> {
    client: &'a mut Client,
    layout: &'a OciLayout,
    progress: Progress,
    report: PushReport,
}

impl Pusher<'_> {
    /// Pushes what `desc` names (its blobs or platform manifests first) under `object`.
    fn push_manifest(
        &mut self,
        desc: &Descriptor,
        object: &str,
        depth: usize,
    ) -> Result<(), RegistryError> {
        let bytes = self.layout.read_blob(desc)?;
        let bad_json = |kind: &'static str| {
            let what = format!("blob {}", desc.digest());
            move |e: oci_spec::OciSpecError| {
                RegistryError::Layout(ImageError::BadJson {
                    what,
                    kind,
                    detail: e.to_string(),
                })
            }
        };
        match manifest_kind(desc.media_type()) {
            Some(ManifestKind::Index) if depth < 2 => {
                let index =
                    ImageIndex::from_reader(&bytes[..]).map_err(bad_json("an image index"))?;
                for child in index.manifests() {
                    self.push_manifest(child, child.digest().as_ref(), depth + 1)?;
                }
            }
            Some(ManifestKind::Manifest) => {
                let manifest = ImageManifest::from_reader(&bytes[..])
                    .map_err(bad_json("an image manifest"))?;
                self.push_blob("config", manifest.config())?;
                for layer in manifest.layers() {
                    self.push_blob("layer", layer)?;
                }
            }
            _ => {
                return Err(RegistryError::UnsupportedManifest {
                    url: self.layout.blob_path(desc.digest()).display().to_string(),
                    media_type: desc.media_type().to_string(),
                    hint: " (only images can be pushed, with at most two levels of indexes)",
                })
            }
        }
        self.client
            .put_manifest(object, &bytes, desc.media_type())?;
        self.report.manifests += 1;
        Ok(())
    }

    /// Uploads a blob unless the registry has it.
    fn push_blob(&mut self, what: &str, desc: &Descriptor) -> Result<(), RegistryError> {
        let bar = self.progress.blob(what, desc, "uploaded");
        if self.client.has_blob(desc.digest())? {
            bar.finish(Outcome::AlreadyPresent);
            self.report.blobs_present += 1;
            return Ok(());
        }
        self.layout.open_blob(desc)?; // present, the descriptor's size
        let path = self.layout.blob_path(desc.digest());
        match self.client.upload_blob(&path, desc.digest()) {
            Ok(()) => {
                bar.finish(Outcome::Transferred(desc.size()));
                self.report.blobs_uploaded += 1;
                self.report.uploaded += desc.size();
                Ok(())
            }
            Err(e) => {
                bar.finish(Outcome::Failed);
                Err(e)
            }
        }
    }
}
