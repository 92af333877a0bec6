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

/// The whole verdict: one line per check (`total` of them), the summary line saying `passed`
/// of them passed, and the exit status that goes with it (0 only when none failed).
#[track_caller]
fn assert_summary(outcome: &Outcome, total: usize, passed: usize) {
    assert_one_line_per_check(outcome, total);
    assert_eq!(
        outcome.last_line(),
        format!("{passed} passed, {} failed", total - passed),
        "{}",
        outcome.stdout
    );
    let code = if passed == total { 0 } else { 1 };
    assert_eq!(outcome.code, Some(code), "{}", outcome.stdout);
}

/// Waits until `sleep 600` runs as the container's init `pid` (exec'd in place) or as one of
/// its children (exec'd a moment after a chapter 2 init is up).
#[track_caller]
fn wait_for_sleep(pid: i32) {
    let sleeping = |p: i32| labcheck::procfs::cmdline(p) == ["sleep", "600"];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !sleeping(pid) && !labcheck::procfs::children(pid).into_iter().any(sleeping) {
        assert!(std::time::Instant::now() < deadline, "sleep never ran");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Every line but the header and the summary is one check, `ok   ` or `FAIL `.
#[track_caller]
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
    assert_summary(&out, 6, 6);
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
    assert_summary(&out, 6, 5);
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
    assert_summary(&out, 6, 4);
    assert!(out
        .stdout
        .contains("FAIL processes inside: expected at least one process"));

    // Nothing at all.
    let out = check(&["ch03", "--cgroup", "boxlab/labcheck-nothing-here"]);
    assert_summary(&out, 6, 1);
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
    wait_for_sleep(child.pid().as_raw());
    let out = check(&["ch02", "--pid", &pid]);
    assert_summary(&out, 7, 7);
    assert!(out.stdout.contains("ok   hostname: 'lab'"));
    assert!(out.stdout.contains("'sleep 600' as host pid"));
    assert!(out.stdout.contains("its /proc lists 2 process(es) (1 2)"));

    // The same container, checked for another hostname: exactly that check fails.
    let out = check(&["ch02", "--pid", &pid, "--hostname", "other"]);
    assert_summary(&out, 7, 6);
    assert!(out
        .stdout
        .contains("FAIL hostname: expected 'other', found 'lab'"));
}

#[test]
fn ch02_fails_for_a_process_that_is_not_in_a_container() {
    if !require_root("ch02_fails_for_a_process_that_is_not_in_a_container") {
        return;
    }
    // This test process: in the host's namespaces, not PID 1 of anything.
    let pid = std::process::id().to_string();
    let out = check(&["ch02", "--pid", &pid]);
    assert_summary(&out, 7, 0);
    assert!(out
        .stdout
        .contains("which is not PID 1 of a PID namespace of its own"));
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

/// Chapter 4's busybox image, tagged `tag`, under `<scratch>/data`; returns that directory.
fn busybox_image(scratch: &ScratchDir, tag: &str) -> std::path::PathBuf {
    let data = scratch.join("data");
    ch04_rootfs::build::busybox_image(&data, tag).unwrap();
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
    wait_for_sleep(pid as i32);

    let out = check(&["ch06", "--root", &root_arg, "--id", &id]);
    assert_summary(&out, 8, 8);
    assert!(out
        .stdout
        .contains("ok   command: 'sleep 600' running as PID 1"));

    // Another id: not listed, and nothing else can be checked.
    let out = check(&["ch06", "--root", &root_arg, "--id", "mybox"]);
    assert_summary(&out, 8, 0);
    assert!(out.stdout.contains(&format!("found only {id}")));

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
    assert_summary(&out, 8, 1);
    assert!(out
        .stdout
        .contains("FAIL running: expected status running, found status stopped"));

    drop(lab);
    assert!(!root.join(&id).exists(), "state left behind");
}

// ---- chapter 1 ----

/// The lab's `ch01-process --serve KIND`, made the same way: a process forked from this test
/// (the "server") starts a worker or a zygote with chapter 1's library and holds it until its
/// `hold` pipe reaches end-of-file. Drop closes the pipe, waits for the server (which stops its
/// worker), and kills both if they linger.
struct ServeLab {
    server: nix::unistd::Pid,
    worker: i32,
    hold: Option<std::os::fd::OwnedFd>,
}

impl ServeLab {
    fn start(zygote: bool) -> ServeLab {
        use ch01_process::demo::Model;
        use nix::fcntl::OFlag;
        use std::io::{Read, Write};
        use std::os::fd::AsRawFd;
        let (ready_r, ready_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        let (hold_r, hold_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        let keep = [ready_w.as_raw_fd(), hold_r.as_raw_fd()];
        let server = ch01_process::child::fork_child(&keep, move || {
            let answer = |model: &mut Model, request: &[u8]| {
                let mut reply = model.answer(request);
                reply.extend_from_slice(
                    format!(" (answered by pid {})", std::process::id()).as_bytes(),
                );
                reply
            };
            let (pid, stop): (i32, Box<dyn FnOnce()>) = if zygote {
                let z = ch01_process::Zygote::start_with(Model::load, answer).unwrap();
                (z.pid().as_raw(), Box::new(move || drop(z.stop())))
            } else {
                let w = ch01_process::Worker::start_with(Model::load, answer).unwrap();
                (w.pid().as_raw(), Box::new(move || drop(w.stop())))
            };
            let mut ready = fs::File::from(ready_w);
            ready.write_all(&pid.to_le_bytes()).unwrap();
            drop(ready);
            let mut rest = Vec::new();
            let _ = fs::File::from(hold_r).read_to_end(&mut rest);
            stop();
            0
        })
        .unwrap();
        let mut pid = [0u8; 4];
        let read = fs::File::from(ready_r).read_exact(&mut pid);
        let lab = ServeLab {
            server,
            worker: i32::from_le_bytes(pid),
            hold: Some(hold_w),
        };
        read.expect("the server never said its worker was ready");
        lab
    }
}

impl Drop for ServeLab {
    fn drop(&mut self) {
        use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
        drop(self.hold.take());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match waitpid(self.server, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                Ok(WaitStatus::StillAlive) => {
                    let kill = nix::sys::signal::SIGKILL;
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.worker), kill);
                    let _ = nix::sys::signal::kill(self.server, kill);
                    let _ = waitpid(self.server, None);
                    break;
                }
                _ => break,
            }
        }
    }
}

#[test]
fn ch01_passes_for_a_waiting_worker_and_a_zygote() {
    if !require_root("ch01_passes_for_a_waiting_worker_and_a_zygote") {
        return;
    }
    let lab = ServeLab::start(false);
    let worker = lab.worker.to_string();
    let out = check(&["ch01", "--pid", &worker]);
    assert_summary(&out, 6, 6);
    assert!(out.stdout.contains(&format!(
        "ok   pre-forked: pid {worker}, ppid {}",
        lab.server
    )));
    assert!(out
        .stdout
        .contains(&format!("(answered by pid {worker})' in")));
    // The checker's request left the worker as it found it: it answers the next one too.
    let out = check(&["ch01", "--pid", &worker]);
    assert_summary(&out, 6, 6);

    // The same worker, checked as a zygote: its reply comes from itself, not from a child.
    let out = check(&["ch01", "--pid", &worker, "--kind", "zygote"]);
    assert_summary(&out, 6, 5);
    assert!(out.stdout.contains(&format!(
        "FAIL request -> reply: expected a reply answered by a child of the zygote (not pid {worker})"
    )));
    drop(lab);

    let lab = ServeLab::start(true);
    let zygote = lab.worker.to_string();
    let out = check(&["ch01", "--pid", &zygote, "--kind", "zygote"]);
    assert_summary(&out, 6, 6);
}

#[test]
fn ch01_fails_once_the_worker_is_gone_and_for_an_execd_child() {
    if !require_root("ch01_fails_once_the_worker_is_gone_and_for_an_execd_child") {
        return;
    }
    // Ctrl-D: the server stops its worker and exits.
    let lab = ServeLab::start(false);
    let worker = lab.worker.to_string();
    drop(lab);
    let out = check(&["ch01", "--pid", &worker]);
    assert_summary(&out, 6, 0);
    assert!(out.stdout.contains(&format!("found no process {worker}")));

    // A child that exec'd another program is not a pre-forked worker.
    let mut sleep = Command::new("sleep").arg("600").spawn().unwrap();
    let pid = sleep.id().to_string();
    let out = check(&["ch01", "--pid", &pid]);
    let _ = sleep.kill();
    let _ = sleep.wait();
    assert_summary(&out, 6, 1);
    assert!(out.stdout.contains("FAIL pre-forked: expected pid"));
}

// ---- chapter 4 ----

/// A chapter 4 container running `sleep 600`, from an image (an overlay of its layers) or from a
/// directory. Fields drop in order: the container (killed and reaped) before its directory.
struct Ch04Lab {
    child: IsolatedChild,
    _dir: Option<ch04_rootfs::image_run::ContainerDir>,
}

impl Ch04Lab {
    fn pid(&self) -> String {
        self.child.pid().as_raw().to_string()
    }

    /// Waits until init has exec'd the command (a moment after it is up).
    fn wait_for_sleep(self) -> Self {
        wait_for_sleep(self.child.pid().as_raw());
        self
    }

    fn image(data: &Path, tag: &str, read_only: bool) -> Ch04Lab {
        let layout = ch04_rootfs::image::OciLayout::open(data.join("oci")).unwrap();
        let store = ch04_rootfs::store::LayerStore::open(data.join("layers")).unwrap();
        let (isolation, program, dir) = ch04_rootfs::image_run::prepare_image_container(
            &layout,
            &store,
            tag,
            &["sleep".to_string(), "600".to_string()],
            Isolation::container_defaults(),
            read_only,
            |_, _| {},
        )
        .unwrap();
        let child = isolation.spawn(&program).unwrap();
        Ch04Lab {
            child,
            _dir: Some(dir),
        }
        .wait_for_sleep()
    }

    fn rootfs(dir: &Path) -> Ch04Lab {
        let program = ch01_process::exec::Program::new(&["sleep", "600"]).unwrap();
        let isolation =
            ch04_rootfs::with_rootfs(Isolation::container_defaults(), dir, false).unwrap();
        Ch04Lab {
            child: isolation.spawn(&program).unwrap(),
            _dir: None,
        }
        .wait_for_sleep()
    }
}

#[test]
fn ch04_passes_for_an_image_container_and_fails_on_what_it_was_not_asked() {
    if !require_root("ch04_passes_for_an_image_container_and_fails_on_what_it_was_not_asked") {
        return;
    }
    let scratch = ScratchDir::new("labcheck-ch04").unwrap();
    let data = busybox_image(&scratch, "boxlab-labcheck-ch04:1");
    let lab = Ch04Lab::image(&data, "boxlab-labcheck-ch04:1", true);
    let pid = lab.pid();
    let out = check(&["ch04", "--pid", &pid]);
    assert_summary(&out, 7, 7);
    assert!(out
        .stdout
        .contains("ok   overlay: overlay with 2 lower layer(s)"));
    assert!(out.stdout.contains("and upperdir /run/boxlab/containers/"));
    assert!(out.stdout.contains("ok   read-only root: / mounted ro"));

    // Checked as a writable --rootfs container running another command: three checks fail.
    let out = check(&[
        "ch04",
        "--pid",
        &pid,
        "--from",
        "rootfs",
        "--writable",
        "--command",
        "sleep 60",
    ]);
    assert_summary(&out, 7, 4);
    assert!(out
        .stdout
        .contains("FAIL bind-mounted root: expected / a bind mount"));
    assert!(out
        .stdout
        .contains("FAIL read-only root: expected / mounted rw"));
    assert!(out
        .stdout
        .contains("FAIL command: expected 'sleep 60' running in the container, found 'sleep 600'"));
    drop(lab);

    // Writable this time, where the lab asked for --read-only.
    let lab = Ch04Lab::image(&data, "boxlab-labcheck-ch04:1", false);
    let out = check(&["ch04", "--pid", &lab.pid()]);
    assert_summary(&out, 7, 6);
    assert!(out.stdout.contains(
        "FAIL read-only root: expected / mounted ro (the lab asked for --read-only), found / mounted rw"
    ));
}

#[test]
fn ch04_passes_for_a_rootfs_container_and_fails_for_a_host_process() {
    if !require_root("ch04_passes_for_a_rootfs_container_and_fails_for_a_host_process") {
        return;
    }
    let scratch = ScratchDir::new("labcheck-ch04-rootfs").unwrap();
    let rootfs = labkit::busybox_rootfs(&scratch.join("rootfs")).unwrap();
    let lab = Ch04Lab::rootfs(&rootfs);
    let out = check(&[
        "ch04",
        "--pid",
        &lab.pid(),
        "--from",
        "rootfs",
        "--writable",
    ]);
    assert_summary(&out, 7, 7);
    assert!(out.stdout.contains(&format!(
        "ok   bind-mounted root: / is {}",
        labkit_fs_type(&rootfs)
    )));
    // As an image container: not an overlay, and not read-only.
    let out = check(&["ch04", "--pid", &lab.pid()]);
    assert_summary(&out, 7, 5);
    drop(lab);

    let pid = std::process::id().to_string();
    let out = check(&["ch04", "--pid", &pid]);
    assert_summary(&out, 7, 0);
}

/// The filesystem type the directory lives on, as mountinfo names it (`ext4`, `tmpfs`).
fn labkit_fs_type(dir: &Path) -> String {
    let canonical = dir.canonicalize().unwrap();
    labcheck::ch04::mounts(std::process::id() as i32)
        .into_iter()
        .filter(|m| canonical.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.len())
        .map(|m| m.fs_type)
        .unwrap()
}

// ---- chapter 5 ----

/// A chapter 5 container on a fake two-GPU host, given `gpus`, running `sleep 600`: the plan, a
/// cgroup with its device rules, and the container in it. Drop kills the container, then
/// removes the cgroup and the plan's state directory.
struct Ch05Lab {
    child: Option<IsolatedChild>,
    _cgroup: Option<std::sync::Arc<Cgroup>>,
    _state: Option<ch05_gpu::gpu_container::StateDir>,
}

impl Drop for Ch05Lab {
    fn drop(&mut self) {
        drop(self.child.take());
        drop(self._cgroup.take());
        drop(self._state.take());
    }
}

impl Ch05Lab {
    fn start(scratch: &ScratchDir, gpus: &str) -> Ch05Lab {
        use ch05_gpu::discover::{build_fake_host, discover, FakeGpu, FakeNodes};
        use ch05_gpu::expose::{build_plan, PlanOptions};
        use ch05_gpu::gpu_container::{apply_rules, rules_for_plan, StateDir};
        let host = scratch.join("host");
        let roots = build_fake_host(
            &host,
            &[FakeGpu::h200(0), FakeGpu::h200(1)],
            FakeNodes::Real,
        )
        .unwrap();
        let rootfs = labkit::busybox_rootfs(&scratch.join("rootfs")).unwrap();
        let selection = ch05_gpu::select::parse_gpus_flag(gpus).unwrap();
        let driver = ch05_gpu::libraries::host_driver_files(&selection.effective_capabilities());
        let plan = build_plan(
            &discover(&roots).unwrap(),
            &selection,
            &driver,
            &PlanOptions::default(),
        )
        .unwrap();
        let mut lab = Ch05Lab {
            child: None,
            _cgroup: None,
            _state: Some(StateDir::create().unwrap()),
        };
        let mut spec = ch04_rootfs::pivot::RootfsSpec {
            path: rootfs,
            ..Default::default()
        };
        plan.extend_spec(&mut spec, lab._state.as_ref().unwrap().path())
            .unwrap();
        let layout = detect().unwrap();
        let (cgroup, _) = Cgroup::create(
            &layout,
            &CgroupPath::unique("labcheck-ch05"),
            &Limits::default(),
        )
        .unwrap();
        let cgroup = std::sync::Arc::new(cgroup);
        lab._cgroup = Some(std::sync::Arc::clone(&cgroup));
        apply_rules(&cgroup, &rules_for_plan(&plan)).unwrap();
        let isolation = ch03_cgroups::confine(
            ch04_rootfs::with_rootfs_spec(Isolation::container_defaults(), spec).unwrap(),
            cgroup,
        );
        let argv = plan.wrap_argv(&["sleep".to_string(), "600".to_string()]);
        let base = vec![format!("PATH={}", ch01_process::exec::DEFAULT_PATH)];
        let program = ch01_process::exec::Program::new(&argv)
            .unwrap()
            .with_env(&plan.env_over(&base))
            .unwrap();
        lab.child = Some(isolation.spawn(&program).unwrap());
        wait_for_sleep(lab.child.as_ref().unwrap().pid().as_raw());
        lab
    }

    fn pid(&self) -> String {
        self.child.as_ref().unwrap().pid().as_raw().to_string()
    }
}

#[test]
fn ch05_passes_for_the_chosen_gpu_and_fails_for_another() {
    if !require_root("ch05_passes_for_the_chosen_gpu_and_fails_for_another") {
        return;
    }
    let scratch = ScratchDir::new("labcheck-ch05").unwrap();
    let lab = Ch05Lab::start(&scratch, "\"device=1\"");
    let pid = lab.pid();
    let host = scratch.join("host").display().to_string();
    let out = check(&["ch05", "--pid", &pid, "--gpus", "1", "--host-root", &host]);
    assert_summary(&out, 6, 6);
    assert!(out
        .stdout
        .contains("ok   GPU nodes in /dev: /dev/nvidia1 = c 195:1"));
    assert!(out
        .stdout
        .contains("ok   other GPU refused: c 195:0: EPERM, refused by the devices cgroup"));
    assert!(out.stdout.contains(
        "CUDA_VISIBLE_DEVICES=0, NVIDIA_VISIBLE_DEVICES=GPU-00000001-1b2c-3d4e-5f60-718293a4b5c6"
    ));

    // The lab asked for GPU 0: everything but the container itself is wrong.
    let out = check(&["ch05", "--pid", &pid, "--gpus", "0", "--host-root", &host]);
    assert_summary(&out, 6, 1);
    assert!(out.stdout.contains(
        "FAIL chosen GPU opens: expected open of c 195:0 past the devices cgroup (no EPERM), found c 195:0: EPERM"
    ));
    assert!(out.stdout.contains(
        "FAIL other GPU refused: expected open of c 195:1 (a GPU not given) refused with EPERM, found c 195:1: ENXIO"
    ));
    assert!(out.stdout.contains(
        "FAIL environment: expected CUDA_VISIBLE_DEVICES=0 and NVIDIA_VISIBLE_DEVICES naming GPU 0"
    ));
    // Without --host-root the UUID cannot be told apart, and is accepted with a note.
    let out = check(&["ch05", "--pid", &pid, "--gpus", "1"]);
    assert_summary(&out, 6, 6);
    assert!(out
        .stdout
        .contains("not found on this host: give --host-root"));
    drop(lab);

    // No container at all.
    let pid = std::process::id().to_string();
    let out = check(&["ch05", "--pid", &pid]);
    assert_summary(&out, 6, 0);
}

// ---- chapter 7 ----

/// The lab's snapshot: the tiny guest run to its snapshot point and saved into `dir`, as
/// `--stage snapshot --snapshot-dir` does.
fn ch07_snapshot(dir: &Path) {
    use ch07_microvm::{GuestConfig, Snapshot};
    Snapshot::take(&GuestConfig::default(), dir).unwrap();
}

#[test]
fn ch07_passes_for_the_labs_snapshot_and_fails_for_a_damaged_one() {
    if !require_root("ch07_passes_for_the_labs_snapshot_and_fails_for_a_damaged_one") {
        return;
    }
    let scratch = ScratchDir::new("labcheck-ch07").unwrap();
    let dir = scratch.join("snapshot");
    let dir_arg = dir.display().to_string();
    // Nothing there yet.
    let out = check(&["ch07", "--dir", &dir_arg]);
    assert_summary(&out, 5, 0);

    ch07_snapshot(&dir);
    let out = check(&["ch07", "--dir", &dir_arg]);
    assert_summary(&out, 5, 5);
    assert!(out.stdout.contains("ok   restored run: PowerOff"));
    assert!(out.stdout.contains(
        ": the same as an uninterrupted run (60 before the snapshot); last line 'bye: powering off via the i8042'"
    ));
    // Restored once, the snapshot is unchanged: it passes again.
    let out = check(&["ch07", "--dir", &dir_arg]);
    assert_summary(&out, 5, 5);

    // Checked for another guest task: the output is not that task's.
    let out = check(&["ch07", "--dir", &dir_arg, "--cmdline", "task=upper"]);
    assert_summary(&out, 5, 4);
    assert!(out.stdout.contains("FAIL output: expected the rest of an uninterrupted run's output for cmdline 'task=upper ready'"));

    // A damaged vm.state.
    let state = dir.join("vm.state");
    let mut bytes = fs::read(&state).unwrap();
    bytes[0] ^= 0xff;
    fs::write(&state, &bytes).unwrap();
    let out = check(&["ch07", "--dir", &dir_arg]);
    assert_summary(&out, 5, 1);
    assert!(out
        .stdout
        .contains("FAIL vm.state: expected a vm.state that ch07-microvm can read"));
}
