//! Unpacking OCI image layers into a directory, safely, whiteouts included.
//!
//! A layer is a tar (often gzip- or zstd-compressed) of the changes one build step made. To get
//! an image's root filesystem, unpack its layers in order into one directory. The tar comes from
//! a registry, so it is *untrusted input*: a crafted entry must never write outside the target.
//! `tar::Archive::unpack` is not used; every entry goes through our own path resolution.
//!
//! # Policy
//!
//! - **Absolute names** (`/etc/passwd`) are re-rooted: they land at `target/etc/passwd`, as in
//!   Docker, containerd and podman.
//! - **`..` in a name** is applied as text (`a/../b` is `b`); if it would climb above the target
//!   (`../x`, `a/../../x`) the whole layer is refused with [`UnpackError::Escape`] naming the
//!   entry. (containerd clamps such names at the root instead; refusing is the safer lesson.)
//! - **Symlinks already in the tree** are followed only *inside* the target, as the container
//!   will see them: `/` is the target, `..` stops at it (see [`resolve`]). So `lib -> usr/lib`
//!   then `lib/x` writes `usr/lib/x`, and `evil -> /` then `evil/etc/x` writes `target/etc/x`.
//!   The last component of an entry is never followed: the entry replaces what is there.
//! - **Symlink entries** may point anywhere: a link is data, and later writes never go through it.
//! - **Hard links** must name a path inside the target (same `..` rule, same resolution); the
//!   linked file must exist and not be a directory.
//! - **Device nodes** are made only with [`UnpackOptions::allow_devices`] and root; otherwise
//!   they are skipped and listed in [`UnpackReport::skipped`] (what rootless Docker does). FIFOs
//!   need no privilege and are always made.
//! - **Replacing**: an entry replaces whatever is at its path (a file over a directory removes
//!   the directory tree), except a directory over a directory, which keeps its contents and gets
//!   the new metadata.
//! - **Metadata**: mode bits (setuid and sticky included) and mtimes are kept; owners only with
//!   [`UnpackOptions::preserve_ownership`] (root). Directory modes and mtimes are applied last,
//!   after their contents are written.
//! - **Whiteouts** follow the OCI spec (see [`whiteout`]); markers never appear in the output.
//!   That is [`WhiteoutMode::Apply`], for unpacking layers on top of each other into one tree.
//!   A layer unpacked into a directory of its own, to be an overlayfs lower layer, must instead
//!   *keep* its deletions in overlayfs's form ([`WhiteoutMode::OverlayMarkers`], root only):
//!   `.wh.name` becomes a character device 0:0 named `name`, `.wh..wh..opq` becomes the xattr
//!   `trusted.overlay.opaque=y` on its directory. See [`unpack_layer_with_whiteouts`].
//! - **Errors** stop the unpack and leave a partly written target: unpack into a fresh
//!   directory and delete it on error. Only [`unpack_layer`] with an `expected_digest` checks
//!   the digest *before* touching the target.

mod error;
pub mod resolve;
mod stream;
pub mod whiteout;
mod write;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};

use nix::sys::stat::SFlag;
use serde::Serialize;
use tar::EntryType;

pub use error::UnpackError;
pub use stream::Compression;

use crate::digest::{parse_digest, sha256_of, HashingReader};
use resolve::{
    clean_entry_name, ensure_dirs, is_real_dir_chain, resolve_dir_in_root, ResolveError,
};
use stream::Decoder;
use whiteout::{is_whiteout_name, make_opaque, parse_whiteout, remove_lower, LayerPaths, Whiteout};
use write::Meta;

/// The xattr overlayfs reads to treat a directory of an upper or lower layer as opaque.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// What the unpacker may do beyond writing plain files.
#[derive(Debug, Clone, Default)]
pub struct UnpackOptions {
    /// Create character and block device nodes (needs root). Off: they are skipped and reported.
    pub allow_devices: bool,
    /// Chown every entry to the uid/gid in the archive (needs root). Off: files belong to us.
    pub preserve_ownership: bool,
    /// `sha256:<hex>` of the blob exactly as given (compressed); a mismatch is an error.
    pub expected_digest: Option<String>,
}

