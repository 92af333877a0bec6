//! Layers, written reproducibly: a tar whose bytes depend only on the files' names, kinds, modes
//! and contents — and the diff of a RUN container's overlay upper directory as such a layer.
//!
//! What would make two builds of the same files differ, and what we do instead:
//!
//! | noise                          | here                                               |
//! |--------------------------------|----------------------------------------------------|
//! | mtime, atime, ctime            | one fixed mtime (0, or `SOURCE_DATE_EPOCH`), no PAX |
//! | uid/gid, user and group names  | 0 and 0, names empty                               |
//! | order of `readdir`             | entries sorted by name, parents before children    |
//! | inode numbers of hard links    | the first name (in sorted order) is the file       |
//! | xattrs, compression headers    | none; the layer is a plain tar                     |

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use crate::unpack::whiteout::{OPAQUE_MARKER, WHITEOUT_PREFIX};
use crate::unpack::OVERLAY_OPAQUE_XATTR;

/// A tar being written with deterministic headers, and the names it holds.
pub struct LayerWriter<W: Write> {
    tar: tar::Builder<W>,
    mtime: u64,
    /// Every entry written (markers included), by path in the image.
    entries: Vec<PathBuf>,
}

impl<W: Write> LayerWriter<W> {
    /// A writer whose every entry gets `mtime`.
    pub fn new(out: W, mtime: u64) -> Self {
        let mut tar = tar::Builder::new(out);
        tar.mode(tar::HeaderMode::Deterministic);
        tar.follow_symlinks(false);
        Self {
            tar,
            mtime,
            entries: Vec::new(),
        }
    }

    fn header(&self, kind: EntryType, mode: u32, size: u64) -> Header {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode & 0o7777);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(self.mtime);
        header.set_size(size);
        header
    }

    /// A directory.
    pub fn dir(&mut self, path: &Path, mode: u32) -> io::Result<()> {
        let mut header = self.header(EntryType::Directory, mode, 0);
        self.tar.append_data(&mut header, path, io::empty())?;
        self.entries.push(path.to_path_buf());
        Ok(())
    }

    /// A regular file of `size` bytes read from `content`.
    pub fn file(
        &mut self,
        path: &Path,
        mode: u32,
        size: u64,
        content: impl Read,
    ) -> io::Result<()> {
        let mut header = self.header(EntryType::Regular, mode, size);
        // `take` guards against a file that grew since it was measured: the tar stays valid.
        self.tar
            .append_data(&mut header, path, content.take(size))?;
        self.entries.push(path.to_path_buf());
        Ok(())
    }

    /// A symbolic link to `target` (mode 0777, as Linux reports for every symlink).
    pub fn symlink(&mut self, path: &Path, target: &Path) -> io::Result<()> {
        let mut header = self.header(EntryType::Symlink, 0o777, 0);
        self.tar.append_link(&mut header, path, target)?;
        self.entries.push(path.to_path_buf());
        Ok(())
    }

    /// A hard link to `target`, an earlier entry of this layer.
    pub fn hardlink(&mut self, path: &Path, target: &Path, mode: u32) -> io::Result<()> {
        let mut header = self.header(EntryType::Link, mode, 0);
        self.tar.append_link(&mut header, path, target)?;
        self.entries.push(path.to_path_buf());
        Ok(())
    }

    /// A character or block device, or a FIFO.
    pub fn node(&mut self, path: &Path, kind: EntryType, mode: u32, rdev: u64) -> io::Result<()> {
        let mut header = self.header(kind, mode, 0);
        if kind != EntryType::Fifo {
            header.set_device_major(nix::sys::stat::major(rdev) as u32)?;
            header.set_device_minor(nix::sys::stat::minor(rdev) as u32)?;
        }
        self.tar.append_data(&mut header, path, io::empty())?;
        self.entries.push(path.to_path_buf());
        Ok(())
    }

    /// `dir/.wh.name`: the layer deletes `dir/name` of the layers below.
    pub fn whiteout(&mut self, path: &Path) -> io::Result<()> {
        let mut name = std::ffi::OsString::from(WHITEOUT_PREFIX);
        name.push(path.file_name().unwrap_or_default());
        let marker = path.with_file_name(name);
        let mut header = self.header(EntryType::Regular, 0o600, 0);
        self.tar.append_data(&mut header, &marker, io::empty())?;
        self.entries.push(marker);
        Ok(())
    }

    /// `dir/.wh..wh..opq`: the layer hides everything the layers below have in `dir`.
    pub fn opaque(&mut self, dir: &Path, mode: u32) -> io::Result<()> {
        let marker = dir.join(OPAQUE_MARKER);
        let mut header = self.header(EntryType::Regular, mode & 0o777, 0);
        self.tar.append_data(&mut header, &marker, io::empty())?;
        self.entries.push(marker);
        Ok(())
    }

    /// Ends the tar (two zero blocks) and returns the output and the names written, in order.
    pub fn finish(self) -> io::Result<(W, Vec<PathBuf>)> {
        let out = self.tar.into_inner()?;
        Ok((out, self.entries))
    }
}

