//! Where and when a report was measured: the committed copy must say so.

use std::fs;
use std::time::{SystemTime, UNIX_EPOCH};

pub struct Machine {
    pub os: String,
    pub kernel: String,
    pub cpu: String,
    pub cpus: usize,
    pub memory: String,
    pub kvm: String,
    pub cgroups: String,
    /// UTC, `YYYY-MM-DD HH:MM`.
    pub date: String,
    /// "quick" or "full".
    pub mode: String,
}

impl Machine {
    pub fn describe(mode: &str) -> Machine {
        let os = fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|v| v.trim_matches('"').to_string())
            })
            .unwrap_or_else(|| "Linux".into());
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_else(|| "unknown CPU".into());
        let memory = host_memory()
            .map(super::stats::bytes)
            .unwrap_or_else(|| "?".into());
        let cgroups = ch03_cgroups::detect()
            .map(|l| format!("cgroup {}", l.name()))
            .unwrap_or_else(|e| format!("cgroups: {e}"));
        Machine {
            os,
            kernel: super::process::kernel_release(),
            cpu,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory,
            kvm: ch07_microvm::host::detect().describe(),
            cgroups,
            date: utc_now(),
            mode: mode.into(),
        }
    }

    pub fn line(&self) -> String {
        format!(
            "Measured {} UTC on {}, kernel {}, {} × {}, {} RAM, {}; KVM: {} ({} run).",
            self.date,
            self.os,
            self.kernel,
            self.cpus,
            self.cpu,
            self.memory,
            self.cgroups,
            self.kvm,
            self.mode
        )
    }
}

/// The host's RAM in bytes (MemTotal in /proc/meminfo), if it says.
pub fn host_memory() -> Option<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    let kib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse::<u64>()
        .ok()?;
    Some(kib * 1024)
}

/// The current UTC time as `YYYY-MM-DD HH:MM`: chapter 4's RFC 3339 date, shortened.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let full = ch04_rootfs::build::diff::rfc3339(secs); // 2026-11-28T17:04:33Z
    full[..16].replacen('T', " ", 1)
}
