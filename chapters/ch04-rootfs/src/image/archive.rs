//! Importing the tars `docker save` and `podman save` write into an OCI image layout.
//!
//! Two formats are in use:
//!
//! - **docker-archive** (`docker save` before Docker 25, `podman save` by default): a
//!   `manifest.json` listing, per image, its config file, its tags and its layer tars:
//!   `[{"Config":"<id>.json","RepoTags":["busybox:1.36"],"Layers":["<id>/layer.tar",...]}]`.
//!   Identical layers may be stored once and linked (symlink or hard link) from other names.
//!   We store each file as a blob and *write* the OCI manifest the archive lacks.
//! - **OCI layout in a tar** (`docker save` since Docker 25, `podman save --format oci-archive`):
//!   `oci-layout`, `index.json` and `blobs/sha256/…` (Docker adds a `manifest.json` for old
//!   readers). Blobs are copied, each checked against its name, and the index entries added.
//!
//! The archive is read twice, streaming: once for the small JSON files that say what is where
//! (a tar has no table of contents, and `manifest.json` usually comes last), once for the blobs.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::path::Path;

use oci_spec::image::{
    Descriptor, ImageConfiguration, ImageIndex, ImageManifestBuilder, MediaType,
};
use serde::Deserialize;

use super::layout::{ref_name_of, OciLayout};
use super::{reference, ImageError, ANNOTATION_CONTAINERD_NAME, MAX_JSON_BLOB};
use crate::digest;
use crate::unpack::resolve::clean_entry_name;
use crate::unpack::Compression;

/// An image an import added to the layout's index.
#[derive(Debug, Clone)]
pub struct ImportedImage {
    /// The name it was added under (`busybox:1.36`), if the archive gave one.
    pub ref_name: Option<String>,
    /// Its index entry (an image manifest, or an image index for multi-platform images).
    pub manifest: Descriptor,
}

/// One image in a docker-archive's `manifest.json` (a Docker format, not an OCI one).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerArchiveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// The small files that say what the archive holds, and its links.
#[derive(Default)]
struct Toc {
    manifest_json: Option<Vec<u8>>,
    index_json: Option<Vec<u8>>,
    oci_layout: bool,
    /// Link member -> the member it points to (archive paths, cleaned).
    links: BTreeMap<String, String>,
}

/// Imports every image in the `docker save` / `podman save` archive at `archive` into `layout`,
/// and returns what was added to its index.
pub fn import_archive(
    archive: &Path,
    layout: &OciLayout,
) -> Result<Vec<ImportedImage>, ImageError> {
    let toc = read_toc(archive)?;
    if toc.oci_layout && toc.index_json.is_some() {
        import_oci(archive, layout, &toc)
    } else if toc.manifest_json.is_some() {
        import_docker(archive, layout, &toc)
    } else {
        Err(ImageError::Archive {
            archive: archive.to_path_buf(),
            detail: "it has neither manifest.json (docker-archive) nor oci-layout and index.json \
                     (OCI archive); make it with `docker save` or `podman save`"
                .to_string(),
        })
    }
}

fn open_tar(archive: &Path) -> Result<tar::Archive<File>, ImageError> {
    let file = File::open(archive).map_err(ImageError::io("open archive", archive))?;
    Ok(tar::Archive::new(file))
}

fn tar_error(archive: &Path) -> impl Fn(std::io::Error) -> ImageError + '_ {
    move |e| ImageError::Archive {
        archive: archive.to_path_buf(),
        detail: format!("reading the tar failed: {e}; the file is truncated or not a tar"),
    }
}

/// A member's name as a clean relative path string (`./manifest.json` -> `manifest.json`).
fn member_name(path: &Path) -> Option<String> {
    clean_entry_name(path).map(|p| p.to_string_lossy().into_owned())
}

