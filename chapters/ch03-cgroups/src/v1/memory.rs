//! cgroup v1 memory controller: `memory.limit_in_bytes` and friends.

use std::path::Path;

use crate::files::{exists, read_keyed, read_u64, write, Written};
use crate::{CgroupError, Limits, Usage};

// ANCHOR: v1_memory
/// Writes the memory limit, then the memory+swap limit (the kernel insists memsw >= memory, so
/// the order matters).
pub fn apply(dir: &Path, limits: &Limits) -> Result<Vec<Written>, CgroupError> {
    let mut written = Vec::new();
    if let Some(bytes) = limits.memory {
        written.push(write(dir, "memory.limit_in_bytes", bytes)?);
    }
    if let Some(total) = limits.memory_swap {
        if !exists(dir, "memory.memsw.limit_in_bytes") {
            return Err(CgroupError::ControllerMissing {
                controller: "memory (swap accounting)",
                where_: dir.join("memory.memsw.limit_in_bytes"),
                hint: "swap accounting is off; boot the kernel with swapaccount=1".into(),
            });
        }
        written.push(write(dir, "memory.memsw.limit_in_bytes", total)?);
    }
    Ok(written)
}
// ANCHOR_END: v1_memory

/// Current and peak usage, and the OOM kill count (`oom_kill` in `memory.oom_control`, 4.13+).
pub fn read_usage(dir: &Path, usage: &mut Usage) -> Result<(), CgroupError> {
    usage.memory = read_u64(dir, "memory.usage_in_bytes")?;
    usage.memory_peak = read_u64(dir, "memory.max_usage_in_bytes")?;
    usage.oom_kills = read_keyed(dir, "memory.oom_control", "oom_kill")?;
    Ok(())
}