/// What a whiteout entry turns into.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WhiteoutMode {
    /// Delete what lower layers put there: the target holds the layers below, merged.
    #[default]
    Apply,
    /// Keep the deletion as overlayfs markers, for a layer unpacked into its own directory:
    /// a character device 0:0 for `.wh.name`, `trusted.overlay.opaque=y` for `.wh..wh..opq`.
    /// Needs root (mknod of a whiteout before Linux 5.8, trusted.* xattrs always).
    OverlayMarkers,
}

/// What an unpack did.
#[derive(Debug, Clone, Serialize)]
pub struct UnpackReport {
    /// The compression found by magic bytes.
    pub compression: Compression,
    /// Tar entries handled (whiteouts and skipped ones included; PAX global headers not).
    pub entries: usize,
    /// `.wh.<name>` whiteouts applied (whether or not there was something to delete).
    pub whiteouts: usize,
    /// `.wh..wh..opq` opaque markers applied.
    pub opaque_dirs: usize,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Entries not created, with the reason (device nodes without `allow_devices`, ...).
    pub skipped: Vec<(PathBuf, String)>,
    /// `sha256:` of the uncompressed tar stream: the layer's diff_id in an image config.
    pub diff_id: String,
    /// `sha256:` of the blob as read: the layer's digest in a manifest.
    pub digest: String,
    /// Size of the blob as read, in bytes (the `size` of its descriptor).
    pub size: u64,
}

/// Unpacks the layer file `layer` (plain tar, gzip or zstd, told by its first bytes) into
/// `target`, creating `target` if needed.
///
/// With `expected_digest`, the file is hashed first and a mismatch is reported before anything
/// is written ([`UnpackError::DigestMismatch`]); the stream is hashed again while unpacking, in
/// case the file changed in between.
pub fn unpack_layer(
    layer: &Path,
    target: &Path,
    options: &UnpackOptions,
) -> Result<UnpackReport, UnpackError> {
    let open = |layer: &Path| {
        File::open(layer).map_err(|source| UnpackError::OpenLayer {
            layer: layer.to_path_buf(),
            source,
        })
    };
    if let Some(expected) = &options.expected_digest {
        let expected = checked_digest(expected)?;
        let actual = sha256_of(open(layer)?).map_err(|source| UnpackError::OpenLayer {
            layer: layer.to_path_buf(),
            source,
        })?;
        if actual != expected {
            return Err(UnpackError::DigestMismatch {
                layer: layer.to_path_buf(),
                expected: expected.to_string(),
                actual,
            });
        }
    }
    unpack_layer_from(open(layer)?, target, options)
}

/// Unpacks a layer read from `reader` into `target`. The stream can only be checked against
/// `expected_digest` once it has been read, so on a mismatch the target already holds the
/// content: [`UnpackError::DigestMismatchAfterUnpack`] says to delete it.
pub fn unpack_layer_from(
    reader: impl Read,
    target: &Path,
    options: &UnpackOptions,
) -> Result<UnpackReport, UnpackError> {
    unpack_layer_with_whiteouts(reader, target, options, WhiteoutMode::Apply)
}

