//! Temporary directories that clean up after themselves, mounts included.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{umount2, MntFlags};

/// A temporary directory named `boxlab-<label>-<pid>-<n>` under the system temp dir.
///
/// On drop it first detaches every mount at or below it (deepest first, lazily, so a busy mount
/// cannot keep the test from finishing) and then removes the tree. A test that panics halfway
/// through a mount still leaves nothing in `/proc/mounts`.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates a new, empty scratch directory.
    pub fn new(label: &str) -> io::Result<Self> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("boxlab-{label}-{}-{n}", std::process::id()));
        fs::create_dir_all(&path)?;
        Ok(Self { path })
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path()/rel`, for brevity in tests.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(rel)
    }
}

/// Mount points at or below `root`, deepest first, read from this process's mount table.
pub(crate) fn mounts_below(root: &Path) -> Vec<PathBuf> {
    let Ok(table) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|mount_point| mount_point.starts_with(root))
        .collect();
    // Deeper paths have more components; unmount them before their parents.
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
fn unescape_mount_path(field: &str) -> PathBuf {
    let mut out = Vec::with_capacity(field.len());
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let escape = bytes.get(i + 1..i + 4);
        if bytes[i] == b'\\' && escape.is_some_and(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)))
        {
            let digits = escape.unwrap_or_default();
            let code = digits
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            out.push(code as u8);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // A mount can be stacked several times on one point; loop until none is left.
        for _ in 0..8 {
            let mounts = mounts_below(&self.path);
            if mounts.is_empty() {
                break;
            }
            for mount_point in mounts {
                let _ = umount2(&mount_point, MntFlags::MNT_DETACH);
            }
        }
        let _ = fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_dir_is_named_boxlab_and_removed_on_drop() {
        let scratch = ScratchDir::new("selftest").unwrap();
        let path = scratch.path().to_path_buf();
        assert!(path.to_string_lossy().contains("boxlab-selftest"));
        fs::write(scratch.join("file"), b"x").unwrap();
        drop(scratch);
        assert!(!path.exists(), "{} still exists after drop", path.display());
    }

    #[test]
    fn unescapes_octal_in_mountinfo_paths() {
        assert_eq!(
            unescape_mount_path(r"/tmp/a\040b"),
            PathBuf::from("/tmp/a b")
        );
        assert_eq!(unescape_mount_path("/plain"), PathBuf::from("/plain"));
    }

    #[test]
    fn scratch_dir_unmounts_what_is_mounted_inside() {
        if !crate::require_root("scratch_dir_unmounts_what_is_mounted_inside") {
            return;
        }
        use nix::mount::{mount, MsFlags};
        let scratch = ScratchDir::new("selftest-mount").unwrap();
        let target = scratch.join("mnt");
        fs::create_dir(&target).unwrap();
        mount(
            Some("tmpfs"),
            &target,
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        assert_eq!(mounts_below(scratch.path()), vec![target.clone()]);
        let path = scratch.path().to_path_buf();
        drop(scratch);
        assert!(mounts_below(&path).is_empty());
        assert!(!path.exists());
    }
}
