//! The `ch05-gpu` binary on a fake NVIDIA host: what a student types and sees.

use std::path::PathBuf;
use std::process::{Command, Output};

use ch05_gpu::discover::{build_fake_host, FakeGpu, FakeNodes};
use labkit::{busybox_rootfs, require_root, ScratchDir};

const BIN: &str = env!("CARGO_BIN_EXE_ch05-gpu");

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ch05(host: &std::path::Path, root: &std::path::Path, gpus: &str, script: &str) -> Output {
    Command::new(BIN)
        .args([
            "--host-root",
            host.to_str().unwrap(),
            "--rootfs",
            root.to_str().unwrap(),
            "--gpus",
            gpus,
            "--",
            "sh",
            "-c",
            script,
        ])
        .output()
        .unwrap()
}

/// A scratch directory holding a fake host with two H200s (`host/`) and a busybox root
/// filesystem (`root/`, returned).
fn two_gpu_host(label: &str) -> (ScratchDir, PathBuf) {
    let scratch = ScratchDir::new(label).unwrap();
    build_fake_host(
        &scratch.join("host"),
        &[FakeGpu::h200(0), FakeGpu::h200(1)],
        FakeNodes::Real,
    )
    .unwrap();
    let root = busybox_rootfs(&scratch.join("root")).unwrap();
    (scratch, root)
}

#[test]
fn a_container_sees_exactly_the_chosen_gpu() {
    if !require_root("a_container_sees_exactly_the_chosen_gpu") {
        return;
    }
    let (scratch, root) = two_gpu_host("ch05-cli");
    let script = "ls /dev | grep nvidia | tr '\\n' ' '; echo; echo $CUDA_VISIBLE_DEVICES; head -c1 /dev/nvidia0 2>&1 | grep -o 'No such device or address'";
    let out = ch05(&scratch.join("host"), &root, "\"device=0\"", script);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(
        lines[0].trim(),
        "nvidia-modeset nvidia-uvm nvidia-uvm-tools nvidia0 nvidiactl",
        "{lines:?}"
    );
    assert_eq!(lines[1], "0");
    assert_eq!(
        lines[2], "No such device or address",
        "the cgroup lets it through to the (absent) driver"
    );

    let all = ch05(
        &scratch.join("host"),
        &root,
        "all",
        "ls /dev | grep -c '^nvidia[0-9]'",
    );
    assert_eq!(text(&all.stdout).trim(), "2", "{}", text(&all.stderr));
}

#[test]
fn an_index_the_host_lacks_is_one_clear_error() {
    if !require_root("an_index_the_host_lacks_is_one_clear_error") {
        return;
    }
    let (scratch, root) = two_gpu_host("ch05-cli-bad");
    let out = ch05(&scratch.join("host"), &root, "\"device=7\"", "true");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains('7') && err.lines().count() == 1, "{err}");
}

#[test]
fn gpus_need_a_root_filesystem() {
    let out = Command::new(BIN)
        .args(["--gpus", "all", "--", "true"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("give --rootfs DIR"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn ldconfig_is_refused_on_the_hosts_own_root() {
    let before = std::fs::metadata("/etc/ld.so.cache")
        .and_then(|m| m.modified())
        .ok();
    let out = Command::new(BIN)
        .args(["--gpus", "all", "--ldconfig", "--rootfs", "/", "--", "true"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("--ldconfig with --rootfs /") && stderr.lines().count() == 1,
        "{stderr}"
    );
    let after = std::fs::metadata("/etc/ld.so.cache")
        .and_then(|m| m.modified())
        .ok();
    assert_eq!(before, after, "the host's linker cache is untouched");
}

#[test]
fn the_demo_shows_one_gpu_in_and_the_other_refused() {
    if !require_root("the_demo_shows_one_gpu_in_and_the_other_refused") {
        return;
    }
    let out = Command::new(BIN).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let demo = text(&out.stdout);
    for expected in [
        "allow   c 195:1 rwm",
        "BPF_PROG_TYPE_CGROUP_DEVICE program of",
        "/dev/nvidia0 is not here",
        "but opening the node it made: head: /tmp/nvidia0: Operation not permitted",
        "opening a smuggled node of GPU 0: head: /dev/smuggled-nvidia: Operation not permitted",
    ] {
        assert!(demo.contains(expected), "missing {expected:?}:\n{demo}");
    }
}
