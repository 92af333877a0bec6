//! The `ch01-process` binary as a student uses it.

use std::process::{Command, Output, Stdio};

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

fn serve(kind: &str, input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ch01-process"))
        .args(["--serve", kind])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running ch01-process --serve");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// The pids that answered, from `--serve` replies `… (answered by pid N) in …`.
fn answering_pids(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|line| line.split("(answered by pid ").nth(1))
        .map(|rest| rest.split(')').next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn serve_worker_answers_each_line_from_one_process() {
    let out = serve("worker", "hello world\nthree little words\n");
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("words=2 score=") && stdout.contains("words=3 score="),
        "{stdout}"
    );
    let pids = answering_pids(&stdout);
    assert_eq!(pids.len(), 2, "{stdout}");
    assert_eq!(pids[0], pids[1], "{stdout}");
}

#[test]
fn serve_zygote_answers_each_line_from_a_new_process() {
    let out = serve("zygote", "a\nb\n");
    assert!(out.status.success());
    let pids = answering_pids(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(pids.len(), 2);
    assert_ne!(pids[0], pids[1]);
}

#[test]
fn serve_reports_a_worker_killed_from_outside() {
    use std::io::{BufRead, BufReader, Write};
    let mut child = Command::new(env!("CARGO_BIN_EXE_ch01-process"))
        .args(["--serve", "worker"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running ch01-process --serve worker");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    // "Worker pid N is ready: …"
    let pid: i32 = first
        .split_whitespace()
        .nth(2)
        .and_then(|p| p.parse().ok())
        .expect(&first);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    stdin.write_all(b"anyone there?\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "the worker (pid {pid}) was killed by signal SIGKILL"
        )),
        "{stderr}"
    );
}
