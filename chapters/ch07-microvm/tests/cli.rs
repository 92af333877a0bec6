//! The `ch07-microvm` binary, as a student runs it.

use std::process::{Command, Output};

use labkit::require_root;

const BIN: &str = env!("CARGO_BIN_EXE_ch07-microvm");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_bad_flag_is_one_line_and_a_failure() {
    let out = run(&["--no-such-flag"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("ch07-microvm: "), "{err}");
    assert!(err.contains("--no-such-flag"), "{err}");
}

#[test]
fn a_missing_kernel_file_is_one_line_and_a_failure() {
    let out = run(&["--kernel", "/nonexistent/boxlab-vmlinuz"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("ch07-microvm: error: cannot read the kernel /nonexistent/boxlab-vmlinuz"),
        "{err}"
    );
}

#[test]
fn the_demo_runs_every_stage() {
    if !require_root("the_demo_runs_every_stage") {
        return;
    }
    let out = run(&[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}{}", stdout, text(&out.stderr));
    for expected in [
        "KVM_EXIT_IO: guest wrote 'H' to port 0x3f8 (COM1 data)",
        "Hello from 64-bit long mode",
        "KVM_EXIT_IO: guest wrote 0xfe to port 0x64 (i8042 reset): power off",
        "VMM overhead",
        "same output as an uninterrupted run",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}

#[test]
fn try_breaking_it_unmapping_the_input_page_is_a_triple_fault() {
    if !require_root("try_breaking_it_unmapping_the_input_page_is_a_triple_fault") {
        return;
    }
    let out = run(&["--stage", "guest", "--unmap", "0x1ff000"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("triple-faulted"), "{err}");
    assert!(err.contains("0x1ff000 (CR2)"), "{err}");
}

#[test]
fn a_stage_with_a_trace_shows_each_exit() {
    if !require_root("a_stage_with_a_trace_shows_each_exit") {
        return;
    }
    let out = run(&["--stage", "real-mode", "--trace"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Hi 5\n");
    let err = text(&out.stderr);
    assert!(
        err.contains("exit: KVM_EXIT_HLT: guest executed hlt"),
        "{err}"
    );
}
