//! Which cgroup layout this host has: v1, v2 (unified) or hybrid, found by `statfs`.

use std::path::{Path, PathBuf};

use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC, TMPFS_MAGIC};

use crate::CgroupError;

/// Where the cgroup hierarchies are mounted on almost every distribution.
pub const DEFAULT_ROOT: &str = "/sys/fs/cgroup";

// ANCHOR: layout
/// The three ways a host can mount cgroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// cgroup v1 ("legacy"): a tmpfs at the root with one hierarchy per controller below it
    /// (`memory/`, `cpu/`, `pids/` …), each its own tree.
    V1 { root: PathBuf },
    /// cgroup v2 ("unified"): one tree, mounted at the root itself. What most machines have now.
    V2 { root: PathBuf },
    /// v1 controllers as above, plus a cgroup2 tree at `root/unified` (systemd's "hybrid" mode),
    /// usually holding no controllers of its own. This project's CI host is one.
    Hybrid { root: PathBuf, unified: PathBuf },
}

/// The filesystem type of the mount at the root, and of `root/unified` if it exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    Cgroup2,
    Cgroup1,
    Tmpfs,
    Other,
}

/// Decides the layout from what `statfs` found: the heart of detection, kept free of I/O so it
/// can be tested on every combination.
pub fn classify(
    root: &Path,
    root_fs: FsKind,
    unified_fs: Option<FsKind>,
) -> Result<Layout, CgroupError> {
    match (root_fs, unified_fs) {
        (FsKind::Cgroup2, _) => Ok(Layout::V2 { root: root.to_path_buf() }),
        (FsKind::Tmpfs, Some(FsKind::Cgroup2)) => {
            Ok(Layout::Hybrid { root: root.to_path_buf(), unified: root.join("unified") })
        }
        (FsKind::Tmpfs, _) => Ok(Layout::V1 { root: root.to_path_buf() }),
        (FsKind::Cgroup1, _) => Err(CgroupError::NoCgroupFs {
            root: root.to_path_buf(),
            reason: "a single cgroup v1 hierarchy is mounted there; expected a tmpfs holding one per controller".into(),
        }),
        (FsKind::Other, _) => Err(CgroupError::NoCgroupFs {
            root: root.to_path_buf(),
            reason: "neither cgroup2 nor a tmpfs of v1 hierarchies is mounted there (mount -t cgroup2 none /sys/fs/cgroup)"
                .into(),
        }),
    }
}
// ANCHOR_END: layout

/// The filesystem type at `path` (`None` if it does not exist).
pub fn fs_kind(path: &Path) -> Option<FsKind> {
    let stat = statfs(path).ok()?;
    let kind = stat.filesystem_type();
    Some(if kind == CGROUP2_SUPER_MAGIC {
        FsKind::Cgroup2
    } else if kind == CGROUP_SUPER_MAGIC {
        FsKind::Cgroup1
    } else if kind == TMPFS_MAGIC {
        FsKind::Tmpfs
    } else {
        FsKind::Other
    })
}

/// Detects the layout at `root` (normally [`DEFAULT_ROOT`]).
pub fn detect_at(root: &Path) -> Result<Layout, CgroupError> {
    let root_fs = fs_kind(root).ok_or_else(|| CgroupError::NoCgroupFs {
        root: root.to_path_buf(),
        reason: "the directory does not exist".into(),
    })?;
    let unified = root.join("unified");
    let unified_fs = if unified.is_dir() {
        fs_kind(&unified)
    } else {
        None
    };
    classify(root, root_fs, unified_fs)
}

/// Detects this host's layout.
pub fn detect() -> Result<Layout, CgroupError> {
    detect_at(Path::new(DEFAULT_ROOT))
}

impl Layout {
    /// The mount point of the cgroup filesystem(s).
    pub fn root(&self) -> &Path {
        match self {
            Layout::V1 { root } | Layout::V2 { root } | Layout::Hybrid { root, .. } => root,
        }
    }

    /// "v1", "v2" or "hybrid".
    pub fn name(&self) -> &'static str {
        match self {
            Layout::V1 { .. } => "v1",
            Layout::V2 { .. } => "v2",
            Layout::Hybrid { .. } => "hybrid",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_combination_is_classified() {
        let root = Path::new("/sys/fs/cgroup");
        assert_eq!(
            classify(root, FsKind::Cgroup2, None).unwrap(),
            Layout::V2 { root: root.into() }
        );
        assert_eq!(
            classify(root, FsKind::Tmpfs, Some(FsKind::Cgroup2)).unwrap(),
            Layout::Hybrid {
                root: root.into(),
                unified: root.join("unified")
            }
        );
        assert_eq!(
            classify(root, FsKind::Tmpfs, None).unwrap(),
            Layout::V1 { root: root.into() }
        );
        assert_eq!(
            classify(root, FsKind::Tmpfs, Some(FsKind::Tmpfs)).unwrap(),
            Layout::V1 { root: root.into() }
        );
        assert!(classify(root, FsKind::Other, None)
            .unwrap_err()
            .to_string()
            .contains("neither cgroup2"));
        assert!(classify(root, FsKind::Cgroup1, None).is_err());
    }

    #[test]
    fn a_missing_root_is_a_clear_error() {
        let err = detect_at(Path::new("/nonexistent/boxlab-cgroup"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent/boxlab-cgroup") && err.contains("does not exist"),
            "{err}"
        );
    }

    #[test]
    fn this_host_is_detected() {
        // Whatever this machine is, detection must name one of the three layouts.
        let layout = detect().expect("a Linux host with cgroups mounted at /sys/fs/cgroup");
        assert!(["v1", "v2", "hybrid"].contains(&layout.name()));
    }
}
