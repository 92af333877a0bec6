//! What the runtime refuses: each a single clear error line, a non-zero exit, and nothing left
//! behind — no state directory, no cgroup.

mod common;

use std::fs;

use common::{cgroup_dirs, wait_for, Lab};
use labkit::require_root;
use serde_json::Value;

/// Runs `create` on `bundle` and checks it failed with `expect` on one line, leaving nothing.
fn refused(lab: &Lab, bundle: &std::path::Path, id: &str, expect: &str) {
    let out = lab.oci(&["create", "--bundle", bundle.to_str().unwrap(), id]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains(expect), "wanted {expect:?} in {out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "one line: {:?}", out.stderr);
    assert!(out.stderr.starts_with("error: "), "{:?}", out.stderr);
    assert!(!lab.state_dir(id).exists(), "state dir left for {id}");
    assert!(cgroup_dirs(id).is_empty(), "cgroup left for {id}");
}

#[test]
fn broken_configs_are_refused_before_anything_is_made() {
    if !require_root("broken_configs_are_refused_before_anything_is_made") {
        return;
    }
    let lab = Lab::new("ch06-bad");
    let bundle = lab.bundle("bundle", &["true"], |_| {});
    let config = bundle.join("config.json");
    let good = fs::read_to_string(&config).unwrap();
    let id = lab.id("bad");
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut c: Value = serde_json::from_str(&good).unwrap();
        edit(&mut c);
        fs::write(&config, c.to_string()).unwrap();
    };

    fs::write(&config, &good[..good.len() / 2]).unwrap();
    refused(&lab, &bundle, &id, "not valid JSON");

    with(&|c| c["ociVersion"] = Value::from("2.0.0"));
    refused(&lab, &bundle, &id, "ociVersion '2.0.0'");

    with(&|c| {
        c.as_object_mut().unwrap().remove("root");
    });
    refused(&lab, &bundle, &id, "missing root.path");

    with(&|c| c["root"]["path"] = Value::from("no-such-rootfs"));
    refused(&lab, &bundle, &id, "no-such-rootfs");

    with(&|c| c["process"]["args"] = serde_json::json!(["no-such-program"]));
    refused(&lab, &bundle, &id, "no-such-program");

    with(&|c| {
        c["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/proc", "type": "bind", "source": "/tmp", "options": ["rbind"]
        }))
    });
    refused(&lab, &bundle, &id, "only a procfs may be mounted on /proc");

    with(&|c| c["linux"]["resources"]["memory"] = serde_json::json!({"limit": 4096}));
    refused(&lab, &bundle, &id, "memory limit");

    with(&|c| c["process"]["terminal"] = Value::Bool(true));
    refused(&lab, &bundle, &id, "no --console-socket was given");

    fs::write(&config, &good).unwrap();
    refused(&lab, &bundle, "../escape", "invalid container id");
    let out = lab.oci(&[
        "--systemd-cgroup",
        "create",
        "--bundle",
        bundle.to_str().unwrap(),
        &id,
    ]);
    assert!(!out.ok() && out.stderr.contains("systemd"), "{out:?}");
    assert!(!lab.state_dir(&id).exists());
}

#[test]
fn errors_reach_the_log_file_as_json_lines() {
    if !require_root("errors_reach_the_log_file_as_json_lines") {
        return;
    }
    let lab = Lab::new("ch06-log");
    let log = lab.scratch.join("log.json");
    let log_arg = log.to_str().unwrap().to_string();
    let out = lab.oci(&[
        "--log",
        &log_arg,
        "--log-format",
        "json",
        "start",
        "nobody-here",
    ]);
    assert_eq!(out.code, Some(1));
    let text = fs::read_to_string(&log).unwrap();
    let line: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(line["level"], "error");
    assert!(line["msg"]
        .as_str()
        .unwrap()
        .contains("'nobody-here' does not exist"));
    assert!(line["time"].as_str().unwrap().ends_with('Z'));
    let out = lab.oci(&["kill", "nobody-here", "SIGNOPE"]);
    assert!(out.stderr.contains("unknown signal 'SIGNOPE'"), "{out:?}");
}

#[test]
fn a_second_create_start_or_delete_is_refused_and_force_works() {
    if !require_root("a_second_create_start_or_delete_is_refused_and_force_works") {
        return;
    }
    let lab = Lab::new("ch06-twice");
    let (out_dir, bundle) = lab.bundle_with_out(
        "bundle",
        &["sh", "-c", "touch /out/started; exec sleep 1000"],
    );
    let b = bundle.to_str().unwrap();
    let id = lab.id("twice");
    assert!(lab.oci(&["create", "--bundle", b, &id]).ok());
    let out = lab.oci(&["create", "--bundle", b, &id]);
    assert!(
        !out.ok() && out.stderr.contains("already exists"),
        "{out:?}"
    );
    // The first one is untouched by the refused second.
    assert_eq!(lab.state(&id)["status"], "created");

    assert!(lab.oci(&["start", &id]).ok());
    assert!(wait_for(&out_dir.join("started")));
    let out = lab.oci(&["start", &id]);
    assert!(!out.ok() && out.stderr.contains("is running"), "{out:?}");

    let out = lab.oci(&["delete", &id]);
    assert!(!out.ok() && out.stderr.contains("--force"), "{out:?}");
    assert_eq!(lab.state(&id)["status"], "running");
    let pid = lab.state(&id)["pid"].as_i64().unwrap();

    let out = lab.oci(&["delete", "--force", &id]);
    assert!(out.ok(), "{out:?}");
    assert!(!lab.state_dir(&id).exists());
    assert!(cgroup_dirs(&id).is_empty());
    let start = fs::read_to_string(format!("/proc/{pid}/stat")).ok();
    assert!(
        start.is_none_or(|s| s.contains(") Z")),
        "init {pid} still alive"
    );
    // And once more: nothing to delete is no error with --force.
    assert!(lab.oci(&["delete", "--force", &id]).ok());
}

#[test]
fn a_mount_through_a_symlink_stays_inside_the_root() {
    if !require_root("a_mount_through_a_symlink_stays_inside_the_root") {
        return;
    }
    let lab = Lab::new("ch06-symlink");
    let host = lab.scratch.join("host");
    fs::create_dir(&host).unwrap();
    let bundle = lab.bundle("bundle", &["sh", "-c", "echo x > /evil/inside/file"], |c| {
        c["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/evil/inside", "type": "tmpfs", "source": "tmpfs"
        }))
    });
    // In the image, /evil points at a host directory by its absolute path.
    std::os::unix::fs::symlink(&host, bundle.join("rootfs/evil")).unwrap();
    let id = lab.id("symlink");
    let out = lab.oci(&["run", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(out.ok(), "{out:?}");
    assert!(
        !host.join("inside").exists(),
        "the mount point was made on the host"
    );
    let inside = bundle.join("rootfs").join(host.strip_prefix("/").unwrap());
    assert!(inside.join("inside").is_dir(), "not made inside the root");
}
