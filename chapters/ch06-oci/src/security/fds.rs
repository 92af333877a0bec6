//! The last look before `exec`: no descriptor of the runtime leaks into the container, and the
//! working directory is inside the container's root.
//!
//! CVE-2024-21626 (runc "Leaky Vessels"): runc leaked a descriptor of the *host's*
//! `/sys/fs/cgroup` into the container's init. With `process.cwd` set to `/proc/self/fd/7`, the
//! command started with its working directory on the host — outside the container's root — and
//! `../../../..` reached the host's `/`. The fixes: mark every descriptor above 2 close-on-exec,
//! and check that the working directory is reachable from the (new) root before `exec`.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::hook;
use ch02_namespaces::ChildHook;

// ANCHOR: fds_cwd
/// Step: mark every descriptor from `3 + preserve_fds` up close-on-exec, change into `cwd` (the
/// spec's `process.cwd`, when given), and check that the working directory is inside the root.
///
/// Close-on-exec rather than close: the chapter 2 pipe that reports a failed `exec` is open
/// until `exec` succeeds, and the set-up channel that reports a failed step as well.
pub fn close_extra_fds_and_check_cwd(preserve_fds: u32, cwd: Option<PathBuf>) -> ChildHook {
    hook(move || {
        let first = 3u32.saturating_add(preserve_fds);
        mark_cloexec_from(first)?;
        if let Some(dir) = &cwd {
            let c = CString::new(dir.as_os_str().as_bytes())
                .map_err(|_| format!("process.cwd {} has a NUL byte", dir.display()))?;
            nix::unistd::chdir(c.as_c_str())
                .map_err(|e| format!("chdir to process.cwd {}: {e}", dir.display()))?;
        }
        check_cwd_inside_root(cwd.as_ref())
    })
}

/// `close_range(first, ~0, CLOSE_RANGE_CLOEXEC)` (Linux 5.11); older kernels: each descriptor
/// listed in `/proc/self/fd` gets `FD_CLOEXEC`.
fn mark_cloexec_from(first: u32) -> Result<(), String> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on descriptors.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let entries = std::fs::read_dir("/proc/self/fd").map_err(|e| {
        format!("close_range(CLOEXEC) is not supported and /proc/self/fd cannot be listed: {e}")
    })?;
    let fds: Vec<i32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd: &i32| fd >= first as i32)
        .collect();
    for fd in fds {
        // SAFETY: F_SETFD only changes a descriptor flag; a descriptor that is gone (the one
        // read_dir used) fails with EBADF, which is fine.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

/// The kernel's `getcwd` says `(unreachable)/…` for a directory that is not below this
/// process's root — the CVE's host directory. glibc turns that into ENOENT; ask the kernel.
fn check_cwd_inside_root(cwd: Option<&PathBuf>) -> Result<(), String> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: the kernel writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
    let shown = cwd
        .map(|d| format!(" (process.cwd {})", d.display()))
        .unwrap_or_default();
    if rc < 0 {
        return Err(format!(
            "the working directory{shown} cannot be resolved: {}; refusing to start the command there",
            std::io::Error::last_os_error()
        ));
    }
    let path = &buf[..(rc as usize).saturating_sub(1)];
    if path.starts_with(b"(unreachable)") || !path.starts_with(b"/") {
        return Err(format!(
            "the working directory{shown} is outside the container's root ({}): a leaked descriptor of the host (CVE-2024-21626)? refusing to start the command there",
            String::from_utf8_lossy(path)
        ));
    }
    Ok(())
}
// ANCHOR_END: fds_cwd
