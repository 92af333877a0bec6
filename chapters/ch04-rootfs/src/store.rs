//! A content-addressed store of unpacked layers: each layer is unpacked once, into a directory
//! named by its diff_id, and shared by every image that has it.
//!
//! ```text
//! <root>/sha256/<diff_id hex>/rootfs/      the layer's files, whiteouts as overlayfs markers
//! <root>/sha256/<diff_id hex>/layer.json   written before the directory appears: it is complete
//! <root>/tmp/                              unpacks in progress, renamed into sha256/ when done
//! ```
//!
//! The diff_id (sha256 of the uncompressed tar) is the right name: the same layer compressed
//! twice has two digests but one diff_id, and the image config lists diff_ids, so an unpacked
//! layer can be checked against it. Each layer gets a directory of its *own* — not the layers
//! below it — so that overlayfs can stack them as lowerdirs; a layer's deletions are therefore
//! kept as overlayfs whiteouts ([`WhiteoutMode::OverlayMarkers`]). Where overlayfs cannot be
//! used, [`LayerStore::flatten`] unpacks an image's layers on top of each other into one
//! directory instead.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use oci_spec::image::{Descriptor, Digest};
use serde::{Deserialize, Serialize};

use crate::digest::{self, DigestError};
use crate::image::{ImageError, OciLayout, ResolvedImage};
use crate::unpack::{
    unpack_layer_from, unpack_layer_with_whiteouts, UnpackError, UnpackOptions, UnpackReport,
    WhiteoutMode,
};

/// The name of the file that marks an unpacked layer complete, next to its `rootfs/`.
pub const RECORD_FILE: &str = "layer.json";

