//! What the devices-cgroup tests share: a fresh cgroup, the standard rules minus /dev/zero, and
//! a container run inside a cgroup.

#![allow(dead_code)] // each test file uses its own subset

use std::fs::File;
use std::io::Read;
use std::sync::Arc;

use ch01_process::exec::Program;
use ch02_namespaces::{Exit, Isolation, Namespace};
use ch03_cgroups::{confine, detect, Cgroup, CgroupPath, Limits};
use ch05_gpu::devices::{standard_rules, DeviceRule};
use nix::unistd::pipe;

/// A new cgroup on this host's layout.
pub fn new_cgroup(label: &str) -> Cgroup {
    Cgroup::create(
        &detect().unwrap(),
        &CgroupPath::unique(label),
        &Limits::default(),
    )
    .unwrap()
    .0
}

/// The standard devices without /dev/zero (c 1:5).
pub fn rules_without_zero() -> Vec<DeviceRule> {
    standard_rules()
        .into_iter()
        .filter(|r| (r.major, r.minor) != (Some(1), Some(5)))
        .collect()
}

/// Runs `sh -c script` in a container (mount + PID namespaces) inside `cgroup`, returns how it
/// ended and its output, and removes the cgroup.
pub fn run_in(cgroup: Cgroup, script: &str) -> (Exit, String) {
    let cgroup = Arc::new(cgroup);
    let (reader, writer) = pipe().unwrap();
    let isolation = confine(
        Isolation::new([Namespace::Mount, Namespace::Pid]).stdout(writer),
        Arc::clone(&cgroup),
    );
    let child = isolation
        .spawn(&Program::new(&["sh", "-c", script]).unwrap())
        .unwrap();
    // The isolation holds a copy of the pipe's write end (and of the cgroup).
    drop(isolation);
    let exit = child.wait().unwrap();
    let mut out = String::new();
    File::from(reader).read_to_string(&mut out).unwrap();
    Arc::try_unwrap(cgroup)
        .expect("the last handle")
        .remove()
        .unwrap();
    (exit, out)
}

/// A new cgroup if the host has the mechanism `has` checks for; otherwise None, after one line
/// saying what is missing. CI's hosts are hybrid and have both mechanisms: under CI=true a
/// missing one fails the test instead of hiding it.
pub fn cgroup_having(label: &str, has: fn(&Cgroup) -> bool, missing: &str) -> Option<Cgroup> {
    let cgroup = new_cgroup(label);
    if has(&cgroup) {
        return Some(cgroup);
    }
    assert!(!labkit::in_ci(), "CI=true but this host lacks {missing}");
    eprintln!("skipped: this host lacks {missing}");
    None
}

/// Opens `/dev/null` (allowed by every rule set here) and reads `/dev/zero` (refused by most).
pub const NULL_AND_ZERO: &str =
    "cat /dev/null && echo null-ok; head -c1 /dev/zero 2>&1 || echo zero-denied";

/// Runs [`NULL_AND_ZERO`] in `cgroup` and checks what a devices cgroup refusing `/dev/zero`
/// must give: `/dev/null` opens, `/dev/zero` fails with EPERM.
pub fn assert_null_opens_and_zero_is_refused(cgroup: Cgroup) {
    let (exit, out) = run_in(cgroup, NULL_AND_ZERO);
    assert_eq!(exit, Exit::Code(0), "{out}");
    assert!(out.contains("null-ok"), "{out}");
    assert!(
        out.contains("Operation not permitted") && out.contains("zero-denied"),
        "/dev/zero must be refused with EPERM:\n{out}"
    );
}
