//! Reading and writing cgroup control files: the whole interface is `open`, `write`, `read`.

use std::fs;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::CgroupError;

/// One value written to one control file: what the demo prints and the tests check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub file: PathBuf,
    pub value: String,
}

/// Writes `value` to `dir/file` in one `write(2)`, as the kernel wants.
pub fn write(dir: &Path, file: &str, value: impl ToString) -> Result<Written, CgroupError> {
    let path = dir.join(file);
    let value = value.to_string();
    fs::write(&path, &value).map_err(|err| {
        let errno = Errno::from_raw(err.raw_os_error().unwrap_or(0));
        let hint = match errno {
            Errno::ENOENT => "no such control file: is the controller enabled for this cgroup?",
            Errno::EINVAL => "the value is out of range or malformed for this file",
            Errno::EBUSY => "the cgroup is in use in a way that forbids this (current usage above it, or processes inside)",
            Errno::EACCES | Errno::EPERM => "permission denied: run as root, or use a delegated cgroup",
            Errno::EOPNOTSUPP => "not supported by this kernel",
            _ => "see the kernel's cgroup documentation for this file",
        };
        CgroupError::WriteRefused { file: path.clone(), value: value.clone(), errno, hint }
    })?;
    Ok(Written { file: path, value })
}

/// Reads a whole control file, trimmed.
pub fn read(dir: &Path, file: &str) -> Result<String, CgroupError> {
    let path = dir.join(file);
    fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|e| CgroupError::read(path, e))
}

/// Reads a file holding one number (`max` reads as `None`).
pub fn read_u64(dir: &Path, file: &str) -> Result<Option<u64>, CgroupError> {
    let text = read(dir, file)?;
    if text == "max" {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| CgroupError::read(dir.join(file), format!("'{text}' is not a number")))
}

/// Reads `key value` lines (`memory.events`, `cpu.stat`, `memory.oom_control`) and returns the
/// value for `key`.
pub fn read_keyed(dir: &Path, file: &str, key: &str) -> Result<Option<u64>, CgroupError> {
    let text = read(dir, file)?;
    Ok(text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    }))
}

/// True if `dir/file` exists (a control file the kernel offers here).
pub fn exists(dir: &Path, file: &str) -> bool {
    dir.join(file).exists()
}
