//! cgroup v1 cpuacct controller: CPU time accounting (v1 keeps it apart from `cpu`).

use std::path::Path;
use std::time::Duration;

use crate::files::read_u64;
use crate::{CgroupError, Usage};

/// Total CPU time of the cgroup's processes, from `cpuacct.usage` (nanoseconds).
pub fn read_usage(dir: &Path, usage: &mut Usage) -> Result<(), CgroupError> {
    usage.cpu_time = read_u64(dir, "cpuacct.usage")?.map(Duration::from_nanos);
    Ok(())
}
