//! podman drives our runtime: an image built by chapter 4's builder (busybox, no network),
//! loaded into a podman store of the test's own, and `podman --runtime <ch06-oci>` running,
//! exec'ing into, pausing, stopping and removing containers with it.
//!
//! podman's conmon calls `create --bundle … --pid-file …` (no `--root`: our default state
//! directory is used), podman itself `start`, `kill`, `pause`/`resume`, `delete --force`.
//! Containers go under the cgroup parent `/boxlab/podman`, so that anything left behind is
//! ours by name; podman's own `conmon` cgroup there is removed at the end.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{busybox_image, cgroup_tops, have, BIN};
use labkit::{require_root, ScratchDir};

const IMAGE: &str = "boxlab-podman:1";
const CGROUP_PARENT: &str = "/boxlab/podman";

/// A podman with a store, run directory and containers.conf of its own, under a scratch dir.
struct Podman {
    names: Vec<String>,
    scratch: ScratchDir,
}

impl Podman {
    fn new(label: &str) -> Podman {
        let scratch = ScratchDir::new(label).unwrap();
        // This host forbids raising nofile/nproc above the hard limit that podman asks for by
        // default; cgroupfs rather than systemd; no event log outside our directories.
        fs::write(
            scratch.join("containers.conf"),
            "[containers]\n\
             default_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
             [engine]\n\
             cgroup_manager = \"cgroupfs\"\n\
             events_logger = \"none\"\n",
        )
        .unwrap();
        Podman {
            names: Vec::new(),
            scratch,
        }
    }

    fn podman(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .args(["-k", "5", "60", "podman", "--root"])
            .arg(self.scratch.join("storage"))
            .arg("--runroot")
            .arg(self.scratch.join("run"))
            .arg("--tmpdir")
            .arg(self.scratch.join("tmp"))
            .args(["--storage-driver", "vfs", "--runtime", BIN])
            .args(args)
            .env("CONTAINERS_CONF", self.scratch.join("containers.conf"))
            .stdin(Stdio::null())
            .output()
            .expect("podman")
    }

    /// Asserts `podman ARGS` succeeded; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.podman(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "podman {args:?}: {}\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// A container name unique on this host, removed on drop.
    fn name(&mut self, label: &str) -> String {
        let name = format!("boxlab-pm-{label}-{}", std::process::id());
        self.names.push(name.clone());
        name
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = self.podman(&["rm", "--force", "--time", "0", name]);
        }
        // podman puts conmon in `<parent>/conmon` and never removes it; the container cgroups
        // are our runtime's, removed by `delete`.
        for controller in cgroup_tops() {
            let _ = fs::remove_dir(controller.join("boxlab/podman/conmon"));
            let _ = fs::remove_dir(controller.join("boxlab/podman"));
            let _ = fs::remove_dir(controller.join("boxlab"));
        }
        // Our runtime's default state directory, if this test was the one to make it.
        let _ = fs::remove_dir("/run/boxlab/runtime");
        let _ = fs::remove_dir("/run/boxlab");
        // `scratch` drops next: podman's storage (plain directories with vfs) goes with it.
    }
}

/// Chapter 4's image in a tar: its OCI layout is the OCI archive that `podman load` reads.
fn image_archive(scratch: &ScratchDir) -> PathBuf {
    let data = busybox_image(scratch, IMAGE);
    let archive = scratch.join("image.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(data.join("oci"))
        .arg("-cf")
        .arg(&archive)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success(), "tar of the OCI layout");
    archive
}

/// Waits until `podman ps` shows `name` with a status starting with `status`.
fn wait_status(podman: &Podman, name: &str, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ps = podman.ok(&["ps", "--all", "--format", "{{.Names}} {{.Status}}"]);
        if ps
            .lines()
            .any(|l| l.starts_with(&format!("{name} {status}")))
        {
            return;
        }
        assert!(Instant::now() < deadline, "{name} never {status}:\n{ps}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn podman_runs_execs_pauses_stops_and_removes_through_our_runtime() {
    if !require_root("podman_runs_execs_pauses_stops_and_removes_through_our_runtime") {
        return;
    }
    if !have("podman") || !have("conmon") {
        // scripts/setup installs them: under CI their absence is a failure, not a skip.
        assert!(
            !labkit::in_ci(),
            "podman or conmon missing: run scripts/setup"
        );
        eprintln!("skipped: needs Debian's podman (podman, conmon); scripts/setup installs it");
        return;
    }
    let mut podman = Podman::new("ch06-podman");
    let archive = image_archive(&podman.scratch);
    let loaded = podman.ok(&["load", "--input", archive.to_str().unwrap()]);
    assert!(loaded.contains(IMAGE), "{loaded}");

    // Foreground, removed at the end: output, hostname (podman sets it), PID 1, exit status.
    let name = podman.name("fg");
    let out = podman.podman(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--hostname",
        "boxlab-pm",
        "--network",
        "none",
        "--cgroup-parent",
        CGROUP_PARENT,
        IMAGE,
        "sh",
        "-c",
        "echo hello-from-ch06; hostname; echo $$; exit 3",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "the command's exit status comes through podman: {out:?}"
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["hello-from-ch06", "boxlab-pm", "1"],
        "{out:?}"
    );
    assert!(
        !podman.ok(&["ps", "--all"]).contains(&name),
        "--rm removed it"
    );

    // Detached: exec, pause/unpause, stop, rm.
    let name = podman.name("bg");
    podman.ok(&[
        "run",
        "--detach",
        "--name",
        &name,
        "--network",
        "none",
        "--cgroup-parent",
        CGROUP_PARENT,
        IMAGE,
        "sh",
        "-c",
        "echo up > /up; exec sleep 1000",
    ]);
    wait_status(&podman, &name, "Up");
    let deadline = Instant::now() + Duration::from_secs(10);
    let out = loop {
        let out = podman.podman(&["exec", &name, "sh", "-c", "cat /up && echo exec-ok"]);
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(50)); // the command may not have written yet
    };
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .collect::<Vec<_>>(),
        ["up", "exec-ok"],
        "{out:?}"
    );
    podman.ok(&["pause", &name]);
    wait_status(&podman, &name, "Paused");
    podman.ok(&["unpause", &name]);
    wait_status(&podman, &name, "Up");
    // `sleep` is PID 1 with no TERM handler: podman stop sends TERM, waits, then KILL.
    podman.ok(&["stop", "--time", "1", &name]);
    wait_status(&podman, &name, "Exited");
    podman.ok(&["rm", &name]);
    assert!(!podman.ok(&["ps", "--all"]).contains(&name));
    for controller in cgroup_tops() {
        let dir = controller.join("boxlab/podman");
        let left: Vec<String> = fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir() && e.file_name() != "conmon")
            .map(|e| e.path().display().to_string())
            .collect();
        assert!(left.is_empty(), "container cgroups left behind: {left:?}");
    }
}
