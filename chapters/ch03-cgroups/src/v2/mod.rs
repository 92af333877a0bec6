//! cgroup v2: one tree; a controller works in a cgroup only if every ancestor has passed it down
//! through `cgroup.subtree_control`.

pub mod cpu;
pub mod cpuset;
pub mod memory;
pub mod pids;

use std::path::Path;

use crate::files::{read, write, Written};
use crate::{CgroupError, Limits};

/// The controllers a limit needs: always memory, cpu and pids where available (their usage
/// figures are what students read), cpuset only when asked for.
pub fn controllers_for(limits: &Limits) -> (Vec<&'static str>, Vec<&'static str>) {
    let mut required = Vec::new();
    if limits.memory.is_some() || limits.memory_swap.is_some() {
        required.push("memory");
    }
    if limits.cpu_millis.is_some() || limits.cpu_shares.is_some() {
        required.push("cpu");
    }
    if limits.pids.is_some() {
        required.push("pids");
    }
    let mut wanted = vec!["memory", "cpu", "pids"];
    if limits.cpuset_cpus.is_some() {
        required.push("cpuset");
        wanted.push("cpuset");
    }
    (wanted, required)
}

// ANCHOR: subtree_control
/// Passes the wanted controllers down from `root` through every directory in `levels` (the
/// ancestors of our cgroup, outermost first), writing `+memory +cpu …` into each one's
/// `cgroup.subtree_control`. A required controller the root does not offer is an error.
///
/// These directories must hold no processes: in v2 a cgroup that hands controllers to children
/// may not have processes of its own (the "no internal processes" rule); that is why a container
/// always lives in a leaf, never in `boxlab/` itself.
pub fn enable_controllers(
    root: &Path,
    levels: &[&Path],
    wanted: &[&'static str],
    required: &[&'static str],
) -> Result<Vec<Written>, CgroupError> {
    let offered = read(root, "cgroup.controllers")?;
    let offered: Vec<&str> = offered.split_whitespace().collect();
    if let Some(missing) = required.iter().find(|c| !offered.contains(c)) {
        return Err(CgroupError::ControllerMissing {
            controller: missing,
            where_: root.join("cgroup.controllers"),
            hint: format!(
                "the root offers only '{}'; on a hybrid host the controller is bound to its v1 hierarchy",
                offered.join(" ")
            ),
        });
    }
    let mut written = Vec::new();
    for dir in levels {
        // The kernel creates this file in every cgroup; a missing one reads as "nothing enabled"
        // (which is also what lets the tests run this on a plain directory tree).
        let enabled = if dir.join("cgroup.subtree_control").exists() {
            read(dir, "cgroup.subtree_control")?
        } else {
            String::new()
        };
        let enabled: Vec<&str> = enabled
            .split_whitespace()
            .map(|c| c.trim_start_matches('+'))
            .collect();
        let to_enable: Vec<String> = wanted
            .iter()
            .filter(|c| offered.contains(c) && !enabled.contains(c))
            .map(|c| format!("+{c}"))
            .collect();
        if !to_enable.is_empty() {
            written.push(write(dir, "cgroup.subtree_control", to_enable.join(" "))?);
        }
    }
    Ok(written)
}
// ANCHOR_END: subtree_control