/// First pass: the JSON files that describe the archive, and where its links point.
fn read_toc(archive: &Path) -> Result<Toc, ImageError> {
    let mut toc = Toc::default();
    let mut tar = open_tar(archive)?;
    for entry in tar.entries().map_err(tar_error(archive))? {
        let mut entry = entry.map_err(tar_error(archive))?;
        let Some(name) = entry.path().ok().and_then(|p| member_name(&p)) else {
            continue;
        };
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let Some(target) = entry.link_name().ok().flatten() else {
                continue;
            };
            // A symlink is relative to its directory; a hard link names an archive member.
            let target = if kind.is_symlink() && !target.has_root() {
                Path::new(&name)
                    .parent()
                    .unwrap_or(Path::new(""))
                    .join(target)
            } else {
                target.into_owned()
            };
            if let Some(target) = member_name(&target) {
                toc.links.insert(name, target);
            }
            continue;
        }
        let slot = match name.as_str() {
            "manifest.json" => &mut toc.manifest_json,
            "index.json" => &mut toc.index_json,
            "oci-layout" => {
                toc.oci_layout = true;
                continue;
            }
            _ => continue,
        };
        if entry.header().size().unwrap_or(0) > MAX_JSON_BLOB {
            return Err(ImageError::Archive {
                archive: archive.to_path_buf(),
                detail: format!("its {name} is larger than {MAX_JSON_BLOB} bytes"),
            });
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(tar_error(archive))?;
        *slot = Some(bytes);
    }
    Ok(toc)
}

/// Follows links from `name` to a regular member (a few hops at most).
fn follow_links<'a>(toc: &'a Toc, mut name: &'a str) -> &'a str {
    for _ in 0..8 {
        match toc.links.get(name) {
            Some(target) => name = target,
            None => break,
        }
    }
    name
}

/// Second pass: stores every regular member `wanted` says yes to as a blob.
fn store_members(
    archive: &Path,
    layout: &OciLayout,
    wanted: impl Fn(&str) -> bool,
) -> Result<BTreeMap<String, Descriptor>, ImageError> {
    let mut stored = BTreeMap::new();
    let mut tar = open_tar(archive)?;
    for entry in tar.entries().map_err(tar_error(archive))? {
        let entry = entry.map_err(tar_error(archive))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let Some(name) = entry.path().ok().and_then(|p| member_name(&p)) else {
            continue;
        };
        if wanted(&name) {
            let desc =
                layout.put_blob(entry, MediaType::Other("application/octet-stream".into()))?;
            stored.insert(name, desc);
        }
    }
    Ok(stored)
}

/// The layer media type its first bytes tell.
fn layer_media_type(layout: &OciLayout, desc: &Descriptor) -> Result<MediaType, ImageError> {
    let mut head = Vec::with_capacity(4);
    layout
        .open_blob(desc)?
        .take(4)
        .read_to_end(&mut head)
        .map_err(ImageError::io("read", layout.blob_path(desc.digest())))?;
    Ok(match Compression::detect(&head) {
        Compression::None => MediaType::ImageLayer,
        Compression::Gzip => MediaType::ImageLayerGzip,
        Compression::Zstd => MediaType::ImageLayerZstd,
    })
}

