//! cgroup v2 memory controller: `memory.max` and friends.

use std::path::Path;

use crate::files::{exists, read_keyed, read_u64, write, Written};
use crate::{CgroupError, Limits, Usage};

// ANCHOR: v2_memory
/// `memory.max` is the hard limit. v2 counts swap separately: docker's memory+swap total
/// becomes `memory.swap.max = total - memory`.
pub fn apply(dir: &Path, limits: &Limits) -> Result<Vec<Written>, CgroupError> {
    let mut written = Vec::new();
    if let Some(bytes) = limits.memory {
        written.push(write(dir, "memory.max", bytes)?);
    }
    if let (Some(total), Some(memory)) = (limits.memory_swap, limits.memory) {
        written.push(write(dir, "memory.swap.max", total - memory)?);
    }
    Ok(written)
}
// ANCHOR_END: v2_memory

/// `memory.current`, `memory.peak` (kernel 5.19+), and `oom_kill` from `memory.events`.
pub fn read_usage(dir: &Path, usage: &mut Usage) -> Result<(), CgroupError> {
    usage.memory = read_u64(dir, "memory.current")?;
    if exists(dir, "memory.peak") {
        usage.memory_peak = read_u64(dir, "memory.peak")?;
    }
    usage.oom_kills = read_keyed(dir, "memory.events", "oom_kill")?;
    Ok(())
}
