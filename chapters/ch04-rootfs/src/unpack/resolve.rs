//! Where does an entry go? Archive names are cleaned as text first; then the parent directories
//! are walked inside the target one component at a time, so that no symlink already in the tree
//! (from a lower layer or an earlier entry) can lead a write outside it.
//!
//! This is the idea of `openat2(RESOLVE_IN_ROOT)` and containerd's `fs.RootPath`, done by hand
//! with `lstat` and `readlink` so each step can be read: a symlink met on the way is followed the
//! way the *container* will see it, with `/` meaning the target and `..` stopping at the target.
//! The walk trusts that nobody else changes the target while we unpack (the target is private to
//! the unpacker); a tool that shares the tree with other writers should use `openat2` instead.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use super::whiteout::LayerPaths;

/// Linux gives up after 40 symlinks in one lookup (`ELOOP`); so do we.
pub const MAX_SYMLINKS: usize = 40;

/// Turns an archive member name into a plain relative path: `/` and `.` are dropped (absolute
/// names are re-rooted in the target, as every runtime does), `..` removes the previous
/// component. Returns `None` when a `..` would climb above the target: such an entry is refused.
///
/// This is text only; symlinks are handled by [`resolve_in_root`].
pub fn clean_entry_name(name: &Path) -> Option<PathBuf> {
    let mut clean = PathBuf::new();
    for component in name.components() {
        match component {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                if !clean.pop() {
                    return None;
                }
            }
            Component::Normal(part) => clean.push(part),
        }
    }
    Some(clean)
}

/// Why [`resolve_in_root`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// More than [`MAX_SYMLINKS`] symlinks on the way.
    #[error("more than {MAX_SYMLINKS} symlinks on the way (a loop?)")]
    Loop,
    /// `lstat` or `readlink` failed for another reason than "not there".
    #[error("{path}: {source}", path = .0.display(), source = .1)]
    Io(PathBuf, #[source] io::Error),
}

/// Resolves `rel` (already cleaned) inside `root`: every parent component is looked up in the
/// target and symlinks among them are followed *within* the target; the last component is kept
/// as is, never followed, because the entry will replace whatever is there.
///
/// The result is relative to `root`, has only normal components, and none of its existing
/// parents is a symlink — so `root.join(result)` is inside `root` and stays there.
pub fn resolve_in_root(root: &Path, rel: &Path) -> Result<PathBuf, ResolveError> {
    let Some(last) = rel.file_name() else {
        return Ok(PathBuf::new()); // the target itself
    };
    let parent = rel.parent().unwrap_or(Path::new(""));
    Ok(resolve_dir_in_root(root, parent)?.join(last))
}

// ANCHOR: resolve
/// Resolves every component of `rel` inside `root`, following symlinks as the container would
/// see them: an absolute link target starts again at `root`, and `..` never climbs above it.
pub fn resolve_dir_in_root(root: &Path, rel: &Path) -> Result<PathBuf, ResolveError> {
    // Components still to walk; a symlink pushes its target's components in front.
    let mut todo: VecDeque<OsString> = rel.iter().map(OsString::from).collect();
    let mut done = PathBuf::new();
    let mut hops = 0;
    while let Some(part) = todo.pop_front() {
        if part == ".." {
            done.pop(); // at the root this does nothing: `..` is clamped, as in RESOLVE_IN_ROOT
            continue;
        }
        if part == "." || part == "/" || part.is_empty() {
            continue;
        }
        let candidate = done.join(&part);
        let host = root.join(&candidate);
        match fs::symlink_metadata(&host) {
            Ok(meta) if meta.file_type().is_symlink() => {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return Err(ResolveError::Loop);
                }
                let target = fs::read_link(&host).map_err(|e| ResolveError::Io(host, e))?;
                if target.has_root() {
                    done = PathBuf::new(); // `/x` inside the container is `root/x`
                }
                // Walk the link's components next, then the rest of ours.
                for piece in target.iter().rev() {
                    todo.push_front(piece.to_os_string());
                }
            }
            // A directory, or a file the caller will refuse to use as a parent.
            Ok(_) => done = candidate,
            // Not there (yet): the caller creates it as a directory.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                done = candidate;
            }
            Err(e) => return Err(ResolveError::Io(host, e)),
        }
    }
    Ok(done)
}
// ANCHOR_END: resolve

/// Why [`ensure_dirs`] failed: the host path and the OS error.
pub type EnsureError = (PathBuf, io::Error);

/// Creates the missing directories of `rel` (an output of [`resolve_dir_in_root`]) and records
/// the ones it creates as written by this layer. A component that exists and is not a real
/// directory is an error (`ENOTDIR`): we never walk through a file or a symlink.
pub fn ensure_dirs(root: &Path, rel: &Path, layer: &mut LayerPaths) -> Result<(), EnsureError> {
    make_dirs(root, rel, |created| layer.record(created))
}

