//! Faults and wear: the runtime killed with SIGKILL in the middle of `create` (no destructor,
//! no guard runs), then `delete --force`; and 1,000 create/start/delete cycles. Both must leave
//! nothing behind: no state directory, cgroup, mount or process of the container, and the
//! cycles must not make anything grow (descriptors, processes, mounts, the runtime's memory).
//!
//! The two tests take turns (`SERIAL`): each reaps the zombies of the container processes it
//! adopted, by name, and must not take another test's child from it.

mod common;

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{assert_nothing_left_reaping, stat_of, Lab, BIN};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

static SERIAL: Mutex<()> = Mutex::new(());

/// Our children (adopted: the tests are the subreaper, as containerd's shim is).
fn children() -> Vec<(i32, char, String)> {
    let me = std::process::id() as i32;
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let (state, ppid, comm) = stat_of(pid)?;
            (ppid == me).then_some((pid, state, comm))
        })
        .collect()
}

/// Reaps the dead container processes we adopted: forks of the runtime that never reached
/// `exec` still carry its name. (Only while holding `SERIAL`: nothing else of this binary has a
/// child of that name then.)
fn reap_adopted() {
    for (pid, state, comm) in children() {
        if state == 'Z' && comm.starts_with("ch06-oci") {
            let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
        }
    }
}

