//! Hiding and freezing parts of the container's own `/proc` and `/sys`.
//!
//! A fresh procfs still shows the *kernel's* files: `/proc/kcore` (the machine's memory),
//! `/proc/sysrq-trigger` (reboot the host with one write), `/proc/sys` (kernel settings).
//! `maskedPaths` hides such paths — a file gets `/dev/null` bind-mounted over it, a directory
//! an empty read-only tmpfs. `readonlyPaths` leaves them visible but read-only.

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sys::statvfs::{statvfs, FsFlags};

use super::{hook, SecurityError};
use ch02_namespaces::ChildHook;

fn absolute(field: &str, paths: &[String]) -> Result<Vec<String>, SecurityError> {
    paths
        .iter()
        .map(|p| {
            if p.starts_with('/') && !p.split('/').any(|part| part == "..") {
                Ok(p.clone())
            } else {
                Err(SecurityError::NotAbsolute {
                    field: field.into(),
                    path: p.clone(),
                })
            }
        })
        .collect()
}

/// Checks the paths and returns one step for both lists (masks first).
pub fn steps(masked: &[String], readonly: &[String]) -> Result<Vec<ChildHook>, SecurityError> {
    let masked = absolute("linux.maskedPaths", masked)?;
    let readonly = absolute("linux.readonlyPaths", readonly)?;
    if masked.is_empty() && readonly.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![hook(move || {
        for path in &masked {
            mask_path(path)?;
        }
        for path in &readonly {
            make_readonly(path)?;
        }
        Ok(())
    })])
}

// ANCHOR: masked
/// Hides `path`: `/dev/null` over a file, an empty read-only tmpfs over a directory. A path that
/// does not exist is fine (runc: the list is the same for every kernel).
pub fn mask_path(path: &str) -> Result<(), String> {
    match mount(
        Some("/dev/null"),
        path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    ) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::ENOTDIR) => mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("size=0"),
        )
        .map_err(|e| {
            format!(
                "masking directory {path} (linux.maskedPaths) with an empty read-only tmpfs: {e}"
            )
        }),
        Err(e) => Err(format!(
            "masking {path} (linux.maskedPaths) with a bind mount of /dev/null: {e}"
        )),
    }
}
// ANCHOR_END: masked

// ANCHOR: readonly
/// Makes `path` read-only: bind it onto itself, then remount that bind read-only. The flags it
/// already has (nosuid, nodev, noexec) are kept: in a user namespace the kernel refuses a
/// remount that would clear them.
pub fn make_readonly(path: &str) -> Result<(), String> {
    match mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    ) {
        Ok(()) => {}
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => {
            return Err(format!(
                "bind-mounting {path} onto itself (linux.readonlyPaths): {e}"
            ))
        }
    }
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC;
    if let Ok(stat) = statvfs(path) {
        let had = stat.flags();
        for (fs, ms) in [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        ] {
            if had.contains(fs) {
                flags |= ms;
            }
        }
    }
    mount(None::<&str>, path, None::<&str>, flags, None::<&str>)
        .map_err(|e| format!("remounting {path} read-only (linux.readonlyPaths): {e}"))
}
// ANCHOR_END: readonly
