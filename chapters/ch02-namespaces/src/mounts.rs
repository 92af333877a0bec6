//! The mounts a new mount namespace needs before anything else is mounted in it.

use nix::mount::{mount, MsFlags};

// ANCHOR: private
/// Makes every mount in this (new) mount namespace private, recursively.
///
/// A new mount namespace starts as a copy of the parent's, and on systemd hosts `/` is a *shared*
/// mount: without this, a mount made inside (our `/proc`!) would propagate back to the host.
pub fn make_mounts_private() -> Result<(), String> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("mount --make-rprivate /: {e}"))
}
// ANCHOR_END: private

// ANCHOR: proc
/// Mounts a fresh procfs on `/proc`.
///
/// procfs shows the PID namespace *of the process that mounts it*: so this runs in the
/// container's PID 1, and `ps` inside then lists only the container's processes.
pub fn mount_fresh_proc() -> Result<(), String> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("proc"), "/proc", Some("proc"), flags, None::<&str>)
        .map_err(|e| format!("mount -t proc proc /proc: {e}"))
}
// ANCHOR_END: proc