/// [`unpack_layer_from`] with a choice of what whiteouts become: [`WhiteoutMode::Apply`] deletes
/// from the lower layers already in `target`; [`WhiteoutMode::OverlayMarkers`] writes overlayfs
/// whiteouts instead, for a layer that gets a directory of its own (the layer store's).
pub fn unpack_layer_with_whiteouts(
    reader: impl Read,
    target: &Path,
    options: &UnpackOptions,
    whiteouts: WhiteoutMode,
) -> Result<UnpackReport, UnpackError> {
    let expected = options
        .expected_digest
        .as_deref()
        .map(checked_digest)
        .transpose()?;
    let is_root = nix::unistd::geteuid().is_root();
    if options.preserve_ownership && !is_root {
        return Err(UnpackError::NeedsRoot);
    }
    let root = prepare_target(target)?;

    // blob bytes -> hash (digest) -> decompress -> hash (diff_id) -> tar entries
    let blob = HashingReader::new(reader);
    let (compression, decoder) =
        Decoder::detect(blob).map_err(stream_error("reading the first bytes"))?;
    let mut archive = tar::Archive::new(HashingReader::new(decoder));
    let mut unpacker = Unpacker::new(root.clone(), options, is_root, whiteouts);
    for entry in archive
        .entries()
        .map_err(stream_error("reading the first tar header"))?
    {
        let mut entry = entry.map_err(stream_error("reading a tar header"))?;
        unpacker.entry(&mut entry)?;
    }
    unpacker.finish_dirs()?;

    // The tar reader stops at the first zero block; read the rest so both digests cover it all.
    let (decoder, diff_id, _) = archive
        .into_inner()
        .finish()
        .map_err(stream_error("reading past the end of the tar"))?;
    let blob = decoder.finish().map_err(stream_error(
        "reading past the end of the compressed stream",
    ))?;
    let (_, digest, size) = blob
        .finish()
        .map_err(stream_error("reading past the end of the blob"))?;
    if let Some(expected) = expected {
        if digest != expected {
            return Err(UnpackError::DigestMismatchAfterUnpack {
                expected: expected.to_string(),
                actual: digest,
                target: root,
            });
        }
    }
    let report = unpacker.report;
    Ok(UnpackReport {
        compression,
        diff_id,
        digest,
        size,
        ..report
    })
}

fn checked_digest(given: &str) -> Result<&str, UnpackError> {
    parse_digest(given).ok_or_else(|| UnpackError::BadDigest {
        given: given.to_string(),
    })
}

fn stream_error(context: &'static str) -> impl Fn(io::Error) -> UnpackError {
    move |source| UnpackError::Stream {
        context: context.to_string(),
        source,
    }
}

/// Creates `target` if missing and returns its canonical path (the caller's own symlinks in
/// the target path are trusted; only what is *inside* it is not).
fn prepare_target(target: &Path) -> Result<PathBuf, UnpackError> {
    let fail = |reason: String| UnpackError::Target {
        target: target.to_path_buf(),
        reason,
    };
    fs::create_dir_all(target).map_err(|e| fail(e.to_string()))?;
    let root = fs::canonicalize(target).map_err(|e| fail(e.to_string()))?;
    if !root.is_dir() {
        return Err(fail("it is not a directory".to_string()));
    }
    Ok(root)
}

/// The state of one layer's unpack.
struct Unpacker<'a> {
    root: PathBuf,
    options: &'a UnpackOptions,
    is_root: bool,
    whiteouts: WhiteoutMode,
    /// What this layer wrote, so its own whiteouts leave it alone.
    layer: LayerPaths,
    /// Directory mode and mtime (and the entry that set them), applied once everything inside
    /// is written.
    dirs: BTreeMap<PathBuf, (PathBuf, Meta)>,
    report: UnpackReport,
}

impl<'a> Unpacker<'a> {
    fn new(
        root: PathBuf,
        options: &'a UnpackOptions,
        is_root: bool,
        whiteouts: WhiteoutMode,
    ) -> Self {
        Self {
            root,
            options,
            is_root,
            whiteouts,
            layer: LayerPaths::default(),
            dirs: BTreeMap::new(),
            report: UnpackReport {
                compression: Compression::None,
                entries: 0,
                whiteouts: 0,
                opaque_dirs: 0,
                bytes: 0,
                skipped: Vec::new(),
                diff_id: String::new(),
                digest: String::new(),
                size: 0,
            },
        }
    }

