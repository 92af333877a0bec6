//! Creating one entry on disk once we know where it goes: files, directories, links, nodes, and
//! the metadata (owner, mode, mtime) a layer carries.
//!
//! Every function here gets a host path whose parents were resolved inside the target and are
//! real directories; the last component is never followed (`O_EXCL`, `lchown`, `lutimes`).

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use nix::sys::stat::{self as nstat, Mode, SFlag};
use nix::sys::time::TimeVal;

/// The metadata of an entry that we apply to what we create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits, setuid/setgid/sticky included.
    pub mode: u32,
    /// Owner, applied only with `preserve_ownership`.
    pub uid: u64,
    /// Group, applied only with `preserve_ownership`.
    pub gid: u64,
    /// Modification time, seconds since the epoch; kept so rebuilt trees compare equal.
    pub mtime: u64,
}

impl Meta {
    /// Reads the metadata fields of a tar header.
    pub fn from_header(header: &tar::Header) -> io::Result<Self> {
        Ok(Self {
            mode: header.mode()? & 0o7777,
            uid: header.uid()?,
            gid: header.gid()?,
            mtime: header.mtime()?,
        })
    }
}

/// Creates a new regular file (never opening an existing one, never following a symlink) and
/// returns it for the caller to fill. Mode 0600 until [`set_mode`] puts the real bits on.
pub fn create_file(host: &Path) -> io::Result<fs::File> {
    OpenOptions::new()
        .write(true)
        .create_new(true) // O_CREAT|O_EXCL: fails on anything already there, symlinks included
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .mode(0o600)
        .open(host)
}

/// Creates a directory, 0755 while we unpack into it (its real mode is set at the end, so a
/// read-only directory in the layer does not stop us writing its children).
pub fn create_dir(host: &Path) -> io::Result<()> {
    fs::DirBuilder::new().mode(0o755).create(host)
}

/// Creates a device node or FIFO.
pub fn create_node(host: &Path, kind: SFlag, major: u64, minor: u64) -> io::Result<()> {
    nstat::mknod(
        host,
        kind,
        Mode::from_bits_truncate(0o600),
        nstat::makedev(major, minor),
    )?;
    Ok(())
}

/// Sets the extended attribute `name` on `host` itself (never following a symlink).
pub fn set_xattr(host: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(host.as_os_str().as_bytes())?;
    let name = std::ffi::CString::new(name)?;
    // SAFETY: `path` and `name` are NUL-terminated strings that live until the call returns, and
    // `value` points to `value.len()` readable bytes; lsetxattr only reads them.
    let rc = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Chowns without following a symlink (only with `preserve_ownership`).
pub fn set_owner(host: &Path, meta: &Meta) -> io::Result<()> {
    let uid = u32::try_from(meta.uid).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let gid = u32::try_from(meta.gid).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    std::os::unix::fs::lchown(host, Some(uid), Some(gid))
}

/// Sets the permission bits; after [`set_owner`], since chown clears setuid/setgid.
/// Never called on symlinks (their mode means nothing and chmod would follow them).
pub fn set_mode(host: &Path, mode: u32) -> io::Result<()> {
    fs::set_permissions(host, fs::Permissions::from_mode(mode))
}

/// Sets access and modification time to the entry's mtime, on the link itself for symlinks.
pub fn set_mtime(host: &Path, mtime: u64) -> io::Result<()> {
    let secs = libc::time_t::try_from(mtime).unwrap_or(libc::time_t::MAX);
    let time = TimeVal::new(secs, 0);
    nstat::lutimes(host, &time, &time)?;
    Ok(())
}