// ANCHOR: docker_archive
/// docker-archive: store configs and layers as blobs, write an OCI manifest for each image.
fn import_docker(
    archive: &Path,
    layout: &OciLayout,
    toc: &Toc,
) -> Result<Vec<ImportedImage>, ImageError> {
    let bytes = toc.manifest_json.as_deref().unwrap_or_default();
    let entries: Vec<DockerArchiveEntry> =
        serde_json::from_slice(bytes).map_err(|e| ImageError::BadJson {
            what: format!("manifest.json in {}", archive.display()),
            kind: "a docker-archive manifest",
            detail: e.to_string(),
        })?;
    let needed: BTreeSet<String> = entries
        .iter()
        .flat_map(|e| std::iter::once(&e.config).chain(&e.layers))
        .filter_map(|name| member_name(Path::new(name)))
        .map(|name| follow_links(toc, &name).to_string())
        .collect();
    let stored = store_members(archive, layout, |name| needed.contains(name))?;
    let find = |name: &str| -> Result<Descriptor, ImageError> {
        member_name(Path::new(name))
            .and_then(|clean| stored.get(follow_links(toc, &clean)))
            .cloned()
            .ok_or_else(|| ImageError::ArchiveMissing {
                archive: archive.to_path_buf(),
                name: name.to_string(),
                from: "manifest.json",
            })
    };

    let mut imported = Vec::new();
    for entry in &entries {
        // The config: Docker's own JSON, a superset of the OCI config; stored byte for byte,
        // since its digest is the image ID.
        let mut config = find(&entry.config)?;
        config.set_media_type(MediaType::ImageConfig);
        let parsed =
            ImageConfiguration::from_reader(&layout.read_blob(&config)?[..]).map_err(|e| {
                ImageError::BadJson {
                    what: format!("{} in {}", entry.config, archive.display()),
                    kind: "an image config",
                    detail: e.to_string(),
                }
            })?;
        let diff_ids = parsed.rootfs().diff_ids();
        if diff_ids.len() != entry.layers.len() {
            return Err(ImageError::Archive {
                archive: archive.to_path_buf(),
                detail: format!(
                    "manifest.json lists {} layers for {} but the config lists {} diff_ids; save the image again",
                    entry.layers.len(),
                    entry.config,
                    diff_ids.len()
                ),
            });
        }
        let mut layers = Vec::new();
        for (name, diff_id) in entry.layers.iter().zip(diff_ids) {
            let mut layer = find(name)?;
            let media_type = layer_media_type(layout, &layer)?;
            // An uncompressed layer's digest *is* its diff_id: check it now.
            if media_type == MediaType::ImageLayer && layer.digest().as_ref() != diff_id {
                return Err(ImageError::Archive {
                    archive: archive.to_path_buf(),
                    detail: format!(
                        "layer {name} hashes to {} but the config says its diff_id is {diff_id}; the archive is corrupt",
                        layer.digest()
                    ),
                });
            }
            layer.set_media_type(media_type);
            layers.push(layer);
        }
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config)
            .layers(layers)
            .build()
            .map_err(|e| ImageError::Archive {
                archive: archive.to_path_buf(),
                detail: format!("building the OCI manifest for {} failed: {e}", entry.config),
            })?;
        let desc = layout.put_json(&manifest, MediaType::ImageManifest)?;
        let tags = entry.repo_tags.clone().unwrap_or_default();
        if tags.is_empty() {
            layout.add_to_index(&desc, None)?;
            imported.push(ImportedImage {
                ref_name: None,
                manifest: desc.clone(),
            });
        }
        for tag in tags {
            let name = reference::normalize(&tag);
            layout.add_to_index(&desc, Some(&name))?;
            imported.push(ImportedImage {
                ref_name: Some(name),
                manifest: desc.clone(),
            });
        }
    }
    Ok(imported)
}
// ANCHOR_END: docker_archive

/// OCI layout in a tar: copy the blobs (each must hash to its name), add the index entries.
fn import_oci(
    archive: &Path,
    layout: &OciLayout,
    toc: &Toc,
) -> Result<Vec<ImportedImage>, ImageError> {
    let bytes = toc.index_json.as_deref().unwrap_or_default();
    let index = ImageIndex::from_reader(bytes).map_err(|e| ImageError::BadJson {
        what: format!("index.json in {}", archive.display()),
        kind: "an image index",
        detail: e.to_string(),
    })?;
    let stored = store_members(archive, layout, |name| name.starts_with("blobs/sha256/"))?;
    for (name, desc) in &stored {
        let expected = name.trim_start_matches("blobs/sha256/");
        if desc.digest().digest() != expected {
            return Err(ImageError::Archive {
                archive: archive.to_path_buf(),
                detail: format!(
                    "member {name} hashes to {}: the archive is corrupt, save it again",
                    desc.digest()
                ),
            });
        }
    }
    let mut imported = Vec::new();
    for entry in index.manifests() {
        digest::sha256_hex(entry.digest())?;
        if !layout.has_blob(entry.digest()) {
            return Err(ImageError::ArchiveMissing {
                archive: archive.to_path_buf(),
                name: format!("blobs/sha256/{}", entry.digest().digest()),
                from: "index.json",
            });
        }
        // containerd's annotation has the full name; ref.name may be just the tag.
        let full = entry
            .annotations()
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_CONTAINERD_NAME));
        let name = full
            .map(String::as_str)
            .or_else(|| ref_name_of(entry))
            .map(reference::normalize);
        layout.add_to_index(entry, name.as_deref())?;
        imported.push(ImportedImage {
            ref_name: name,
            manifest: entry.clone(),
        });
    }
    Ok(imported)
}
