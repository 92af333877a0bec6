//! Chapter 2's lab result: a command left running in its own namespaces
//! (`sudo cargo run -p ch02-namespaces -- --hostname lab -- sleep 600`).

use crate::{find, namespaces, procfs, Check};

/// What the lab asked for.
#[derive(Debug, Clone)]
pub struct Expect {
    /// The container's init (PID 1 inside); `None`: the newest `ch02-namespaces` init.
    pub pid: Option<i32>,
    /// The hostname the lab set with `--hostname`.
    pub hostname: String,
}

/// The programs whose inits count as chapter 2 containers (chapter 3 runs chapter 2's init too).
pub const PROGRAMS: &[&str] = &["ch02-namespaces"];

const START: &str = "start it in another terminal: sudo cargo run -p ch02-namespaces -- --hostname lab -- sleep 600";

/// Runs every check; always returns the same number of checks.
pub fn check(expect: &Expect) -> Vec<Check> {
    let names = [
        "container",
        "PID namespace",
        "MNT namespace",
        "UTS namespace",
        "NET namespace",
        "hostname",
        "host PIDs hidden",
    ];
    let init = match find::init_or_checks(expect.pid, PROGRAMS, &names, "ch02-namespaces", START) {
        Ok(init) => init,
        Err(checks) => return checks,
    };
    let mut checks = vec![Check::ok(names[0], find::describe(&init))];
    checks.extend(namespaces::all_own(
        init.pid,
        &["pid", "mnt", "uts", "net"],
        "run it as root without --ns (the defaults include pid, mnt, uts, ipc, net, cgroup)",
    ));
    checks.push(match procfs::hostname_of(init.pid) {
        Ok(name) => Check::expect(
            names[5],
            name == expect.hostname,
            format!("'{}'", expect.hostname),
            format!("'{name}'"),
            format!("start it with --hostname {}", expect.hostname),
        ),
        Err(e) => Check::not_checked(names[5], e),
    });
    checks.push(namespaces::host_pids_hidden(init.pid));
    checks
}
