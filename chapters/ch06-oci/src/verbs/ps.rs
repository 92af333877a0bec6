//! `ps <id> [--format json]`: the processes in the container's cgroup.

use std::fs;

use ch03_cgroups::{detect, Cgroup, CgroupPath};
use nix::unistd::Pid;

use crate::state::{Container, Store};
use crate::OciError;

/// The host pids of every process in the container's cgroup (none once it is gone) — except,
/// in a foreground `run`, chapter 2's waiter, which sits in the cgroup but outside the
/// container's PID namespace: it is the runtime's, waiting to pass on init's exit status.
pub fn container_pids(container: &Container) -> Result<Vec<Pid>, OciError> {
    let layout = detect()?;
    let path = CgroupPath::new(&container.record.cgroup)?;
    let Ok(cgroup) = Cgroup::observe(&layout, &path) else {
        return Ok(Vec::new());
    };
    let mut pids = cgroup.processes();
    pids.retain(|p| p.as_raw() != container.record.waiter);
    Ok(pids)
}

/// `ps` output: a JSON list of pids (`--format json`, what containerd reads), or a table.
pub fn ps(store: &Store, id: &str, json: bool) -> Result<String, OciError> {
    let container = store.load(id)?;
    let pids = container_pids(&container)?;
    if json {
        let list: Vec<i32> = pids.iter().map(|p| p.as_raw()).collect();
        return Ok(serde_json::Value::from(list).to_string());
    }
    let mut out = format!("{:>8}  CMD\n", "PID");
    for pid in pids {
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        out.push_str(&format!("{:>8}  {}\n", pid, cmd.trim_end()));
    }
    Ok(out)
}
