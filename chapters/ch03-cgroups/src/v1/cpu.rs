//! cgroup v1 cpu controller: the CFS quota and shares.

use std::path::Path;

use crate::files::{read_keyed, write, Written};
use crate::limits::quota_for;
use crate::{CgroupError, Limits, Usage};

// ANCHOR: v1_cpu
/// `--cpus` becomes `cpu.cfs_period_us` and `cpu.cfs_quota_us`; relative weight is `cpu.shares`.
pub fn apply(dir: &Path, limits: &Limits) -> Result<Vec<Written>, CgroupError> {
    let mut written = Vec::new();
    if let Some(millis) = limits.cpu_millis {
        let quota = quota_for(millis);
        written.push(write(dir, "cpu.cfs_period_us", quota.period_us)?);
        written.push(write(dir, "cpu.cfs_quota_us", quota.quota_us)?);
    }
    if let Some(shares) = limits.cpu_shares {
        written.push(write(dir, "cpu.shares", shares)?);
    }
    Ok(written)
}
// ANCHOR_END: v1_cpu

/// `nr_throttled` from the cpu controller's `cpu.stat`: how often the quota stopped the group.
pub fn read_usage(dir: &Path, usage: &mut Usage) -> Result<(), CgroupError> {
    usage.cpu_throttled = read_keyed(dir, "cpu.stat", "nr_throttled")?;
    Ok(())
}
