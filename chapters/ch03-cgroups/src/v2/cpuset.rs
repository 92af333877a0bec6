//! cgroup v2 cpuset controller. Unlike v1, an empty `cpuset.cpus` means "inherit": nothing to
//! copy.

use std::path::Path;

use crate::files::{write, Written};
use crate::{CgroupError, Limits};

/// `cpuset.cpus`.
pub fn apply(dir: &Path, limits: &Limits) -> Result<Vec<Written>, CgroupError> {
    limits
        .cpuset_cpus
        .as_ref()
        .map(|cpus| write(dir, "cpuset.cpus", cpus))
        .into_iter()
        .collect()
}