/// The fixed time every entry and history item gets: `SOURCE_DATE_EPOCH` if it is set to a
/// number (the reproducible-builds.org convention), else 0 (1970-01-01).
pub fn source_date_epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// `seconds` since the epoch as RFC 3339 (`1970-01-01T00:00:00Z`), for config and history.
pub fn rfc3339(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rem = seconds % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The value of xattr `name` on `path` (not following a symlink); `None` when it has none.
fn get_xattr(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in path"))?;
    let c_name = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in name"))?;
    let mut buf = [0u8; 64];
    // SAFETY: both strings are NUL-terminated and live across the call; `buf` is writable for
    // `buf.len()` bytes, and lgetxattr writes at most that many.
    let n = unsafe {
        libc::lgetxattr(
            c_path.as_ptr(),
            c_name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::ENOTSUP) => Ok(None),
            _ => Err(err),
        };
    }
    Ok(Some(buf[..n as usize].to_vec()))
}

/// True when `path` in an overlay upper directory is a whiteout: a character device 0:0.
fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

// ANCHOR: diff_upper
/// Writes what a container changed — the overlay's upper directory `upper` — as a layer.
///
/// overlayfs and OCI say "deleted" differently: overlayfs leaves a character device 0:0 where a
/// lower file was removed and the xattr `trusted.overlay.opaque=y` on a directory whose lower
/// contents are hidden (one that was removed and made anew); OCI layers say `.wh.name` and
/// `dir/.wh..wh..opq`. Everything else in `upper` is a new or changed file, kept whole.
pub fn diff_upper<W: Write>(upper: &Path, layer: &mut LayerWriter<W>) -> io::Result<()> {
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    walk(upper, Path::new(""), layer, &mut links)
}

fn walk<W: Write>(
    root: &Path,
    rel_dir: &Path,
    layer: &mut LayerWriter<W>,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    let host_dir = root.join(rel_dir);
    let mut names: Vec<_> = fs::read_dir(&host_dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let rel = rel_dir.join(&name);
        let host = root.join(&rel);
        let meta = fs::symlink_metadata(&host)?;
        let kind = meta.file_type();
        let mode = meta.mode();
        if is_whiteout(&meta) {
            layer.whiteout(&rel)?;
        } else if kind.is_dir() {
            layer.dir(&rel, mode)?;
            if get_xattr(&host, OVERLAY_OPAQUE_XATTR)?.as_deref() == Some(b"y") {
                layer.opaque(&rel, mode)?;
            }
            walk(root, &rel, layer, links)?;
        } else if kind.is_symlink() {
            layer.symlink(&rel, &fs::read_link(&host)?)?;
        } else if kind.is_file() {
            if meta.nlink() > 1 {
                if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                    layer.hardlink(&rel, first, mode)?;
                    continue;
                }
                links.insert((meta.dev(), meta.ino()), rel.clone());
            }
            layer.file(&rel, mode, meta.len(), File::open(&host)?)?;
        } else if kind.is_char_device() {
            layer.node(&rel, EntryType::Char, mode, meta.rdev())?;
        } else if kind.is_block_device() {
            layer.node(&rel, EntryType::Block, mode, meta.rdev())?;
        } else if kind.is_fifo() {
            layer.node(&rel, EntryType::Fifo, mode, 0)?;
        }
        // Sockets cannot be in a tar; they are dropped, as Docker does.
    }
    Ok(())
}
// ANCHOR_END: diff_upper

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_known_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn the_same_files_give_the_same_bytes() {
        let write = || {
            let mut layer = LayerWriter::new(Vec::new(), 0);
            layer.dir(Path::new("a"), 0o755).unwrap();
            layer.file(Path::new("a/f"), 0o644, 2, &b"hi"[..]).unwrap();
            layer.whiteout(Path::new("a/gone")).unwrap();
            layer.symlink(Path::new("a/l"), Path::new("f")).unwrap();
            layer.finish().unwrap()
        };
        let (one, names) = write();
        let (two, _) = write();
        assert_eq!(one, two);
        assert_eq!(
            names,
            ["a", "a/f", "a/.wh.gone", "a/l"]
                .map(PathBuf::from)
                .to_vec()
        );
    }
}
