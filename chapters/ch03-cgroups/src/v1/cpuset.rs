//! cgroup v1 cpuset controller.

use std::path::Path;

use crate::files::{read, write, Written};
use crate::{CgroupError, Limits};

/// A new v1 cpuset cgroup starts with *empty* `cpuset.cpus` and `cpuset.mems`, and the kernel
/// refuses to put a process into it (ENOSPC) until both are set. Copy the parent's, as runc does.
pub fn inherit_from_parent(dir: &Path) -> Result<Vec<Written>, CgroupError> {
    let mut written = Vec::new();
    let Some(parent) = dir.parent() else {
        return Ok(written);
    };
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if read(dir, file)?.is_empty() {
            written.push(write(dir, file, read(parent, file)?)?);
        }
    }
    Ok(written)
}

/// `cpuset.cpus`.
pub fn apply(dir: &Path, limits: &Limits) -> Result<Vec<Written>, CgroupError> {
    limits
        .cpuset_cpus
        .as_ref()
        .map(|cpus| write(dir, "cpuset.cpus", cpus))
        .into_iter()
        .collect()
}
