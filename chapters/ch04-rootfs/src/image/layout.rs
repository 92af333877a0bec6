//! An OCI image layout: `oci-layout`, `index.json` and `blobs/sha256/<hex>`, read and written.
//!
//! ```text
//! layout/
//!   oci-layout          {"imageLayoutVersion":"1.0.0"}
//!   index.json          an image index: one descriptor per image, named by an annotation
//!   blobs/sha256/<hex>  every manifest, config and layer, named by the sha256 of its bytes
//! ```
//!
//! Blobs are written once, atomically (a temporary file in `blobs/`, renamed into place when its
//! hash is known), so a crash never leaves a blob whose content does not match its name, and two
//! writers of the same blob write the same bytes. JSON blobs are read whole and checked, size and
//! sha256, before they are parsed.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use oci_spec::image::{
    Arch, Descriptor, Digest, ImageConfiguration, ImageIndex, ImageManifest, MediaType,
    OciLayout as LayoutHeader, Os,
};
use serde::Serialize;

use super::{reference, ImageError, ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME};
use super::{LAYOUT_VERSION, MAX_JSON_BLOB};
use crate::digest::{self, HashingReader};

/// Docker's media types, which `docker save`, Docker Hub and older registries still use.
pub mod docker {
    /// A Docker image manifest (schema 2); same fields as an OCI manifest.
    pub const MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// A Docker manifest list; same fields as an OCI image index.
    pub const MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    /// A Docker image config; same fields as an OCI image config (and a few more).
    pub const CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    /// A gzipped Docker layer.
    pub const LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    /// An uncompressed Docker layer.
    pub const LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    /// A layer the registry does not serve (Windows base layers).
    pub const LAYER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
}

/// True for an OCI image index or a Docker manifest list (one manifest per platform).
pub(crate) fn is_index(media_type: &MediaType) -> bool {
    matches!(media_type, MediaType::ImageIndex) || media_type.as_ref() == docker::MANIFEST_LIST
}

/// True for an OCI image manifest or a Docker schema 2 manifest (a config and layers).
pub(crate) fn is_manifest(media_type: &MediaType) -> bool {
    matches!(media_type, MediaType::ImageManifest) || media_type.as_ref() == docker::MANIFEST
}

fn is_config(media_type: &MediaType) -> bool {
    matches!(media_type, MediaType::ImageConfig) || media_type.as_ref() == docker::CONFIG
}

/// True for the media types of layers we can unpack (tar, tar+gzip, tar+zstd; OCI or Docker).
pub fn is_layer(media_type: &MediaType) -> bool {
    matches!(
        media_type,
        MediaType::ImageLayer
            | MediaType::ImageLayerGzip
            | MediaType::ImageLayerZstd
            | MediaType::ImageLayerNonDistributable
            | MediaType::ImageLayerNonDistributableGzip
            | MediaType::ImageLayerNonDistributableZstd
    ) || [docker::LAYER, docker::LAYER_GZIP, docker::LAYER_FOREIGN].contains(&media_type.as_ref())
}

/// The bytes of `value` as JSON, with object keys sorted at every level: the same value always
/// gives the same bytes, and so the same digest (reproducible builds depend on it).
pub fn canonical_json<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    // serde_json's `Value` keeps objects in a BTreeMap (no `preserve_order` feature here), so
    // going through it sorts keys, including those of HashMaps such as annotations and labels.
    serde_json::to_vec(&serde_json::to_value(value)?)
}

/// An OCI image layout directory.
#[derive(Debug, Clone)]
pub struct OciLayout {
    root: PathBuf,
}

/// An image found in a layout, its manifest and config read and checked.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The ref name it was found by, if it was found by name.
    pub ref_name: Option<String>,
    /// The manifest's descriptor (for a multi-platform image: the chosen platform's).
    pub manifest_descriptor: Descriptor,
    /// The manifest's digest: the image's identity.
    pub manifest_digest: Digest,
    /// The manifest: config and layer descriptors, lowest layer first.
    pub manifest: ImageManifest,
    /// The config: how to run it, and the diff_ids of its layers.
    pub config: ImageConfiguration,
    /// `config.rootfs.diff_ids`, parsed; as many as `manifest.layers()`.
    pub diff_ids: Vec<Digest>,
}

