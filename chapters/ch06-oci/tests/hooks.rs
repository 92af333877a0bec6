//! OCI hooks, observed as a user sees them: each hook is a small shell script that appends its
//! kind, an environment variable and the state it read on stdin to a log.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{assert_nothing_left, Lab};
use labkit::require_root;
use serde_json::{json, Value};

/// Writes an executable `#!/bin/sh` script: `echo "$1 $HOOK_WORD $(cat)" >> log`.
fn logging_script(path: &Path, log: &str) {
    fs::write(
        path,
        format!("#!/bin/sh\necho \"$1 $HOOK_WORD $(cat)\" >> {log}\n"),
    )
    .unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn hook(path: &Path, kind: &str) -> Value {
    json!({ "path": path, "args": ["hook", kind], "env": ["HOOK_WORD=from-env"] })
}

/// Each line of the log: (kind, word, state).
fn log_lines(log: &Path) -> Vec<(String, String, Value)> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let mut parts = line.splitn(3, ' ');
            let kind = parts.next().unwrap().to_string();
            let word = parts.next().unwrap_or("").to_string();
            let state = serde_json::from_str(parts.next().unwrap_or("null"))
                .unwrap_or_else(|e| panic!("{line:?}: {e}"));
            (kind, word, state)
        })
        .collect()
}

/// Whether any process on the host has exactly this command line (NUL-separated).
fn process_running(cmdline: &[u8]) -> bool {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .any(|e| {
            fs::read(e.path().join("cmdline")).is_ok_and(|c| c == cmdline)
                && !fs::read_to_string(e.path().join("stat")).is_ok_and(|s| s.contains(") Z"))
        })
}

