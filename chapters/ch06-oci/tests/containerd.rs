//! containerd drives our runtime: Debian's containerd on a private socket and state dir, a
//! busybox image imported from a docker-archive built here (no network), and `ctr run
//! --runc-binary <ch06-oci>` through containerd's runc v2 shim — run, run -d, task ls, task exec,
//! task kill, task delete, container rm.
//!
//! The shim calls us as `<bin> --root <root>/<ns> --log <bundle>/log.json --log-format json
//! <verb> …`; our errors reach the user only as JSON lines in that log file, so every failure
//! below prints the shim logs found under containerd's state dir and containerd's stderr.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ch04_rootfs::digest::sha256_of;
use common::{cgroup_dirs, have, BIN};
use labkit::{busybox_rootfs, require_root, ScratchDir};

const NS: &str = "boxlab";
const IMAGE: &str = "docker.io/library/boxlab-busybox:1";

/// A containerd daemon of our own, killed and reaped on drop (panics included), after every
/// task and container it ran has been removed, its shims stopped and its cgroups gone.
struct Containerd {
    child: Child,
    sock: PathBuf,
    ids: Vec<String>,
    // Last: dropped after the daemon is gone, unmounting snapshot and rootfs mounts below it.
    scratch: ScratchDir,
}

impl Containerd {
    fn start(label: &str) -> Containerd {
        let scratch = ScratchDir::new(label).unwrap();
        let sock = scratch.join("containerd.sock");
        let config = scratch.join("config.toml");
        fs::write(
            &config,
            format!(
                r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"
"#,
                root = scratch.join("root").display(),
                state = scratch.join("state").display(),
                sock = sock.display(),
            ),
        )
        .unwrap();
        let stderr = fs::File::create(scratch.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("containerd");
        let mut daemon = Containerd {
            child,
            sock,
            ids: Vec::new(),
            scratch,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if daemon.ctr(&["version"]).status.success() {
                break;
            }
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!("containerd exited ({status}):\n{}", daemon.diagnostics());
            }
            assert!(
                Instant::now() < deadline,
                "containerd never answered on {}:\n{}",
                daemon.sock.display(),
                daemon.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        daemon
    }

    /// `ctr --address SOCK --namespace boxlab ARGS`, with a timeout so a hung shim fails the test
    /// instead of hanging it.
    fn ctr(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .args(["-k", "5", "30", "ctr", "--address"])
            .arg(&self.sock)
            .args(["--namespace", NS])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("ctr")
    }

    /// A container id unique on this host, removed on drop.
    fn id(&mut self, name: &str) -> String {
        let id = format!("boxlab-ctr-{name}-{}", std::process::id());
        self.ids.push(id.clone());
        id
    }

    /// containerd's stderr and every shim `log.json` (our runtime's JSON log lines).
    fn diagnostics(&self) -> String {
        let mut text = String::new();
        let mut logs = Vec::new();
        find_files(&self.scratch.join("state"), "log.json", &mut logs);
        for log in logs {
            text += &format!(
                "--- {}:\n{}\n",
                log.display(),
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
        let daemon_log =
            fs::read_to_string(self.scratch.join("containerd.log")).unwrap_or_default();
        let tail: Vec<&str> = daemon_log
            .lines()
            .filter(|l| !l.contains("level=info"))
            .collect();
        text += &format!("--- containerd stderr (non-info):\n{}\n", tail.join("\n"));
        text
    }

    /// Asserts `ctr ARGS` succeeded and returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "ctr {args:?}: {}\nstdout: {stdout}\nstderr: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.diagnostics()
        );
        stdout
    }

    /// Pids of shims serving our socket (they outlive containerd if their task does).
    fn shims(&self) -> Vec<i32> {
        let sock = self.sock.to_string_lossy().into_owned();
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let cmdline = String::from_utf8_lossy(&cmdline);
                cmdline.contains("containerd-shim") && cmdline.split('\0').any(|a| a == sock)
            })
            .collect()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        for id in self.ids.clone() {
            let _ = self.ctr(&["task", "kill", "--all", "--signal", "SIGKILL", &id]);
            let _ = self.ctr(&["task", "delete", "--force", &id]);
            let _ = self.ctr(&["container", "rm", &id]);
        }
        for pid in self.shims() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        for id in &self.ids {
            // What the runtime's `delete --force` would have done, had the shim not reached it.
            let _ = Command::new(BIN)
                .arg("--root")
                .arg(
                    self.scratch
                        .join("state/io.containerd.runtime.v2.task")
                        .join(NS),
                )
                .args(["delete", "--force", id])
                .output();
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for id in &self.ids {
            for dir in cgroup_dirs(id) {
                let _ = fs::remove_dir(dir);
            }
        }
        // `scratch` drops next: it lazily unmounts snapshots and rootfs mounts, then removes all.
    }
}

fn find_files(dir: &Path, name: &str, found: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            // Not into container root filesystems.
            if entry.file_name() != "rootfs" {
                find_files(&path, name, found);
            }
        } else if entry.file_name() == name {
            found.push(path);
        }
    }
}

