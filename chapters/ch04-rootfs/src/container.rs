//! Chapter 3's isolated, limited child, given a root filesystem of its own.

use std::path::Path;
use std::sync::Arc;

use ch02_namespaces::{Isolation, Namespace};

use crate::overlay::{container_layer, mount_overlay, overlay_available};
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
    with_rootfs_spec(
        isolation,
        RootfsSpec {
            path: rootfs.to_path_buf(),
            readonly,
            ..RootfsSpec::default()
        },
    )
}

/// [`with_rootfs`] with everything a [`RootfsSpec`] can hold: extra device nodes and bind mounts
/// (chapter 5 adds GPUs and driver libraries this way).
pub fn with_rootfs_spec(isolation: Isolation, spec: RootfsSpec) -> Result<Isolation, RootfsError> {
    let not_usable = |reason: String| RootfsError::NotADirectory {
        path: spec.path.clone(),
        reason,
    };
    let meta = std::fs::metadata(&spec.path).map_err(|e| not_usable(e.to_string()))?;
    if !meta.is_dir() {
        return Err(not_usable("it is a file".into()));
    }
    if !isolation.namespaces().contains(&Namespace::Mount) {
        return Err(RootfsError::NeedsMountNamespace);
    }
    let path = spec
        .path
        .canonicalize()
        .map_err(|e| not_usable(e.to_string()))?;
    let spec = RootfsSpec { path, ..spec };
    Ok(isolation.child_hook(Arc::new(move || enter_rootfs(&spec))))
}
// ANCHOR_END: with_rootfs

// ANCHOR: with_layers
/// Like [`with_rootfs`], but the root is an overlay of image layers (lowest first) with a
/// writable layer of its own under `container_dir`. The overlay is mounted inside the
/// container's mount namespace, so it disappears with the container; `container_dir/upper` keeps
/// what the container wrote until the caller removes it.
pub fn with_layers(
    isolation: Isolation,
    layers: Vec<std::path::PathBuf>,
    container_dir: &Path,
    readonly: bool,
) -> Result<Isolation, RootfsError> {
    if !overlay_available() {
        return Err(RootfsError::NoOverlay);
    }
    if !isolation.namespaces().contains(&Namespace::Mount) {
        return Err(RootfsError::NeedsMountNamespace);
    }
    let rootless =
        isolation.namespaces().contains(&Namespace::User) && !nix::unistd::geteuid().is_root();
    let spec = container_layer(container_dir, layers, rootless).map_err(|e| {
        RootfsError::NotADirectory {
            path: container_dir.into(),
            reason: e.to_string(),
        }
    })?;
    let rootfs = RootfsSpec {
        path: spec.merged.clone(),
        readonly,
        ..RootfsSpec::default()
    };
    Ok(isolation.child_hook(Arc::new(move || {
        mount_overlay(&spec)?;
        enter_rootfs(&rootfs)
    })))
}
// ANCHOR_END: with_layers
