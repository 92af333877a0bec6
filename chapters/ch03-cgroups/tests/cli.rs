//! The `ch03-cgroups` binary, as a student runs it.

use std::process::{Command, Output};

use labkit::require_root;

const BIN: &str = env!("CARGO_BIN_EXE_ch03-cgroups");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn an_oom_killed_command_exits_137_and_says_why() {
    if !require_root("an_oom_killed_command_exits_137_and_says_why") {
        return;
    }
    let out = run(&[
        "--memory",
        "32m",
        "--memory-swap",
        "32m",
        "--",
        BIN,
        "__hog",
        "8",
    ]);
    assert_eq!(out.status.code(), Some(137), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("OOM killer stopped it at the memory limit (32 MiB)"),
        "{err}"
    );
}

#[test]
fn the_exit_status_passes_through() {
    if !require_root("the_exit_status_passes_through") {
        return;
    }
    let out = run(&["--pids", "50", "--cpus", "1", "--", "sh", "-c", "exit 9"]);
    assert_eq!(out.status.code(), Some(9), "{}", text(&out.stderr));
}

#[test]
fn a_burstable_pod_gets_the_kubelet_oom_score() {
    if !require_root("a_burstable_pod_gets_the_kubelet_oom_score") {
        return;
    }
    let out = run(&[
        "--k8s-requests",
        "cpu=500m,memory=128Mi",
        "--k8s-limits",
        "cpu=1,memory=256Mi",
        "--",
        "cat",
        "/proc/self/oom_score_adj",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("QoS class Burstable"), "{err}");
    let announced = err
        .split("oom_score_adj ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    assert_eq!(
        text(&out.stdout).trim(),
        announced,
        "the command runs with the score the table announced"
    );
}

#[test]
fn kubernetes_flags_alone_print_the_translation() {
    let out = run(&[
        "--k8s-requests",
        "cpu=500m,memory=1Gi",
        "--k8s-limits",
        "cpu=1,memory=2Gi",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("QoS class Burstable") && err.contains("cpu.shares") && err.contains("512"),
        "{err}"
    );
    assert!(
        err.contains("100000 100000"),
        "limits.cpu=1 is a 100 ms quota per 100 ms: {err}"
    );
}

#[test]
fn bad_values_are_one_clear_line() {
    for (args, expected) in [
        (
            vec!["--memory", "1k", "--", "true"],
            "below the minimum of 6 MiB",
        ),
        (vec!["--cpus", "4096", "--", "true"], "this machine has"),
        (vec!["--memory", "12q", "--", "true"], "unknown unit"),
        (
            vec!["--cgroup", "../escape", "--", "true"],
            "'..' would leave the cgroup root",
        ),
        (
            vec!["--k8s-limits", "gpu=1", "--", "true"],
            "unknown resource 'gpu'",
        ),
    ] {
        let out = run(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(expected), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn the_demo_shows_all_three_limits_at_work() {
    if !require_root("the_demo_shows_all_three_limits_at_work") {
        return;
    }
    let out = Command::new(BIN).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let demo = text(&out.stdout);
    for expected in [
        "OOM kills recorded by the cgroup: 1",
        "(the quota: 0.50)",
        "EAGAIN: the pids limit",
        "QoS class Guaranteed",
    ] {
        assert!(demo.contains(expected), "missing {expected:?}:\n{demo}");
    }
}
