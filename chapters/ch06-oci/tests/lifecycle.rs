//! The OCI lifecycle on this host's real namespaces and cgroups, driven through the binary as
//! containerd drives runc: create → start → state → kill → delete, run, list, ps.

mod common;

use std::fs;
use std::path::Path;

use common::{cgroup_dirs, cgroup_value, wait_for, Lab};
use labkit::require_root;
use serde_json::Value;

#[test]
fn create_waits_start_runs_kill_stops_delete_removes() {
    if !require_root("create_waits_start_runs_kill_stops_delete_removes") {
        return;
    }
    let lab = Lab::new("ch06-life");
    let (out_dir, bundle) = lab.bundle_with_out(
        "bundle",
        &["sh", "-c", "touch /out/started; exec sleep 1000"],
    );
    let id = lab.id("life");
    let pid_file = lab.scratch.join("pid");
    let out = lab.oci(&[
        "create",
        "--bundle",
        bundle.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
    ]);
    assert!(out.ok(), "create: {out:?}");

    let state = lab.state(&id);
    assert_eq!(state["status"], "created", "{state}");
    assert_eq!(state["id"], id.as_str());
    assert_eq!(
        state["bundle"],
        bundle.canonicalize().unwrap().to_str().unwrap()
    );
    let pid = state["pid"].as_i64().unwrap();
    assert_eq!(fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert!(lab.state_dir(&id).join("exec.fifo").exists());
    assert!(!cgroup_dirs(&id).is_empty(), "no cgroup boxlab/{id}");
    // The command waits at the gate: it has not run yet.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!out_dir.join("started").exists(), "ran before start");

    let out = lab.oci(&["start", &id]);
    assert!(out.ok(), "start: {out:?}");
    assert!(wait_for(&out_dir.join("started")), "the command never ran");
    assert_eq!(lab.state(&id)["status"], "running");
    assert!(!lab.state_dir(&id).join("exec.fifo").exists());

    // The command is PID 1 (runc's way), and PID 1 gets no default signal actions: `sleep` has
    // no TERM handler, so TERM is dropped — why `docker stop` waits, then sends KILL.
    let out = lab.oci(&["kill", &id, "TERM"]);
    assert!(out.ok(), "kill: {out:?}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        lab.state(&id)["status"],
        "running",
        "PID 1 died of an unhandled TERM"
    );
    let out = lab.oci(&["kill", &id, "KILL"]);
    assert!(out.ok(), "kill: {out:?}");
    lab.wait_status(&id, "stopped");
    assert!(lab.state(&id).get("pid").is_none());

    let out = lab.oci(&["delete", &id]);
    assert!(out.ok(), "delete: {out:?}");
    assert!(!lab.state_dir(&id).exists());
    assert!(cgroup_dirs(&id).is_empty(), "{:?}", cgroup_dirs(&id));
    let out = lab.oci(&["state", &id]);
    assert!(
        !out.ok() && out.stderr.contains("does not exist"),
        "{out:?}"
    );
}

#[test]
fn run_passes_the_exit_status_and_the_config_reaches_inside() {
    if !require_root("run_passes_the_exit_status_and_the_config_reaches_inside") {
        return;
    }
    let lab = Lab::new("ch06-run");
    let bundle = lab.bundle(
        "bundle",
        &[
            "sh",
            "-c",
            "hostname; echo \"FOO=$FOO\"; pwd; echo $$; exit 7",
        ],
        |c| {
            c["hostname"] = Value::from("box-test");
            c["process"]["env"]
                .as_array_mut()
                .unwrap()
                .push(Value::from("FOO=bar baz"));
            c["process"]["cwd"] = Value::from("/tmp");
        },
    );
    let id = lab.id("run");
    let out = lab.oci(&["run", "--bundle", bundle.to_str().unwrap(), &id]);
    assert_eq!(out.code, Some(7), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    // `echo $$` says 1: the config's process is the container's PID 1, as with runc.
    assert_eq!(lines, ["box-test", "FOO=bar baz", "/tmp", "1"], "{out:?}");
    // A foreground run removes the container when it ends, as runc's does.
    assert!(!lab.state_dir(&id).exists());
    assert!(cgroup_dirs(&id).is_empty());
}

#[test]
fn run_detached_shows_in_list_and_ps_until_force_deleted() {
    if !require_root("run_detached_shows_in_list_and_ps_until_force_deleted") {
        return;
    }
    let lab = Lab::new("ch06-detach");
    let bundle = lab.bundle("bundle", &["sleep", "1000"], |_| {});
    let id = lab.id("detach");
    let out = lab.oci(&["run", "--detach", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(out.ok(), "run --detach: {out:?}");
    assert_eq!(lab.state(&id)["status"], "running");
    let pid = lab.state(&id)["pid"].as_i64().unwrap();

    let out = lab.oci(&["list", "--format", "json"]);
    let listed: Value = serde_json::from_str(&out.stdout).unwrap();
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} not listed: {listed}"));
    assert_eq!(entry["status"], "running");
    assert_eq!(entry["pid"], pid);
    let table = lab.oci(&["list"]).stdout;
    assert!(table.starts_with("ID") && table.contains(&id), "{table}");

    let out = lab.oci(&["ps", "--format", "json", &id]);
    let pids: Vec<i64> = serde_json::from_str(&out.stdout).unwrap();
    assert!(pids.contains(&pid), "init {pid} not in {pids:?}");
    let sleeper = pids
        .iter()
        .find(|p| {
            fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| c.starts_with(b"sleep\0"))
                .unwrap_or(false)
        })
        .copied()
        .unwrap_or_else(|| panic!("no sleep among {pids:?}"));
    assert!(lab.oci(&["ps", &id]).stdout.contains("sleep 1000"));

    let out = lab.oci(&["delete", &id]);
    assert!(!out.ok() && out.stderr.contains("--force"), "{out:?}");
    assert!(lab.state_dir(&id).exists());
    let out = lab.oci(&["delete", "--force", &id]);
    assert!(out.ok(), "delete --force: {out:?}");
    assert!(!lab.state_dir(&id).exists());
    assert!(
        !Path::new(&format!("/proc/{sleeper}/cmdline")).exists() || {
            // Gone, or at most a zombie about to be reaped.
            fs::read_to_string(format!("/proc/{sleeper}/stat"))
                .map(|s| s.contains(") Z"))
                .unwrap_or(true)
        }
    );
    assert!(cgroup_dirs(&id).is_empty());
}

#[test]
fn resources_from_the_config_are_the_cgroup_limits() {
    if !require_root("resources_from_the_config_are_the_cgroup_limits") {
        return;
    }
    let lab = Lab::new("ch06-limits");
    let out_dir = lab.scratch.join("out");
    fs::create_dir(&out_dir).unwrap();
    // Inside, a fork bomb of 40 sleeps meets the pids limit of 16.
    // (A subshell: busybox's sh gives up at the first failed fork.)
    let script =
        "(for i in $(seq 40); do sleep 30 & done) 2>/out/err; echo done > /out/done; exec sleep 1000";
    let bundle = lab.bundle("bundle", &["sh", "-c", script], |c| {
        c["linux"]["resources"]["memory"] = serde_json::json!({ "limit": 64 << 20 });
        c["linux"]["resources"]["pids"] = serde_json::json!({ "limit": 16 });
        Lab::bind(c, &out_dir, "/out");
    });
    let id = lab.id("limits");
    let out = lab.oci(&["run", "--detach", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(out.ok(), "run: {out:?}");
    assert_eq!(
        cgroup_value(&id, "memory", "memory.limit_in_bytes", "memory.max"),
        (64u64 << 20).to_string()
    );
    assert_eq!(cgroup_value(&id, "pids", "pids.max", "pids.max"), "16");
    assert!(
        wait_for(&out_dir.join("done")),
        "{:?}",
        fs::read_to_string(out_dir.join("err"))
    );
    let err = fs::read_to_string(out_dir.join("err")).unwrap();
    assert!(
        err.contains("Resource temporarily unavailable") || err.contains("can't fork"),
        "no fork failed at the pids limit: {err:?}"
    );
    let out = lab.oci(&["kill", "--all", &id, "KILL"]);
    assert!(out.ok(), "kill --all: {out:?}");
    lab.wait_status(&id, "stopped");
    assert!(lab.oci(&["delete", &id]).ok());
    assert!(cgroup_dirs(&id).is_empty());
}

#[test]
fn the_demo_walks_a_container_through_the_verbs() {
    if !labkit::require_root("the_demo_walks_a_container_through_the_verbs") {
        return;
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ch06-oci"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "\"status\": \"created\"",
        "container wrote: hello from PID 1 on boxlab-oci",
        "\"status\": \"running\"",
        "$ ch06-oci --root $STATE delete demo",
    ] {
        assert!(text.contains(expected), "missing {expected:?}:\n{text}");
    }
}