    // ANCHOR: entry
    /// One tar entry: check its name, apply it as a whiteout or resolve where it goes, then
    /// create it.
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(()); // archive-wide metadata, not a file
        }
        let name = entry
            .path()
            .map_err(stream_error("reading an entry name"))?
            .into_owned();
        self.report.entries += 1;

        // 1. The name, as text: re-rooted, `..` applied, refused if it climbs out.
        let rel = clean_entry_name(&name).ok_or_else(|| UnpackError::Escape {
            entry: name.clone(),
            detail: "its `..` components climb above the target".to_string(),
        })?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        if parent.iter().any(is_whiteout_name) {
            return Err(UnpackError::BadWhiteout {
                entry: name,
                detail: "a `.wh.` name is used as a directory".to_string(),
            });
        }

        // 2. Whiteouts delete instead of create.
        if let Some(file_name) = rel.file_name() {
            match parse_whiteout(file_name) {
                Err(detail) => {
                    return Err(UnpackError::BadWhiteout {
                        entry: name,
                        detail: detail.to_string(),
                    })
                }
                Ok(Some(whiteout)) => return self.whiteout(&name, parent, whiteout),
                Ok(None) => {}
            }
        }

        // 3. Entries we do not create at all: decided before touching the disk.
        if let Some(reason) = self.refusal(entry.header()) {
            self.report.skipped.push((name, reason));
            return Ok(());
        }

        // 4. Where it goes: parents resolved inside the target, then created if missing.
        let dir = self.resolve_dir(&name, parent)?;
        let meta = Meta::from_header(entry.header()).map_err(stream_error("reading a header"))?;
        let Some(file_name) = rel.file_name() else {
            return self.root_entry(&name, kind, meta);
        };
        ensure_dirs(&self.root, &dir, &mut self.layer).map_err(|(path, source)| {
            UnpackError::Io {
                entry: name.clone(),
                action: "make parent directory",
                path,
                source,
            }
        })?;
        let dest = dir.join(file_name);

        // 5. Create it.
        match kind {
            EntryType::Directory => self.directory(&name, &dest, meta)?,
            EntryType::Symlink => self.symlink(&name, &dest, entry, meta)?,
            EntryType::Link => self.hard_link(&name, &dest, entry)?,
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                if !self.node(&name, &dest, entry.header(), meta)? {
                    return Ok(());
                }
            }
            _ => self.file(&name, &dest, entry, meta)?, // Regular, Continuous, GNUSparse
        }
        self.layer.record(&dest);
        Ok(())
    }
    // ANCHOR_END: entry

    /// Why an entry is skipped rather than created, if it is.
    fn refusal(&self, header: &tar::Header) -> Option<String> {
        let kind = header.entry_type();
        let device = match kind {
            EntryType::Char => "character device",
            EntryType::Block => "block device",
            EntryType::Regular
            | EntryType::Continuous
            | EntryType::GNUSparse
            | EntryType::Directory
            | EntryType::Symlink
            | EntryType::Link
            | EntryType::Fifo => return None,
            other => return Some(format!("unsupported tar entry type {:?}", other.as_byte())),
        };
        let numbers = format!(
            "{}:{}",
            header.device_major().ok().flatten().unwrap_or(0),
            header.device_minor().ok().flatten().unwrap_or(0)
        );
        if !self.options.allow_devices {
            Some(format!(
                "{device} {numbers} not created: allow_devices is off"
            ))
        } else if !self.is_root {
            Some(format!("{device} {numbers} not created: mknod needs root"))
        } else {
            None
        }
    }

    fn resolve_dir(&self, name: &Path, rel: &Path) -> Result<PathBuf, UnpackError> {
        resolve_dir_in_root(&self.root, rel).map_err(|e| match e {
            ResolveError::Loop => UnpackError::SymlinkLoop {
                entry: name.to_path_buf(),
                limit: resolve::MAX_SYMLINKS,
            },
            ResolveError::Io(path, source) => UnpackError::Io {
                entry: name.to_path_buf(),
                action: "look up",
                path,
                source,
            },
        })
    }

    fn io_error(
        &self,
        name: &Path,
        action: &'static str,
        rel: &Path,
    ) -> impl Fn(io::Error) -> UnpackError {
        let entry = name.to_path_buf();
        let path = self.root.join(rel);
        move |source| UnpackError::Io {
            entry: entry.clone(),
            action,
            path: path.clone(),
            source,
        }
    }

    // ANCHOR: whiteout
    /// Applies `.wh.<name>` or `.wh..wh..opq` found in directory `parent`.
    fn whiteout(
        &mut self,
        name: &Path,
        parent: &Path,
        whiteout: Whiteout<'_>,
    ) -> Result<(), UnpackError> {
        let dir = self.resolve_dir(name, parent)?;
        match whiteout {
            Whiteout::AufsMeta => {
                let reason = "AUFS metadata, not part of the image".to_string();
                self.report.skipped.push((name.to_path_buf(), reason));
            }
            Whiteout::Remove(victim) if self.whiteouts == WhiteoutMode::OverlayMarkers => {
                self.report.whiteouts += 1;
                self.overlay_whiteout(name, &dir, victim)?;
            }
            Whiteout::Remove(victim) => {
                self.report.whiteouts += 1;
                // No directory, nothing to delete: a whiteout of a missing path is a no-op.
                if is_real_dir_chain(&self.root, &dir) {
                    let victim = dir.join(victim);
                    remove_lower(&self.root, &victim, &self.layer).map_err(self.io_error(
                        name,
                        "apply whiteout to",
                        &victim,
                    ))?;
                }
            }
            Whiteout::Opaque => {
                self.report.opaque_dirs += 1;
                // An opaque marker says its directory exists in this layer.
                ensure_dirs(&self.root, &dir, &mut self.layer).map_err(|(path, source)| {
                    UnpackError::Io {
                        entry: name.to_path_buf(),
                        action: "make opaque directory",
                        path,
                        source,
                    }
                })?;
                if self.whiteouts == WhiteoutMode::OverlayMarkers {
                    write::set_xattr(&self.root.join(&dir), OVERLAY_OPAQUE_XATTR, b"y")
                        .map_err(self.marker_error(name, &dir))?;
                } else {
                    make_opaque(&self.root, &dir, &self.layer).map_err(self.io_error(
                        name,
                        "empty opaque directory",
                        &dir,
                    ))?;
                }
            }
        }
        Ok(())
    }
    // ANCHOR_END: whiteout

    // ANCHOR: overlay_whiteout
    /// `.wh.<victim>` in overlay-marker mode: a character device 0:0 named `victim`, which
    /// overlayfs reads as "deleted". What this layer itself wrote at that path wins, as in
    /// [`WhiteoutMode::Apply`]; an entry later in the tar replaces the marker.
    fn overlay_whiteout(
        &mut self,
        name: &Path,
        dir: &Path,
        victim: &std::ffi::OsStr,
    ) -> Result<(), UnpackError> {
        ensure_dirs(&self.root, dir, &mut self.layer).map_err(|(path, source)| {
            UnpackError::Io {
                entry: name.to_path_buf(),
                action: "make whiteout's directory",
                path,
                source,
            }
        })?;
        let dest = dir.join(victim);
        if self.layer.contains(&dest) {
            return Ok(());
        }
        self.clear(name, &dest, false)?;
        write::create_node(&self.root.join(&dest), SFlag::S_IFCHR, 0, 0)
            .map_err(self.marker_error(name, &dest))
    }

    fn marker_error(&self, name: &Path, rel: &Path) -> impl Fn(io::Error) -> UnpackError {
        let entry = name.to_path_buf();
        let path = self.root.join(rel);
        move |source| UnpackError::OverlayMarker {
            entry: entry.clone(),
            path: path.clone(),
            source,
        }
    }
    // ANCHOR_END: overlay_whiteout

    /// Makes room at `dest` for a new entry: whatever is there goes, except that a directory
    /// stays when the new entry is a directory too. Returns true when a directory was kept.
    fn clear(&mut self, name: &Path, dest: &Path, keep_dir: bool) -> Result<bool, UnpackError> {
        let host = self.root.join(dest);
        let meta = match fs::symlink_metadata(&host) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(self.io_error(name, "look up", dest)(e)),
        };
        if meta.file_type().is_dir() {
            if keep_dir {
                return Ok(true);
            }
            fs::remove_dir_all(&host).map_err(self.io_error(name, "replace directory", dest))?;
            self.layer.forget_below(dest);
            self.forget_dirs_below(dest);
        } else {
            fs::remove_file(&host).map_err(self.io_error(name, "replace", dest))?;
        }
        Ok(false)
    }

    fn forget_dirs_below(&mut self, rel: &Path) {
        let doomed: Vec<PathBuf> = self
            .dirs
            .range::<Path, _>((Bound::Included(rel), Bound::Unbounded))
            .map(|(path, _)| path)
            .take_while(|path| path.starts_with(rel))
            .cloned()
            .collect();
        for path in doomed {
            self.dirs.remove(&path);
        }
    }

    fn owner(&self, name: &Path, dest: &Path, meta: &Meta) -> Result<(), UnpackError> {
        if self.options.preserve_ownership {
            write::set_owner(&self.root.join(dest), meta)
                .map_err(self.io_error(name, "chown", dest))?;
        }
        Ok(())
    }

    /// Owner, then mode (chown clears setuid), then mtime.
    fn metadata(&self, name: &Path, dest: &Path, meta: &Meta) -> Result<(), UnpackError> {
        let host = self.root.join(dest);
        self.owner(name, dest, meta)?;
        write::set_mode(&host, meta.mode).map_err(self.io_error(name, "chmod", dest))?;
        write::set_mtime(&host, meta.mtime).map_err(self.io_error(name, "set mtime of", dest))
    }

    fn root_entry(&mut self, name: &Path, kind: EntryType, meta: Meta) -> Result<(), UnpackError> {
        if kind != EntryType::Directory {
            return Err(UnpackError::ReplacesRoot {
                entry: name.to_path_buf(),
            });
        }
        self.owner(name, Path::new(""), &meta)?;
        self.dirs.insert(PathBuf::new(), (name.to_path_buf(), meta));
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        name: &Path,
        dest: &Path,
        data: &mut R,
        meta: Meta,
    ) -> Result<(), UnpackError> {
        self.clear(name, dest, false)?;
        let mut file = write::create_file(&self.root.join(dest)).map_err(self.io_error(
            name,
            "create file",
            dest,
        ))?;
        // Copy by hand to tell a broken stream (read) from a full disk (write).
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = data
                .read(&mut buf)
                .map_err(stream_error("reading file content"))?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n])
                .map_err(self.io_error(name, "write", dest))?;
            self.report.bytes += n as u64;
        }
        drop(file);
        self.metadata(name, dest, &meta)
    }

    fn directory(&mut self, name: &Path, dest: &Path, meta: Meta) -> Result<(), UnpackError> {
        if !self.clear(name, dest, true)? {
            write::create_dir(&self.root.join(dest)).map_err(self.io_error(
                name,
                "make directory",
                dest,
            ))?;
        }
        self.owner(name, dest, &meta)?;
        self.dirs
            .insert(dest.to_path_buf(), (name.to_path_buf(), meta));
        Ok(())
    }

    fn symlink<R: Read>(
        &mut self,
        name: &Path,
        dest: &Path,
        entry: &tar::Entry<'_, R>,
        meta: Meta,
    ) -> Result<(), UnpackError> {
        let link = entry
            .link_name()
            .map_err(stream_error("reading a symlink target"))?
            .ok_or_else(|| UnpackError::Stream {
                context: format!("entry {name:?}"),
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    "symlink entry without a target",
                ),
            })?;
        self.clear(name, dest, false)?;
        let host = self.root.join(dest);
        std::os::unix::fs::symlink(&link, &host).map_err(self.io_error(
            name,
            "make symlink",
            dest,
        ))?;
        self.owner(name, dest, &meta)?;
        write::set_mtime(&host, meta.mtime).map_err(self.io_error(name, "set mtime of", dest))
    }

    /// A hard link names another path in the *target*: same text rule, same resolution, and it
    /// must exist. link(2) does not follow a symlink in the last component, so linking to a
    /// symlink links the symlink itself.
    fn hard_link<R: Read>(
        &mut self,
        name: &Path,
        dest: &Path,
        entry: &tar::Entry<'_, R>,
    ) -> Result<(), UnpackError> {
        let link = entry
            .link_name()
            .map_err(stream_error("reading a hard link target"))?
            .map(|l| l.into_owned())
            .unwrap_or_default();
        let fail = |detail: &str| UnpackError::HardLink {
            entry: name.to_path_buf(),
            link: link.clone(),
            detail: detail.to_string(),
        };
        let clean = clean_entry_name(&link).ok_or_else(|| UnpackError::Escape {
            entry: name.to_path_buf(),
            detail: format!("hard link to {link:?} climbs above the target"),
        })?;
        let Some(last) = clean.file_name() else {
            return Err(fail("it names the target directory itself"));
        };
        let source = self
            .resolve_dir(name, clean.parent().unwrap_or(Path::new("")))?
            .join(last);
        match fs::symlink_metadata(self.root.join(&source)) {
            Ok(m) if m.file_type().is_dir() => return Err(fail("it is a directory")),
            Ok(_) if is_real_dir_chain(&self.root, source.parent().unwrap_or(Path::new(""))) => {}
            Ok(_) => return Err(fail("its parent is not a real directory")),
            Err(_) => {
                return Err(fail(
                    "it does not exist (it must be an earlier entry or a lower layer's file)",
                ))
            }
        }
        if source == dest {
            return Ok(()); // a link to itself: already there
        }
        self.clear(name, dest, false)?;
        fs::hard_link(self.root.join(&source), self.root.join(dest)).map_err(self.io_error(
            name,
            "hard-link",
            dest,
        ))
    }

    /// A device node or FIFO; false when it was skipped (mknod refused in a user namespace).
    fn node(
        &mut self,
        name: &Path,
        dest: &Path,
        header: &tar::Header,
        meta: Meta,
    ) -> Result<bool, UnpackError> {
        let kind = match header.entry_type() {
            EntryType::Char => SFlag::S_IFCHR,
            EntryType::Block => SFlag::S_IFBLK,
            _ => SFlag::S_IFIFO,
        };
        let major = header.device_major().ok().flatten().unwrap_or(0);
        let minor = header.device_minor().ok().flatten().unwrap_or(0);
        self.clear(name, dest, false)?;
        match write::create_node(&self.root.join(dest), kind, major.into(), minor.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EPERM) && kind != SFlag::S_IFIFO => {
                let reason = format!(
                    "device {major}:{minor} not created: mknod refused (EPERM; a user namespace?)"
                );
                self.report.skipped.push((name.to_path_buf(), reason));
                return Ok(false);
            }
            Err(e) => return Err(self.io_error(name, "mknod", dest)(e)),
        }
        self.metadata(name, dest, &meta)?;
        Ok(true)
    }

    /// Directory modes and mtimes, deepest first, now that nothing more is written inside. A
    /// directory replaced since (by a file or a symlink, or under one) is left alone.
    fn finish_dirs(&mut self) -> Result<(), UnpackError> {
        let mut dirs: Vec<_> = std::mem::take(&mut self.dirs).into_iter().collect();
        dirs.sort_by_key(|(path, _)| std::cmp::Reverse(path.components().count()));
        for (dir, (name, meta)) in dirs {
            if !is_real_dir_chain(&self.root, &dir) {
                continue;
            }
            let host = self.root.join(&dir);
            let name = name.as_path();
            write::set_mode(&host, meta.mode).map_err(self.io_error(name, "chmod", &dir))?;
            write::set_mtime(&host, meta.mtime).map_err(self.io_error(
                name,
                "set mtime of",
                &dir,
            ))?;
        }
        Ok(())
    }
}
