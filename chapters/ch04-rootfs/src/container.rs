//! Chapter 3's isolated, limited child, given a root filesystem of its own.

use std::path::Path;
use std::sync::Arc;

use ch02_namespaces::{Isolation, Namespace};

use crate::pivot::{enter_rootfs, RootfsSpec};
use crate::RootfsError;

// ANCHOR: with_rootfs
/// Adds the root filesystem to chapter 2's isolation, as a step its init runs inside the new
/// mount namespace (before `/proc` is mounted, so that `/proc` lands in the new root).
pub fn with_rootfs(
    isolation: Isolation,
    rootfs: &Path,
    readonly: bool,
) -> Result<Isolation, RootfsError> {
    let meta = std::fs::metadata(rootfs).map_err(|e| RootfsError::NotADirectory {
        path: rootfs.into(),
        reason: e.to_string(),
    })?;
    if !meta.is_dir() {
        return Err(RootfsError::NotADirectory {
            path: rootfs.into(),
            reason: "it is a file".into(),
        });
    }
    if !isolation.namespaces().contains(&Namespace::Mount) {
        return Err(RootfsError::NeedsMountNamespace);
    }
    let spec = RootfsSpec {
        path: rootfs
            .canonicalize()
            .map_err(|e| RootfsError::NotADirectory {
                path: rootfs.into(),
                reason: e.to_string(),
            })?,
        readonly,
    };
    Ok(isolation.child_hook(Arc::new(move || enter_rootfs(&spec))))
}
// ANCHOR_END: with_rootfs
