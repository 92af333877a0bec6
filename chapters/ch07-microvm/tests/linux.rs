//! Stage 4, Linux: bad inputs are refused with clear errors; the fetched kernel boots where
//! the host can run it (hardware KVM), and is refused in one line where it cannot (PVM).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ch07_microvm::exits::{ExitEvent, RunOptions};
use ch07_microvm::guest::TINY_GUEST_ELF;
use ch07_microvm::host;
use ch07_microvm::initramfs::{INIT_MARKER, SHELL_WORD};
use ch07_microvm::linux::fetched_kernel;
use ch07_microvm::{LinuxConfig, MicroVm, VmError};
use labkit::{in_ci, require_root, ScratchDir};

const BIN: &str = env!("CARGO_BIN_EXE_ch07-microvm");

/// `bytes` as `dir/name`.
fn file(dir: &ScratchDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_file_that_is_no_kernel_is_refused_before_kvm_is_touched() {
    let dir = ScratchDir::new("ch07-not-a-kernel").unwrap();
    let kernel = file(&dir, "vmlinuz", b"#!/bin/sh\necho I am not a kernel\n");
    let err = MicroVm::linux(&LinuxConfig::new(&kernel)).err().unwrap();
    assert!(matches!(err, VmError::KernelFormat { .. }), "{err}");
    assert!(err.to_string().contains("'HdrS' at offset 0x202"), "{err}");
}

#[test]
fn a_missing_kernel_is_named() {
    let err = MicroVm::linux(&LinuxConfig::new("/nonexistent/boxlab-vmlinuz"))
        .err()
        .unwrap();
    assert!(matches!(err, VmError::KernelRead { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/boxlab-vmlinuz"));
}

#[test]
fn an_initrd_larger_than_guest_memory_is_refused() {
    let dir = ScratchDir::new("ch07-big-initrd").unwrap();
    let kernel = file(&dir, "guest.elf", TINY_GUEST_ELF);
    let initrd = file(&dir, "initrd", &vec![0u8; 17 << 20]);
    let config = LinuxConfig {
        initrd: Some(initrd),
        mem_size: 16 << 20,
        force: true,
        ..LinuxConfig::new(&kernel)
    };
    let err = MicroVm::linux(&config).err().unwrap();
    assert!(matches!(err, VmError::InitrdTooLarge { .. }), "{err}");
    assert!(err.to_string().contains("give the VM more memory"), "{err}");
}

#[test]
fn a_truncated_kernel_is_refused_by_the_loader() {
    if !require_root("a_truncated_kernel_is_refused_by_the_loader") {
        return;
    }
    let dir = ScratchDir::new("ch07-truncated").unwrap();
    let kernel = file(&dir, "vmlinux", &TINY_GUEST_ELF[..300]);
    let config = LinuxConfig {
        force: true,
        mem_size: 16 << 20,
        ..LinuxConfig::new(&kernel)
    };
    let err = MicroVm::linux(&config).err().unwrap();
    assert!(matches!(err, VmError::KernelLoad { .. }), "{err}");
}

// ---- the fetched kernel: what a student sees with it ----

/// The kernel and initramfs scripts/fetch-kernel wrote. Under CI a missing kernel is a failure
/// (scripts/setup fetches it); elsewhere the test says it skipped, and why.
fn fetched(test: &str) -> Option<(PathBuf, PathBuf)> {
    match fetched_kernel() {
        Ok(files) => Some(files),
        Err(e) if in_ci() => panic!("{test}: {e} (CI=true: scripts/setup fetches the kernel)"),
        Err(e) => {
            eprintln!("skipped {test}: {e}");
            None
        }
    }
}

/// On a host whose KVM cannot run a kernel (PVM, no vmx/svm): the binary refuses the fetched
/// kernel before any KVM call, in one line that says why and what to do. `args`: what the
/// student added to `--kernel K --initrd I`.
fn assert_refused_in_one_line(kernel: &Path, initrd: &Path, args: &[&str]) {
    let host = host::detect();
    assert!(!host.can_boot_linux(), "{host:?}");
    let out = Command::new(BIN)
        .arg("--kernel")
        .arg(kernel)
        .arg("--initrd")
        .arg(initrd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(
        err.trim_end(),
        format!("ch07-microvm: error: this host's KVM cannot run a Linux kernel: {}. Boot Linux on a machine with hardware virtualization (vmx or svm in /proc/cpuinfo), or pass --force to try anyway", host.describe())
    );
    assert!(out.stdout.is_empty(), "{out:?}");
}

/// `ch07-microvm --kernel vmlinuz --initrd initramfs.cpio`: Linux boots into our initramfs,
/// whose /init prints its marker, and powers off; on a host that cannot boot Linux, the
/// one-line refusal.
#[test]
fn the_fetched_kernel_boots_to_the_initramfs_marker_or_is_refused_in_one_line() {
    let test = "the_fetched_kernel_boots_to_the_initramfs_marker_or_is_refused_in_one_line";
    let Some((kernel, initrd)) = fetched(test) else {
        return;
    };
    if !host::detect().can_boot_linux() {
        assert_refused_in_one_line(&kernel, &initrd, &[]);
        return;
    }
    if !require_root(test) {
        return;
    }
    let out = Command::new(BIN)
        .arg("--kernel")
        .arg(&kernel)
        .arg("--initrd")
        .arg(&initrd)
        .args(["--time-limit", "60"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{}\n{stdout}\n{stderr}", out.status);
    assert!(stdout.contains(INIT_MARKER), "{stdout}");
    assert!(stderr.contains("ch07-microvm: PowerOff"), "{stderr}");
}

/// `--shell`: Linux boots to a shell on ttyS0, our bytes reach it through the UART's receive
/// interrupt, its answer comes back, `exit` powers off; on a host that cannot boot Linux, the
/// same one-line refusal.
#[test]
fn the_fetched_kernel_gives_a_shell_on_the_serial_console_or_is_refused_in_one_line() {
    let test = "the_fetched_kernel_gives_a_shell_on_the_serial_console_or_is_refused_in_one_line";
    let Some((kernel, initrd)) = fetched(test) else {
        return;
    };
    if !host::detect().can_boot_linux() {
        assert_refused_in_one_line(&kernel, &initrd, &["--shell"]);
        return;
    }
    if !require_root(test) {
        return;
    }
    let mut config = LinuxConfig {
        initrd: Some(initrd),
        echo: true,
        ..LinuxConfig::new(kernel)
    };
    config.cmdline.push(' ');
    config.cmdline.push_str(SHELL_WORD);
    let mut vm = MicroVm::linux(&config).unwrap();
    let input = vm.input();
    let mut seen = Vec::new();
    let mut typed = false;
    let opts = RunOptions {
        time_limit: Some(std::time::Duration::from_secs(60)),
        ..RunOptions::default()
    };
    let report = vm
        .run(&opts, &mut |event| {
            if let ExitEvent::SerialOut { offset: 0, value } = event {
                seen.push(*value);
                // The prompt after the banner: type a command and leave.
                if !typed
                    && String::from_utf8_lossy(&seen).contains("powers the VM off")
                    && seen.ends_with(b"# ")
                {
                    input.send(b"echo $((6 * 7))\rexit\r");
                    typed = true;
                }
            }
        })
        .unwrap();
    let text = report.output_text();
    assert!(typed, "no shell prompt in: {text}");
    assert!(
        text.contains("\n42\r\n") || text.contains("\n42\n"),
        "{text}"
    );
}
