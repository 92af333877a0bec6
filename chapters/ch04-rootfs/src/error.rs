//! Errors of chapter 4.

use std::path::PathBuf;

/// An error from chapter 4's library.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("root filesystem {path} is not a usable directory: {reason}")]
    NotADirectory { path: PathBuf, reason: String },

    #[error("this kernel has no overlayfs (not in /proc/filesystems; try modprobe overlay): unpack the layers into one directory and use --rootfs instead")]
    NoOverlay,

    #[error("a root filesystem needs the mnt namespace: add it to --ns (pivot_root on the host's mount table would change the host)")]
    NeedsMountNamespace,
}