/// Why the store could not give an unpacked layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation in the store failed.
    #[error("layer store: could not {action} {path}: {source}")]
    Io {
        /// What we tried.
        action: &'static str,
        /// The path it was done on.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },

    /// Reading the image's blobs failed.
    #[error(transparent)]
    Image(#[from] ImageError),

    /// A diff_id is not a sha256 digest.
    #[error(transparent)]
    Digest(#[from] DigestError),

    /// The unpacker refused or failed; nothing was stored.
    #[error("unpacking layer {layer} (diff_id {diff_id}) failed, nothing was stored: {source}")]
    Unpack {
        /// The layer blob's digest.
        layer: String,
        /// The diff_id it should have.
        diff_id: String,
        /// The unpacker's error (boxed: it is large).
        #[source]
        source: Box<UnpackError>,
    },

    /// The layer unpacked, but its tar does not hash to the diff_id the config gives.
    #[error("layer {layer} unpacks to diff_id {actual} but the image config says {expected}; the image is corrupt or was built wrongly (nothing was stored): pull or build it again")]
    DiffIdMismatch {
        /// The layer blob's digest.
        layer: String,
        /// The config's diff_id.
        expected: String,
        /// The diff_id of the tar we read.
        actual: String,
    },

    /// A stored layer's record is unreadable.
    #[error("layer store: {path} is corrupt ({detail}); remove that layer with LayerStore::remove and unpack it again")]
    Record {
        /// The `layer.json` file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

fn io_err(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.into();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

/// What `layer.json` says about an unpacked layer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LayerRecord {
    /// `sha256:` of the uncompressed tar: the store's key.
    pub diff_id: String,
    /// `sha256:` of the blob it was unpacked from (one of possibly several).
    pub digest: String,
    /// The blob's size in bytes.
    pub size: u64,
    /// Tar entries handled.
    pub entries: usize,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Whiteouts kept as overlayfs markers.
    pub whiteouts: usize,
    /// Opaque directories marked.
    pub opaque_dirs: usize,
    /// Entries not created (device nodes when not root), with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// A layer in the store.
#[derive(Debug, Clone)]
pub struct StoredLayer {
    /// Its record.
    pub record: LayerRecord,
    /// Its files: use as an overlayfs lowerdir.
    pub path: PathBuf,
}

/// Where boxlab keeps its data: `/var/lib/boxlab` for root, else `$XDG_DATA_HOME/boxlab` or
/// `~/.local/share/boxlab`. The layer store is [`default_store_dir`], images
/// [`default_layout_dir`].
pub fn default_root() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/boxlab");
    }
    let xdg = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from);
    if let Some(xdg) = xdg.filter(|p| p.is_absolute()) {
        return xdg.join("boxlab");
    }
    match std::env::var_os("HOME").map(PathBuf::from) {
        Some(home) if home.is_absolute() => home.join(".local/share/boxlab"),
        _ => std::env::temp_dir().join(format!("boxlab-{}", nix::unistd::geteuid())),
    }
}

/// `<default_root>/layers`: the default [`LayerStore`].
pub fn default_store_dir() -> PathBuf {
    DataDir::default().layers_dir()
}

/// `<default_root>/oci`: the default [`OciLayout`] images are pulled, imported and built into.
pub fn default_layout_dir() -> PathBuf {
    DataDir::default().layout_dir()
}

/// boxlab's data directory (`ch04-rootfs --data DIR`), and the one place its layout is spelled:
/// images in `DIR/oci`, unpacked layers in `DIR/layers`, the build cache in `DIR/build-cache`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl Default for DataDir {
    /// [`default_root`].
    fn default() -> Self {
        Self::new(default_root())
    }
}

impl DataDir {
    /// The data directory at `root` (created as needed by the methods that open its parts).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `DIR/oci`: the [`OciLayout`] images are pulled, imported and built into.
    pub fn layout_dir(&self) -> PathBuf {
        self.root.join("oci")
    }

    /// `DIR/layers`: the [`LayerStore`].
    pub fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    /// `DIR/build-cache`: the builder's cache (and its work directories).
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("build-cache")
    }

    /// The image layout, created if missing (to import, pull or build into).
    pub fn create_layout(&self) -> Result<OciLayout, ImageError> {
        OciLayout::create(self.layout_dir())
    }

    /// The image layout, which must exist (to read from).
    pub fn open_layout(&self) -> Result<OciLayout, ImageError> {
        OciLayout::open(self.layout_dir())
    }

    /// The layer store, created if missing.
    pub fn store(&self) -> Result<LayerStore, StoreError> {
        LayerStore::open(self.layers_dir())
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A directory under `<root>/tmp` removed on drop (read-only directories inside included)
/// unless renamed into place. The builder's scratch space is one too.
pub(crate) struct TempDir {
    path: PathBuf,
    kept: bool,
}

impl TempDir {
    /// `<parent>/<label>.<pid>.<n>`; `parent` must exist. On error, the caller names `parent`.
    pub(crate) fn create(parent: &Path, label: &str) -> io::Result<Self> {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = parent.join(format!("{label}.{}.{n}", std::process::id()));
        fs::create_dir(&path)?;
        Ok(Self { path, kept: false })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.kept {
            let _ = remove_tree(&self.path);
        }
    }
}

/// Removes a directory tree, also when it holds read-only directories (an unpacked layer keeps
/// the modes its tar gives, and without root a 0555 directory cannot be emptied).
fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            make_writable(path)?;
            fs::remove_dir_all(path)
        }
        Err(e) => Err(e),
    }
}

