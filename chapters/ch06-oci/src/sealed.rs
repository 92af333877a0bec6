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

use std::ffi::{CString, OsString};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;

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

/// Whether this process runs from a sealed copy of itself.
pub fn running_sealed() -> bool {
    File::open("/proc/self/exe").is_ok_and(|exe| is_sealed(&exe))
}

// ANCHOR: sealed
/// Re-executes this program from a sealed in-memory copy of itself, with the same arguments
/// and environment. Returns `Ok` at once when already running from one (the second time
/// round); otherwise returns only on error.
pub fn reexec_from_sealed_copy() -> Result<(), OciError> {
    let exe = File::open("/proc/self/exe")
        .map_err(|e| OciError::io("opening the runtime binary", "/proc/self/exe", e))?;
    if is_sealed(&exe) {
        return Ok(());
    }
    let copy = sealed_copy(exe)?;
    let args = c_strings(std::env::args_os())?;
    let env = c_strings(std::env::vars_os().map(|(key, value)| {
        let mut pair = key;
        pair.push("=");
        pair.push(value);
        pair
    }))?;
    // The copy is close-on-exec: the kernel has the file open by the time it closes the fd.
    let errno = match nix::unistd::fexecve(&copy, &args, &env) {
        Err(errno) => errno,
        Ok(never) => match never {},
    };
    Err(OciError::Sys {
        what: "fexecve of the runtime's sealed copy (CVE-2019-5736 protection)".into(),
        errno,
    })
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
