//! The security steps, each run for real in a chapter 2 isolated command (root needed): the
//! command reports what it sees from inside (`/proc/self/status`, `ulimit`, `id`, a refused
//! `mkdir`, a masked file), without the rest of the runtime.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;

use ch01_process::exec::Program;
use ch02_namespaces::{ChildHook, Exit, Isolation, Namespace};
use ch06_oci::security::{close_extra_fds_and_check_cwd, security_steps, SecuritySteps};
use labkit::{require_root, ScratchDir};
use nix::sys::signal::Signal;
use nix::unistd::pipe;
use oci_spec::runtime::Spec;

/// A spec from a `process` object and a `linux` object (JSON).
fn spec(process: &str, linux: &str) -> Spec {
    let json = format!(
        r#"{{"ociVersion": "1.0.2", "root": {{"path": "rootfs"}},
            "process": {process}, "linux": {linux}}}"#
    );
    serde_json::from_str(&json).expect("a valid spec")
}

/// A process running as root in `/` with `extra` fields.
fn process(extra: &str) -> String {
    let sep = if extra.is_empty() { "" } else { "," };
    format!(r#"{{"user": {{"uid": 0, "gid": 0}}, "cwd": "/", "args": ["sh"]{sep} {extra}}}"#)
}

/// Runs `args` in new PID and mount (plus `more`) namespaces with the spec's steps; returns
/// how it ended and what it wrote to stdout and stderr.
fn run(steps: SecuritySteps, more: &[Namespace], args: &[&str]) -> (Exit, String) {
    let (reader, writer) = pipe().unwrap();
    let err_writer = writer.try_clone().unwrap();
    let mut isolation = Isolation::new([Namespace::Mount, Namespace::Pid]);
    for &ns in more {
        isolation = isolation.with_namespace(ns);
    }
    for step in steps.rootfs_steps {
        isolation = isolation.child_hook(step);
    }
    for step in steps.pre_exec {
        isolation = isolation.pre_exec(step);
    }
    let child = isolation
        .stdout(writer)
        .stderr(err_writer)
        .spawn(&Program::new(args).unwrap())
        .unwrap();
    let mut out = String::new();
    File::from(reader).read_to_string(&mut out).unwrap();
    (child.wait().unwrap(), out)
}

fn sh(steps: SecuritySteps, script: &str) -> (Exit, String) {
    run(steps, &[], &["sh", "-c", script])
}

fn cap_lines(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.starts_with("Cap"))
        .map(|l| l.replace('\t', " "))
        .collect()
}

const ONLY_NET_BIND_SERVICE: &str = r#""capabilities": {
    "bounding": ["CAP_NET_BIND_SERVICE"], "effective": ["CAP_NET_BIND_SERVICE"],
    "permitted": ["CAP_NET_BIND_SERVICE"], "inheritable": ["CAP_NET_BIND_SERVICE"],
    "ambient": ["CAP_NET_BIND_SERVICE"]}"#;

const ALL_0400: [&str; 5] = [
    "CapInh: 0000000000000400",
    "CapPrm: 0000000000000400",
    "CapEff: 0000000000000400",
    "CapBnd: 0000000000000400",
    "CapAmb: 0000000000000400",
];

#[test]
fn capabilities_all_but_net_bind_service_are_dropped() {
    if !require_root("capabilities_all_but_net_bind_service_are_dropped") {
        return;
    }
    let steps = security_steps(&spec(&process(ONLY_NET_BIND_SERVICE), "{}")).unwrap();
    let (status, out) = sh(steps, "grep Cap /proc/self/status");
    assert_eq!(status, Exit::Code(0), "{out}");
    assert_eq!(cap_lines(&out), ALL_0400, "{out}");
}

#[test]
fn capabilities_survive_the_switch_to_an_unprivileged_user() {
    if !require_root("capabilities_survive_the_switch_to_an_unprivileged_user") {
        return;
    }
    // Not root: without PR_SET_KEEPCAPS the uid change would empty every set, and only the
    // ambient set carries a capability through exec into a program without file capabilities.
    let process = format!(
        r#"{{"user": {{"uid": 65534, "gid": 65534}}, "cwd": "/", "args": ["sh"], {ONLY_NET_BIND_SERVICE}}}"#
    );
    let steps = security_steps(&spec(&process, "{}")).unwrap();
    let (status, out) = sh(steps, "id -u; grep Cap /proc/self/status");
    assert_eq!(status, Exit::Code(0), "{out}");
    assert_eq!(out.lines().next(), Some("65534"), "{out}");
    assert_eq!(cap_lines(&out), ALL_0400, "{out}");
}

