//! COPY: what goes where. Sources are read from the build context (or from an earlier stage's
//! files, for `COPY --from`), never from outside it; the plan lists every entry of the layer to
//! write, sorted, and hashes them for the cache key.
//!
//! - A source is a path relative to the context; `..` that climbs out is an error. Symlinks on
//!   the way are followed *inside* the context, the way a container would see them, so a link
//!   to `/etc` means `<context>/etc`, not the host's.
//! - A file goes to `dest`, or to `dest/<its name>` when `dest` ends in `/` or is a directory.
//! - A directory's *contents* go into `dest`, recursively; symlinks inside it are copied as
//!   symlinks.
//! - `dest` is relative to WORKDIR unless absolute. Missing parent directories are created
//!   (0755); existing ones are left alone, so `/tmp` keeps its 1777.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::unpack::resolve::{clean_entry_name, resolve_dir_in_root};

use super::diff::LayerWriter;
use super::error::{io_err, StepError};
use super::paths::FsIndex;

/// What one entry of a COPY layer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanKind {
    /// A directory.
    Dir,
    /// A file, read from `host`, of `size` bytes.
    File {
        /// Where its bytes are.
        host: PathBuf,
        /// How many.
        size: u64,
    },
    /// A symlink to this target.
    Symlink(PathBuf),
}

/// One entry of a COPY layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanEntry {
    /// Permission bits (setuid, setgid and sticky included).
    pub mode: u32,
    /// What it is.
    pub kind: PlanKind,
}

/// The entries of a COPY layer, by path in the image (relative to `/`), parents first.
#[derive(Debug, Default)]
pub struct CopyPlan {
    /// Sorted: `BTreeMap` orders paths component by component, so a directory comes before
    /// everything in it.
    pub entries: BTreeMap<PathBuf, PlanEntry>,
}

/// Where COPY reads from.
#[derive(Debug, Clone, Copy)]
pub struct SourceRoot<'a> {
    /// The directory.
    pub dir: &'a Path,
    /// "build context", "stage builder", for messages.
    pub kind: &'a str,
}

/// The directory `workdir` joined with `path` (unless absolute), cleaned, relative to `/`;
/// `None` when `..` climbs above `/`.
pub fn in_image(workdir: &str, path: &str) -> Option<PathBuf> {
    let full = if path.starts_with('/') {
        PathBuf::from(path)
    } else {
        Path::new("/")
            .join(workdir.trim_start_matches('/'))
            .join(path)
    };
    clean_entry_name(&full)
}

/// Plans `COPY sources... dest` from `root`, onto a filesystem that has the paths in `index`.
pub fn plan_copy(
    root: SourceRoot<'_>,
    sources: &[String],
    dest: &str,
    workdir: &str,
    index: &FsIndex,
) -> Result<CopyPlan, StepError> {
    let dest_path = in_image(workdir, dest).ok_or_else(|| {
        StepError::Destination(format!(
            "the destination {dest:?} climbs above / (too many `..`); write it from /"
        ))
    })?;
    let dest_is_dir = dest.ends_with('/')
        || dest == "."
        || dest.ends_with("/.")
        || sources.len() > 1
        || index.is_dir(&dest_path);

    let mut plan = CopyPlan::default();
    for source in sources {
        let outside = || StepError::OutsideContext {
            source_path: source.clone(),
            root_kind: root.kind.to_string(),
            root: root.dir.to_path_buf(),
        };
        let clean = clean_entry_name(Path::new(source)).ok_or_else(outside)?;
        let resolved = resolve_dir_in_root(root.dir, &clean).map_err(|_| outside())?;
        let host = root.dir.join(&resolved);
        let meta = fs::metadata(&host).map_err(|_| StepError::SourceMissing {
            source_path: source.clone(),
            path: host.clone(),
            root_kind: root.kind.to_string(),
        })?;
        if meta.is_dir() {
            add_dir_chain(&mut plan, &dest_path, index, meta.mode());
            add_tree(&mut plan, &host, &dest_path)?;
        } else if meta.is_file() {
            let target = if dest_is_dir {
                let name = clean.file_name().or(resolved.file_name()).ok_or_else(|| {
                    StepError::Destination(format!("source {source:?} has no file name"))
                })?;
                dest_path.join(name)
            } else {
                dest_path.clone()
            };
            if target.as_os_str().is_empty() {
                return Err(StepError::Destination(format!(
                    "cannot copy the file {source:?} onto / itself; name a destination file"
                )));
            }
            if let Some(parent) = target.parent() {
                add_dir_chain(&mut plan, parent, index, 0o755);
            }
            plan.entries.insert(
                target,
                PlanEntry {
                    mode: meta.mode() & 0o7777,
                    kind: PlanKind::File {
                        host,
                        size: meta.len(),
                    },
                },
            );
        } else {
            return Err(StepError::Destination(format!(
                "source {source:?} ({}) is neither a file nor a directory; COPY copies files, directories and symlinks in them",
                host.display()
            )));
        }
    }
    Ok(plan)
}

