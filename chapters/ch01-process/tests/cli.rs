//! The `ch01-process` binary as a student uses it.

use std::process::{Command, Output};

fn ch01(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ch01-process"))
        .args(args)
        .output()
        .expect("running ch01-process")
}

#[test]
fn the_demo_runs_and_explains_each_step() {
    let out = ch01(&["--runs", "5"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "getpid()",
        "getppid()",
        "/proc/self/ns/",
        "net:[",
        "/proc/self/cgroup",
        "fork()",
        "warm worker",
    ] {
        assert!(
            stdout.contains(expected),
            "demo output lacks {expected:?}:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("Every path answered: words=9 score="),
        "{stdout}"
    );
}

#[test]
fn a_command_exits_with_its_own_status() {
    let out = ch01(&["sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("started in") && stderr.contains("exited with status 3"),
        "{stderr}"
    );
}

#[test]
fn a_command_killed_by_a_signal_exits_with_128_plus_the_signal() {
    let out = ch01(&["--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(out.status.code(), Some(128 + 15));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SIGTERM"));
}

#[test]
fn the_commands_output_passes_through() {
    let out = ch01(&["echo", "-n", "hello"]);
    assert!(out.status.success());
    assert_eq!(out.stdout, b"hello");
}

#[test]
fn a_missing_command_is_one_clear_error_line() {
    let out = ch01(&["/nonexistent"]);
    assert_eq!(out.status.code(), Some(127));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot execute '/nonexistent': no such file or directory"),
        "{stderr}"
    );
}

#[test]
fn bad_options_are_refused() {
    let out = ch01(&["--runs", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--runs"));
}
