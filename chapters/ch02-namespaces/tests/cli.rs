//! The `ch02-namespaces` binary, observed from outside: what a student types and sees.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

use labkit::{require_root, ScratchDir};

const BIN: &str = env!("CARGO_BIN_EXE_ch02-namespaces");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("the test binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn pid_namespace_starts_at_one_and_hides_host_processes() {
    if !require_root("pid_namespace_starts_at_one_and_hides_host_processes") {
        return;
    }
    let out = run(&[
        "--ns",
        "pid,mnt",
        "--",
        "sh",
        "-c",
        "echo $$; cat /proc/1/comm; ls /proc | grep -c '^[0-9]'",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(lines[0], "2", "the command is PID 2, right after our init");
    assert_eq!(lines[1], "ch02-namespaces", "PID 1 is our init");
    let visible: usize = lines[2].parse().unwrap();
    assert!(
        visible <= 4,
        "only init, sh and ls are visible, not the host's processes: {visible}"
    );
    let host_visible = fs::read_dir("/proc")
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .parse::<u32>()
                .is_ok()
        })
        .count();
    assert!(host_visible > visible, "host sees {host_visible} processes");
}

#[test]
fn hostname_changes_only_inside() {
    if !require_root("hostname_changes_only_inside") {
        return;
    }
    let before = nix::unistd::gethostname().unwrap();
    let out = run(&["--ns", "uts", "--hostname", "boxlab-lab", "--", "hostname"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "boxlab-lab");
    assert_eq!(
        nix::unistd::gethostname().unwrap(),
        before,
        "the host's hostname is untouched"
    );
}

#[test]
fn ipc_objects_of_the_host_are_invisible_inside() {
    if !require_root("ipc_objects_of_the_host_are_invisible_inside") {
        return;
    }
    let key: libc::key_t = 0x6278_7401 + std::process::id() as i32 % 1000;
    // SAFETY: msgget takes plain integers.
    let id = unsafe { libc::msgget(key, libc::IPC_CREAT | 0o600) };
    assert!(id >= 0);
    let lists_key = |out: &Output| {
        stdout(out)
            .lines()
            .any(|l| l.split_whitespace().next() == Some(&key.to_string()))
    };
    let with_ipc = run(&["--ns", "ipc", "--", "cat", "/proc/sysvipc/msg"]);
    let without_ipc = run(&["--ns", "uts", "--", "cat", "/proc/sysvipc/msg"]);
    // SAFETY: removing the queue we made.
    unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
    assert!(with_ipc.status.success(), "{}", stderr(&with_ipc));
    assert!(
        !lists_key(&with_ipc),
        "queue visible in a new IPC namespace:\n{}",
        stdout(&with_ipc)
    );
    assert!(
        lists_key(&without_ipc),
        "control: without --ns ipc the queue is visible:\n{}",
        stdout(&without_ipc)
    );
}

#[test]
fn net_namespace_has_only_loopback_and_it_is_up() {
    if !require_root("net_namespace_has_only_loopback_and_it_is_up") {
        return;
    }
    let out = run(&["--ns", "net", "--", "ip", "-o", "link", "show"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let links = stdout(&out);
    assert_eq!(links.lines().count(), 1, "only lo:\n{links}");
    assert!(
        links.contains(": lo:") && links.contains("UP"),
        "lo is up:\n{links}"
    );
}

#[test]
fn veth_gives_the_container_its_own_address_and_route() {
    if !require_root("veth_gives_the_container_its_own_address_and_route") {
        return;
    }
    let out = run(&[
        "--ns",
        "net",
        "--net",
        "veth",
        "--",
        "sh",
        "-c",
        "ip -o -4 addr show eth0; ip route",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("inet 10.241."),
        "eth0 has an address from 10.241.0.0/16:\n{text}"
    );
    assert!(
        text.contains("default via 10.241."),
        "a default route to the host end:\n{text}"
    );
}

#[test]
fn user_namespace_rootless_maps_the_caller_to_root() {
    if !require_root("user_namespace_rootless_maps_the_caller_to_root") {
        return;
    }
    // Run the binary as nobody, from a copy anyone may execute.
    let scratch = ScratchDir::new("rootless").unwrap();
    let copy = scratch.join("ch02-namespaces");
    fs::copy(BIN, &copy).unwrap();
    fs::set_permissions(scratch.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(&copy)
        .args([
            "--rootless",
            "--",
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map; hostname",
        ])
        .uid(65534)
        .gid(65534)
        .env_remove("CARGO_TARGET_DIR")
        .current_dir("/")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rootless run failed: {}",
        stderr(&out)
    );
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "0", "root inside");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", "65534", "1"],
        "nobody outside"
    );
}

#[test]
fn exit_status_of_the_command_is_passed_through() {
    if !require_root("exit_status_of_the_command_is_passed_through") {
        return;
    }
    let out = run(&["--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    let out = run(&["--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(
        out.status.code(),
        Some(128 + 15),
        "killed by SIGTERM reads as 143, as in a shell: {}",
        stderr(&out)
    );
}

#[test]
fn unknown_namespace_is_a_clear_error() {
    let out = run(&["--ns", "pid,bogus", "--", "true"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("unknown namespace 'bogus'"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[test]
fn missing_command_is_a_clear_error() {
    if !require_root("missing_command_is_a_clear_error") {
        return;
    }
    let out = run(&["--ns", "pid,mnt", "--", "/nonexistent/boxlab-cmd"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("cannot execute '/nonexistent/boxlab-cmd'") && err.contains("no such file"),
        "{err}"
    );
}

#[test]
fn malformed_uid_map_is_rejected_before_anything_runs() {
    let out = run(&["--ns", "user", "--uid-map", "0:x:1", "--", "true"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("invalid uid map '0:x:1'") && err.contains("OUTSIDE 'x'"),
        "{err}"
    );
}

#[test]
fn uid_map_the_kernel_refuses_is_reported_with_the_file() {
    if !require_root("uid_map_the_kernel_refuses_is_reported_with_the_file") {
        return;
    }
    // Two ranges that overlap inside: the kernel says EINVAL.
    let out = run(&[
        "--ns",
        "user",
        "--uid-map",
        "0:100000:10,5:200000:10",
        "--",
        "true",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("uid_map") && err.contains("kernel refused") && err.contains("EINVAL"),
        "{err}"
    );
}

#[test]
fn publishing_a_port_that_is_taken_fails_cleanly() {
    if !require_root("publishing_a_port_that_is_taken_fails_cleanly") {
        return;
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = run(&["-p", &format!("{port}:80"), "--", "true"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("127.0.0.1:{port} is already in use")),
        "{err}"
    );
}

#[test]
fn options_that_need_a_namespace_say_which() {
    let out = run(&["--ns", "pid", "--hostname", "x", "--", "true"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--hostname needs the uts namespace"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_demo_runs_and_explains_each_namespace() {
    if !require_root("the_demo_runs_and_explains_each_namespace") {
        return;
    }
    let out = Command::new(BIN).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "unshare(CLONE_NEWUSER)",
        "uid_map = '0 100000 65536'",
        "boxlab-demo",
        "hello",
        "(none)",
    ] {
        assert!(
            text.contains(expected),
            "demo output lacks {expected:?}:\n{text}"
        );
    }
}
