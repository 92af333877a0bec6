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
        let memory = fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            })
            .map(|kib| super::stats::bytes(kib * 1024))
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

/// The current UTC time as `YYYY-MM-DD HH:MM`, from the Unix clock (days to a civil date by
/// Howard Hinnant's algorithm: no date crate for one line).
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60
    )
}
