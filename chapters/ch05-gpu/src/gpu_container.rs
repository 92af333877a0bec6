//! Putting it together: a container that sees exactly its GPUs — their nodes in its `/dev`, the
//! driver's files bound in, and a devices cgroup that refuses every other device.

use std::path::PathBuf;

use ch03_cgroups::{Cgroup, CgroupError};

use crate::devices::{apply, standard_rules, Access, Applied, DeviceRule};
use crate::expose::GpuPlan;

// ANCHOR: rules_for_plan
/// The devices cgroup's rules for a plan: the standard set every container gets, plus read,
/// write and mknod for exactly the plan's device numbers. Everything else is denied: the seed's
/// `c 195:* rwm`, narrowed to the GPUs actually given.
pub fn rules_for_plan(plan: &GpuPlan) -> Vec<DeviceRule> {
    let mut rules = standard_rules();
    rules.extend(
        plan.allow
            .iter()
            .map(|&(major, minor)| DeviceRule::allow_char(Some(major), Some(minor), Access::ALL)),
    );
    rules
}
// ANCHOR_END: rules_for_plan

/// Applies `rules` to a new cgroup (chapter 3's `run_limited_with` step), keeping what was done
/// for the caller to show.
pub fn apply_rules(cgroup: &Cgroup, rules: &[DeviceRule]) -> Result<Applied, CgroupError> {
    apply(cgroup, rules).map_err(|e| CgroupError::Step {
        what: format!("devices cgroup for {}", cgroup.path()),
        source: Box::new(e),
    })
}

/// A per-run directory for the files a plan generates (`/run/boxlab/gpu-<pid>-<n>`), removed on
/// drop with its empty parent.
#[derive(Debug)]
pub struct StateDir(PathBuf);

impl StateDir {
    pub fn create() -> std::io::Result<Self> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = PathBuf::from(format!(
            "/run/boxlab/gpu-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(StateDir(dir))
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        if let Some(parent) = self.0.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}
