//! Running one command isolated and limited, as the chapter binaries from here on do.

use std::sync::Arc;

use ch01_process::exec::Program;
use ch02_namespaces::{Exit, Isolation};

use crate::args::ResolvedLimits;
use crate::quantity::human_bytes;
use crate::{confine, detect, Cgroup, CgroupError, CgroupPath};

/// Creates the cgroup (`path`, or a fresh `boxlab/<tag>-…`), runs `program` in `isolation`
/// inside it, reports the outcome on stderr prefixed with `tag`, removes the cgroup, and returns
/// how the command ended.
pub fn run_limited(
    isolation: Isolation,
    resolved: &ResolvedLimits,
    path: Option<&str>,
    program: &Program,
    tag: &str,
) -> Result<Exit, CgroupError> {
    run_limited_with(isolation, resolved, path, program, tag, |_| Ok(()))
}

/// [`run_limited`], with one more step on the new cgroup before anything joins it (chapter 5
/// writes its device rules there).
pub fn run_limited_with(
    isolation: Isolation,
    resolved: &ResolvedLimits,
    path: Option<&str>,
    program: &Program,
    tag: &str,
    setup: impl FnOnce(&Cgroup) -> Result<(), CgroupError>,
) -> Result<Exit, CgroupError> {
    let layout = detect()?;
    let path = match path {
        Some(path) => CgroupPath::new(path)?,
        None => CgroupPath::unique(tag),
    };
    let (cgroup, written) = Cgroup::create(&layout, &path, &resolved.limits)?;
    if let Some(observer) = isolation.observer() {
        for w in &written {
            observer(&format!(
                "runtime: wrote {} = {}",
                w.file.display(),
                w.value
            ));
        }
    }
    setup(&cgroup)?;
    let cgroup = Arc::new(cgroup);
    let mut isolation = confine(isolation, Arc::clone(&cgroup));
    if let Some(adj) = resolved.translation.as_ref().map(|t| t.oom_score_adj) {
        let tag = tag.to_string();
        // As the kubelet does: the waiter's score is inherited by init and the command.
        isolation = isolation.parent_hook(Arc::new(move |pid| {
            if let Err(e) = std::fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string()) {
                // Lowering the score needs CAP_SYS_RESOURCE, which some sandboxes take away even
                // from root. The limits still hold; only the OOM killer's preference is lost.
                eprintln!(
                    "{tag}: warning: could not write /proc/{pid}/oom_score_adj = {adj} ({e}; lowering it needs CAP_SYS_RESOURCE)"
                );
            }
            Ok(())
        }));
    }
    let child = isolation.spawn(program)?;
    ch02_namespaces::init::forward_signals_to(child.pid());
    let exit = child.wait()?;
    let usage = cgroup.usage()?;
    eprintln!(
        "{tag}: '{}' {exit}; cgroup {}: {usage}",
        program.display(),
        cgroup.path()
    );
    if usage.oom_kills.unwrap_or(0) > 0 {
        let limit = resolved.limits.memory.map(human_bytes).unwrap_or_default();
        eprintln!("{tag}: the kernel's OOM killer stopped it at the memory limit ({limit})");
    }
    drop(isolation);
    if let Ok(cgroup) = Arc::try_unwrap(cgroup) {
        cgroup.remove()?;
    }
    Ok(exit)
}