fn make_writable(dir: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(dir)?;
    if !meta.file_type().is_dir() {
        return Ok(());
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    for child in fs::read_dir(dir)? {
        make_writable(&child?.path())?;
    }
    Ok(())
}

/// The store of unpacked layers.
#[derive(Debug, Clone)]
pub struct LayerStore {
    root: PathBuf,
}

impl LayerStore {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, StoreError> {
        let root = root.as_ref().to_path_buf();
        for dir in [root.join("sha256"), root.join("tmp")] {
            fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        }
        Ok(Self { root })
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn layer_dir(&self, diff_id: &Digest) -> Result<PathBuf, StoreError> {
        Ok(self.root.join("sha256").join(digest::sha256_hex(diff_id)?))
    }

    /// The unpacked files of `diff_id`, if the store has them (complete).
    pub fn get(&self, diff_id: &Digest) -> Result<Option<PathBuf>, StoreError> {
        let dir = self.layer_dir(diff_id)?;
        Ok(dir.join(RECORD_FILE).is_file().then(|| dir.join("rootfs")))
    }

    // ANCHOR: unpacked
    /// The directory holding layer `layer` (from `layout`) unpacked, and whether it was there
    /// already. The first caller unpacks into a temporary directory, checks that the tar hashes
    /// to `diff_id`, writes the record and renames the directory into place: rename(2) is
    /// atomic, so others see no layer or a complete one. Two callers racing both unpack; the
    /// second rename fails (the name is taken), and that caller drops its copy and uses the
    /// winner's.
    pub fn unpacked(
        &self,
        layout: &OciLayout,
        layer: &Descriptor,
        diff_id: &Digest,
    ) -> Result<(PathBuf, bool), StoreError> {
        let dir = self.layer_dir(diff_id)?;
        if let Some(path) = self.get(diff_id)? {
            return Ok((path, true));
        }
        if dir.exists() {
            // No record: a removal was interrupted. Move it out of the way, then unpack anew.
            let junk = self.temp_dir("stale")?;
            let _ = fs::rename(&dir, junk.path.join("layer"));
        }

        let temp = self.temp_dir(digest::sha256_hex(diff_id)?)?;
        let rootfs = temp.path.join("rootfs");
        let is_root = nix::unistd::geteuid().is_root();
        let options = UnpackOptions {
            allow_devices: is_root,
            preserve_ownership: is_root,
            expected_digest: Some(layer.digest().to_string()),
        };
        let blob = layout.open_blob(layer)?;
        let report =
            unpack_layer_with_whiteouts(blob, &rootfs, &options, WhiteoutMode::OverlayMarkers)
                .map_err(|source| StoreError::Unpack {
                    layer: layer.digest().to_string(),
                    diff_id: diff_id.to_string(),
                    source: Box::new(source),
                })?;
        check_layer(layer, diff_id, &report, layout)?;

        let record = LayerRecord {
            diff_id: diff_id.to_string(),
            digest: report.digest,
            size: report.size,
            entries: report.entries,
            bytes: report.bytes,
            whiteouts: report.whiteouts,
            opaque_dirs: report.opaque_dirs,
            skipped: report.skipped,
        };
        let record_path = temp.path.join(RECORD_FILE);
        let json = serde_json::to_vec_pretty(&record).map_err(|e| StoreError::Record {
            path: record_path.clone(),
            detail: e.to_string(),
        })?;
        fs::write(&record_path, json).map_err(io_err("write", &record_path))?;

        let mut temp = temp;
        match fs::rename(&temp.path, &dir) {
            Ok(()) => {
                temp.kept = true;
                Ok((dir.join("rootfs"), false))
            }
            // Someone else renamed their copy into place first: ours goes (TempDir's drop).
            Err(_) if dir.join(RECORD_FILE).is_file() => Ok((dir.join("rootfs"), true)),
            Err(e) => Err(io_err("rename into place", &dir)(e)),
        }
    }
    // ANCHOR_END: unpacked

    /// Every layer of `image` unpacked, lowest first (reverse it for overlayfs's `lowerdir=`,
    /// which lists the top layer first).
    pub fn layers_for(
        &self,
        layout: &OciLayout,
        image: &ResolvedImage,
    ) -> Result<Vec<PathBuf>, StoreError> {
        image
            .layers()
            .map(|(layer, diff_id)| Ok(self.unpacked(layout, layer, diff_id)?.0))
            .collect()
    }

    /// A fresh directory under the store's `tmp/`, on the same filesystem as the layers so that
    /// a finished one can be renamed into place.
    fn temp_dir(&self, label: &str) -> Result<TempDir, StoreError> {
        let tmp = self.root.join("tmp");
        TempDir::create(&tmp, label).map_err(io_err("create a temporary directory in", &tmp))
    }

    /// Removes the unpacked layer `diff_id`; false if the store did not have it. The caller
    /// makes sure no container uses it (no overlay mount has it as a lowerdir).
    pub fn remove(&self, diff_id: &Digest) -> Result<bool, StoreError> {
        let dir = self.layer_dir(diff_id)?;
        if !dir.exists() {
            return Ok(false);
        }
        // Out of sha256/ in one step, so nobody sees a half-deleted layer; then delete.
        let doomed = self.temp_dir("removing")?;
        let inside = doomed.path.join("layer");
        fs::rename(&dir, &inside).map_err(io_err("move out of the store", &dir))?;
        remove_tree(&doomed.path).map_err(io_err("remove", &doomed.path))?;
        Ok(true)
    }

    /// The layers the store holds, by diff_id.
    pub fn list(&self) -> Result<Vec<StoredLayer>, StoreError> {
        let dir = self.root.join("sha256");
        let mut layers = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("list", &dir))? {
            let entry = entry.map_err(io_err("list", &dir))?;
            let record_path = entry.path().join(RECORD_FILE);
            let bytes = match fs::read(&record_path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // being removed
                Err(e) => return Err(io_err("read", &record_path)(e)),
            };
            let record: LayerRecord =
                serde_json::from_slice(&bytes).map_err(|e| StoreError::Record {
                    path: record_path.clone(),
                    detail: e.to_string(),
                })?;
            layers.push(StoredLayer {
                record,
                path: entry.path().join("rootfs"),
            });
        }
        layers.sort_by(|a, b| a.record.diff_id.cmp(&b.record.diff_id));
        Ok(layers)
    }

    // ANCHOR: flatten
    /// The fallback where overlayfs cannot be used: unpacks every layer of `image`, lowest
    /// first, into `target` itself, whiteouts applied — a plain copy, no store involved. Each
    /// layer is checked against its digest and diff_id. On error `target` holds part of the
    /// image: delete it.
    pub fn flatten(
        layout: &OciLayout,
        image: &ResolvedImage,
        target: &Path,
    ) -> Result<Vec<UnpackReport>, StoreError> {
        let is_root = nix::unistd::geteuid().is_root();
        let mut reports = Vec::new();
        for (layer, diff_id) in image.layers() {
            let options = UnpackOptions {
                allow_devices: is_root,
                preserve_ownership: is_root,
                expected_digest: Some(layer.digest().to_string()),
            };
            let report = unpack_layer_from(layout.open_blob(layer)?, target, &options).map_err(
                |source| StoreError::Unpack {
                    layer: layer.digest().to_string(),
                    diff_id: diff_id.to_string(),
                    source: Box::new(source),
                },
            )?;
            check_layer(layer, diff_id, &report, layout)?;
            reports.push(report);
        }
        Ok(reports)
    }
    // ANCHOR_END: flatten
}

/// The unpacker checked the blob's digest; here its size and the tar's diff_id.
fn check_layer(
    layer: &Descriptor,
    diff_id: &Digest,
    report: &UnpackReport,
    layout: &OciLayout,
) -> Result<(), StoreError> {
    if report.size != layer.size() {
        return Err(ImageError::BlobSize {
            digest: layer.digest().to_string(),
            path: layout.blob_path(layer.digest()),
            expected: layer.size(),
            actual: report.size,
        }
        .into());
    }
    if report.diff_id != diff_id.as_ref() {
        return Err(StoreError::DiffIdMismatch {
            layer: layer.digest().to_string(),
            expected: diff_id.to_string(),
            actual: report.diff_id.clone(),
        });
    }
    Ok(())
}
