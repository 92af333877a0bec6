//! CVE-2019-5736: the container must not be able to overwrite the runtime binary.
//!
//! While `create`, `run` or `exec` set a container up, a process of ours runs inside the
//! container's namespaces, and a process in the container can reach its executable through
//! `/proc/<pid>/exe` — the host's runtime binary itself. In 2019 a container used exactly that
//! to replace the host's `runc` with its own program, which the next `docker exec` ran as root
//! on the host.
//!
//! The fix runc (and crun) adopted, and ours: before doing anything, the runtime copies itself
//! into a memfd (an anonymous file in memory), seals it against every change, and re-executes
//! itself from that copy. `/proc/<pid>/exe` then points at the sealed copy: opening it for
//! writing fails with `EPERM`, and the binary on disk is out of the container's reach.
//!
//! Copying 6 MB on every `create` costs milliseconds, so when it may mount (as root), the
//! runtime first does what runc 1.2 prefers: it bind-mounts its own binary read-only, opens
//! it through that mount, detaches the mount, and re-executes from the descriptor. The kernel
//! then resolves `/proc/<pid>/exe` through a read-only mount that nobody can reach or remount:
//! opening it for writing fails with `EROFS`. A binary that already sits on a read-only
//! filesystem needs neither.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};

use crate::OciError;

/// The seals that make the copy immutable: no write, no resize, and no removing the seals.
fn immutable() -> SealFlag {
    SealFlag::F_SEAL_SEAL | SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_WRITE
}

/// Whether `file` is a memfd sealed as [`immutable`] (a regular file has no seals: `EINVAL`).
pub fn is_sealed(file: &impl AsFd) -> bool {
    fcntl(file, FcntlArg::F_GET_SEALS)
        .map(|bits| SealFlag::from_bits_truncate(bits).contains(immutable()))
        .unwrap_or(false)
}

/// Whether this process runs from a copy of itself that cannot be changed.
pub fn running_sealed() -> bool {
    File::open("/proc/self/exe").is_ok_and(|exe| is_sealed(&exe) || on_read_only_mount(&exe))
}

// ANCHOR: sealed
/// Re-executes this program from a copy of itself that a container cannot change, with the
/// same arguments and environment: through a detached read-only bind mount of the binary
/// (made in `scratch`, a directory of ours) where mounting is allowed, else from a sealed
/// memfd. Returns `Ok` at once when already running from one (the second time round);
/// otherwise returns only on error.
pub fn reexec_from_sealed_copy(scratch: &Path) -> Result<(), OciError> {
    let exe = File::open("/proc/self/exe")
        .map_err(|e| OciError::io("opening the runtime binary", "/proc/self/exe", e))?;
    if is_sealed(&exe) || on_read_only_mount(&exe) {
        return Ok(());
    }
    let copy = match read_only_bind(scratch) {
        Ok(fd) => fd,
        Err(_) => sealed_copy(exe)?, // no right to mount (rootless): copy instead
    };
    let args = c_strings(std::env::args_os())?;
    let env = c_strings(std::env::vars_os().map(|(key, value)| {
        let mut pair = key;
        pair.push("=");
        pair.push(value);
        pair
    }))?;
    // The descriptor is close-on-exec: the kernel has the file open by the time it closes it.
    let errno = match nix::unistd::fexecve(&copy, &args, &env) {
        Err(errno) => errno,
        Ok(never) => match never {},
    };
    Err(OciError::Sys {
        what: "re-executing the runtime from its protected copy (CVE-2019-5736)".into(),
        errno,
    })
}

/// Whether `file` lies on a read-only mount (`ST_RDONLY`): where nobody can write it.
pub fn on_read_only_mount(file: &impl AsFd) -> bool {
    nix::sys::statvfs::fstatvfs(file)
        .is_ok_and(|v| v.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

/// `mount --bind /proc/self/exe <scratch>/.exe.<pid>`, remounted read-only, opened `O_PATH`,
/// then detached (`MNT_DETACH`) and its mount point removed: a read-only view of the binary
/// that exists only through the returned descriptor.
fn read_only_bind(scratch: &Path) -> Result<OwnedFd, Errno> {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    let target = scratch.join(format!(".exe.{}", std::process::id()));
    File::create(&target).map_err(|_| Errno::EACCES)?;
    let opened = mount(
        Some("/proc/self/exe"),
        &target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .and_then(|()| {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        let readonly = mount(None::<&str>, &target, None::<&str>, flags, None::<&str>);
        let fd = readonly.and_then(|()| {
            nix::fcntl::open(
                &target,
                nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
        });
        let _ = umount2(&target, MntFlags::MNT_DETACH);
        fd
    });
    let _ = std::fs::remove_file(&target);
    opened
}

/// `memfd_create` + copy + `F_ADD_SEALS`: an anonymous, unchangeable copy of `exe`.
fn sealed_copy(mut exe: File) -> Result<OwnedFd, OciError> {
    let sys = |what: &str| {
        let what = what.to_string();
        move |errno| OciError::Sys { what, errno }
    };
    let memfd = memfd_create(
        "boxlab-runtime:sealed",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )
    .map_err(sys("memfd_create for the runtime's sealed copy"))?;
    let mut target = File::from(memfd);
    std::io::copy(&mut exe, &mut target)
        .map_err(|e| OciError::io("copying the runtime binary", "/proc/self/exe", e))?;
    fcntl(&target, FcntlArg::F_ADD_SEALS(immutable()))
        .map_err(sys("sealing the runtime's copy (F_ADD_SEALS)"))?;
    Ok(target.into())
}
// ANCHOR_END: sealed

fn c_strings(items: impl Iterator<Item = OsString>) -> Result<Vec<CString>, OciError> {
    items
        .map(|item| {
            CString::new(item.into_vec()).map_err(|_| OciError::Sys {
                what: "an argument or environment variable with a NUL byte".into(),
                errno: nix::errno::Errno::EINVAL,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_memfd_fallback_is_sealed_against_writes() {
        // The copy the runtime falls back to where it may not mount (rootless).
        let exe = File::open("/proc/self/exe").unwrap();
        let size = exe.metadata().unwrap().len();
        let copy = sealed_copy(exe).unwrap();
        assert!(is_sealed(&copy));
        let mut file = File::from(copy);
        assert_eq!(file.metadata().unwrap().len(), size, "a whole copy");
        let err = file.write_all(b"x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
    }

    #[test]
    fn the_binary_on_disk_is_not_sealed() {
        let file = File::open("/proc/self/exe").unwrap();
        assert!(!is_sealed(&file));
    }
}