#[test]
fn no_new_privileges_is_set() {
    if !require_root("no_new_privileges_is_set") {
        return;
    }
    let steps = security_steps(&spec(&process(r#""noNewPrivileges": true"#), "{}")).unwrap();
    let (status, out) = sh(steps, "grep NoNewPrivs /proc/self/status");
    assert_eq!(status, Exit::Code(0), "{out}");
    assert_eq!(out.trim().replace('\t', " "), "NoNewPrivs: 1");
    // And without it, it is not.
    let steps = security_steps(&spec(&process(""), "{}")).unwrap();
    let (_, out) = sh(steps, "grep NoNewPrivs /proc/self/status");
    assert_eq!(out.trim().replace('\t', " "), "NoNewPrivs: 0");
}

#[test]
fn rlimit_nofile_is_applied() {
    if !require_root("rlimit_nofile_is_applied") {
        return;
    }
    let steps = security_steps(&spec(
        &process(r#""rlimits": [{"type": "RLIMIT_NOFILE", "soft": 64, "hard": 128}]"#),
        "{}",
    ))
    .unwrap();
    let (status, out) = sh(steps, "ulimit -n; ulimit -Hn");
    assert_eq!(status, Exit::Code(0), "{out}");
    assert_eq!(out.lines().collect::<Vec<_>>(), ["64", "128"]);
}

#[test]
fn umask_and_user_with_additional_groups() {
    if !require_root("umask_and_user_with_additional_groups") {
        return;
    }
    let process = r#"{"user": {"uid": 65534, "gid": 65534, "additionalGids": [1000], "umask": 23},
                      "cwd": "/", "args": ["sh"]}"#;
    let steps = security_steps(&spec(process, "{}")).unwrap();
    let (status, out) = sh(steps, "id -u; id -g; id -G; umask");
    assert_eq!(status, Exit::Code(0), "{out}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["65534", "65534", "65534 1000", "0027"],
        "{out}"
    );
}

#[test]
fn seccomp_errno_rule_refuses_mkdir_and_allows_the_rest() {
    if !require_root("seccomp_errno_rule_refuses_mkdir_and_allows_the_rest") {
        return;
    }
    let scratch = ScratchDir::new("seccomp-mkdir").unwrap();
    let linux = r#"{"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}}"#;
    let steps = security_steps(&spec(&process(""), linux)).unwrap();
    let target = scratch.join("x");
    let script = format!(
        "ls / > /dev/null && echo ls works; mkdir {0} 2>&1; echo mkdir: $?",
        target.display()
    );
    let (status, out) = sh(steps, &script);
    assert_eq!(status, Exit::Code(0), "{out}");
    assert!(out.contains("ls works"), "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.contains("mkdir: 1"), "{out}");
    assert!(!target.exists());
}

#[test]
fn seccomp_argument_filters() {
    if !require_root("seccomp_argument_filters") {
        return;
    }
    // mkdir with no permission for group and others ((mode & 077) == 0) → EACCES;
    // personality(PER_LINUX32) → EPERM, personality(PER_LINUX) allowed.
    let scratch = ScratchDir::new("seccomp-args").unwrap();
    let linux = r#"{"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
         "args": [{"index": 1, "value": 63, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]}}"#;
    let steps = security_steps(&spec(&process(""), linux)).unwrap();
    let script = format!(
        "cd {}; mkdir -m 700 private 2>&1; echo private: $?; mkdir shared; echo shared: $?;
         setarch x86_64 true; echo x86_64: $?; setarch linux32 true 2>&1; echo linux32: $?",
        scratch.path().display()
    );
    let (status, out) = sh(steps, &script);
    assert_eq!(status, Exit::Code(0), "{out}");
    assert!(out.contains("Permission denied"), "{out}");
    assert!(out.contains("private: 1"), "{out}");
    assert!(out.contains("shared: 0"), "{out}");
    assert!(out.contains("x86_64: 0"), "{out}");
    assert!(out.contains("linux32: 1"), "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(scratch.join("shared").is_dir() && !scratch.join("private").exists());
}

#[test]
fn seccomp_kill_ends_the_command_with_sigsys() {
    if !require_root("seccomp_kill_ends_the_command_with_sigsys") {
        return;
    }
    for action in ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP"] {
        let linux = format!(
            r#"{{"seccomp": {{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {{"names": ["uname"], "action": "{action}"}}]}}}}"#
        );
        // With no_new_privileges, so the filter goes in last (the other path is tested below).
        let steps = security_steps(&spec(&process(r#""noNewPrivileges": true"#), &linux)).unwrap();
        let (status, out) = run(steps, &[], &["uname"]);
        assert_eq!(status, Exit::Signal(Signal::SIGSYS), "{action}: {out}");
        assert!(out.is_empty(), "{action}: {out}");
    }
}

#[test]
fn seccomp_without_nnp_or_cap_sys_admin_is_installed_before_the_drop() {
    if !require_root("seccomp_without_nnp_or_cap_sys_admin_is_installed_before_the_drop") {
        return;
    }
    // An unprivileged user, no capabilities, no no_new_privileges: after the uid change the
    // process could no longer install a filter, so it goes in first (as in runc).
    let process = r#"{"user": {"uid": 65534, "gid": 65534}, "cwd": "/", "args": ["sh"],
                      "capabilities": {}}"#;
    let linux = r#"{"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}}"#;
    let steps = security_steps(&spec(process, linux)).unwrap();
    let (status, out) = sh(
        steps,
        "id -u; grep -E 'NoNewPrivs|CapEff|Seccomp:' /proc/self/status; mkdir /tmp/boxlab-never 2>&1",
    );
    assert_eq!(status, Exit::Code(1), "{out}");
    let out = out.replace('\t', " ");
    assert!(out.starts_with("65534\n"), "{out}");
    assert!(out.contains("NoNewPrivs: 0"), "{out}");
    assert!(out.contains("CapEff: 0000000000000000"), "{out}");
    assert!(out.contains("Seccomp: 2"), "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
}

#[test]
fn masked_and_readonly_paths() {
    if !require_root("masked_and_readonly_paths") {
        return;
    }
    // /proc/kcore does not exist on every kernel (not on this CI's): missing paths are skipped.
    let linux = r#"{"namespaces": [{"type": "ipc"}, {"type": "pid"}, {"type": "mount"}],
        "maskedPaths": ["/proc/kcore", "/proc/kallsyms", "/proc/irq", "/proc/boxlab-missing"],
        "readonlyPaths": ["/proc/sys", "/proc/boxlab-missing"]}"#;
    let steps = security_steps(&spec(&process(""), linux)).unwrap();
    // The IPC namespace makes the write attempt harmless even if read-only failed.
    let script = "wc -c < /proc/kallsyms; ls -A /proc/irq | wc -l; \
                  cat /proc/sys/kernel/shmmni > /proc/sys/kernel/shmmni 2>&1 || echo write refused";
    let (status, out) = run(steps, &[Namespace::Ipc], &["sh", "-c", script]);
    assert_eq!(status, Exit::Code(0), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].trim(), "0", "kallsyms masked: {out}");
    assert_eq!(
        lines[1].trim(),
        "0",
        "/proc/irq masked with an empty tmpfs: {out}"
    );
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(out.contains("write refused"), "{out}");
    // The host's /proc is untouched.
    assert!(std::fs::metadata("/proc/kallsyms").is_ok());
    assert!(std::fs::read_dir("/proc/irq").unwrap().count() > 0);
}

#[test]
fn sysctl_in_a_new_ipc_namespace() {
    if !require_root("sysctl_in_a_new_ipc_namespace") {
        return;
    }
    let host_before = std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap();
    let linux = r#"{"namespaces": [{"type": "ipc"}, {"type": "pid"}, {"type": "mount"}],
                    "sysctl": {"kernel.shmmax": "123456789"}}"#;
    let steps = security_steps(&spec(&process(""), linux)).unwrap();
    let (status, out) = run(
        steps,
        &[Namespace::Ipc],
        &["cat", "/proc/sys/kernel/shmmax"],
    );
    assert_eq!(status, Exit::Code(0), "{out}");
    assert_eq!(out.trim(), "123456789");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap(),
        host_before,
        "the host's value is unchanged"
    );
}

#[test]
fn a_global_sysctl_is_refused_before_anything_runs() {
    // No root needed: this is validation.
    let linux = r#"{"namespaces": [{"type": "ipc"}, {"type": "network"}],
                    "sysctl": {"vm.swappiness": "10"}}"#;
    let err = security_steps(&spec(&process(""), linux))
        .unwrap_err()
        .to_string();
    assert!(err.contains("vm.swappiness"), "{err}");
    assert!(err.contains("not namespaced"), "{err}");
}

/// A step that leaks a descriptor the way a careless runtime does: no close-on-exec.
fn leak_a_descriptor() -> ChildHook {
    Arc::new(|| {
        // SAFETY: opening a path; the descriptor is deliberately left open (the leak).
        let fd = unsafe { libc::open(c"/".as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
        if fd < 0 {
            return Err("open / for the leak".into());
        }
        Ok(())
    })
}

#[test]
fn descriptors_above_two_do_not_survive_exec() {
    if !require_root("descriptors_above_two_do_not_survive_exec") {
        return;
    }
    let fds = |with_step: bool| {
        let mut steps = SecuritySteps::default();
        steps.pre_exec.push(leak_a_descriptor());
        if with_step {
            steps.pre_exec.push(close_extra_fds_and_check_cwd(0, None));
        }
        let (status, out) = run(steps, &[], &["ls", "/proc/self/fd"]);
        assert_eq!(status, Exit::Code(0), "{out}");
        out.split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    // Without the step, the leaked one (and chapter 2's copy of the stdout pipe) are there.
    assert!(fds(false).len() > 4, "{:?}", fds(false));
    // With it: 0, 1, 2 and the directory ls itself opened to list them.
    assert_eq!(fds(true), ["0", "1", "2", "3"]);
}

#[test]
fn a_working_directory_outside_the_root_is_refused() {
    if !require_root("a_working_directory_outside_the_root_is_refused") {
        return;
    }
    let scratch = ScratchDir::new("cve-2024-21626").unwrap();
    let rootfs = match labkit::busybox_rootfs(&scratch.join("rootfs")) {
        Ok(root) => root,
        Err(e) => panic!("the busybox root filesystem: {e}"),
    };
    // The runtime's mistake: a descriptor of the host's / open (as fd 100) when it switches
    // into the container's root.
    let leak: ChildHook = Arc::new(|| {
        let host_root = File::open("/").map_err(|e| e.to_string())?;
        // SAFETY: dup2 onto a free descriptor number; the copy is deliberately not CLOEXEC.
        if unsafe { libc::dup2(host_root.as_raw_fd(), 100) } < 0 {
            return Err("dup2".into());
        }
        Ok(())
    });
    let run_in = |cwd: &str| {
        let root = ch04_rootfs::pivot::RootfsSpec {
            path: rootfs.clone(),
            ..Default::default()
        };
        let (reader, writer) = pipe().unwrap();
        let result = Isolation::new([Namespace::Mount, Namespace::Pid])
            .child_hook(leak.clone())
            .child_hook(Arc::new(move || ch04_rootfs::pivot::enter_rootfs(&root)))
            .pre_exec(close_extra_fds_and_check_cwd(0, Some(PathBuf::from(cwd))))
            .stdout(writer)
            .spawn(&Program::new(&["pwd"]).unwrap());
        let mut out = String::new();
        match result {
            Ok(child) => {
                File::from(reader).read_to_string(&mut out).unwrap();
                child.wait().unwrap();
                Ok(out)
            }
            Err(e) => Err(e.to_string()),
        }
    };
    assert_eq!(run_in("/bin").unwrap().trim(), "/bin");
    let err = run_in("/proc/self/fd/100").unwrap_err();
    assert!(err.contains("outside the container's root"), "{err}");
    assert!(err.contains("/proc/self/fd/100"), "{err}");
}
