//! OCI whiteouts: how a layer deletes what the layers below it put there.
//!
//! A layer is a tar of *changes*. Adding or changing a file is just the file; deleting one needs
//! a marker, since a tar cannot say "nothing here". The OCI image spec (layer.md) uses AUFS's:
//!
//! - `dir/.wh.name` — `dir/name` from lower layers is gone (a whole tree, if it was a directory).
//! - `dir/.wh..wh..opq` — `dir` is *opaque*: everything lower layers put in it is gone.
//!
//! Markers are never created in the output, and they apply only to lower layers: what this same
//! layer writes survives, whether its entries come before or after the marker in the tar. So we
//! remember every path this layer wrote ([`LayerPaths`]) and delete only the rest.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::ops::Bound;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The prefix of every whiteout name.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The opaque-directory marker.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// AUFS's own bookkeeping files (`.wh..wh.plnk`, `.wh..wh.aufs`) start with this; they are
/// neither files nor whiteouts, and are skipped.
pub const AUFS_META_PREFIX: &str = ".wh..wh.";

/// What an entry's last component says, whiteout-wise.
#[derive(Debug, PartialEq, Eq)]
pub enum Whiteout<'a> {
    /// `.wh.name`: delete `name` in the same directory.
    Remove(&'a OsStr),
    /// `.wh..wh..opq`: the directory is opaque.
    Opaque,
    /// `.wh..wh.*` other than the opaque marker: AUFS metadata, skipped.
    AufsMeta,
}

/// Parses an entry's file name. `Ok(None)`: an ordinary name. `Err`: a whiteout that names
/// nothing sensible (`.wh.`, `.wh..`, `.wh...`), which the unpacker refuses.
pub fn parse_whiteout(file_name: &OsStr) -> Result<Option<Whiteout<'_>>, &'static str> {
    let bytes = file_name.as_bytes();
    if bytes == OPAQUE_MARKER.as_bytes() {
        return Ok(Some(Whiteout::Opaque));
    }
    if bytes.starts_with(AUFS_META_PREFIX.as_bytes()) {
        return Ok(Some(Whiteout::AufsMeta));
    }
    let Some(rest) = bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) else {
        return Ok(None);
    };
    match rest {
        b"" => Err("`.wh.` whiteouts nothing"),
        b"." | b".." => Err("a whiteout of `.` or `..` would delete a parent directory"),
        _ => Ok(Some(Whiteout::Remove(OsStr::from_bytes(rest)))),
    }
}

/// True when a directory component (not the last) is a whiteout name: `a/.wh.b/c` would create
/// a `.wh.` directory in the output, which must never happen.
pub fn is_whiteout_name(part: &OsStr) -> bool {
    part.as_bytes().starts_with(WHITEOUT_PREFIX.as_bytes())
}

/// Every path (relative to the target) this layer has written so far: entries, and the parent
/// directories created for them.
#[derive(Debug, Default)]
pub struct LayerPaths {
    written: BTreeSet<PathBuf>,
}

impl LayerPaths {
    /// Remembers that this layer wrote `rel`.
    pub fn record(&mut self, rel: &Path) {
        self.written.insert(rel.to_path_buf());
    }

    /// True when this layer wrote exactly `rel`.
    pub fn contains(&self, rel: &Path) -> bool {
        self.written.contains(rel)
    }

    /// True when this layer wrote something strictly below `rel`. `PathBuf` orders component by
    /// component, so the descendants of `rel` sort right after it: one range lookup finds one.
    pub fn has_below(&self, rel: &Path) -> bool {
        self.written
            .range::<Path, _>((Bound::Excluded(rel), Bound::Unbounded))
            .next()
            .is_some_and(|p| p.starts_with(rel))
    }

    /// Forgets `rel` and everything below it (it was just removed and replaced).
    pub fn forget_below(&mut self, rel: &Path) {
        let doomed: Vec<PathBuf> = self
            .written
            .range::<Path, _>((Bound::Included(rel), Bound::Unbounded))
            .take_while(|p| p.starts_with(rel))
            .cloned()
            .collect();
        for path in doomed {
            self.written.remove(&path);
        }
    }
}