#[test]
fn every_hook_runs_in_order_with_the_state_on_its_stdin() {
    if !require_root("every_hook_runs_in_order_with_the_state_on_its_stdin") {
        return;
    }
    let lab = Lab::new("ch06-hooks");
    let out_dir = lab.scratch.join("out");
    fs::create_dir_all(&out_dir).unwrap();
    let log = out_dir.join("log");
    // Runtime-side hooks and createContainer (before the pivot, host paths still resolve).
    let host_hook = lab.scratch.join("hook.sh");
    logging_script(&host_hook, log.to_str().unwrap());
    let bundle = lab.bundle("bundle", &["sleep", "1000"], |c| {
        Lab::bind(c, &out_dir, "/out");
        c["annotations"] = json!({ "org.boxlab.test": "hooks" });
        c["hooks"] = json!({
            "prestart": [hook(&host_hook, "prestart")],
            "createRuntime": [hook(&host_hook, "createRuntime")],
            "createContainer": [hook(&host_hook, "createContainer")],
            // Resolved inside the container: a script in its root, run by its busybox.
            "startContainer": [hook(Path::new("/hook.sh"), "startContainer")],
            "poststart": [hook(&host_hook, "poststart")],
            "poststop": [hook(&host_hook, "poststop")],
        });
    });
    logging_script(&bundle.join("rootfs/hook.sh"), "/out/log");
    let id = lab.id("hooks");

    let out = lab.oci(&["create", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(out.ok(), "create: {out:?}");
    let kinds = |lines: &[(String, String, Value)]| -> Vec<String> {
        lines.iter().map(|l| l.0.clone()).collect()
    };
    assert_eq!(
        kinds(&log_lines(&log)),
        ["prestart", "createRuntime", "createContainer"]
    );
    assert!(!lab.state_dir(&id).join("hooks.sock").exists());
    let pid = lab.state(&id)["pid"].clone();

    let out = lab.oci(&["start", &id]);
    assert!(out.ok(), "start: {out:?}");
    assert_eq!(
        kinds(&log_lines(&log)),
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart"
        ]
    );
    assert!(lab.oci(&["kill", &id, "KILL"]).ok());
    lab.wait_status(&id, "stopped");
    let out = lab.oci(&["delete", &id]);
    assert!(out.ok(), "delete: {out:?}");

    let lines = log_lines(&log);
    let expected = [
        ("prestart", "creating"),
        ("createRuntime", "creating"),
        ("createContainer", "creating"),
        ("startContainer", "created"),
        ("poststart", "running"),
        ("poststop", "stopped"),
    ];
    assert_eq!(lines.len(), expected.len(), "{lines:?}");
    let bundle_path = bundle.canonicalize().unwrap();
    for ((kind, word, state), (want_kind, want_status)) in lines.iter().zip(expected) {
        assert_eq!(kind, want_kind);
        assert_eq!(word, "from-env", "{kind}: the hook's env did not arrive");
        assert_eq!(state["status"], want_status, "{kind}: {state}");
        assert_eq!(state["id"], id.as_str(), "{kind}: {state}");
        assert_eq!(state["bundle"], bundle_path.to_str().unwrap());
        assert_eq!(state["annotations"]["org.boxlab.test"], "hooks", "{state}");
        assert!(state["ociVersion"].is_string());
        if want_status == "stopped" {
            assert!(state.get("pid").is_none(), "{state}");
        } else {
            // The container's init as the host sees it, also for hooks run inside.
            assert_eq!(state["pid"], pid, "{kind}: {state}");
        }
    }
    assert!(!lab.state_dir(&id).exists());
}

/// A bundle whose config has `hooks`, for a create that is expected to fail.
fn failing_create(lab: &Lab, name: &str, hooks: Value) -> (String, common::Out) {
    let bundle = lab.bundle(name, &["true"], |c| c["hooks"] = hooks);
    let id = lab.id(name);
    let out = lab.oci(&["create", "--bundle", bundle.to_str().unwrap(), &id]);
    (id, out)
}

#[test]
fn a_hook_past_its_timeout_is_killed_and_create_fails_leaving_nothing() {
    if !require_root("a_hook_past_its_timeout_is_killed_and_create_fails_leaving_nothing") {
        return;
    }
    let lab = Lab::new("ch06-hook-timeout");
    let (id, out) = failing_create(
        &lab,
        "timeout",
        json!({ "createRuntime": [{
            "path": "/bin/sh", "args": ["sh", "-c", "sleep 4242; true"], "timeout": 1
        }]}),
    );
    assert!(!out.ok(), "create succeeded: {out:?}");
    assert!(
        out.stderr
            .contains("createRuntime hook /bin/sh failed: timed out after 1s and was killed"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert_nothing_left(&lab, &id, "a createRuntime hook past its timeout");
    // The hook's own child went with it (the whole process group is killed).
    assert!(!process_running(b"sleep\x004242\x00"));

    // The same inside the container: a createContainer hook past its timeout.
    let (id, out) = failing_create(
        &lab,
        "timeout-inside",
        json!({ "createContainer": [{
            "path": "/bin/sh", "args": ["sh", "-c", "sleep 4243; true"], "timeout": 1
        }]}),
    );
    assert!(!out.ok(), "create succeeded: {out:?}");
    assert!(
        out.stderr
            .contains("createContainer hook /bin/sh failed: timed out after 1s and was killed"),
        "{}",
        out.stderr
    );
    assert_nothing_left(&lab, &id, "a createContainer hook past its timeout");
    assert!(!process_running(b"sleep\x004243\x00"));
}

#[test]
fn failing_create_hooks_fail_create_cleanly() {
    if !require_root("failing_create_hooks_fail_create_cleanly") {
        return;
    }
    let lab = Lab::new("ch06-hook-fail");
    for (kind, code) in [
        ("createRuntime", 3),
        ("prestart", 4),
        ("createContainer", 5),
    ] {
        let name = format!("fail-{}", kind.to_lowercase());
        let (id, out) = failing_create(
            &lab,
            &name,
            json!({ kind: [{ "path": "/bin/sh", "args": ["sh", "-c", format!("exit {code}")] }]}),
        );
        assert!(!out.ok(), "{kind}: create succeeded: {out:?}");
        let line = format!("{kind} hook /bin/sh failed: exited with status {code}");
        assert!(out.stderr.contains(&line), "{kind}: {}", out.stderr);
        assert_nothing_left(&lab, &id, &format!("a failing {kind} hook"));
    }
    // Caught before anything is made: a relative path.
    let (id, out) = failing_create(
        &lab,
        "relative",
        json!({ "poststop": [{ "path": "hook.sh" }] }),
    );
    assert!(
        !out.ok()
            && out.stderr.contains("hooks.poststop[0].path")
            && out.stderr.contains("absolute"),
        "{out:?}"
    );
    assert_nothing_left(&lab, &id, "a hook with a relative path");
}

#[test]
fn a_failing_start_container_hook_fails_start_and_stops_the_container() {
    if !require_root("a_failing_start_container_hook_fails_start_and_stops_the_container") {
        return;
    }
    let lab = Lab::new("ch06-hook-start");
    let (out_dir, bundle) = lab.bundle_with_out("bundle", &["sh", "-c", "touch /out/ran"]);
    let config = bundle.join("config.json");
    let mut c: Value = serde_json::from_str(&fs::read_to_string(&config).unwrap()).unwrap();
    c["hooks"] =
        json!({ "startContainer": [{ "path": "/bin/sh", "args": ["sh", "-c", "exit 6"] }] });
    fs::write(&config, c.to_string()).unwrap();
    let id = lab.id("hook-start");
    assert!(lab
        .oci(&["create", "--bundle", bundle.to_str().unwrap(), &id])
        .ok());
    let out = lab.oci(&["start", &id]);
    assert!(!out.ok(), "start succeeded: {out:?}");
    assert!(
        out.stderr
            .contains("startContainer hook /bin/sh failed: exited with status 6"),
        "{}",
        out.stderr
    );
    lab.wait_status(&id, "stopped");
    assert!(!out_dir.join("ran").exists(), "the program ran anyway");
    assert!(lab.oci(&["delete", &id]).ok());
    assert_nothing_left(&lab, &id, "a failing startContainer hook, deleted");
}

#[test]
fn failing_poststart_and_poststop_hooks_only_warn() {
    if !require_root("failing_poststart_and_poststop_hooks_only_warn") {
        return;
    }
    let lab = Lab::new("ch06-hook-post");
    let fail =
        |code: i32| json!([{ "path": "/bin/sh", "args": ["sh", "-c", format!("exit {code}")] }]);
    let bundle: PathBuf = lab.bundle("bundle", &["sleep", "1000"], |c| {
        c["hooks"] = json!({ "poststart": fail(7), "poststop": fail(8) });
    });
    let id = lab.id("hook-post");
    let out = lab.oci(&["run", "--detach", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(out.ok(), "run --detach: {out:?}");
    assert!(
        out.stderr
            .contains("warning: poststart hook /bin/sh failed: exited with status 7"),
        "{}",
        out.stderr
    );
    assert_eq!(lab.state(&id)["status"], "running");
    let out = lab.oci(&["delete", "--force", &id]);
    assert!(out.ok(), "delete: {out:?}");
    assert!(
        out.stderr
            .contains("warning: poststop hook /bin/sh failed: exited with status 8"),
        "{}",
        out.stderr
    );
    assert_nothing_left(&lab, &id, "failing poststart and poststop hooks");
}

#[test]
fn features_lists_the_hooks() {
    let out = std::process::Command::new(common::BIN)
        .arg("features")
        .output()
        .unwrap();
    let features: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        features["hooks"],
        json!([
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ])
    );
}