impl ResolvedImage {
    /// Each layer's descriptor with its diff_id, lowest layer first.
    pub fn layers(&self) -> impl Iterator<Item = (&Descriptor, &Digest)> {
        self.manifest.layers().iter().zip(&self.diff_ids)
    }
}

/// One line of `images`: an entry of the index.
#[derive(Debug, Clone, Serialize)]
pub struct ImageSummary {
    /// Its ref name (`busybox:1.36`), if it has one.
    pub ref_name: Option<String>,
    /// The manifest digest the index entry points to (an index, for multi-platform images).
    pub digest: String,
    /// `os/arch` of the manifest used for the figures below.
    pub platform: Option<String>,
    /// Bytes of the manifest, config and layer blobs (compressed, as stored).
    pub size: u64,
    /// The config's `created` time.
    pub created: Option<String>,
    /// The number of layers.
    pub layers: usize,
    /// Why the figures are missing, when the entry could not be resolved.
    pub problem: Option<String>,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary file deleted on drop unless it was renamed into place.
struct TempFile {
    path: PathBuf,
    kept: bool,
}

impl TempFile {
    fn create(dir: &Path) -> Result<(Self, File), ImageError> {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".tmp-{}-{n}", std::process::id()));
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(ImageError::io("create temporary file", &path))?;
        Ok((Self { path, kept: false }, file))
    }

    fn persist(mut self, dest: &Path) -> Result<(), ImageError> {
        fs::rename(&self.path, dest).map_err(ImageError::io("rename into place", dest))?;
        self.kept = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl OciLayout {
    /// Creates a layout at `dir` (directories, `oci-layout`, an empty `index.json`), keeping
    /// whatever is already there; an existing layout of another version is refused.
    pub fn create(dir: impl AsRef<Path>) -> Result<Self, ImageError> {
        let root = dir.as_ref().to_path_buf();
        let blobs = root.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(ImageError::io("create directory", &blobs))?;
        let layout = Self { root };
        let header = layout.root.join("oci-layout");
        if header.exists() {
            layout.check_header()?;
        } else {
            let value = serde_json::json!({ "imageLayoutVersion": LAYOUT_VERSION });
            layout.write_atomic(&header, &canonical_json(&value).unwrap_or_default())?;
        }
        let index = layout.index_path();
        if !index.exists() {
            let mut empty = ImageIndex::default();
            empty.set_media_type(Some(MediaType::ImageIndex));
            layout.write_index(&empty)?;
        }
        Ok(layout)
    }

    /// Opens an existing layout: `oci-layout` must say version 1.0.0 and `index.json` exist.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, ImageError> {
        let layout = Self {
            root: dir.as_ref().to_path_buf(),
        };
        layout.check_header()?;
        if !layout.index_path().is_file() {
            return Err(ImageError::NotALayout {
                dir: layout.root,
                reason: "index.json is missing".to_string(),
            });
        }
        Ok(layout)
    }

    fn check_header(&self) -> Result<(), ImageError> {
        let path = self.root.join("oci-layout");
        let not_a_layout = |reason: String| ImageError::NotALayout {
            dir: self.root.clone(),
            reason,
        };
        let file = File::open(&path).map_err(|e| not_a_layout(format!("oci-layout: {e}")))?;
        let header = LayoutHeader::from_reader(file.take(MAX_JSON_BLOB))
            .map_err(|e| not_a_layout(format!("oci-layout does not parse: {e}")))?;
        if header.image_layout_version() != LAYOUT_VERSION {
            return Err(ImageError::LayoutVersion {
                dir: self.root.clone(),
                found: header.image_layout_version().clone(),
                expected: LAYOUT_VERSION,
            });
        }
        Ok(())
    }

    /// The layout's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    /// Where the blob `digest` lives: `blobs/<algorithm>/<encoded>`.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_ref())
            .join(digest.digest())
    }

    /// True when the blob is present (not checked).
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Writes `bytes` to `dest` through a temporary file and a rename.
    fn write_atomic(&self, dest: &Path, bytes: &[u8]) -> Result<(), ImageError> {
        let dir = dest.parent().unwrap_or(&self.root);
        let (temp, mut file) = TempFile::create(dir)?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(ImageError::io("write", &temp.path))?;
        temp.persist(dest)
    }

    // ANCHOR: put_blob
    /// Stores what `reader` yields as a blob and returns its descriptor.
    ///
    /// The bytes stream into a temporary file in `blobs/` and are hashed on the way; only then is
    /// the name known, and the file is renamed to `blobs/sha256/<hex>`. rename(2) is atomic, so
    /// readers see no blob or the whole blob, and storing a blob twice is harmless.
    pub fn put_blob(
        &self,
        reader: impl Read,
        media_type: MediaType,
    ) -> Result<Descriptor, ImageError> {
        self.store_blob(reader, media_type, None)
    }

    /// [`put_blob`](Self::put_blob) for content that must be what `expected` describes (a
    /// download): a byte past its size stops the copy at once (a hostile server cannot fill the
    /// disk), and a wrong size or digest at the end is [`ImageError::BlobSize`] or
    /// [`ImageError::BlobDigest`], with the temporary file deleted: nothing is stored.
    pub fn put_blob_expecting(
        &self,
        reader: impl Read,
        expected: &Descriptor,
    ) -> Result<Descriptor, ImageError> {
        self.store_blob(reader, expected.media_type().clone(), Some(expected))
    }

    fn store_blob(
        &self,
        reader: impl Read,
        media_type: MediaType,
        expected: Option<&Descriptor>,
    ) -> Result<Descriptor, ImageError> {
        let (temp, mut file) = TempFile::create(&self.root.join("blobs"))?;
        let limit = expected.map_or(u64::MAX, |d| d.size().saturating_add(1));
        let mut hashing = HashingReader::new(reader.take(limit));
        io::copy(&mut hashing, &mut file).map_err(|source| ImageError::Io {
            action: "copy blob content into",
            path: temp.path.clone(),
            source,
        })?;
        let (_, digest, size) = hashing
            .finish()
            .map_err(ImageError::io("finish reading blob for", temp.path.clone()))?;
        if let Some(expected) = expected {
            // Checked before anything is named; `temp` deletes the file on the way out.
            if size != expected.size() {
                return Err(ImageError::BlobSize {
                    digest: expected.digest().to_string(),
                    path: temp.path.clone(),
                    expected: expected.size(),
                    actual: size,
                });
            }
            if digest != expected.digest().as_ref() {
                return Err(ImageError::BlobDigest {
                    digest: expected.digest().to_string(),
                    path: temp.path.clone(),
                    actual: digest,
                });
            }
        }
        file.sync_all()
            .map_err(ImageError::io("sync", temp.path.clone()))?;
        let digest = digest::parse(&digest)?;
        let dest = self.blob_path(&digest);
        if let Some(dir) = dest.parent() {
            fs::create_dir_all(dir).map_err(ImageError::io("create directory", dir))?;
        }
        temp.persist(&dest)?;
        Ok(Descriptor::new(media_type, size, digest))
    }
    // ANCHOR_END: put_blob

    /// Stores `bytes` as a blob.
    pub fn put_bytes(&self, bytes: &[u8], media_type: MediaType) -> Result<Descriptor, ImageError> {
        self.put_blob(bytes, media_type)
    }

    /// Stores `value` as a JSON blob in canonical form ([`canonical_json`]): the same value gives
    /// the same digest every time.
    pub fn put_json<T: Serialize>(
        &self,
        value: &T,
        media_type: MediaType,
    ) -> Result<Descriptor, ImageError> {
        let bytes = canonical_json(value).map_err(|e| ImageError::BadJson {
            what: format!("the value to store as {media_type}"),
            kind: "serialization",
            detail: e.to_string(),
        })?;
        self.put_bytes(&bytes, media_type)
    }

    /// Opens the blob `desc` names after checking that it exists and has the descriptor's size;
    /// the caller hashes what it reads (the unpacker does).
    pub fn open_blob(&self, desc: &Descriptor) -> Result<File, ImageError> {
        digest::sha256_hex(desc.digest())?;
        let path = self.blob_path(desc.digest());
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ImageError::BlobMissing {
                    digest: desc.digest().to_string(),
                    path,
                })
            }
            Err(e) => return Err(ImageError::io("open blob", path)(e)),
        };
        let actual = file
            .metadata()
            .map_err(ImageError::io("stat blob", &path))?
            .len();
        if actual != desc.size() {
            return Err(ImageError::BlobSize {
                digest: desc.digest().to_string(),
                path,
                expected: desc.size(),
                actual,
            });
        }
        Ok(file)
    }

    /// Checks a blob completely: present, the descriptor's size, and content that hashes to its
    /// digest.
    pub fn verify_blob(&self, desc: &Descriptor) -> Result<(), ImageError> {
        let file = self.open_blob(desc)?;
        let path = self.blob_path(desc.digest());
        let actual = digest::sha256_of(file).map_err(ImageError::io("read blob", &path))?;
        self.check_digest(desc, actual)
    }

    fn check_digest(&self, desc: &Descriptor, actual: String) -> Result<(), ImageError> {
        if actual != desc.digest().as_ref() {
            return Err(ImageError::BlobDigest {
                digest: desc.digest().to_string(),
                path: self.blob_path(desc.digest()),
                actual,
            });
        }
        Ok(())
    }

    /// Reads a (JSON) blob whole, checked: at most [`MAX_JSON_BLOB`] bytes, the descriptor's
    /// size, the descriptor's digest.
    pub fn read_blob(&self, desc: &Descriptor) -> Result<Vec<u8>, ImageError> {
        if desc.size() > MAX_JSON_BLOB {
            return Err(ImageError::BlobTooLarge {
                digest: desc.digest().to_string(),
                media_type: desc.media_type().to_string(),
                size: desc.size(),
                limit: MAX_JSON_BLOB,
            });
        }
        let file = self.open_blob(desc)?;
        let path = self.blob_path(desc.digest());
        let mut bytes = Vec::with_capacity(desc.size() as usize);
        file.take(desc.size() + 1)
            .read_to_end(&mut bytes)
            .map_err(ImageError::io("read blob", &path))?;
        if bytes.len() as u64 != desc.size() {
            return Err(ImageError::BlobSize {
                digest: desc.digest().to_string(),
                path,
                expected: desc.size(),
                actual: bytes.len() as u64,
            });
        }
        self.check_digest(desc, digest::sha256_bytes(&bytes).to_string())?;
        Ok(bytes)
    }

    /// The layout's `index.json`.
    pub fn index(&self) -> Result<ImageIndex, ImageError> {
        let path = self.index_path();
        let file = File::open(&path).map_err(ImageError::io("open", &path))?;
        ImageIndex::from_reader(file.take(MAX_JSON_BLOB)).map_err(|e| ImageError::BadJson {
            what: path.display().to_string(),
            kind: "an image index",
            detail: e.to_string(),
        })
    }

    fn write_index(&self, index: &ImageIndex) -> Result<(), ImageError> {
        let bytes = canonical_json(index).map_err(|e| ImageError::BadJson {
            what: "index.json".to_string(),
            kind: "an image index",
            detail: e.to_string(),
        })?;
        self.write_atomic(&self.index_path(), &bytes)
    }

    /// Adds `manifest` (an image manifest or index) to `index.json`, named `ref_name` in the
    /// `org.opencontainers.image.ref.name` annotation. An entry with the same name loses it (a
    /// tag moves); an unnamed entry with the same digest is replaced. Writers are serialized with
    /// flock(2) on `oci-layout`, so concurrent adds do not lose each other's entries.
    pub fn add_to_index(
        &self,
        manifest: &Descriptor,
        ref_name: Option<&str>,
    ) -> Result<(), ImageError> {
        let header = self.root.join("oci-layout");
        let lock_file = File::open(&header).map_err(ImageError::io("open", &header))?;
        let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, errno)| ImageError::io("lock", &header)(errno.into()))?;

        let mut index = self.index()?;
        let mut entry = manifest.clone();
        let mut annotations = entry.annotations().clone().unwrap_or_default();
        annotations.remove(ANNOTATION_REF_NAME);
        if let Some(name) = ref_name {
            annotations.insert(ANNOTATION_REF_NAME.to_string(), name.to_string());
        }
        entry.set_annotations((!annotations.is_empty()).then_some(annotations));

        let mut manifests = index.manifests().clone();
        manifests.retain(|old| {
            let old_name = ref_name_of(old);
            match ref_name {
                Some(name) => old_name != Some(name),
                None => !(old_name.is_none() && old.digest() == entry.digest()),
            }
        });
        manifests.push(entry);
        index.set_manifests(manifests);
        self.write_index(&index)
    }

    /// Removes the index entry named `ref_name`; true if there was one. Blobs stay (a later
    /// garbage collection may remove unreferenced ones).
    pub fn remove_from_index(&self, ref_name: &str) -> Result<bool, ImageError> {
        let header = self.root.join("oci-layout");
        let lock_file = File::open(&header).map_err(ImageError::io("open", &header))?;
        let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, errno)| ImageError::io("lock", &header)(errno.into()))?;
        let mut index = self.index()?;
        let mut manifests = index.manifests().clone();
        manifests.retain(|d| ref_name_of(d) != Some(ref_name));
        let removed = manifests.len() != index.manifests().len();
        if removed {
            index.set_manifests(manifests);
            self.write_index(&index)?;
        }
        Ok(removed)
    }

    // ANCHOR: resolve
    /// Finds an image by ref name (`latest`, `busybox:1.36`; Docker Hub's `docker.io/library/`
    /// optional) or manifest digest (`sha256:…`), for this machine's platform, and reads its
    /// manifest and config, checked.
    pub fn resolve(&self, reference: &str) -> Result<ResolvedImage, ImageError> {
        self.resolve_for(reference, &Os::default(), &Arch::default())
    }

    /// [`resolve`](Self::resolve) for a given platform: a multi-platform image (an image index)
    /// gives the manifest for `os`/`arch`.
    pub fn resolve_for(
        &self,
        reference: &str,
        os: &Os,
        arch: &Arch,
    ) -> Result<ResolvedImage, ImageError> {
        let (desc, ref_name) = self.find(reference)?;
        let desc = self.pick_platform(reference, desc, os, arch)?;
        let mut image = self.load_manifest(&desc)?;
        image.ref_name = ref_name;
        Ok(image)
    }

    /// The index entry a reference names (a name or a digest), and its ref name.
    pub(crate) fn find(&self, reference: &str) -> Result<(Descriptor, Option<String>), ImageError> {
        let index = self.index()?;
        if reference.starts_with("sha256:") {
            let wanted = digest::parse(reference)?;
            if let Some(desc) = index.manifests().iter().find(|d| d.digest() == &wanted) {
                return Ok((desc.clone(), ref_name_of(desc).map(str::to_string)));
            }
            // Not in the index itself: a platform manifest of a multi-platform image, maybe.
            if let Some(desc) = self.find_in_nested(&index, &wanted) {
                return Ok((desc, None));
            }
        } else {
            let mut found: Vec<&Descriptor> = Vec::new();
            for desc in index.manifests() {
                if names_of(desc).any(|name| reference::matches(reference, name))
                    && !found.iter().any(|d| d.digest() == desc.digest())
                {
                    found.push(desc);
                }
            }
            match found.as_slice() {
                [desc] => {
                    let name = ref_name_of(desc).map(str::to_string);
                    return Ok(((*desc).clone(), name.or(Some(reference.to_string()))));
                }
                [] => {}
                several => {
                    return Err(ImageError::Ambiguous {
                        reference: reference.to_string(),
                        candidates: several
                            .iter()
                            .map(|d| describe_entry(d))
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
                }
            }
        }
        let available = index
            .manifests()
            .iter()
            .map(describe_entry)
            .collect::<Vec<_>>();
        Err(ImageError::NotFound {
            reference: reference.to_string(),
            layout: self.root.clone(),
            available: if available.is_empty() {
                "none".to_string()
            } else {
                available.join(", ")
            },
        })
    }

    fn find_in_nested(&self, index: &ImageIndex, wanted: &Digest) -> Option<Descriptor> {
        index
            .manifests()
            .iter()
            .filter(|d| is_index(d.media_type()))
            .filter_map(|d| self.read_index_blob(d).ok())
            .find_map(|nested| {
                nested
                    .manifests()
                    .iter()
                    .find(|d| d.digest() == wanted)
                    .cloned()
            })
    }

    fn read_index_blob(&self, desc: &Descriptor) -> Result<ImageIndex, ImageError> {
        let bytes = self.read_blob(desc)?;
        ImageIndex::from_reader(&bytes[..]).map_err(|e| ImageError::BadJson {
            what: format!("blob {}", desc.digest()),
            kind: "an image index",
            detail: e.to_string(),
        })
    }

    /// For an image index, the manifest for `os`/`arch` (attestations skipped); a manifest as is.
    fn pick_platform(
        &self,
        reference: &str,
        desc: Descriptor,
        os: &Os,
        arch: &Arch,
    ) -> Result<Descriptor, ImageError> {
        let mut desc = desc;
        // An index may point to an index; two levels is plenty, more is a loop or hostile.
        for _ in 0..2 {
            if !is_index(desc.media_type()) {
                return Ok(desc);
            }
            let index = self.read_index_blob(&desc)?;
            desc = match select_platform(&index, os, arch) {
                Ok(chosen) => chosen.clone(),
                Err(available) => {
                    return Err(ImageError::NoPlatform {
                        reference: reference.to_string(),
                        index: desc.digest().to_string(),
                        wanted: format!("{os}/{arch}"),
                        available,
                    })
                }
            };
        }
        Err(ImageError::MediaType {
            digest: desc.digest().to_string(),
            media_type: desc.media_type().to_string(),
            expected: "an image manifest within two levels of image indexes",
        })
    }

    /// Reads and checks a manifest, its config, and that its layer blobs are there.
    fn load_manifest(&self, desc: &Descriptor) -> Result<ResolvedImage, ImageError> {
        if !is_manifest(desc.media_type()) {
            return Err(ImageError::MediaType {
                digest: desc.digest().to_string(),
                media_type: desc.media_type().to_string(),
                expected: "an image manifest",
            });
        }
        let bytes = self.read_blob(desc)?;
        let manifest = ImageManifest::from_reader(&bytes[..]).map_err(|e| ImageError::BadJson {
            what: format!("manifest {}", desc.digest()),
            kind: "an image manifest",
            detail: e.to_string(),
        })?;
        let config_desc = manifest.config();
        if !is_config(config_desc.media_type()) {
            return Err(ImageError::MediaType {
                digest: config_desc.digest().to_string(),
                media_type: config_desc.media_type().to_string(),
                expected: "an image config",
            });
        }
        let bytes = self.read_blob(config_desc)?;
        let config =
            ImageConfiguration::from_reader(&bytes[..]).map_err(|e| ImageError::BadJson {
                what: format!("config {}", config_desc.digest()),
                kind: "an image config",
                detail: e.to_string(),
            })?;
        let diff_ids = config
            .rootfs()
            .diff_ids()
            .iter()
            .map(|d| digest::parse(d))
            .collect::<Result<Vec<_>, _>>()?;
        if diff_ids.len() != manifest.layers().len() {
            return Err(ImageError::DiffIdCount {
                manifest: desc.digest().to_string(),
                config: config_desc.digest().to_string(),
                layers: manifest.layers().len(),
                diff_ids: diff_ids.len(),
            });
        }
        for layer in manifest.layers() {
            if !is_layer(layer.media_type()) {
                return Err(ImageError::MediaType {
                    digest: layer.digest().to_string(),
                    media_type: layer.media_type().to_string(),
                    expected: "a layer (tar, tar+gzip or tar+zstd)",
                });
            }
            self.open_blob(layer)?; // present, right size; hashed when unpacked
        }
        Ok(ResolvedImage {
            ref_name: None,
            manifest_descriptor: desc.clone(),
            manifest_digest: desc.digest().clone(),
            manifest,
            config,
            diff_ids,
        })
    }
    // ANCHOR_END: resolve

    /// Hashes every blob of an image (manifest and config were checked when it was resolved; this
    /// reads all layers too).
    pub fn verify_image(&self, image: &ResolvedImage) -> Result<(), ImageError> {
        self.verify_blob(&image.manifest_descriptor)?;
        self.verify_blob(image.manifest.config())?;
        image
            .manifest
            .layers()
            .iter()
            .try_for_each(|layer| self.verify_blob(layer))
    }

    /// Every entry of the index, with its size, creation time and layer count (for this
    /// machine's platform). An entry that cannot be resolved is listed with its problem.
    pub fn images(&self) -> Result<Vec<ImageSummary>, ImageError> {
        let index = self.index()?;
        let mut out = Vec::new();
        for entry in index.manifests() {
            let mut summary = ImageSummary {
                ref_name: ref_name_of(entry).map(str::to_string),
                digest: entry.digest().to_string(),
                platform: None,
                size: 0,
                created: None,
                layers: 0,
                problem: None,
            };
            let resolved = self
                .pick_platform(
                    entry.digest().as_ref(),
                    entry.clone(),
                    &Os::default(),
                    &Arch::default(),
                )
                .and_then(|desc| self.load_manifest(&desc));
            match resolved {
                Ok(image) => {
                    summary.platform = Some(format!(
                        "{}/{}",
                        image.config.os(),
                        image.config.architecture()
                    ));
                    summary.size = image.manifest_descriptor.size()
                        + image.manifest.config().size()
                        + image
                            .manifest
                            .layers()
                            .iter()
                            .map(|l| l.size())
                            .sum::<u64>();
                    summary.created = image.config.created().clone();
                    summary.layers = image.manifest.layers().len();
                }
                Err(e) => summary.problem = Some(e.to_string()),
            }
            out.push(summary);
        }
        Ok(out)
    }
}

// ANCHOR: select_platform
/// The manifest in `index` for `os`/`arch`, attestations and `unknown/unknown` entries
/// skipped (they are no image to run); else the platforms offered, variants included. Used for
/// an index in a layout and for one a registry sends.
pub(crate) fn select_platform<'a>(
    index: &'a ImageIndex,
    os: &Os,
    arch: &Arch,
) -> Result<&'a Descriptor, String> {
    let candidates: Vec<&Descriptor> = index
        .manifests()
        .iter()
        .filter(|d| {
            let attestation = d
                .annotations()
                .as_ref()
                .and_then(|a| a.get("vnd.docker.reference.type"))
                .is_some_and(|kind| kind == "attestation-manifest");
            let unknown = d
                .platform()
                .as_ref()
                .is_some_and(|p| p.os().to_string() == "unknown");
            !attestation && !unknown
        })
        .collect();
    candidates
        .iter()
        .find(|d| {
            d.platform()
                .as_ref()
                .is_some_and(|p| p.os() == os && p.architecture() == arch)
        })
        .copied()
        .ok_or_else(|| {
            let offered: Vec<String> = candidates
                .iter()
                .map(|d| match d.platform() {
                    Some(p) => match p.variant() {
                        Some(v) => format!("{}/{}/{v}", p.os(), p.architecture()),
                        None => format!("{}/{}", p.os(), p.architecture()),
                    },
                    None => format!("{} (no platform)", d.digest()),
                })
                .collect();
            if offered.is_empty() {
                "nothing".to_string()
            } else {
                offered.join(", ")
            }
        })
}
// ANCHOR_END: select_platform

