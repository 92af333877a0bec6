//! What a cgroup has used, read back from its control files.

use std::fmt;
use std::time::Duration;

use crate::quantity::human_bytes;

/// Usage figures; `None` where this host's cgroups do not report it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Memory charged now (page cache included).
    pub memory: Option<u64>,
    /// The most memory ever charged.
    pub memory_peak: Option<u64>,
    /// How many times the OOM killer killed a process of this cgroup.
    pub oom_kills: Option<u64>,
    /// CPU time used by all its processes.
    pub cpu_time: Option<Duration>,
    /// Scheduling periods in which the CPU quota stopped it (`nr_throttled` in `cpu.stat`):
    /// the kernel's own word that `--cpus` held it back, whatever else the machine was doing.
    pub cpu_throttled: Option<u64>,
    /// Processes (and threads) in it now.
    pub pids: Option<u64>,
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or_na = |v: Option<String>| v.unwrap_or_else(|| "n/a".into());
        write!(
            f,
            "memory {} (peak {}), OOM kills {}, CPU time {}, tasks {}",
            or_na(self.memory.map(human_bytes)),
            or_na(self.memory_peak.map(human_bytes)),
            or_na(self.oom_kills.map(|n| n.to_string())),
            or_na(self.cpu_time.map(|d| format!("{:.3} s", d.as_secs_f64()))),
            or_na(self.pids.map(|n| n.to_string())),
        )
    }
}
