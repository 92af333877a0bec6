//! The device nodes of a container's `/dev`.

use std::fs::{self, File};
use std::os::unix::fs::symlink;
use std::path::Path;

use nix::mount::{mount, MsFlags};

// ANCHOR: devices
/// The devices every container gets (the same list as runc's and the OCI spec's defaults).
pub const DEFAULT_DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Puts each default device into `dev` by bind-mounting the host's node onto an empty file.
///
/// Why not `mknod`? Inside a user namespace the kernel refuses `mknod` even to "root"; a bind
/// mount of the host's node works in both cases, and grants nothing more than the node itself.
///
/// `host_dev` is where the host's nodes are found: `/dev`, or a path to the host's `/dev`
/// that still reaches it once a fresh `/dev` covers it (with the host's own root).
pub fn populate_dev(dev: &Path, host_dev: &Path) -> Result<(), String> {
    for name in DEFAULT_DEVICES {
        let node = dev.join(name);
        File::create(&node).map_err(|e| format!("creating {}: {e}", node.display()))?;
        let host = host_dev.join(name);
        mount(
            Some(&host),
            &node,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| format!("bind {} on {}: {e}", host.display(), node.display()))?;
    }
    Ok(())
}

/// The links every `/dev` has besides its nodes: the process's own descriptors, and `ptmx` into
/// the devpts instance mounted on `pts`.
pub const DEV_LINKS: [(&str, &str); 5] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

/// Creates [`DEV_LINKS`] in `dev`, leaving any that is already there (a `/dev` chapter 6's
/// config mounted may have its own).
pub fn add_dev_links(dev: &Path) -> Result<(), String> {
    for (link, target) in DEV_LINKS {
        let path = dev.join(link);
        if fs::symlink_metadata(&path).is_err() {
            symlink(target, &path).map_err(|e| format!("symlink {}: {e}", path.display()))?;
        }
    }
    Ok(())
}
// ANCHOR_END: devices