/// [`ensure_dirs`] for callers that keep no [`LayerPaths`] (chapter 4's mount points): calls
/// `created` with each directory it makes, relative to `root`.
pub fn make_dirs(
    root: &Path,
    rel: &Path,
    mut created: impl FnMut(&Path),
) -> Result<(), EnsureError> {
    let mut walked = PathBuf::new();
    for part in rel.iter() {
        walked.push(part);
        let host = root.join(&walked);
        match fs::symlink_metadata(&host) {
            Ok(meta) if meta.file_type().is_dir() => {}
            Ok(_) => return Err((host, io::Error::from_raw_os_error(libc::ENOTDIR))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                use std::os::unix::fs::DirBuilderExt;
                fs::DirBuilder::new()
                    .mode(0o755)
                    .create(&host)
                    .map_err(|e| (host.clone(), e))?;
                created(&walked);
            }
            Err(e) => return Err((host, e)),
        }
    }
    Ok(())
}

/// True when `root/rel` is a directory and so is every component on the way, none a symlink.
/// Used before touching a path remembered from earlier (deferred directory metadata), which a
/// later entry may have replaced with a symlink.
pub fn is_real_dir_chain(root: &Path, rel: &Path) -> bool {
    let mut walked = root.to_path_buf();
    for part in rel.iter() {
        walked.push(part);
        match fs::symlink_metadata(&walked) {
            Ok(meta) if meta.file_type().is_dir() => {}
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn clean(name: &str) -> Option<String> {
        clean_entry_name(Path::new(name)).map(|p| p.to_string_lossy().into_owned())
    }

    #[test]
    fn clean_names() {
        assert_eq!(clean("a/b/c").as_deref(), Some("a/b/c"));
        assert_eq!(clean("./a//b/").as_deref(), Some("a/b"));
        assert_eq!(clean("/etc/passwd").as_deref(), Some("etc/passwd"));
        assert_eq!(clean("a/../b").as_deref(), Some("b"));
        assert_eq!(clean("a/b/../../c").as_deref(), Some("c"));
        assert_eq!(clean("./").as_deref(), Some(""));
        assert_eq!(clean("/").as_deref(), Some(""));
        assert_eq!(clean("../escape"), None);
        assert_eq!(clean("a/../../escape"), None);
        assert_eq!(clean("/../x"), None);
        assert_eq!(clean("a/.wh.../../x").as_deref(), Some("a/x"));
        assert_eq!(clean("a/.wh.../../../x").as_deref(), Some("x"));
        assert_eq!(clean("a/.wh.../../../../x"), None);
    }

    fn scratch() -> labkit::ScratchDir {
        labkit::ScratchDir::new("ch04-resolve").unwrap()
    }

    fn resolve(root: &Path, rel: &str) -> String {
        resolve_in_root(root, Path::new(rel))
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn plain_paths_resolve_to_themselves() {
        let s = scratch();
        fs::create_dir(s.join("a")).unwrap();
        assert_eq!(resolve(s.path(), "a/b/c"), "a/b/c");
        assert_eq!(resolve(s.path(), "x"), "x");
        assert_eq!(resolve(s.path(), ""), "");
    }

    #[test]
    fn symlinks_in_parents_stay_inside_the_root() {
        let s = scratch();
        fs::create_dir_all(s.join("usr/lib")).unwrap();
        symlink("usr/lib", s.join("lib")).unwrap();
        symlink("/", s.join("to-root")).unwrap();
        symlink("../../..", s.join("usr/up")).unwrap();
        symlink("/usr/lib", s.join("abs-lib")).unwrap();
        assert_eq!(resolve(s.path(), "lib/libc.so"), "usr/lib/libc.so");
        assert_eq!(resolve(s.path(), "to-root/etc/passwd"), "etc/passwd");
        assert_eq!(resolve(s.path(), "usr/up/escape"), "escape");
        assert_eq!(resolve(s.path(), "abs-lib/x"), "usr/lib/x");
    }

    #[test]
    fn the_last_component_is_never_followed() {
        let s = scratch();
        symlink("/etc/passwd", s.join("link")).unwrap();
        assert_eq!(resolve(s.path(), "link"), "link");
    }

    #[test]
    fn symlink_loops_are_an_error() {
        let s = scratch();
        symlink("b", s.join("a")).unwrap();
        symlink("a", s.join("b")).unwrap();
        assert!(matches!(
            resolve_in_root(s.path(), Path::new("a/x")),
            Err(ResolveError::Loop)
        ));
    }

    #[test]
    fn ensure_dirs_refuses_to_walk_through_files() {
        let s = scratch();
        fs::write(s.join("file"), b"").unwrap();
        let mut layer = LayerPaths::default();
        let err = ensure_dirs(s.path(), Path::new("file/sub"), &mut layer).unwrap_err();
        assert_eq!(err.1.raw_os_error(), Some(libc::ENOTDIR));
        ensure_dirs(s.path(), Path::new("new/deeper"), &mut layer).unwrap();
        assert!(s.join("new/deeper").is_dir());
        assert!(layer.contains(Path::new("new")) && layer.contains(Path::new("new/deeper")));
    }

    #[test]
    fn real_dir_chain_rejects_symlinked_parents() {
        let s = scratch();
        fs::create_dir_all(s.join("a/b")).unwrap();
        symlink("a", s.join("l")).unwrap();
        assert!(is_real_dir_chain(s.path(), Path::new("a/b")));
        assert!(!is_real_dir_chain(s.path(), Path::new("l/b")));
        assert!(!is_real_dir_chain(s.path(), Path::new("a/missing")));
    }
}