// ANCHOR: remove_lower
/// Deletes `root/rel` as far as it came from lower layers, keeping what this layer wrote.
///
/// A non-directory is removed unless this layer wrote it. A directory with nothing from this
/// layer in or below it goes as a whole; otherwise we descend, remove the lower children one by
/// one, and keep the directory itself (this layer's files need it). `lstat` throughout: a
/// symlink is removed as a link, never followed. Returns how many paths were removed at the top.
pub fn remove_lower(root: &Path, rel: &Path, layer: &LayerPaths) -> io::Result<usize> {
    let host = root.join(rel);
    let meta = match fs::symlink_metadata(&host) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0), // a no-op, as the spec allows
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_dir() {
        if layer.contains(rel) {
            return Ok(0);
        }
        fs::remove_file(&host)?;
        return Ok(1);
    }
    if !layer.contains(rel) && !layer.has_below(rel) {
        fs::remove_dir_all(&host)?; // std's remove_dir_all does not follow symlinks inside
        return Ok(1);
    }
    let mut removed = 0;
    for child in fs::read_dir(&host)? {
        removed += remove_lower(root, &rel.join(child?.file_name()), layer)?;
    }
    Ok(removed)
}

/// Applies an opaque marker to the directory `root/dir`: every child from lower layers goes.
pub fn make_opaque(root: &Path, dir: &Path, layer: &LayerPaths) -> io::Result<usize> {
    let mut removed = 0;
    for child in fs::read_dir(root.join(dir))? {
        removed += remove_lower(root, &dir.join(child?.file_name()), layer)?;
    }
    Ok(removed)
}
// ANCHOR_END: remove_lower

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str) -> Result<Option<Whiteout<'_>>, &'static str> {
        parse_whiteout(OsStr::new(name))
    }

    #[test]
    fn parses_whiteout_names() {
        assert_eq!(parse("file"), Ok(None));
        assert_eq!(parse(".whatever"), Ok(None));
        assert_eq!(
            parse(".wh.file"),
            Ok(Some(Whiteout::Remove(OsStr::new("file"))))
        );
        assert_eq!(
            parse(".wh..hidden"),
            Ok(Some(Whiteout::Remove(OsStr::new(".hidden"))))
        );
        assert_eq!(parse(".wh..wh..opq"), Ok(Some(Whiteout::Opaque)));
        assert_eq!(parse(".wh..wh.plnk"), Ok(Some(Whiteout::AufsMeta)));
        assert!(parse(".wh.").is_err());
        assert!(parse(".wh..").is_err());
        assert!(parse(".wh...").is_err());
    }

    #[test]
    fn layer_paths_find_descendants_only() {
        let mut layer = LayerPaths::default();
        layer.record(Path::new("a/b/c"));
        layer.record(Path::new("a/b0"));
        assert!(layer.has_below(Path::new("a")));
        assert!(layer.has_below(Path::new("a/b")));
        assert!(!layer.has_below(Path::new("a/b/c")));
        assert!(!layer.has_below(Path::new("a/b0")));
        assert!(!layer.has_below(Path::new("a/bb")));
        layer.forget_below(Path::new("a/b"));
        assert!(!layer.contains(Path::new("a/b/c")));
        assert!(layer.contains(Path::new("a/b0")));
    }

    #[test]
    fn remove_lower_keeps_this_layers_files() {
        let s = labkit::ScratchDir::new("ch04-whiteout").unwrap();
        fs::create_dir_all(s.join("d/sub")).unwrap();
        fs::write(s.join("d/old"), b"lower").unwrap();
        fs::write(s.join("d/sub/old"), b"lower").unwrap();
        fs::write(s.join("d/new"), b"this layer").unwrap();
        let mut layer = LayerPaths::default();
        layer.record(Path::new("d/new"));
        make_opaque(s.path(), Path::new("d"), &layer).unwrap();
        let mut left: Vec<_> = fs::read_dir(s.join("d"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        left.sort();
        assert_eq!(left, vec![OsStr::new("new")]);
        assert_eq!(
            remove_lower(s.path(), Path::new("missing"), &layer).unwrap(),
            0
        );
    }
}
