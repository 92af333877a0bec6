//! The checker against real lab states: each chapter's result set up for real (a cgroup with
//! limits and a process in it; a command in namespaces; a container of our runtime), checked by
//! the `boxlab-check` binary, and a wrong or missing state that must fail. Every test removes
//! what it made, also when it fails (guards that kill, reap and remove on drop).

use std::fs;
use std::path::Path;
use std::process::{Child, Command};

use ch02_namespaces::{IsolatedChild, Isolation};
use ch03_cgroups::{detect, Cgroup, CgroupPath, Limits};
use labkit::{require_root, ScratchDir};

/// What one run of the checker printed, and how it exited.
struct Outcome {
    stdout: String,
    code: Option<i32>,
}

impl Outcome {
    fn last_line(&self) -> &str {
        self.stdout.lines().last().unwrap_or("")
    }
}

fn check(args: &[&str]) -> Outcome {
    let out = Command::new(env!("CARGO_BIN_EXE_boxlab-check"))
        .args(args)
        .output()
        .expect("run boxlab-check");
    let outcome = Outcome {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        code: out.status.code(),
    };
    eprintln!("$ boxlab-check {}\n{}", args.join(" "), outcome.stdout);
    outcome
}

/// Every line but the header and the summary is one check, `ok   ` or `FAIL `.
fn assert_one_line_per_check(outcome: &Outcome, checks: usize) {
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    assert!(
        lines[0].starts_with("boxlab-check ch"),
        "{}",
        outcome.stdout
    );
    let body = &lines[1..lines.len() - 1];
    assert_eq!(body.len(), checks, "{}", outcome.stdout);
    for line in body {
        assert!(
            line.starts_with("ok   ") || line.starts_with("FAIL "),
            "{line}"
        );
    }
}

// ---- chapter 3 ----

/// A cgroup with the lab's limits and a `sleep` inside; drop kills, reaps and removes.
struct CgroupLab {
    child: Child,
    cgroup: Option<Cgroup>,
}

impl CgroupLab {
    fn start(path: &CgroupPath, memory: u64, pids: u64, with_process: bool) -> CgroupLab {
        let layout = detect().unwrap();
        let limits = Limits {
            memory: Some(memory),
            pids: Some(pids),
            ..Limits::default()
        };
        let (cgroup, _) = Cgroup::create(&layout, path, &limits).unwrap();
        let child = Command::new("sleep").arg("600").spawn().unwrap();
        let lab = CgroupLab {
            child,
            cgroup: Some(cgroup),
        };
        if with_process {
            let pid = nix::unistd::Pid::from_raw(lab.child.id() as i32);
            lab.cgroup.as_ref().unwrap().add_process(pid).unwrap();
        }
        lab
    }
}

impl Drop for CgroupLab {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(cgroup) = self.cgroup.take() {
            let _ = cgroup.remove();
        }
    }
}

#[test]
fn ch03_passes_for_the_labs_cgroup_and_process() {
    if !require_root("ch03_passes_for_the_labs_cgroup_and_process") {
        return;
    }
    let path = CgroupPath::unique("labcheck-pass");
    let _lab = CgroupLab::start(&path, 64 << 20, 20, true);
    let cgroup = path.as_path().display().to_string();
    let out = check(&[
        "ch03", "--cgroup", &cgroup, "--memory", "64m", "--pids", "20",
    ]);
    assert_one_line_per_check(&out, 6);
    assert_eq!(out.last_line(), "6 passed, 0 failed");
    assert_eq!(out.code, Some(0));
    assert!(out.stdout.contains("ok   memory limit: 67108864 (64 MiB)"));
    assert!(out.stdout.contains("(sleep 600)"));
}

