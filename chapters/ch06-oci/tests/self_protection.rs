//! CVE-2019-5736 replayed: a process that reaches the runtime's executable through
//! `/proc/<pid>/exe` while the runtime is inside the container keeps an `O_PATH` handle to it,
//! and once the runtime has gone (no more "text file busy") opens it for writing.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use common::{Lab, BIN};
use labkit::require_root;

#[test]
fn the_runtime_binary_cannot_be_overwritten_through_proc_pid_exe() {
    if !require_root("the_runtime_binary_cannot_be_overwritten_through_proc_pid_exe") {
        return;
    }
    let lab = Lab::new("ch06-cve");
    let bundle = lab.bundle("bundle", &["true"], |_| {});
    let id = lab.id("cve");
    let out = lab.oci(&["create", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(out.ok(), "create: {out:?}");
    // Created: the container's PID 1 is the runtime's own code, waiting at the start gate
    // inside the container — what a process in the container can see as /proc/1/exe.
    let pid = lab.state(&id)["pid"].as_i64().unwrap();
    let exe = format!("/proc/{pid}/exe");
    // Not the file on disk as such: a read-only view of it (a detached bind mount) or a sealed
    // memfd copy. Checked before the attack below, which would otherwise overwrite BIN.
    let target = fs::read_link(&exe).unwrap();
    let opened = File::open(&exe).unwrap();
    assert!(
        ch06_oci::sealed::on_read_only_mount(&opened) || ch06_oci::sealed::is_sealed(&opened),
        "PID 1 runs from {}, writable",
        target.display()
    );
    let handle = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(&exe)
        .unwrap();
    let out = lab.oci(&["delete", "--force", &id]);
    assert!(out.ok(), "delete: {out:?}");

    let before = fs::read(BIN).unwrap();
    let reopened = OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{}", handle.as_raw_fd()));
    let written = reopened.and_then(|mut file: File| file.write_all(b"#!/bin/sh\necho pwned\n"));
    let err = written.expect_err("the runtime's executable took a write");
    assert!(
        matches!(err.raw_os_error(), Some(libc::EROFS) | Some(libc::EPERM)),
        "a read-only mount (EROFS) or a sealed memfd (EPERM) refuses writes: {err}"
    );
    assert!(
        fs::read(BIN).unwrap() == before,
        "the binary on disk changed"
    );
}
