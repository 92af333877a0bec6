//! exec, pause/resume, events and features, on this host's real namespaces and cgroups.

mod common;

use std::fs;
use std::time::Duration;

use common::{wait_for, Lab};
use labkit::require_root;
use serde_json::Value;

/// `run --detach` a container running `args`; returns its id.
fn detached(lab: &Lab, name: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> String {
    let bundle = lab.bundle(name, args, edit);
    let id = lab.id(name);
    let out = lab.oci(&["run", "--detach", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(out.ok(), "run: {out:?}");
    lab.wait_status(&id, "running");
    id
}

#[test]
fn exec_joins_the_namespaces_and_fails_on_a_stopped_container() {
    if !require_root("exec_joins_the_namespaces_and_fails_on_a_stopped_container") {
        return;
    }
    let lab = Lab::new("ch06-exec");
    let id = detached(&lab, "exec", &["sleep", "30"], |c| {
        c["hostname"] = "exec-box".into();
    });
    let out = lab.oci(&["exec", &id, "--", "hostname"]);
    assert!(out.ok(), "exec hostname: {out:?}");
    assert_eq!(out.stdout.trim(), "exec-box");

    let out = lab.oci(&["exec", &id, "--", "sh", "-c", "echo $$; cat /proc/1/comm"]);
    assert!(out.ok(), "exec sh: {out:?}");
    let mut lines = out.stdout.lines();
    let pid: i32 = lines.next().unwrap().trim().parse().unwrap();
    let host_init = lab.state(&id)["pid"].as_i64().unwrap() as i32;
    assert!(
        pid > 1 && pid < 100,
        "pid {pid} is not of the container's namespace"
    );
    assert_ne!(pid, host_init);
    assert!(lines.next().is_some(), "no /proc/1/comm: {out:?}");

    // The exit status comes back; env and cwd reach the process.
    let out = lab.oci(&[
        "exec",
        "--env",
        "X=42",
        "--cwd",
        "/tmp",
        &id,
        "--",
        "sh",
        "-c",
        "echo $X $PWD; exit 3",
    ]);
    assert_eq!(out.code, Some(3), "{out:?}");
    assert_eq!(out.stdout.trim(), "42 /tmp");

    // --process FILE and --detach with --pid-file.
    let process = lab.scratch.join("process.json");
    fs::write(
        &process,
        r#"{"args":["sh","-c","touch /tmp/from-process; sleep 1"],"cwd":"/","env":["PATH=/bin:/usr/bin"],"user":{"uid":0,"gid":0}}"#,
    )
    .unwrap();
    let pid_file = lab.scratch.join("exec.pid");
    let out = lab.oci(&[
        "exec",
        "--detach",
        "--process",
        process.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
    ]);
    assert!(out.ok(), "exec --process: {out:?}");
    let pid: i32 = fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    let out = lab.oci(&[
        "exec",
        &id,
        "--",
        "sh",
        "-c",
        "sleep 0.3; ls /tmp/from-process",
    ]);
    assert!(out.ok(), "{out:?}");
    // The detached process was inherited by us (the subreaper, as a shim would be): reap it, or
    // its zombie keeps the container's PID namespace (and so init) from ending after `kill`.
    let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
    assert!(
        matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0)),
        "{status:?}"
    );

    // No command, a missing program: one clear line.
    let out = lab.oci(&["exec", &id]);
    assert!(!out.ok() && out.stderr.contains("command"), "{out:?}");
    let out = lab.oci(&["exec", &id, "--", "no-such-program"]);
    assert!(
        !out.ok() && out.stderr.contains("command not found"),
        "{out:?}"
    );

    let out = lab.oci(&["kill", &id, "KILL"]);
    assert!(out.ok(), "{out:?}");
    lab.wait_status(&id, "stopped");
    let out = lab.oci(&["exec", &id, "--", "true"]);
    assert!(!out.ok() && out.stderr.contains("stopped"), "{out:?}");
}

#[test]
fn pause_stops_the_ticks_and_resume_restarts_them() {
    if !require_root("pause_stops_the_ticks_and_resume_restarts_them") {
        return;
    }
    let lab = Lab::new("ch06-pause");
    let out_dir = lab.scratch.join("out");
    fs::create_dir(&out_dir).unwrap();
    let id = detached(
        &lab,
        "pause",
        &[
            "sh",
            "-c",
            "while true; do echo x >> /out/ticks; sleep 0.1; done",
        ],
        |c| Lab::bind(c, &out_dir, "/out"),
    );
    let ticks = out_dir.join("ticks");
    assert!(wait_for(&ticks));
    let count = || fs::read_to_string(&ticks).unwrap().lines().count();

    let out = lab.oci(&["pause", &id]);
    assert!(out.ok(), "pause: {out:?}");
    assert_eq!(lab.state(&id)["status"], "paused");
    let frozen = count();
    std::thread::sleep(Duration::from_millis(600));
    assert!(count() <= frozen + 1, "ticked while paused");
    let out = lab.oci(&["pause", &id]);
    assert!(!out.ok() && out.stderr.contains("paused"), "{out:?}");

    let out = lab.oci(&["resume", &id]);
    assert!(out.ok(), "resume: {out:?}");
    assert_eq!(lab.state(&id)["status"], "running");
    let thawed = count();
    std::thread::sleep(Duration::from_millis(600));
    assert!(count() > thawed + 1, "no ticks after resume");
    let out = lab.oci(&["resume", &id]);
    assert!(!out.ok() && out.stderr.contains("running"), "{out:?}");

    // A paused container can still be deleted by force.
    assert!(lab.oci(&["pause", &id]).ok());
    let out = lab.oci(&["delete", "--force", &id]);
    assert!(out.ok(), "delete --force of a paused container: {out:?}");
}

#[test]
fn events_stats_reports_the_cgroup() {
    if !require_root("events_stats_reports_the_cgroup") {
        return;
    }
    let lab = Lab::new("ch06-events");
    let id = detached(&lab, "events", &["sleep", "30"], |_| {});
    let out = lab.oci(&["events", "--stats", &id]);
    assert!(out.ok(), "events: {out:?}");
    let stats: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(stats["type"], "stats");
    assert_eq!(stats["id"], id.as_str());
    assert!(
        stats["data"]["pids"]["current"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    assert!(
        stats["data"]["memory"]["usage"]["usage"].is_u64(),
        "{stats}"
    );
    assert!(stats["data"]["cpu"]["usage"]["total"].is_u64(), "{stats}");
}

#[test]
fn features_is_json_listing_the_namespaces() {
    let lab = Lab::new("ch06-features");
    let out = lab.oci(&["features"]);
    assert!(out.ok(), "{out:?}");
    let features: Value = serde_json::from_str(&out.stdout).unwrap();
    let namespaces = features["linux"]["namespaces"].as_array().unwrap();
    assert!(namespaces.contains(&Value::from("pid")), "{features}");
    assert_eq!(features["linux"]["cgroup"]["v1"], true);
    assert!(features["ociVersionMax"]
        .as_str()
        .unwrap()
        .starts_with("1."));
}

#[test]
fn a_container_joins_another_ones_pid_and_network_namespaces_by_path() {
    if !require_root("a_container_joins_another_ones_pid_and_network_namespaces_by_path") {
        return;
    }
    // What a Kubernetes pod with shareProcessNamespace looks like to the runtime: the app
    // container's config names the sandbox's namespaces by path.
    let lab = Lab::new("ch06-join");
    let sandbox = detached(&lab, "sandbox", &["sleep", "1000"], |_| {});
    let sandbox_pid = lab.state(&sandbox)["pid"].as_i64().unwrap();
    let id = lab.id("app");
    let bundle = lab.bundle(
        "app",
        &["sh", "-c", "echo $$; cat /proc/1/cmdline | tr '\\0' ' '"],
        |c| {
            for entry in c["linux"]["namespaces"].as_array_mut().unwrap() {
                let kind = entry["type"].as_str().unwrap().to_string();
                let file = match kind.as_str() {
                    "pid" => "pid",
                    "network" => "net",
                    _ => continue,
                };
                entry["path"] = format!("/proc/{sandbox_pid}/ns/{file}").into();
            }
        },
    );
    let out = lab.oci(&["run", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(out.ok(), "run: {out:?}");
    let mut lines = out.stdout.lines();
    let pid: i32 = lines.next().unwrap().trim().parse().unwrap();
    assert!(
        pid > 1,
        "the app is not PID 1: the sandbox's sleep is ({out:?})"
    );
    assert_eq!(lines.next().unwrap().trim(), "sleep 1000", "{out:?}");
    let link = |pid: i64, ns: &str| fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
    // The sandbox's own view did not change.
    assert_ne!(
        link(sandbox_pid, "pid"),
        link(std::process::id() as i64, "pid")
    );
}

#[test]
fn a_container_joins_another_ones_user_namespace_by_path() {
    if !require_root("a_container_joins_another_ones_user_namespace_by_path") {
        return;
    }
    let lab = Lab::new("ch06-join-user");
    let map = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let with_user_ns = |c: &mut serde_json::Value, path: Option<String>| {
        let mut entry = serde_json::json!({"type": "user"});
        if let Some(path) = path {
            entry["path"] = path.into();
        } else {
            c["linux"]["uidMappings"] = map.clone();
            c["linux"]["gidMappings"] = map.clone();
        }
        c["linux"]["namespaces"].as_array_mut().unwrap().push(entry);
    };
    let sandbox = detached(&lab, "userns-sandbox", &["sleep", "1000"], |c| {
        with_user_ns(c, None)
    });
    let sandbox_pid = lab.state(&sandbox)["pid"].as_i64().unwrap();
    let id = lab.id("userns-app");
    let path = format!("/proc/{sandbox_pid}/ns/user");
    let bundle = lab.bundle(
        "userns-app",
        &["sh", "-c", "id -u; cat /proc/self/uid_map"],
        |c| with_user_ns(c, Some(path.clone())),
    );
    let out = lab.oci(&["run", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(out.ok(), "run: {out:?}");
    let lines: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines, [vec!["0"], vec!["0", "100000", "65536"]], "{out:?}");
}
