//! cgroup v2 pids controller (the same files as v1).

use std::path::Path;

use crate::files::{read_u64, write, Written};
use crate::{CgroupError, Limits, Usage};

/// `pids.max`.
pub fn apply(dir: &Path, limits: &Limits) -> Result<Vec<Written>, CgroupError> {
    limits
        .pids
        .map(|max| write(dir, "pids.max", max))
        .into_iter()
        .collect()
}

/// `pids.current`.
pub fn read_usage(dir: &Path, usage: &mut Usage) -> Result<(), CgroupError> {
    usage.pids = read_u64(dir, "pids.current")?;
    Ok(())
}
