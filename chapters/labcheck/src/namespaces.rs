//! Checks shared by chapters 2, 4 and 6: "these namespaces are the container's own".

use crate::{procfs, Check};

/// The host's reference for namespaces: PID 1, the host's init.
pub const HOST_PID: i32 = 1;

/// Whose namespaces stand for the host's: PID 1's where they can be read; otherwise (in a
/// sandbox whose PID 1 belongs to an outer user namespace, where even root gets EACCES) the
/// checker's own, as it runs on the host. Returns (pid, description).
pub fn host_reference() -> (i32, &'static str) {
    if procfs::namespace(HOST_PID, "pid").is_ok() {
        (HOST_PID, "the host's (PID 1's)")
    } else {
        (
            std::process::id() as i32,
            "the host's (this checker's; PID 1's are not readable here)",
        )
    }
}

/// Human name of a namespace kind.
fn title(kind: &str) -> String {
    let upper = kind.to_ascii_uppercase();
    format!("{upper} namespace")
}

/// One check: the namespace `kind` of `pid` differs from the host's (PID 1's).
pub fn own(pid: i32, kind: &str, hint: &str) -> Check {
    let name = title(kind);
    let (reference, whose) = host_reference();
    let host = match procfs::namespace(reference, kind) {
        Ok(ns) => ns,
        Err(e) => return Check::not_checked(name, e),
    };
    match procfs::namespace(pid, kind) {
        Ok(ns) if ns != host => Check::ok(name, format!("{ns}, not {whose} {host}")),
        Ok(ns) => Check::fail(
            name,
            format!("a namespace other than {whose} {host}"),
            format!("{ns}: shared with the host"),
            hint,
        ),
        Err(e) => Check::not_checked(name, e),
    }
}

/// Each of `kinds` through [`own`].
pub fn all_own(pid: i32, kinds: &[&str], hint: &str) -> Vec<Check> {
    kinds.iter().map(|kind| own(pid, kind, hint)).collect()
}

/// The check that the container's `/proc` lists only its own processes.
pub fn host_pids_hidden(pid: i32) -> Check {
    let name = "host PIDs hidden";
    let ns = match procfs::namespace(pid, "pid") {
        Ok(ns) => ns,
        Err(e) => return Check::not_checked(name, e),
    };
    let seen = match procfs::pids_seen_by(pid) {
        Ok(seen) => seen,
        Err(e) => {
            return Check::fail(
                name,
                "a /proc of its own inside the container",
                e,
                "mount a fresh proc at /proc inside the container (MNT and PID namespaces)",
            )
        }
    };
    let own = procfs::inner_pids(&ns);
    let host = procfs::all_pids().len();
    let list = |set: &std::collections::BTreeSet<i32>| {
        let mut items: Vec<String> = set.iter().take(8).map(i32::to_string).collect();
        if set.len() > 8 {
            items.push("…".into());
        }
        items.join(" ")
    };
    if seen == own && seen.len() < host {
        Check::ok(
            name,
            format!(
                "its /proc lists {} process(es) ({}), exactly those of its PID namespace; the host has {host}",
                seen.len(),
                list(&seen)
            ),
        )
    } else {
        Check::fail(
            name,
            format!("its /proc to list only its own processes ({})", list(&own)),
            format!("{} processes ({})", seen.len(), list(&seen)),
            "the container needs a PID namespace and a fresh proc mounted at /proc in its MNT namespace",
        )
    }
}
