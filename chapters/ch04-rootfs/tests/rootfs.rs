//! pivot_root, observed from inside: the host's files are gone, /proc shows only the container,
//! /dev holds only the default devices, /sys is read-only; and nothing stays mounted on the host.

use std::path::Path;
use std::process::{Command, Output};

use labkit::{busybox_rootfs, require_root, ScratchDir};

const BIN: &str = env!("CARGO_BIN_EXE_ch04-rootfs");

fn run_in(rootfs: &std::path::Path, extra: &[&str], script: &str) -> Output {
    let mut args = vec!["--rootfs".to_string(), rootfs.display().to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(["--".into(), "sh".into(), "-c".into(), script.into()]);
    Command::new(BIN).args(&args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_host_is_invisible_from_the_new_root() {
    if !require_root("the_host_is_invisible_from_the_new_root") {
        return;
    }
    let scratch = ScratchDir::new("rootfs-view").unwrap();
    let root = busybox_rootfs(&scratch.join("root")).unwrap();
    std::fs::write(scratch.join("host-secret"), "host").unwrap();
    let script = format!(
        "ls /; echo ---; test -e {} && echo SEES-HOST; test -e /etc/os-release && echo SEES-OS; ls /proc | grep -c '^[0-9]'; echo ---; ls /dev",
        scratch.join("host-secret").display()
    );
    let out = run_in(&root, &[], &script);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let parts: Vec<&str> = stdout.split("---\n").collect();
    let top: Vec<&str> = parts[0].lines().collect();
    assert!(
        top.contains(&"bin") && top.contains(&"proc") && !top.contains(&"boot"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("SEES-HOST") && !stdout.contains("SEES-OS"),
        "{stdout}"
    );
    let processes: usize = parts[1].lines().next().unwrap().trim().parse().unwrap();
    assert!(
        processes <= 4,
        "only the container's processes: {processes}"
    );
    let dev: Vec<&str> = parts[2].lines().collect();
    for device in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx",
    ] {
        assert!(dev.contains(&device), "/dev/{device} missing: {dev:?}");
    }
    assert!(
        !dev.iter()
            .any(|d| d.starts_with("sd") || d.starts_with("vd") || *d == "mem"),
        "no host disks: {dev:?}"
    );
}

#[test]
fn devices_work_and_sys_is_read_only() {
    if !require_root("devices_work_and_sys_is_read_only") {
        return;
    }
    let scratch = ScratchDir::new("rootfs-dev").unwrap();
    let root = busybox_rootfs(&scratch.join("root")).unwrap();
    let out = run_in(
        &root,
        &[],
        "echo x > /dev/null && echo null-ok; head -c 4 /dev/zero | od -An -tx1; touch /sys/boxlab 2>/dev/null || echo sys-ro",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("null-ok") && stdout.contains("00 00 00 00") && stdout.contains("sys-ro"),
        "{stdout}"
    );
}

#[test]
fn read_only_root_refuses_writes() {
    if !require_root("read_only_root_refuses_writes") {
        return;
    }
    let scratch = ScratchDir::new("rootfs-ro").unwrap();
    let root = busybox_rootfs(&scratch.join("root")).unwrap();
    let out = run_in(&root, &["--read-only"], "touch /boxlab-file 2>/dev/null && echo WROTE || echo refused; echo ok > /dev/shm/x && echo shm-ok");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("refused") && stdout.contains("shm-ok"),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(!root.join("boxlab-file").exists());
}

#[test]
fn nothing_of_the_container_is_mounted_on_the_host() {
    if !require_root("nothing_of_the_container_is_mounted_on_the_host") {
        return;
    }
    let scratch = ScratchDir::new("rootfs-mounts").unwrap();
    let root = busybox_rootfs(&scratch.join("root")).unwrap();
    let out = run_in(&root, &[], "true");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(
        !mounts.contains(&root.display().to_string()),
        "a mount leaked:\n{mounts}"
    );
}

#[test]
fn a_missing_rootfs_or_command_is_one_clear_error() {
    if !require_root("a_missing_rootfs_or_command_is_one_clear_error") {
        return;
    }
    let out = Command::new(BIN)
        .args(["--rootfs", "/nonexistent/boxlab-root", "--", "sh"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr)
            .contains("root filesystem /nonexistent/boxlab-root is not a usable directory"),
        "{}",
        text(&out.stderr)
    );

    let scratch = ScratchDir::new("rootfs-empty").unwrap();
    let root = busybox_rootfs(&scratch.join("root")).unwrap();
    let out = Command::new(BIN)
        .args(["--rootfs", &root.display().to_string(), "--", "python3"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot execute 'python3'"),
        "the image has no python3: {err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    let file = scratch.join("file");
    std::fs::write(&file, "").unwrap();
    let out = Command::new(BIN)
        .args(["--rootfs", &file.display().to_string(), "--", "sh"])
        .output()
        .unwrap();
    assert!(
        text(&out.stderr).contains("it is a file"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_host_root_as_rootfs_gets_a_fresh_dev_proc_and_sys() {
    if !require_root("the_host_root_as_rootfs_gets_a_fresh_dev_proc_and_sys") {
        return;
    }
    // Only the mount points the container mounts over (the host's own automounts may come
    // and go meanwhile).
    let host_mounts = || -> Vec<String> {
        std::fs::read_to_string("/proc/mounts")
            .unwrap()
            .lines()
            .filter(|line| {
                let point = line.split(' ').nth(1).unwrap_or("");
                point == "/"
                    || ["/dev", "/proc", "/sys"]
                        .iter()
                        .any(|p| point.starts_with(p))
            })
            .map(str::to_string)
            .collect()
    };
    let mounts_before = host_mounts();
    let out = run_in(
        std::path::Path::new("/"),
        &[],
        "test -e /etc/os-release && echo SEES-OS; ls /proc | grep -c '^[0-9]'; echo ---; ls /dev; echo ---; touch /sys/x 2>&1; echo ---; test -c /dev/null && echo NULL-IS-A-DEVICE; head -c 8 /dev/urandom | wc -c",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let parts: Vec<&str> = stdout.split("---\n").collect();
    assert!(parts[0].contains("SEES-OS"), "the host's files: {stdout}");
    let processes: usize = parts[0].lines().nth(1).unwrap().trim().parse().unwrap();
    assert!(processes <= 4, "a fresh /proc: {processes}");
    let dev: Vec<&str> = parts[1].lines().collect();
    assert!(dev.contains(&"null") && dev.contains(&"pts"), "{dev:?}");
    assert!(
        !dev.iter()
            .any(|d| d.starts_with("sd") || d.starts_with("vd") || *d == "mem"),
        "a fresh /dev, not the host's: {dev:?}"
    );
    assert!(parts[2].contains("Read-only"), "a read-only /sys: {stdout}");
    // The fresh /dev covers the host's, yet its nodes are the host's devices, not empty files.
    assert!(parts[3].contains("NULL-IS-A-DEVICE"), "{stdout}");
    assert_eq!(
        parts[3].lines().nth(1),
        Some("8"),
        "/dev/urandom reads: {stdout}"
    );
    assert_eq!(
        host_mounts(),
        mounts_before,
        "the host's mounts are unchanged"
    );
}

#[test]
fn a_rootfs_needs_the_mount_namespace() {
    let out = Command::new(BIN)
        .args(["--ns", "pid", "--rootfs", "/", "--", "true"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("needs the mnt namespace"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_demo_builds_runs_and_rebuilds_from_the_cache() {
    if !require_root("the_demo_builds_runs_and_rebuilds_from_the_cache") {
        return;
    }
    let out = Command::new(BIN).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for expected in [
        "demo:1 = manifest sha256:",
        "the last line, version 1",
        "PID 2, / holds: bin dev proc srv sys",
        "no trace of the host",
        "5 of 7 steps came from the cache",
        "the last line, version 2",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?}:\n{stdout}");
    }
}

#[test]
fn extra_devices_and_read_only_binds_appear_inside() {
    if !require_root("extra_devices_and_read_only_binds_appear_inside") {
        return;
    }
    use ch04_rootfs::pivot::{BindMount, DeviceNode, RootfsSpec};
    use std::io::Read;
    let scratch = ScratchDir::new("rootfs-extra").unwrap();
    let root = busybox_rootfs(&scratch.join("root")).unwrap();
    std::fs::write(scratch.join("lib.so"), "not really a library").unwrap();
    let spec = RootfsSpec {
        path: root.clone(),
        readonly: false,
        devices: vec![DeviceNode {
            host: "/dev/full".into(),
            name: "extra/full".into(),
        }],
        binds: vec![BindMount {
            source: scratch.join("lib.so"),
            target: "/usr/lib/boxlab/lib.so".into(),
            readonly: true,
        }],
        ..RootfsSpec::default()
    };
    let (reader, writer) = nix::unistd::pipe().unwrap();
    let isolation = ch02_namespaces::Isolation::container_defaults().stdout(writer);
    let isolation = ch04_rootfs::with_rootfs_spec(isolation, spec).unwrap();
    let script = "ls -l /dev/extra/full | cut -c1; cat /usr/lib/boxlab/lib.so; echo; echo x > /usr/lib/boxlab/lib.so 2>/dev/null || echo read-only";
    let child = isolation
        .spawn(&ch01_process::exec::Program::new(&["sh", "-c", script]).unwrap())
        .unwrap();
    drop(isolation);
    let mut out = String::new();
    std::fs::File::from(reader)
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success(), "{out}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["c", "not really a library", "read-only"]
    );
    assert_eq!(
        std::fs::read_to_string(scratch.join("lib.so")).unwrap(),
        "not really a library"
    );
}

#[test]
fn bind_targets_resolve_symlinks_inside_the_image() {
    if !require_root("bind_targets_resolve_symlinks_inside_the_image") {
        return;
    }
    use ch04_rootfs::pivot::{BindMount, RootfsSpec};
    use std::io::Read;
    use std::os::unix::fs::symlink;
    let scratch = ScratchDir::new("rootfs-bind-escape").unwrap();
    let root = busybox_rootfs(&scratch.join("root")).unwrap();
    std::fs::write(scratch.join("lib.so"), "bound").unwrap();
    // Two ways out of a hostile image, before pivot_root: `usr -> /`, so that
    // `/usr/<scratch>/escaped` would be the host's `<scratch>/escaped`, and a link straight to
    // a host directory. Both point into the scratch directory, so a failure leaks nothing.
    std::fs::remove_dir_all(root.join("usr")).ok();
    symlink("/", root.join("usr")).unwrap();
    let outside = scratch.join("outside");
    std::fs::create_dir(&outside).unwrap();
    symlink(&outside, root.join("opt")).unwrap();
    let through_usr =
        Path::new("/usr").join(scratch.join("escaped/lib.so").strip_prefix("/").unwrap());
    let bind = |target: &Path| BindMount {
        source: scratch.join("lib.so"),
        target: target.into(),
        readonly: true,
    };
    let spec = RootfsSpec {
        path: root.clone(),
        binds: vec![bind(&through_usr), bind(Path::new("/opt/lib.so"))],
        ..RootfsSpec::default()
    };
    let (reader, writer) = nix::unistd::pipe().unwrap();
    let isolation = ch02_namespaces::Isolation::container_defaults().stdout(writer);
    let isolation = ch04_rootfs::with_rootfs_spec(isolation, spec).unwrap();
    let script = format!("cat {}; echo; cat /opt/lib.so", through_usr.display());
    let child = isolation
        .spawn(&ch01_process::exec::Program::new(&["sh", "-c", &script]).unwrap())
        .unwrap();
    drop(isolation);
    let mut out = String::new();
    std::fs::File::from(reader)
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success(), "{out}");
    // The container sees both binds where its symlinks lead...
    assert_eq!(out.lines().collect::<Vec<_>>(), ["bound", "bound"]);
    // ...the mount points were made inside the root...
    let inside = |host: &Path| root.join(host.strip_prefix("/").unwrap());
    assert!(inside(&scratch.join("escaped/lib.so")).is_file());
    assert!(inside(&outside.join("lib.so")).is_file());
    // ...and nothing outside it.
    assert!(!scratch.join("escaped").exists());
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
}
