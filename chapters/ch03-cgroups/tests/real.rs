//! Limits on this host's real cgroups, observed by what the limited process experiences.

use std::fs::{self, File};
use std::io::Read;
use std::path::PathBuf;
use std::process::Command;

use ch01_process::exec::Program;
use ch02_namespaces::{Exit, Isolation};
use ch03_cgroups::{
    detect, run_confined, Cgroup, CgroupError, CgroupPath, Layout, Limits, V1Controller,
};
use labkit::require_root;
use nix::sys::signal::Signal;
use nix::unistd::{pipe, Pid};

const BIN: &str = env!("CARGO_BIN_EXE_ch03-cgroups");

fn workload(args: &[&str]) -> Program {
    let mut argv = vec![BIN];
    argv.extend_from_slice(args);
    Program::new(&argv).unwrap()
}

fn new_cgroup(label: &str, limits: &Limits) -> Cgroup {
    let layout = detect().unwrap();
    Cgroup::create(&layout, &CgroupPath::unique(label), limits)
        .unwrap()
        .0
}

#[test]
fn memory_limit_ends_in_an_oom_kill_and_the_cgroup_is_removed() {
    if !require_root("memory_limit_ends_in_an_oom_kill_and_the_cgroup_is_removed") {
        return;
    }
    let limits = Limits {
        memory: Some(32 << 20),
        memory_swap: Some(32 << 20),
        ..Limits::default()
    };
    let cgroup = new_cgroup("t-oom", &limits);
    let dirs: Vec<PathBuf> = cgroup.dirs().map(PathBuf::from).collect();
    let (reader, writer) = pipe().unwrap();
    let run = run_confined(
        Isolation::container_defaults().stdout(writer),
        cgroup,
        &workload(&["__hog", "4"]),
    )
    .unwrap();
    let mut out = String::new();
    File::from(reader).read_to_string(&mut out).unwrap();
    assert_eq!(run.exit, Exit::Signal(Signal::SIGKILL), "{out}");
    assert!(run.usage.oom_kills.unwrap_or(0) >= 1, "{:?}", run.usage);
    assert!(
        out.contains("holding 8 MiB") && !out.contains("holding 64 MiB"),
        "stopped near 32 MiB:\n{out}"
    );
    for dir in dirs {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

#[test]
fn pids_limit_makes_fork_fail() {
    if !require_root("pids_limit_makes_fork_fail") {
        return;
    }
    let cgroup = new_cgroup(
        "t-pids",
        &Limits {
            pids: Some(10),
            ..Limits::default()
        },
    );
    let (reader, writer) = pipe().unwrap();
    let run = run_confined(
        Isolation::container_defaults().stdout(writer),
        cgroup,
        &workload(&["__forkbomb"]),
    )
    .unwrap();
    let mut out = String::new();
    File::from(reader).read_to_string(&mut out).unwrap();
    assert_eq!(run.exit, Exit::Code(0));
    assert!(
        out.contains("fork() failed after") && out.contains("EAGAIN"),
        "{out}"
    );
    let children: usize = out
        .split("after ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(children < 10, "no more than the limit: {children}");
}

#[test]
fn cpu_quota_holds_a_burner_near_its_limit() {
    if !require_root("cpu_quota_holds_a_burner_near_its_limit") {
        return;
    }
    let cgroup = new_cgroup(
        "t-cpu",
        &Limits {
            cpu_millis: Some(500),
            ..Limits::default()
        },
    );
    let run = run_confined(
        Isolation::container_defaults(),
        cgroup,
        &workload(&["__burn", "1.2"]),
    )
    .unwrap();
    // The kernel says the quota stopped it: a fact that holds however busy the machine is
    // (a lower bound on the share it got would not: under load it gets less than its quota).
    let throttled = run.usage.cpu_throttled.expect("cpu.stat's nr_throttled");
    assert!(throttled > 0, "the quota never throttled the burner");
    // And it never got more than its quota: unlimited, the burner would use ~1.0 CPU. A wide
    // margin: this is a behaviour check, not a benchmark.
    let share = run.usage.cpu_time.unwrap().as_secs_f64() / run.wall_time.as_secs_f64();
    assert!(share < 0.7, "got {share:.2} CPU under a 0.5 quota");
}

#[test]
fn limits_read_back_from_the_files() {
    if !require_root("limits_read_back_from_the_files") {
        return;
    }
    let layout = detect().unwrap();
    let limits = Limits {
        memory: Some(64 << 20),
        cpu_millis: Some(1500),
        cpu_shares: Some(512),
        pids: Some(42),
        cpuset_cpus: Some("0".into()),
        ..Limits::default()
    };
    let (cgroup, written) =
        Cgroup::create(&layout, &CgroupPath::unique("t-files"), &limits).unwrap();
    let read = |dir: &std::path::Path, file: &str| {
        fs::read_to_string(dir.join(file))
            .unwrap()
            .trim()
            .to_string()
    };
    match &layout {
        Layout::V1 { .. } | Layout::Hybrid { .. } => {
            let memory = cgroup.v1_dir(V1Controller::Memory).unwrap();
            assert_eq!(
                read(memory, "memory.limit_in_bytes"),
                (64u64 << 20).to_string()
            );
            let cpu = cgroup.v1_dir(V1Controller::Cpu).unwrap();
            assert_eq!(read(cpu, "cpu.cfs_quota_us"), "150000");
            assert_eq!(read(cpu, "cpu.cfs_period_us"), "100000");
            assert_eq!(read(cpu, "cpu.shares"), "512");
            assert_eq!(
                read(cgroup.v1_dir(V1Controller::Pids).unwrap(), "pids.max"),
                "42"
            );
            assert_eq!(
                read(cgroup.v1_dir(V1Controller::Cpuset).unwrap(), "cpuset.cpus"),
                "0"
            );
        }
        Layout::V2 { .. } => {
            let dir = cgroup.unified_dir().unwrap();
            assert_eq!(read(dir, "memory.max"), (64u64 << 20).to_string());
            assert_eq!(read(dir, "cpu.max"), "150000 100000");
            assert_eq!(read(dir, "pids.max"), "42");
        }
    }
    assert!(written.iter().any(|w| w.value == "42"));
    cgroup.remove().unwrap();
}

#[test]
fn removing_kills_what_is_still_inside() {
    if !require_root("removing_kills_what_is_still_inside") {
        return;
    }
    let cgroup = new_cgroup("t-kill", &Limits::default());
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = Pid::from_raw(sleeper.id() as i32);
    cgroup.add_process(pid).unwrap();
    assert_eq!(cgroup.processes(), vec![pid]);
    let dirs: Vec<PathBuf> = cgroup.dirs().map(PathBuf::from).collect();
    cgroup.remove().unwrap();
    let status = sleeper.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(dirs.iter().all(|d| !d.exists()));
}

#[test]
fn an_existing_cgroup_reopens_kept_or_removed() {
    if !require_root("an_existing_cgroup_reopens_kept_or_removed") {
        return;
    }
    let layout = detect().unwrap();
    let path = CgroupPath::unique("t-open");
    let limits = Limits {
        pids: Some(42),
        ..Limits::default()
    };
    let (made, _) = Cgroup::create(&layout, &path, &limits).unwrap();
    let dirs: Vec<PathBuf> = made.dirs().map(PathBuf::from).collect();
    let mut leftovers = KeptCgroup {
        layout: layout.clone(),
        path: path.clone(),
        sleeper: None,
    };
    made.keep();
    assert!(dirs.iter().all(|d| d.is_dir()), "keep() removed {dirs:?}");

    let sleeper = leftovers
        .sleeper
        .insert(Command::new("sleep").arg("30").spawn().unwrap());
    let pid = Pid::from_raw(sleeper.id() as i32);
    let opened = Cgroup::open(&layout, &path).unwrap();
    let reopened: Vec<PathBuf> = opened.dirs().map(PathBuf::from).collect();
    assert_eq!(reopened, dirs);
    opened.add_process(pid).unwrap();
    assert_eq!(opened.processes(), vec![pid]);
    opened.keep();

    let again = Cgroup::open(&layout, &path).unwrap();
    assert_eq!(again.processes(), vec![pid]);
    again.remove().unwrap();
    if let Some(sleeper) = leftovers.sleeper.as_mut() {
        let _ = sleeper.wait();
    }
    assert!(dirs.iter().all(|d| !d.exists()));
    let err = Cgroup::open(&layout, &path).unwrap_err().to_string();
    assert!(err.contains("does not exist"), "{err}");
}

/// A kept cgroup has no handle left to remove it: this ends the test's `sleep` and removes the
/// cgroup when dropped, so a failed assertion leaves neither behind.
struct KeptCgroup {
    layout: Layout,
    path: CgroupPath,
    sleeper: Option<std::process::Child>,
}

impl Drop for KeptCgroup {
    fn drop(&mut self) {
        if let Some(mut sleeper) = self.sleeper.take() {
            let _ = sleeper.kill();
            let _ = sleeper.wait();
        }
        // Gone already when the test got to its own remove().
        if let Ok(cgroup) = Cgroup::open(&self.layout, &self.path) {
            let _ = cgroup.remove();
        }
    }
}

#[test]
fn a_container_killed_from_outside_leaves_no_cgroup() {
    if !require_root("a_container_killed_from_outside_leaves_no_cgroup") {
        return;
    }
    let cgroup = std::sync::Arc::new(new_cgroup(
        "t-killed",
        &Limits {
            pids: Some(50),
            ..Limits::default()
        },
    ));
    let dirs: Vec<PathBuf> = cgroup.dirs().map(PathBuf::from).collect();
    let isolation = ch03_cgroups::confine(Isolation::container_defaults(), cgroup.clone());
    let child = isolation
        .spawn(&Program::new(&["sleep", "30"]).unwrap())
        .unwrap();
    assert!(!cgroup.processes().is_empty());
    child.signal(Signal::SIGKILL).unwrap();
    assert_eq!(child.wait().unwrap(), Exit::Signal(Signal::SIGKILL));
    drop(isolation);
    std::sync::Arc::try_unwrap(cgroup)
        .unwrap()
        .remove()
        .unwrap();
    assert!(dirs.iter().all(|d| !d.exists()));
}

#[test]
fn bad_limits_create_nothing() {
    if !require_root("bad_limits_create_nothing") {
        return;
    }
    let layout = detect().unwrap();
    let path = CgroupPath::unique("t-bad");
    for (limits, reason) in [
        (
            Limits {
                memory: Some(1 << 20),
                ..Limits::default()
            },
            "below the minimum",
        ),
        (
            Limits {
                cpu_millis: Some(1000 * 4096),
                ..Limits::default()
            },
            "this machine has",
        ),
        (
            Limits {
                cpuset_cpus: Some("4095".into()),
                ..Limits::default()
            },
            "does not exist",
        ),
    ] {
        let err = Cgroup::create(&layout, &path, &limits).unwrap_err();
        assert!(
            matches!(err, CgroupError::BadValue { .. }) && err.to_string().contains(reason),
            "{err}"
        );
    }
    let leaf = layout.root().join("memory").join(path.as_path());
    assert!(!leaf.exists() && !layout.root().join(path.as_path()).exists());
}

#[test]
fn a_path_outside_the_root_is_refused() {
    let err = CgroupPath::new("../../etc").unwrap_err().to_string();
    assert!(err.contains("'..' would leave the cgroup root"), "{err}");
}

#[test]
fn a_real_cgroup2_tree_kills_with_cgroup_kill() {
    if !require_root("a_real_cgroup2_tree_kills_with_cgroup_kill") {
        return;
    }
    // On a v2 host the root; on a hybrid host (like CI's) the cgroup2 mount at unified/.
    let root = match detect().unwrap() {
        Layout::V2 { root } => root,
        Layout::Hybrid { unified, .. } => unified,
        Layout::V1 { .. } => {
            assert!(!labkit::in_ci(), "CI hosts have cgroup2 (hybrid or v2)");
            eprintln!("skipped a_real_cgroup2_tree_kills_with_cgroup_kill: this host has no cgroup2 mount");
            return;
        }
    };
    let layout = Layout::V2 { root };
    let (cgroup, _) =
        Cgroup::create(&layout, &CgroupPath::unique("t-v2"), &Limits::default()).unwrap();
    let dir = cgroup.unified_dir().unwrap().to_path_buf();
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    cgroup
        .add_process(Pid::from_raw(sleeper.id() as i32))
        .unwrap();
    assert_eq!(
        fs::read_to_string(dir.join("cgroup.procs")).unwrap().trim(),
        sleeper.id().to_string()
    );
    assert!(
        dir.join("cgroup.kill").exists(),
        "kernel 5.14+ has cgroup.kill"
    );
    cgroup.remove().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(sleeper.wait().unwrap().signal(), Some(libc::SIGKILL));
    assert!(!dir.exists());
}

/// Runtimes share the `boxlab` parent and remove it when it is empty, so one runtime's removal
/// races with another's creation under it (seen as `create` failing with ENODEV on the parent's
/// cpuset.cpus while containers were made and deleted in parallel). Every create must succeed.
#[test]
fn creates_and_removes_racing_on_the_shared_parent_all_succeed() {
    if !require_root("creates_and_removes_racing_on_the_shared_parent_all_succeed") {
        return;
    }
    // A racer stops at its first error instead of panicking: the others finish and remove
    // what they made before the test fails.
    let racers: Vec<_> = (0..3)
        .map(|racer| {
            std::thread::spawn(move || -> Result<(), String> {
                let layout = detect().unwrap();
                for round in 0..1000 {
                    let path = CgroupPath::unique("race");
                    let (cgroup, _) = Cgroup::create(&layout, &path, &Limits::default())
                        .map_err(|e| format!("racer {racer}, round {round}: {e}"))?;
                    cgroup
                        .remove()
                        .map_err(|e| format!("racer {racer}, round {round}: removing: {e}"))?;
                }
                Ok(())
            })
        })
        .collect();
    let failures: Vec<String> = racers
        .into_iter()
        .filter_map(|racer| racer.join().unwrap().err())
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}