#[test]
fn ch03_fails_on_a_wrong_limit_an_empty_cgroup_and_no_cgroup() {
    if !require_root("ch03_fails_on_a_wrong_limit_an_empty_cgroup_and_no_cgroup") {
        return;
    }
    // The student gave --memory 128m where the lab asked for 64m.
    let path = CgroupPath::unique("labcheck-wrong");
    let lab = CgroupLab::start(&path, 128 << 20, 20, true);
    let cgroup = path.as_path().display().to_string();
    let out = check(&[
        "ch03", "--cgroup", &cgroup, "--memory", "64m", "--pids", "20",
    ]);
    assert_one_line_per_check(&out, 6);
    assert_eq!(out.last_line(), "5 passed, 1 failed");
    assert_eq!(out.code, Some(1));
    assert!(
        out.stdout
            .contains("FAIL memory limit: expected 67108864 (64 MiB)")
            && out
                .stdout
                .contains("found 134217728 (128 MiB) in /sys/fs/cgroup/")
            && out.stdout.contains("(hint: start it with --memory 64m)"),
        "{}",
        out.stdout
    );
    drop(lab);

    // The command has ended: the cgroup is there, nothing is inside.
    let path = CgroupPath::unique("labcheck-empty");
    let _empty = CgroupLab::start(&path, 64 << 20, 20, false);
    let cgroup = path.as_path().display().to_string();
    let out = check(&["ch03", "--cgroup", &cgroup]);
    assert_eq!(out.last_line(), "4 passed, 2 failed");
    assert!(out
        .stdout
        .contains("FAIL processes inside: expected at least one process"));
    assert_eq!(out.code, Some(1));

    // Nothing at all.
    let out = check(&["ch03", "--cgroup", "boxlab/labcheck-nothing-here"]);
    assert_one_line_per_check(&out, 6);
    assert_eq!(out.last_line(), "1 passed, 5 failed");
    assert_eq!(out.code, Some(1));
}

// ---- chapter 2 ----

/// Chapter 2's container running `sleep 600` with hostname `lab`; dropping the handle kills and
/// reaps it.
fn ch02_container() -> IsolatedChild {
    let program = ch01_process::exec::Program::new(&["sleep", "600"]).unwrap();
    Isolation::container_defaults()
        .hostname("lab")
        .spawn(&program)
        .unwrap()
}

