//! What to limit, independent of the cgroup version: the numbers `docker run --memory --cpus
//! --pids-limit --cpuset-cpus` take.

use crate::quantity::human_bytes;
use crate::CgroupError;

/// The CFS period the kernel, docker and the kubelet use by default: 100 ms.
pub const DEFAULT_CPU_PERIOD_US: u64 = 100_000;

/// Docker's floor for `--memory`: below this a container cannot even start its runtime.
pub const MIN_MEMORY_BYTES: u64 = 6 << 20;

/// Resource limits for one cgroup. `None` leaves the kernel's default (no limit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Hard memory limit in bytes: past it the kernel reclaims, then OOM-kills.
    pub memory: Option<u64>,
    /// Memory plus swap, in bytes (docker's `--memory-swap`); equal to `memory` means no swap.
    pub memory_swap: Option<u64>,
    /// CPU time per period, in thousandths of a CPU (`--cpus 0.5` is 500).
    pub cpu_millis: Option<u64>,
    /// Relative CPU weight under contention, in v1 "shares" (default 1024).
    pub cpu_shares: Option<u64>,
    /// Most processes (and threads) at once.
    pub pids: Option<u64>,
    /// The CPUs it may run on, in the kernel's list format (`0-1`, `0,2`).
    pub cpuset_cpus: Option<String>,
}

/// A CFS quota: `quota_us` of CPU time in every `period_us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuQuota {
    pub quota_us: u64,
    pub period_us: u64,
}

// ANCHOR: cpus_to_quota
/// `--cpus 1.5` becomes 150 ms of CPU time in every 100 ms period: the process may keep one and a
/// half CPUs busy, however many it has threads.
pub fn quota_for(cpu_millis: u64) -> CpuQuota {
    CpuQuota {
        quota_us: cpu_millis * DEFAULT_CPU_PERIOD_US / 1000,
        period_us: DEFAULT_CPU_PERIOD_US,
    }
}

/// cgroup v2 has `cpu.weight` (1..10000, default 100) instead of v1's `cpu.shares` (2..262144,
/// default 1024); runc and the kubelet convert with this line.
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}
// ANCHOR_END: cpus_to_quota

impl Limits {
    /// True if nothing is limited.
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    /// Checks the values against what the kernel and this machine accept, before any file is
    /// written, so that a bad value creates nothing.
    pub fn validate(&self) -> Result<(), CgroupError> {
        let bad = |what, value: String, reason: String| {
            Err(CgroupError::BadValue {
                what,
                value,
                reason,
            })
        };
        if let Some(memory) = self.memory {
            if memory < MIN_MEMORY_BYTES {
                return bad(
                    "memory limit",
                    human_bytes(memory),
                    format!(
                        "below the minimum of {} (docker refuses the same)",
                        human_bytes(MIN_MEMORY_BYTES)
                    ),
                );
            }
        }
        if let (Some(swap), Some(memory)) = (self.memory_swap, self.memory) {
            if swap < memory {
                return bad(
                    "memory+swap limit",
                    human_bytes(swap),
                    format!(
                        "must be at least the memory limit ({})",
                        human_bytes(memory)
                    ),
                );
            }
        }
        if self.memory_swap.is_some() && self.memory.is_none() {
            return bad(
                "memory+swap limit",
                "set".into(),
                "needs a memory limit too (--memory)".into(),
            );
        }
        if let Some(millis) = self.cpu_millis {
            let cpus = online_cpus();
            if millis < 10 || millis > cpus * 1000 {
                return bad(
                    "CPU limit",
                    format!("{:.3}", millis as f64 / 1000.0),
                    format!("the range is 0.01 to {cpus}.00, as this machine has {cpus} CPUs"),
                );
            }
        }
        if let Some(shares) = self.cpu_shares {
            if !(2..=262_144).contains(&shares) {
                return bad(
                    "CPU shares",
                    shares.to_string(),
                    "the kernel accepts 2 to 262144".into(),
                );
            }
        }
        if self.pids == Some(0) {
            return bad(
                "pids limit",
                "0".into(),
                "must be at least 1 (the command itself is a process)".into(),
            );
        }
        if let Some(cpus) = &self.cpuset_cpus {
            let online = online_cpus();
            for cpu in parse_cpu_list(cpus)? {
                if cpu >= online {
                    return bad(
                        "cpuset",
                        cpus.clone(),
                        format!(
                            "CPU {cpu} does not exist; this machine has 0-{}",
                            online - 1
                        ),
                    );
                }
            }
        }
        Ok(())
    }
}

/// Expands a CPU list such as `0-2,4` into its numbers.
pub fn parse_cpu_list(list: &str) -> Result<Vec<u64>, CgroupError> {
    let bad = || CgroupError::BadValue {
        what: "cpuset",
        value: list.into(),
        reason: "expected a list like 0-1 or 0,2".into(),
    };
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
            None => {
                let n: u64 = part.parse().map_err(|_| bad())?;
                (n, n)
            }
        };
        if first > last {
            return Err(bad());
        }
        cpus.extend(first..=last);
    }
    if cpus.is_empty() {
        return Err(bad());
    }
    Ok(cpus)
}

/// How many CPUs are online.
pub fn online_cpus() -> u64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_become_a_quota_and_shares_a_weight() {
        assert_eq!(
            quota_for(1500),
            CpuQuota {
                quota_us: 150_000,
                period_us: 100_000
            }
        );
        assert_eq!(quota_for(500).quota_us, 50_000);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        let cases = [
            (
                Limits {
                    memory: Some(4096),
                    ..Default::default()
                },
                "below the minimum of 6 MiB",
            ),
            (
                Limits {
                    cpu_millis: Some(online_cpus() * 1000 + 1000),
                    ..Default::default()
                },
                "CPUs",
            ),
            (
                Limits {
                    cpu_millis: Some(5),
                    ..Default::default()
                },
                "the range is 0.01",
            ),
            (
                Limits {
                    pids: Some(0),
                    ..Default::default()
                },
                "at least 1",
            ),
            (
                Limits {
                    memory: Some(64 << 20),
                    memory_swap: Some(32 << 20),
                    ..Default::default()
                },
                "at least the memory",
            ),
            (
                Limits {
                    cpuset_cpus: Some("0-999".into()),
                    ..Default::default()
                },
                "does not exist; this machine has 0-",
            ),
            (
                Limits {
                    cpuset_cpus: Some("x".into()),
                    ..Default::default()
                },
                "expected a list",
            ),
        ];
        for (limits, reason) in cases {
            let err = limits.validate().unwrap_err().to_string();
            assert!(err.contains(reason), "{limits:?}: {err}");
        }
        let fine = Limits {
            memory: Some(64 << 20),
            cpu_millis: Some(500),
            pids: Some(20),
            ..Default::default()
        };
        fine.validate().unwrap();
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-2,4").unwrap(), vec![0, 1, 2, 4]);
        assert!(parse_cpu_list("2-1").is_err());
    }
}