/// The `org.opencontainers.image.ref.name` of an index entry.
pub fn ref_name_of(desc: &Descriptor) -> Option<&str> {
    desc.annotations()
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_REF_NAME))
        .map(String::as_str)
}

/// The names an index entry answers to: its ref name and containerd's full name.
fn names_of(desc: &Descriptor) -> impl Iterator<Item = &str> {
    let annotations = desc.annotations().as_ref();
    [ANNOTATION_REF_NAME, ANNOTATION_CONTAINERD_NAME]
        .into_iter()
        .filter_map(move |key| annotations.and_then(|a| a.get(key)).map(String::as_str))
}

fn describe_entry(desc: &Descriptor) -> String {
    match ref_name_of(desc) {
        Some(name) => format!("{name} ({})", desc.digest()),
        None => desc.digest().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::{ImageIndexBuilder, PlatformBuilder};

    fn entry(os: Os, arch: Arch, variant: Option<&str>, n: u8) -> Descriptor {
        let mut platform = PlatformBuilder::default().os(os).architecture(arch);
        if let Some(v) = variant {
            platform = platform.variant(v);
        }
        let hex = format!("{n:02x}").repeat(32);
        let mut desc = Descriptor::new(
            MediaType::ImageManifest,
            1,
            Digest::try_from(format!("sha256:{hex}")).unwrap(),
        );
        desc.set_platform(Some(platform.build().unwrap()));
        desc
    }

    #[test]
    fn a_blob_is_stored_only_if_it_is_what_its_descriptor_says() {
        let scratch = labkit::ScratchDir::new("ch04-put-blob").unwrap();
        let layout = OciLayout::create(scratch.join("oci")).unwrap();
        let data = b"0123456789";
        let desc = |size: u64, digest: Digest| Descriptor::new(MediaType::ImageLayer, size, digest);
        let right = digest::sha256_bytes(data);
        let stored = layout
            .put_blob_expecting(&data[..], &desc(10, right.clone()))
            .unwrap();
        assert_eq!((stored.size(), stored.digest()), (10, &right));

        let other = digest::sha256_bytes(b"9876543210");
        let err = layout
            .put_blob_expecting(&b"9876543211"[..], &desc(10, other.clone()))
            .unwrap_err();
        assert!(matches!(err, ImageError::BlobDigest { .. }), "{err}");
        let long = layout
            .put_blob_expecting(&data[..], &desc(4, other.clone()))
            .unwrap_err();
        assert!(
            matches!(
                long,
                ImageError::BlobSize {
                    expected: 4,
                    actual: 5,
                    ..
                }
            ),
            "{long}"
        );
        let short = layout
            .put_blob_expecting(&data[..], &desc(20, other.clone()))
            .unwrap_err();
        assert!(
            matches!(
                short,
                ImageError::BlobSize {
                    expected: 20,
                    actual: 10,
                    ..
                }
            ),
            "{short}"
        );
        // Nothing of the three is stored, under any name, and no temporary file is left.
        assert!(!layout.has_blob(&other));
        let names: Vec<_> = fs::read_dir(scratch.join("oci/blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [right.digest()]);
        let temps = fs::read_dir(scratch.join("oci/blobs"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name() != "sha256")
            .count();
        assert_eq!(temps, 0);
    }

    #[test]
    fn platform_selection_skips_attestations_and_names_variants() {
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .manifests(vec![
                entry(Os::Linux, Arch::ARM64, Some("v8"), 1),
                entry(
                    Os::Other("unknown".into()),
                    Arch::Other("unknown".into()),
                    None,
                    2,
                ),
                entry(Os::Linux, Arch::Amd64, None, 3),
            ])
            .build()
            .unwrap();
        let chosen = select_platform(&index, &Os::Linux, &Arch::Amd64).unwrap();
        assert_eq!(chosen, &index.manifests()[2]);
        let offered = select_platform(&index, &Os::Linux, &Arch::PowerPC64le).unwrap_err();
        assert_eq!(offered, "linux/arm64/v8, linux/amd64");
    }
}
