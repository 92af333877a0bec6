//! cgroup v2 cpu controller: `cpu.max` and `cpu.weight`.

use std::path::Path;
use std::time::Duration;

use crate::files::{read_keyed, write, Written};
use crate::limits::{quota_for, shares_to_weight};
use crate::{CgroupError, Limits, Usage};

// ANCHOR: v2_cpu
/// v2 puts quota and period in one file, `cpu.max` = "QUOTA PERIOD", and replaces shares with
/// `cpu.weight`.
pub fn apply(dir: &Path, limits: &Limits) -> Result<Vec<Written>, CgroupError> {
    let mut written = Vec::new();
    if let Some(millis) = limits.cpu_millis {
        let quota = quota_for(millis);
        written.push(write(
            dir,
            "cpu.max",
            format!("{} {}", quota.quota_us, quota.period_us),
        )?);
    }
    if let Some(shares) = limits.cpu_shares {
        written.push(write(dir, "cpu.weight", shares_to_weight(shares))?);
    }
    Ok(written)
}
// ANCHOR_END: v2_cpu

/// `usage_usec` from `cpu.stat` (present even without the cpu controller enabled), and
/// `nr_throttled` (present only with it).
pub fn read_usage(dir: &Path, usage: &mut Usage) -> Result<(), CgroupError> {
    usage.cpu_time = read_keyed(dir, "cpu.stat", "usage_usec")?.map(Duration::from_micros);
    usage.cpu_throttled = read_keyed(dir, "cpu.stat", "nr_throttled")?;
    Ok(())
}
