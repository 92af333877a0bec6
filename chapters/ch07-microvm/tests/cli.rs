//! The `ch07-microvm` binary, as a student runs it.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output, Stdio};

use ch07_microvm::GuestConfig;
use labkit::require_root;
use nix::pty::openpty;
use nix::sys::signal::{kill, Signal};
use nix::sys::termios::{tcgetattr, LocalFlags};
use nix::unistd::Pid;

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

/// Kills and reaps the child if the test fails half way: no VMM outlives a test.
struct Reaper(std::process::Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A console session through the binary's stdin, as a pipe: the bytes reach the guest's UART.
#[test]
fn stdin_goes_to_the_guests_serial_port() {
    if !require_root("stdin_goes_to_the_guests_serial_port") {
        return;
    }
    let mut child = Command::new(BIN)
        .args([
            "--stage",
            "guest",
            "--cmdline",
            "task=echo",
            "--time-limit",
            "30",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"uname -a\rexit\x04")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let config = GuestConfig {
        cmdline: "task=echo".into(),
        console_input: b"uname -a\rexit\x04".to_vec(),
        ..GuestConfig::default()
    };
    assert_eq!(text(&out.stdout), config.expected_output());
}

/// The same on a terminal (a pseudo-terminal here): raw mode, so the guest's echo is the only
/// echo; Ctrl-A x leaves the VM; the terminal's settings are back as they were afterwards, also
/// when the VMM dies of SIGTERM.
#[test]
fn on_a_terminal_raw_mode_comes_and_goes() {
    if !require_root("on_a_terminal_raw_mode_comes_and_goes") {
        return;
    }
    for ending in ["ctrl-a x", "SIGTERM"] {
        let pty = openpty(None, None).unwrap();
        let before = tcgetattr(&pty.slave).unwrap();
        let child = Command::new(BIN)
            .args([
                "--stage",
                "guest",
                "--cmdline",
                "task=echo",
                "--time-limit",
                "60",
            ])
            .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut child = Reaper(child);
        let child = &mut child.0;
        let mut master = std::fs::File::from(pty.master);
        // Wait until the guest is reading: its prompt is the last line before it polls.
        let mut stdout = child.stdout.take().unwrap();
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !String::from_utf8_lossy(&seen).ends_with("Ctrl-D to end\n") {
            assert_eq!(stdout.read(&mut byte).unwrap(), 1, "{}", text(&seen));
            seen.push(byte[0]);
        }
        let raw = tcgetattr(&pty.slave).unwrap();
        assert!(before
            .local_flags
            .contains(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG));
        assert!(!raw
            .local_flags
            .intersects(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG));
        master.write_all(b"ab\r").unwrap();
        let want = "AB\n";
        let mut echoed = Vec::new();
        while echoed.len() < want.len() {
            assert_eq!(stdout.read(&mut byte).unwrap(), 1);
            echoed.push(byte[0]);
        }
        assert_eq!(
            text(&echoed),
            want,
            "the guest's echo, and no echo of the terminal's"
        );
        if ending == "SIGTERM" {
            kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
        } else {
            master.write_all(b"\x01x").unwrap();
        }
        let status = child.wait().unwrap();
        let mut rest = Vec::new();
        stdout.read_to_end(&mut rest).unwrap();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        if ending == "SIGTERM" {
            assert_eq!(status.signal(), Some(libc::SIGTERM), "{stderr}");
        } else {
            assert!(status.success(), "{stderr}");
            assert!(stderr.contains("Quit after"), "{stderr}");
        }
        let after = tcgetattr(&pty.slave).unwrap();
        assert_eq!(after.local_flags, before.local_flags, "{ending}");
        assert_eq!(after.input_flags, before.input_flags, "{ending}");
    }
}
