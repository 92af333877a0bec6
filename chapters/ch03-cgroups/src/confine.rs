//! Chapter 2's isolated child, started inside a cgroup.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ch01_process::exec::Program;
use ch02_namespaces::{Exit, Isolation};

use crate::{Cgroup, CgroupError, Usage};

// ANCHOR: confine
/// Adds one step to chapter 2's set-up: once the child's namespaces exist, and before it forks
/// init, the runtime writes the child's pid into the cgroup. Everything it forks from then on —
/// init, the command, the command's children — is born inside.
///
/// (It must happen before the cgroup namespace is made, so that the container's `/` in
/// `/proc/self/cgroup` is its own cgroup: chapter 2 unshares CGROUP after this hook for that
/// reason.)
pub fn confine(isolation: Isolation, cgroup: Arc<Cgroup>) -> Isolation {
    let observer = isolation.observer();
    isolation.parent_hook(Arc::new(move |pid| {
        let written = cgroup
            .add_process(pid)
            .map_err(|e| format!("putting the child into cgroup {}: {e}", cgroup.path()))?;
        if let Some(observer) = &observer {
            for w in written {
                observer(&format!(
                    "runtime: wrote {} = {} (the child joins the cgroup)",
                    w.file.display(),
                    w.value
                ));
            }
        }
        Ok(())
    }))
}
// ANCHOR_END: confine

/// How a confined run ended.
#[derive(Debug, Clone)]
pub struct Confined {
    pub exit: Exit,
    /// Usage read after the command ended, before the cgroup was removed (peak, OOM kills and
    /// CPU time survive the processes).
    pub usage: Usage,
    pub wall_time: Duration,
}

/// Runs `program` isolated and confined to `cgroup`, waits for it, reads the usage and removes
/// the cgroup.
pub fn run_confined(
    isolation: Isolation,
    cgroup: Cgroup,
    program: &Program,
) -> Result<Confined, CgroupError> {
    let cgroup = Arc::new(cgroup);
    let started = Instant::now();
    let child = confine(isolation, Arc::clone(&cgroup)).spawn(program)?;
    let exit = child.wait()?;
    let wall_time = started.elapsed();
    let usage = cgroup.usage()?;
    // The hook's copy is gone with the isolation: this is the last handle, and dropping it
    // removes the cgroup; say so if that fails.
    match Arc::try_unwrap(cgroup) {
        Ok(cgroup) => cgroup.remove()?,
        Err(shared) => drop(shared),
    }
    Ok(Confined {
        exit,
        usage,
        wall_time,
    })
}