/// Adds `dir` and its missing parents (0755; `dir` itself gets `mode`) unless the image has them.
fn add_dir_chain(plan: &mut CopyPlan, dir: &Path, index: &FsIndex, mode: u32) {
    let mut chain: Vec<&Path> = dir
        .ancestors()
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    chain.reverse();
    for (i, path) in chain.iter().enumerate() {
        if index.exists(path) || plan.entries.contains_key(*path) {
            continue;
        }
        let mode = if i + 1 == chain.len() { mode } else { 0o755 };
        plan.entries.insert(
            path.to_path_buf(),
            PlanEntry {
                mode: mode & 0o7777,
                kind: PlanKind::Dir,
            },
        );
    }
}

/// Adds everything below the host directory `host` under `dest`.
fn add_tree(plan: &mut CopyPlan, host: &Path, dest: &Path) -> Result<(), StepError> {
    let mut names: Vec<_> = fs::read_dir(host)
        .map_err(io_err("list", host))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(io_err("list", host))?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let child = host.join(&name);
        let target = dest.join(&name);
        let meta = fs::symlink_metadata(&child).map_err(io_err("stat", &child))?;
        let mode = meta.mode() & 0o7777;
        let kind = meta.file_type();
        if kind.is_symlink() {
            let link = fs::read_link(&child).map_err(io_err("read the symlink", &child))?;
            plan.entries.insert(
                target,
                PlanEntry {
                    mode: 0o777,
                    kind: PlanKind::Symlink(link),
                },
            );
        } else if kind.is_dir() {
            plan.entries.insert(
                target.clone(),
                PlanEntry {
                    mode,
                    kind: PlanKind::Dir,
                },
            );
            add_tree(plan, &child, &target)?;
        } else if kind.is_file() {
            plan.entries.insert(
                target,
                PlanEntry {
                    mode,
                    kind: PlanKind::File {
                        host: child,
                        size: meta.len(),
                    },
                },
            );
        } else {
            return Err(StepError::Destination(format!(
                "{} is a device, FIFO or socket; COPY copies files, directories and symlinks: remove it from the context",
                child.display()
            )));
        }
    }
    Ok(())
}

impl CopyPlan {
    // ANCHOR: copy_hash
    /// sha256 over every entry: path, kind, mode, size and content (or link target). This is what
    /// the cache key knows of the sources: touch a file's bytes or mode and the key changes;
    /// touch only its mtime and it does not.
    pub fn content_hash(&self) -> Result<String, StepError> {
        let mut hasher = Sha256::new();
        for (path, entry) in &self.entries {
            hasher.update(path.as_os_str().as_bytes());
            hasher.update([0]);
            hasher.update(format!("{:o}\0", entry.mode));
            match &entry.kind {
                PlanKind::Dir => hasher.update(b"dir\0"),
                PlanKind::Symlink(target) => {
                    hasher.update(b"symlink\0");
                    hasher.update(target.as_os_str().as_bytes());
                    hasher.update([0]);
                }
                PlanKind::File { host, size } => {
                    hasher.update(format!("file {size}\0"));
                    let file = File::open(host).map_err(io_err("read", host))?;
                    // Sha256 is an io::Write (sha2's `std` feature): stream the file into it.
                    let copied = io::copy(&mut file.take(*size), &mut hasher)
                        .map_err(io_err("read", host))?;
                    if copied != *size {
                        return Err(StepError::Destination(format!(
                            "{} changed size while it was read; build again when nothing writes to the context",
                            host.display()
                        )));
                    }
                }
            }
        }
        Ok(hex::encode(hasher.finalize()))
    }
    // ANCHOR_END: copy_hash

    /// Writes the planned entries as a layer.
    pub fn write<W: Write>(&self, layer: &mut LayerWriter<W>) -> Result<(), StepError> {
        for (path, entry) in &self.entries {
            let written = match &entry.kind {
                PlanKind::Dir => layer.dir(path, entry.mode),
                PlanKind::Symlink(target) => layer.symlink(path, target),
                PlanKind::File { host, size } => {
                    let file = File::open(host).map_err(io_err("read", host))?;
                    layer.file(path, entry.mode, *size, file)
                }
            };
            written.map_err(io_err("write the layer entry", path))?;
        }
        Ok(())
    }
}
