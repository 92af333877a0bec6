//! Finding the student's container among the host's processes.

use crate::procfs;
use crate::report::Check;

/// A container's first process, as seen from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Init {
    /// Its host pid.
    pub pid: i32,
    /// Its pid in each PID namespace, outermost first (`[host pid, 1]` for a container's init).
    pub nspid: Vec<i32>,
}

/// True when `pid` is PID 1 of a PID namespace below the host's.
pub fn is_inner_init(pid: i32) -> bool {
    matches!(procfs::nspid(pid).as_deref(), Ok([_, .., 1]))
}

/// The container inits on this host whose program is one of `programs` (e.g.
/// `ch02-namespaces`: chapter 2's init is a fork of the runtime, so it runs the same binary),
/// newest (highest pid) last.
pub fn inits_of(programs: &[&str]) -> Vec<Init> {
    procfs::all_pids()
        .into_iter()
        .filter(|&pid| procfs::exe_name(pid).is_some_and(|name| programs.contains(&name.as_str())))
        .filter_map(|pid| {
            let nspid = procfs::nspid(pid).ok()?;
            (nspid.len() >= 2 && nspid.last() == Some(&1)).then_some(Init { pid, nspid })
        })
        .collect()
}

/// The init given by `--pid`, or the newest one of `programs`.
pub fn init(pid: Option<i32>, programs: &[&str]) -> Result<Init, String> {
    match pid {
        Some(pid) => {
            let nspid = procfs::nspid(pid).map_err(|e| e.to_string())?;
            if nspid.len() >= 2 && nspid.last() == Some(&1) {
                Ok(Init { pid, nspid })
            } else {
                Err(format!(
                    "pid {pid} ('{}') with NSpid {nspid:?}, which is not PID 1 of a PID namespace of its own",
                    procfs::command(pid)
                ))
            }
        }
        None => inits_of(programs).pop().ok_or_else(|| {
            format!(
                "no process of {} that is PID 1 in a PID namespace of its own",
                programs.join(" or ")
            )
        }),
    }
}

/// `host pid X (PID 1 inside), running 'CMD' as pid Y (PID 2 inside)`.
pub fn describe(init: &Init) -> String {
    let mut text = format!(
        "init is host pid {} (NSpid {}: PID 1 inside)",
        init.pid,
        init.nspid
            .iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
    if let Some(&child) = procfs::children(init.pid).first() {
        let inner = procfs::nspid(child)
            .ok()
            .and_then(|n| n.last().copied())
            .map(|n| format!(", PID {n} inside"))
            .unwrap_or_default();
        text.push_str(&format!(
            ", running '{}' as host pid {child}{inner}",
            procfs::command(child)
        ));
    }
    text
}

/// The container init of one of `programs` (the one at `pid`, when given), or, when there is
/// none, the whole chapter's checks: `names[0]` failed with what was found and `hint`, the
/// others not checked. `chapter` names the binary in the expectation.
pub fn init_or_checks(
    pid: Option<i32>,
    programs: &[&str],
    names: &[&str],
    chapter: &str,
    hint: impl Into<String>,
) -> Result<Init, Vec<Check>> {
    init(pid, programs).map_err(|found| {
        let mut checks = vec![Check::fail(
            names[0],
            format!(
                "a {chapter} container running (its init: PID 1 in a PID namespace of its own)"
            ),
            found,
            hint,
        )];
        checks.extend(Check::none_of(&names[1..], "no container"));
        checks
    })
}