fn tar(dir: &Path, archive: &Path, members: &[&str]) {
    let status = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .args(["--owner=0", "--group=0", "--numeric-owner", "-cf"])
        .arg(archive)
        .args(members)
        .status()
        .unwrap();
    assert!(status.success(), "tar -C {} {members:?}", dir.display());
}

/// A docker-archive of one layer (the host's static busybox), `Cmd ["sh"]`, tagged `IMAGE`.
fn busybox_archive(scratch: &ScratchDir) -> PathBuf {
    let rootfs = scratch.join("image-rootfs");
    fs::create_dir(&rootfs).unwrap();
    busybox_rootfs(&rootfs).unwrap();
    let image = scratch.join("image");
    fs::create_dir(&image).unwrap();
    tar(&rootfs, &image.join("layer.tar"), &["."]);
    let diff_id = sha256_of(fs::File::open(image.join("layer.tar")).unwrap()).unwrap();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    fs::write(image.join("config.json"), config.to_string()).unwrap();
    let manifest = serde_json::json!([{
        "Config": "config.json",
        "RepoTags": [IMAGE],
        "Layers": ["layer.tar"],
    }]);
    fs::write(image.join("manifest.json"), manifest.to_string()).unwrap();
    let archive = scratch.join("busybox.tar");
    tar(
        &image,
        &archive,
        &["manifest.json", "config.json", "layer.tar"],
    );
    archive
}

/// Waits until `ctr task ls` shows `id` with `status`.
fn wait_task(daemon: &Containerd, id: &str, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ls = daemon.ok(&["task", "ls"]);
        if ls
            .lines()
            .any(|l| l.split_whitespace().next() == Some(id) && l.contains(status))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "task {id} never {status}:\n{ls}\n{}",
            daemon.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn containerd_runs_execs_kills_and_deletes_through_our_runtime() {
    if !require_root("containerd_runs_execs_kills_and_deletes_through_our_runtime") {
        return;
    }
    if !have("containerd") || !have("ctr") || !have("containerd-shim-runc-v2") {
        // scripts/setup installs them: under CI their absence is a failure, not a skip.
        assert!(
            !labkit::in_ci(),
            "containerd, ctr or containerd-shim-runc-v2 missing: run scripts/setup"
        );
        eprintln!("skipped: needs Debian's containerd (containerd, ctr, containerd-shim-runc-v2); scripts/setup installs it");
        return;
    }
    let mut daemon = Containerd::start("ch06-containerd");
    let archive = busybox_archive(&daemon.scratch);
    daemon.ok(&["image", "import", archive.to_str().unwrap()]);
    assert!(daemon.ok(&["image", "ls", "-q"]).contains(IMAGE));

    // Foreground run: the shim's create --bundle --pid-file, start, then kill/delete.
    let id = daemon.id("fg");
    let out = daemon.ok(&[
        "run",
        "--rm",
        "--runc-binary",
        BIN,
        IMAGE,
        &id,
        "sh",
        "-c",
        "echo hello-from-ch06; hostname",
    ]);
    // ctr 1.6 sets no hostname: the new UTS namespace keeps the host's.
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["hello-from-ch06", host.trim()],
        "{out}"
    );
    assert!(cgroup_dirs(&id).is_empty(), "{:?}", cgroup_dirs(&id));

    // Detached: run -d, task ls RUNNING, exec, ps, kill SIGKILL, delete, container rm.
    let id = daemon.id("bg");
    daemon.ok(&[
        "run",
        "-d",
        "--runc-binary",
        BIN,
        IMAGE,
        &id,
        "sh",
        "-c",
        "echo up > /tmp/up; exec sleep 1000",
    ]);
    wait_task(&daemon, &id, "RUNNING");
    assert!(!cgroup_dirs(&id).is_empty(), "no cgroup boxlab/{id}");

    let out = daemon.ok(&[
        "task",
        "exec",
        "--exec-id",
        "probe",
        &id,
        "sh",
        "-c",
        "cat /tmp/up; echo exec-ok",
    ]);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["up", "exec-ok"], "{out}");

    let ps = daemon.ok(&["task", "ps", &id]);
    assert!(ps.lines().count() >= 2, "task ps: {ps}");

    daemon.ok(&["task", "kill", "--signal", "SIGKILL", &id]);
    wait_task(&daemon, &id, "STOPPED");
    daemon.ok(&["task", "delete", &id]);
    daemon.ok(&["container", "rm", &id]);
    assert!(!daemon.ok(&["task", "ls"]).contains(&id));
    assert!(cgroup_dirs(&id).is_empty(), "{:?}", cgroup_dirs(&id));
}
