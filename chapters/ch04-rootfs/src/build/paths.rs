//! Which paths a stage's filesystem has so far, read from its layers' tar headers (no file is
//! unpacked). COPY asks it whether a destination is an existing directory and which parent
//! directories it must create; WORKDIR whether its directory exists.
//!
//! Symlinks are not followed: a path is "there" when some layer has an entry of that name (or a
//! child of it) that no later whiteout removed.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use oci_spec::image::Descriptor;

use crate::image::OciLayout;
use crate::unpack::resolve::clean_entry_name;
use crate::unpack::whiteout::{parse_whiteout, Whiteout};
use crate::unpack::Compression;

use super::error::StepError;

/// The paths of a stack of layers, each with "is a directory".
#[derive(Debug, Default, Clone)]
pub struct FsIndex {
    paths: BTreeMap<PathBuf, bool>,
}

impl FsIndex {
    /// True when `rel` (relative to `/`, clean) exists; the root always does.
    pub fn exists(&self, rel: &Path) -> bool {
        rel.as_os_str().is_empty() || self.paths.contains_key(rel)
    }

    /// True when `rel` exists and is a directory; the root is one.
    pub fn is_dir(&self, rel: &Path) -> bool {
        rel.as_os_str().is_empty() || self.paths.get(rel).copied().unwrap_or(false)
    }

    /// Applies one layer's entries (name, is a directory), as an unpacker would: its
    /// whiteouts first (they only hide what lower layers have), then its entries.
    pub fn apply(&mut self, entries: &[(PathBuf, bool)]) {
        let mut added = Vec::new();
        for (name, is_dir) in entries {
            let Some(file_name) = name.file_name() else {
                continue;
            };
            let parent = name.parent().unwrap_or(Path::new("")).to_path_buf();
            match parse_whiteout(file_name) {
                Ok(Some(Whiteout::Remove(gone))) => self.remove_tree(&parent.join(gone), true),
                Ok(Some(Whiteout::Opaque)) => self.remove_tree(&parent, false),
                Ok(Some(Whiteout::AufsMeta)) | Err(_) => {}
                Ok(None) => added.push((name.clone(), *is_dir)),
            }
        }
        for (name, is_dir) in added {
            for parent in name.ancestors().skip(1) {
                if parent.as_os_str().is_empty() {
                    break;
                }
                self.paths.entry(parent.to_path_buf()).or_insert(true);
            }
            self.paths.insert(name, is_dir);
        }
    }

    fn remove_tree(&mut self, top: &Path, including_top: bool) {
        let doomed: Vec<PathBuf> = self
            .paths
            .range(top.to_path_buf()..)
            .take_while(|(p, _)| p.starts_with(top))
            .map(|(p, _)| p.clone())
            .filter(|p| including_top || p != top)
            .collect();
        for path in doomed {
            self.paths.remove(&path);
        }
    }
}

/// The entries (clean name, is a directory) of the layer blob `layer`: plain tar, gzip or zstd.
pub fn layer_entries(
    layout: &OciLayout,
    layer: &Descriptor,
) -> Result<Vec<(PathBuf, bool)>, StepError> {
    let path = layout.blob_path(layer.digest());
    let read_err = |source: io::Error| StepError::Io {
        action: "read the tar headers of layer",
        path: path.clone(),
        source,
    };
    let mut file = layout.open_blob(layer)?;
    let mut head = Vec::with_capacity(4);
    (&mut file)
        .take(4)
        .read_to_end(&mut head)
        .map_err(read_err)?;
    file.seek(SeekFrom::Start(0)).map_err(read_err)?;
    let reader: Box<dyn Read> = match Compression::detect(&head) {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file))),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(file).map_err(read_err)?),
        Compression::None => {
            // Plain tar: seek over file contents instead of reading them.
            let mut archive = tar::Archive::new(file);
            let entries = archive.entries_with_seek().map_err(read_err)?;
            return collect(entries).map_err(read_err);
        }
    };
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(read_err)?;
    collect(entries).map_err(read_err)
}

fn collect<R: Read>(entries: tar::Entries<'_, R>) -> io::Result<Vec<(PathBuf, bool)>> {
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader | tar::EntryType::GNULongName
        ) {
            continue;
        }
        if let Some(name) = clean_entry_name(&entry.path()?) {
            if !name.as_os_str().is_empty() {
                out.push((name, kind.is_dir()));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(list: &[(&str, bool)]) -> Vec<(PathBuf, bool)> {
        list.iter().map(|(p, d)| (PathBuf::from(p), *d)).collect()
    }

    #[test]
    fn whiteouts_hide_lower_paths_only() {
        let mut index = FsIndex::default();
        index.apply(&entries(&[("a/b", false), ("a/c/d", false), ("x", true)]));
        assert!(index.is_dir(Path::new("a/c")));
        index.apply(&entries(&[
            ("a/.wh.c", false),
            ("x/.wh..wh..opq", false),
            ("x/new", false),
        ]));
        assert!(!index.exists(Path::new("a/c/d")));
        assert!(!index.exists(Path::new("a/c")));
        assert!(index.exists(Path::new("a/b")));
        assert!(index.is_dir(Path::new("x")));
        assert!(index.exists(Path::new("x/new")));
    }
}
