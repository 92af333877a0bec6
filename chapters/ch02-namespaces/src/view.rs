//! What a process can see of the system: the facts each namespace changes.
//!
//! The demo prints this once on the host and once inside the container, side by side; the tests
//! compare the two. Everything is read from `/proc`, `/sys` and system calls, the way `ps`,
//! `hostname`, `ip link`, `ipcs` and `id` get it.

use std::fs;

use nix::unistd::{getgid, gethostname, getpid, getppid, getuid};

/// One process's view of the system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// Its own pid (`getpid`).
    pub pid: i32,
    /// Its parent's pid (`getppid`): 0 for PID 1 of a new PID namespace.
    pub ppid: i32,
    /// `gethostname`.
    pub hostname: String,
    /// Its uid and gid.
    pub uid: u32,
    pub gid: u32,
    /// `/proc/self/uid_map`, one line per range, joined by ", ".
    pub uid_map: String,
    /// Network interfaces (`/sys/class/net` lists them per network namespace).
    pub interfaces: Vec<String>,
    /// How many processes `/proc` shows.
    pub processes: usize,
    /// System V message queue keys (`/proc/sysvipc/msg`).
    pub ipc_queues: Vec<String>,
    /// Its cgroup path as `/proc/self/cgroup` shows it (the memory hierarchy's, else the unified one).
    pub cgroup: String,
}

// ANCHOR: capture
/// Reads this process's view.
pub fn capture() -> View {
    let interfaces = {
        // sysfs shows the network namespace of the process that mounted it; /proc/net/dev always
        // shows ours. Read the latter.
        let dev = fs::read_to_string("/proc/self/net/dev").unwrap_or_default();
        let mut names: Vec<String> = dev
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next())
            .map(|n| n.trim().to_string())
            .collect();
        names.sort();
        names
    };
    let processes = fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .count()
        })
        .unwrap_or(0);
    let ipc_queues = fs::read_to_string("/proc/sysvipc/msg")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(|key| format!("{:#010x}", key.parse::<i64>().unwrap_or(0) as u32))
        .collect();
    let cgroup_lines = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let cgroup = cgroup_lines
        .lines()
        .find(|l| l.contains(":memory:"))
        .or_else(|| cgroup_lines.lines().find(|l| l.starts_with("0::")))
        .or_else(|| cgroup_lines.lines().next())
        .and_then(|l| l.splitn(3, ':').nth(2))
        .unwrap_or_default()
        .to_string();
    View {
        pid: getpid().as_raw(),
        ppid: getppid().as_raw(),
        hostname: gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
        uid: getuid().as_raw(),
        gid: getgid().as_raw(),
        uid_map: fs::read_to_string("/proc/self/uid_map")
            .unwrap_or_default()
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join(", "),
        interfaces,
        processes,
        ipc_queues,
        cgroup,
    }
}
// ANCHOR_END: capture

impl View {
    /// `key=value` lines, one per fact: how the demo child hands its view to the parent.
    pub fn to_lines(&self) -> String {
        format!(
            "pid={}\nppid={}\nhostname={}\nuid={}\ngid={}\nuid_map={}\ninterfaces={}\nprocesses={}\nipc_queues={}\ncgroup={}\n",
            self.pid,
            self.ppid,
            self.hostname,
            self.uid,
            self.gid,
            self.uid_map,
            self.interfaces.join(","),
            self.processes,
            self.ipc_queues.join(","),
            self.cgroup,
        )
    }

    /// Parses [`View::to_lines`] output; missing or malformed facts become empty/zero.
    pub fn from_lines(text: &str) -> View {
        let get = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
                .unwrap_or_default()
                .to_string()
        };
        let list = |key: &str| {
            get(key)
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        View {
            pid: get("pid").parse().unwrap_or(0),
            ppid: get("ppid").parse().unwrap_or(0),
            hostname: get("hostname"),
            uid: get("uid").parse().unwrap_or(0),
            gid: get("gid").parse().unwrap_or(0),
            uid_map: get("uid_map"),
            interfaces: list("interfaces"),
            processes: get("processes").parse().unwrap_or(0),
            ipc_queues: list("ipc_queues"),
            cgroup: get("cgroup"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_lines() {
        let view = capture();
        assert_eq!(view.pid, std::process::id() as i32);
        assert!(view.interfaces.contains(&"lo".to_string()));
        assert_eq!(View::from_lines(&view.to_lines()), view);
    }
}
