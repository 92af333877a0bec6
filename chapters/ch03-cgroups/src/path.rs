//! The name of a cgroup: a relative path under each hierarchy's root, checked so that it can
//! never point outside it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::CgroupError;

/// Where boxlab keeps its cgroups, so anyone (and the leak check) can find them.
pub const BOXLAB_PARENT: &str = "boxlab";

/// A validated cgroup path such as `boxlab/ch03-1234-0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupPath(PathBuf);

impl CgroupPath {
    /// Checks `path`: relative to the hierarchy root (a leading `/` is allowed and means the
    /// same, as in an OCI `cgroupsPath`), made only of normal names — no `..`, no `.`.
    pub fn new(path: &str) -> Result<Self, CgroupError> {
        let bad = |reason| CgroupError::BadPath {
            path: path.to_string(),
            reason,
        };
        let relative = path.trim_start_matches('/');
        if relative.is_empty() {
            return Err(bad(
                "it names the root cgroup itself; a container needs a cgroup of its own",
            ));
        }
        let mut clean = PathBuf::new();
        for name in relative.split('/').filter(|name| !name.is_empty()) {
            match name {
                ".." => return Err(bad("'..' would leave the cgroup root")),
                "." => return Err(bad("'.' is not a cgroup name")),
                _ if name.contains('\0') => return Err(bad("a NUL byte cannot be in a path")),
                _ => clean.push(name),
            }
        }
        Ok(CgroupPath(clean))
    }

    /// A fresh name under `boxlab/`: `boxlab/<label>-<pid>-<n>`.
    pub fn unique(label: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        CgroupPath(Path::new(BOXLAB_PARENT).join(format!("{label}-{}-{n}", std::process::id())))
    }

    /// The relative path.
    pub fn as_path(&self) -> &Path {
        &self.0
    }
}

impl fmt::Display for CgroupPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_root() {
        assert_eq!(
            CgroupPath::new("/default/abc").unwrap().as_path(),
            Path::new("default/abc")
        );
        for (path, reason) in [
            ("../etc", "'..'"),
            ("boxlab/../../x", "'..'"),
            ("/", "root cgroup"),
            ("a/./b", "'.'"),
        ] {
            let err = CgroupPath::new(path).unwrap_err().to_string();
            assert!(
                err.contains(&format!("'{path}'")) && err.contains(reason),
                "{path}: {err}"
            );
        }
        assert!(CgroupPath::unique("t").to_string().starts_with("boxlab/t-"));
    }
}