/// Starts `create` of `id` with `--debug` on a pipe, reads `lines` of its log (each a step
/// done), and SIGKILLs it there. Returns what it had logged.
fn create_killed_after_lines(lab: &Lab, bundle: &Path, id: &str, lines: usize) -> Vec<String> {
    let mut child = Command::new(BIN)
        .args(["--root", lab.root.to_str().unwrap(), "--debug", "create"])
        .args(["--bundle", bundle.to_str().unwrap(), id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    while seen.len() < lines {
        let mut line = String::new();
        if log.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        seen.push(line.trim_end().to_string());
        // The last line of a whole create. (No end of file to wait for: the container's
        // processes hold the pipe too.)
        if line.contains("created container") {
            break;
        }
    }
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
    child.wait().unwrap();
    seen
}

/// The same without `--debug`, killed `delay` after it started.
fn create_killed_after(lab: &Lab, bundle: &Path, id: &str, delay: Duration) {
    let mut child = Command::new(BIN)
        .args(["--root", lab.root.to_str().unwrap(), "create"])
        .args(["--bundle", bundle.to_str().unwrap(), id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
    child.wait().unwrap();
}

/// Where the test kills `create`.
enum KillPoint {
    /// Right after it has logged this many steps (`--debug` lines).
    AfterLines(usize),
    /// This long after it started.
    AfterDelay(Duration),
}

#[test]
fn create_killed_at_every_step_then_delete_force_leaves_nothing() {
    if !labkit::require_root("create_killed_at_every_step_then_delete_force_leaves_nothing") {
        return;
    }
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new("ch06-fault-kill");
    let bundle = lab.bundle("bundle", &["true"], |_| {});

    // One whole create, to count its steps (the lines of its --debug log).
    let id = lab.id("steps");
    let all = create_killed_after_lines(&lab, &bundle, &id, usize::MAX);
    assert!(
        all.last().is_some_and(|l| l.contains("created container")),
        "a complete create logs its steps: {all:#?}"
    );
    assert!(lab.oci(&["delete", "--force", &id]).ok());
    assert_nothing_left_reaping(&lab, &id, reap_adopted, "a complete create, deleted");

    // Killed after each step in turn (0: before it logged anything), then after a few delays
    // without --debug (the same steps at their ordinary pace).
    let mut cases: Vec<KillPoint> = (0..=all.len()).map(KillPoint::AfterLines).collect();
    cases.extend(
        [0, 1, 2, 4, 7, 10, 15, 20, 30].map(|ms| KillPoint::AfterDelay(Duration::from_millis(ms))),
    );
    for (n, case) in cases.iter().enumerate() {
        let id = lab.id(&format!("kill{n}"));
        let what = &match *case {
            KillPoint::AfterLines(0) => "killed before its first step".to_string(),
            KillPoint::AfterLines(lines) => {
                format!("killed after step {lines} ({})", all[lines - 1])
            }
            KillPoint::AfterDelay(delay) => format!("killed {delay:?} after it started"),
        };
        match *case {
            KillPoint::AfterLines(lines) => {
                create_killed_after_lines(&lab, &bundle, &id, lines);
            }
            KillPoint::AfterDelay(delay) => create_killed_after(&lab, &bundle, &id, delay),
        }
        // What a user sees of the remains: a container that is "creating" (or "created", if
        // the record was complete) or none at all.
        let state = lab.oci(&["state", &id]);
        if state.ok() {
            let json: serde_json::Value = serde_json::from_str(&state.stdout).unwrap();
            let status = json["status"].as_str().unwrap();
            assert!(
                ["creating", "created", "stopped"].contains(&status),
                "{what}: {json}"
            );
            if status == "creating" {
                // No init to speak of yet: no pid, nothing to signal, and only --force deletes.
                assert!(json.get("pid").is_none(), "{what}: {json}");
                let out = lab.oci(&["kill", &id, "KILL"]);
                assert!(!out.ok(), "{what}: kill of a creating container: {out:?}");
                let out = lab.oci(&["delete", &id]);
                assert!(
                    !out.ok() && out.stderr.contains("--force"),
                    "{what}: delete without --force: {out:?}"
                );
            }
        }
        let out = lab.oci(&["delete", "--force", &id]);
        assert!(out.ok(), "{what}: delete --force: {out:?}");
        assert_nothing_left_reaping(&lab, &id, reap_adopted, what);
        // The id is free again: a create with it works from scratch.
        let out = lab.oci(&["create", "--bundle", bundle.to_str().unwrap(), &id]);
        assert!(out.ok(), "{what}: create again: {out:?}");
        assert!(lab.oci(&["delete", "--force", &id]).ok());
        assert_nothing_left_reaping(&lab, &id, reap_adopted, what);
    }
}

/// `/proc/self/fd` entries: descriptors this (long-lived, shim-like) process holds.
fn open_fds() -> usize {
    fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Runs the binary and returns its exit code.
fn oci_quiet(root: &Path, args: &[&str], err: &Path) -> i32 {
    let status = Command::new(BIN)
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // A file, not a pipe: the container inherits it.
        .stderr(File::create(err).unwrap())
        .status()
        .unwrap();
    status.code().unwrap_or(-1)
}

#[test]
fn a_thousand_create_start_delete_cycles_leave_nothing_and_grow_nothing() {
    if !labkit::require_root("a_thousand_create_start_delete_cycles_leave_nothing_and_grow_nothing")
    {
        return;
    }
    const CYCLES: usize = 1000;
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new("ch06-fault-cycles");
    let bundle = lab.bundle("bundle", &["true"], |_| {});
    let bundle = bundle.to_str().unwrap();
    // One id for every cycle: a leftover state directory or cgroup would make the next create
    // fail at once.
    let id = lab.id("cycle");
    let pid_file = lab.scratch.join("pid");
    let pid_file = pid_file.to_str().unwrap();
    let err = lab.scratch.join("stderr");
    let read_err = || fs::read_to_string(&err).unwrap_or_default();

    let fds_before = open_fds();
    let children_before = children().len();
    let began = Instant::now();
    for cycle in 0..CYCLES {
        let code = oci_quiet(
            &lab.root,
            &["create", "--bundle", bundle, "--pid-file", pid_file, &id],
            &err,
        );
        assert_eq!(code, 0, "cycle {cycle}: create: {}", read_err());
        let init: i32 = fs::read_to_string(pid_file).unwrap().parse().unwrap();
        let code = oci_quiet(&lab.root, &["start", &id], &err);
        assert_eq!(code, 0, "cycle {cycle}: start: {}", read_err());
        // As containerd's shim does: we adopted init (subreaper); reap it when it ends.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match waitpid(Pid::from_raw(init), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {
                    assert!(
                        Instant::now() < deadline,
                        "cycle {cycle}: `true` never ended"
                    );
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(WaitStatus::Exited(_, 0)) => break,
                other => panic!("cycle {cycle}: init {init} ended as {other:?}"),
            }
        }
        let code = oci_quiet(&lab.root, &["delete", &id], &err);
        assert_eq!(code, 0, "cycle {cycle}: delete: {}", read_err());
        if (cycle + 1) % 250 == 0 {
            eprintln!(
                "{} cycles in {:.1} s",
                cycle + 1,
                began.elapsed().as_secs_f64()
            );
        }
    }

    assert_nothing_left_reaping(&lab, &id, reap_adopted, "after the cycles");
    let state_entries: Vec<_> = fs::read_dir(&lab.root)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert!(state_entries.is_empty(), "state left: {state_entries:?}");
    assert_eq!(open_fds(), fds_before, "descriptors grew");
    assert_eq!(
        children().len(),
        children_before,
        "adopted processes grew: {:?}",
        children()
    );
    eprintln!(
        "{CYCLES} cycles of the binary in {:.1} s; {fds_before} fds before and after",
        began.elapsed().as_secs_f64()
    );
}

/// `VmRSS` of this process, in KiB.
fn rss_kib() -> u64 {
    fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Waits (up to 10 s) for our adopted `init` to end, and reaps it.
fn reap(init: i32, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match waitpid(Pid::from_raw(init), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {
                assert!(Instant::now() < deadline, "{what}: `true` never ended");
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(WaitStatus::Exited(_, 0)) => return,
            other => panic!("{what}: init {init} ended as {other:?}"),
        }
    }
}

/// The runtime's own code in one long-lived process (as a library: containerd's shim would
/// keep it so): 1,000 create/start/delete cycles must not make that process hold more memory
/// or descriptors. A leak of even 1 KiB a cycle would show as 1 MiB.
#[test]
fn a_thousand_cycles_through_the_library_do_not_grow_its_process() {
    if !labkit::require_root("a_thousand_cycles_through_the_library_do_not_grow_its_process") {
        return;
    }
    use ch06_oci::state::Store;
    use ch06_oci::verbs::{create, delete, start, Globals};
    const CYCLES: usize = 1000;
    const WARM_UP: usize = 50;
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new("ch06-fault-library");
    let bundle = lab.bundle("bundle", &["true"], |_| {});
    let id = lab.id("library");
    let store = Store::new(&lab.root);
    let options = create::CreateOptions {
        bundle,
        ..Default::default()
    };
    let globals = Globals::default();
    let cycle = |n: usize| {
        let what = format!("cycle {n}");
        let record = create::create(&store, &id, &options, &globals)
            .unwrap_or_else(|e| panic!("{what}: create: {e}"));
        start::start(&store, &id).unwrap_or_else(|e| panic!("{what}: start: {e}"));
        reap(record.pid, &what);
        delete::delete(&store, &id, false).unwrap_or_else(|e| panic!("{what}: delete: {e}"));
    };
    // The allocator and the lazily made statics settle first.
    for n in 0..WARM_UP {
        cycle(n);
    }
    let (rss_before, fds_before) = (rss_kib(), open_fds());
    let began = Instant::now();
    for n in WARM_UP..WARM_UP + CYCLES {
        cycle(n);
    }
    let (rss_after, fds_after) = (rss_kib(), open_fds());
    eprintln!(
        "{CYCLES} cycles through the library in {:.1} s; RSS {rss_before} -> {rss_after} KiB, fds {fds_before} -> {fds_after}",
        began.elapsed().as_secs_f64()
    );
    assert_nothing_left_reaping(&lab, &id, reap_adopted, "after the cycles");
    assert_eq!(fds_after, fds_before, "descriptors grew");
    assert!(
        rss_after <= rss_before + 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB over {CYCLES} cycles"
    );
}