#[test]
fn ch02_passes_for_a_running_container() {
    if !require_root("ch02_passes_for_a_running_container") {
        return;
    }
    let child = ch02_container();
    let pid = child.pid().as_raw().to_string();
    // The command is exec'd a moment after init is up.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !labcheck::procfs::children(child.pid().as_raw())
        .iter()
        .any(|&c| labcheck::procfs::cmdline(c) == ["sleep", "600"])
    {
        assert!(std::time::Instant::now() < deadline, "sleep never ran");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let out = check(&["ch02", "--pid", &pid]);
    assert_one_line_per_check(&out, 7);
    assert_eq!(out.last_line(), "7 passed, 0 failed");
    assert_eq!(out.code, Some(0));
    assert!(out.stdout.contains("ok   hostname: 'lab'"));
    assert!(out.stdout.contains("'sleep 600' as host pid"));
    assert!(out.stdout.contains("its /proc lists 2 process(es) (1 2)"));

    // The same container, checked for another hostname: exactly that check fails.
    let out = check(&["ch02", "--pid", &pid, "--hostname", "other"]);
    assert_eq!(out.last_line(), "6 passed, 1 failed");
    assert!(out
        .stdout
        .contains("FAIL hostname: expected 'other', found 'lab'"));
    assert_eq!(out.code, Some(1));
}

#[test]
fn ch02_fails_for_a_process_that_is_not_in_a_container() {
    if !require_root("ch02_fails_for_a_process_that_is_not_in_a_container") {
        return;
    }
    // This test process: in the host's namespaces, not PID 1 of anything.
    let pid = std::process::id().to_string();
    let out = check(&["ch02", "--pid", &pid]);
    assert_one_line_per_check(&out, 7);
    assert_eq!(out.last_line(), "0 passed, 7 failed");
    assert!(out
        .stdout
        .contains("which is not PID 1 of a PID namespace of its own"));
    assert_eq!(out.code, Some(1));
}

// ---- chapter 6 ----

/// Removes the bundle the builder made for a container even when the test fails half-way, then
/// the container (kill, delete: its cgroup and state go too).
struct Ch06Lab {
    container: Option<ch06_oci::builder::Container>,
    id: String,
}

impl Drop for Ch06Lab {
    fn drop(&mut self) {
        if let Some(container) = self.container.take() {
            let _ = container.remove();
        }
        let bundles = Path::new(ch06_oci::builder::BUNDLES_DIR);
        let _ = fs::remove_dir_all(bundles.join(&self.id));
        let _ = fs::remove_dir(bundles);
    }
}

/// A busybox image built by chapter 4 into `<scratch>/data`.
fn busybox_image(scratch: &ScratchDir, tag: &str) -> std::path::PathBuf {
    use ch04_rootfs::build::{build, BuildOptions};
    let data = scratch.join("data");
    let context = scratch.join("context");
    fs::create_dir_all(&context).unwrap();
    fs::copy(
        labkit::find_static_busybox().unwrap(),
        context.join("busybox"),
    )
    .unwrap();
    fs::write(
        context.join("Boxfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nCMD [\"sh\"]\n",
    )
    .unwrap();
    let layout = ch04_rootfs::image::OciLayout::create(data.join("oci")).unwrap();
    let store = ch04_rootfs::store::LayerStore::open(data.join("layers")).unwrap();
    build(BuildOptions {
        context,
        boxfile: None,
        tag: Some(tag.into()),
        layout: &layout,
        store: &store,
        cache_dir: data.join("build-cache"),
        on_step: None,
    })
    .unwrap();
    data
}

#[test]
fn ch06_passes_for_a_running_container_and_fails_once_it_is_gone() {
    if !require_root("ch06_passes_for_a_running_container_and_fails_once_it_is_gone") {
        return;
    }
    let scratch = ScratchDir::new("labcheck-ch06").unwrap();
    let data = busybox_image(&scratch, "boxlab-labcheck:1");
    let root = scratch.join("state");
    let root_arg = root.display().to_string();
    let id = format!("labcheck-{}", std::process::id());
    let mut lab = Ch06Lab {
        container: None,
        id: id.clone(),
    };
    let run = ch06_oci::builder::Container::builder("boxlab-labcheck:1")
        .images(&data)
        .root(&root)
        .name(&id)
        .mem_limit("64m")
        .command(["sleep", "600"])
        .detach(true)
        .run()
        .unwrap();
    let ch06_oci::builder::Run::Detached(container) = run else {
        panic!("not detached: {run:?}")
    };
    lab.container = Some(container);
    // `start` returns once the gate is open; the exec of `sleep` follows a moment later.
    let state: serde_json::Value =
        serde_json::from_str(&lab.container.as_ref().unwrap().state().unwrap()).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default() != b"sleep\x00600\x00" {
        assert!(std::time::Instant::now() < deadline, "sleep never ran");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }

    let out = check(&["ch06", "--root", &root_arg, "--id", &id]);
    assert_one_line_per_check(&out, 8);
    assert_eq!(out.last_line(), "8 passed, 0 failed");
    assert_eq!(out.code, Some(0));
    assert!(out
        .stdout
        .contains("ok   command: 'sleep 600' running as PID 1"));

    // Another id: not listed, and nothing else can be checked.
    let out = check(&["ch06", "--root", &root_arg, "--id", "mybox"]);
    assert_one_line_per_check(&out, 8);
    assert_eq!(out.last_line(), "0 passed, 8 failed");
    assert!(out.stdout.contains(&format!("found only {id}")));
    assert_eq!(out.code, Some(1));

    // Killed: listed, but stopped.
    lab.container
        .as_ref()
        .unwrap()
        .kill(nix::sys::signal::Signal::SIGKILL)
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while labcheck::procfs::alive(pid as i32) {
        assert!(std::time::Instant::now() < deadline, "init did not die");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let out = check(&["ch06", "--root", &root_arg, "--id", &id]);
    assert_eq!(out.last_line(), "1 passed, 7 failed");
    assert!(out
        .stdout
        .contains("FAIL running: expected status running, found status stopped"));
    assert_eq!(out.code, Some(1));

    drop(lab);
    assert!(!root.join(&id).exists(), "state left behind");
}
