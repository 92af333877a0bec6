//! cgroups without root: only cgroup v2 can hand a subtree to an ordinary user ("delegation"),
//! and systemd does so for each logged-in user at `user@<uid>.service`.

use std::path::{Path, PathBuf};

use nix::unistd::{access, AccessFlags, Uid};

use crate::{CgroupError, Layout};

// ANCHOR: delegation
/// The cgroup (relative to the root) under which this user may create cgroups, or why none is
/// available. For root, the root itself.
pub fn delegated_base(layout: &Layout, uid: Uid, own_cgroup: &str) -> Result<PathBuf, CgroupError> {
    if uid.is_root() {
        return Ok(PathBuf::new());
    }
    let root = match layout {
        Layout::V2 { root } => root,
        Layout::V1 { .. } | Layout::Hybrid { .. } => {
            return Err(CgroupError::Rootless(format!(
                "this host uses cgroup {} controllers, whose hierarchies belong to root and cannot be delegated; \
                 run as root, or boot with systemd.unified_cgroup_hierarchy=1 for cgroup v2",
                layout.name()
            )))
        }
    };
    let base = PathBuf::from(format!("user.slice/user-{uid}.slice/user@{uid}.service"));
    let dir = root.join(&base);
    if !dir.is_dir() {
        return Err(CgroupError::Rootless(format!(
            "{} does not exist: systemd has not delegated a cgroup to uid {uid} (log in through systemd-logind, \
             or enable lingering: loginctl enable-linger)",
            dir.display()
        )));
    }
    if access(&dir, AccessFlags::W_OK).is_err() {
        return Err(CgroupError::Rootless(format!(
            "{} is not writable by uid {uid}: it is not delegated",
            dir.display()
        )));
    }
    // Moving a process between cgroups needs write access to their common ancestor: the process
    // must already be inside the delegated subtree, not in a login session's scope beside it.
    if !Path::new(own_cgroup.trim_start_matches('/')).starts_with(&base) {
        return Err(CgroupError::Rootless(format!(
            "this process is in {own_cgroup}, outside the delegated {}; start it inside with \
             'systemd-run --user --scope -p Delegate=yes <command>'",
            base.display()
        )));
    }
    Ok(base)
}
// ANCHOR_END: delegation

/// This process's cgroup v2 path, from the `0::` line of `/proc/self/cgroup`.
pub fn own_v2_cgroup() -> String {
    std::fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use labkit::ScratchDir;

    #[test]
    fn root_needs_no_delegation() {
        let layout = Layout::V1 {
            root: "/sys/fs/cgroup".into(),
        };
        assert_eq!(
            delegated_base(&layout, Uid::from_raw(0), "/").unwrap(),
            PathBuf::new()
        );
    }

    #[test]
    fn v1_and_hybrid_cannot_be_delegated() {
        let layout = Layout::Hybrid {
            root: "/sys/fs/cgroup".into(),
            unified: "/sys/fs/cgroup/unified".into(),
        };
        let err = delegated_base(&layout, Uid::from_raw(1000), "/")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cgroup hybrid controllers") && err.contains("cannot be delegated"),
            "{err}"
        );
    }

    #[test]
    fn v2_delegation_is_found_or_its_absence_explained() {
        let tree = ScratchDir::new("cg-delegation").unwrap();
        let layout = Layout::V2 {
            root: tree.path().to_path_buf(),
        };
        let uid = Uid::from_raw(1000);
        let err = delegated_base(&layout, uid, "/user.slice/user-1000.slice/session-3.scope")
            .unwrap_err()
            .to_string();
        assert!(err.contains("user@1000.service does not exist"), "{err}");

        let base = "user.slice/user-1000.slice/user@1000.service";
        std::fs::create_dir_all(tree.join(base)).unwrap();
        let err = delegated_base(&layout, uid, "/user.slice/user-1000.slice/session-3.scope")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("outside the delegated") && err.contains("systemd-run --user --scope"),
            "{err}"
        );

        let inside = format!("/{base}/app.slice/term.scope");
        // (As root in CI the directory is writable; as a user it is, too: we made it.)
        assert_eq!(
            delegated_base(&layout, uid, &inside).unwrap(),
            PathBuf::from(base)
        );
    }
}
