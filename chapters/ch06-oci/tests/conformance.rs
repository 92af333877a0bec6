//! Every section of config.json observed from inside the container, the way the OCI
//! runtime-tools validation suite does it: a small checker of ours (`checker/oci-check.c`,
//! static) is copied into the root filesystem and reports what its process sees.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::Lab;
use labkit::require_root;
use serde_json::json;

const CHECKER: &str = env!("BOXLAB_OCI_CHECK");

/// The checker's `key=value` lines; a key seen more than once (mount, env) keeps every value.
fn parse(stdout: &str) -> BTreeMap<String, Vec<String>> {
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in stdout.lines() {
        if let Some((key, value)) = line.split_once('=') {
            seen.entry(key.to_string())
                .or_default()
                .push(value.to_string());
        }
    }
    seen
}

fn one<'a>(seen: &'a BTreeMap<String, Vec<String>>, key: &str) -> &'a str {
    let values = seen
        .get(key)
        .unwrap_or_else(|| panic!("the checker said nothing of {key}"));
    &values[0]
}

#[test]
fn every_config_section_is_seen_from_inside() {
    if !require_root("every_config_section_is_seen_from_inside") {
        return;
    }
    let lab = Lab::new("ch06-conformance");
    let probes = [
        "/oci-check",
        "file:/etc/secret",
        "write:/ro/file",
        "write:/data/new",
        "mkdir:/tmp/blocked",
        "file:/proc/sys/kernel/msgmax",
    ];
    let bundle = lab.bundle("bundle", &probes, |c| {
        c["hostname"] = json!("conformance");
        c["process"]["cwd"] = json!("/tmp");
        c["process"]["env"] = json!(["PATH=/bin", "CHECK=yes"]);
        c["process"]["user"] =
            json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20], "umask": 0o027});
        let caps = json!(["CAP_CHOWN", "CAP_KILL"]);
        c["process"]["capabilities"] = json!({
            "bounding": caps, "effective": caps, "permitted": caps,
            "inheritable": caps, "ambient": caps,
        });
        c["process"]["noNewPrivileges"] = json!(true);
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024}]);
        c["linux"]["maskedPaths"] = json!(["/etc/secret"]);
        c["linux"]["readonlyPaths"] = json!(["/ro"]);
        c["linux"]["sysctl"] = json!({"kernel.msgmax": "4096"});
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        });
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/data", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "nodev", "size=1m", "mode=1777"]
        }));
    });
    let rootfs = bundle.join("rootfs");
    fs::copy(CHECKER, rootfs.join("oci-check")).unwrap();
    fs::write(rootfs.join("etc/secret"), "secret\n").unwrap();
    fs::create_dir_all(rootfs.join("ro")).unwrap();
    fs::write(rootfs.join("ro/file"), "").unwrap();
    fs::set_permissions(rootfs.join("ro/file"), fs::Permissions::from_mode(0o666)).unwrap();
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();

    let id = lab.id("conformance");
    let out = lab.oci(&["run", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(out.ok(), "run: {out:?}");
    let seen = parse(&out.stdout);

    // process: args ran as PID 1, with its cwd, env, user, groups, umask, rlimits.
    assert_eq!(one(&seen, "pid"), "1");
    assert_eq!(one(&seen, "cwd"), "/tmp");
    let env = &seen["env.PATH"];
    assert_eq!(env, &["/bin"]);
    assert_eq!(one(&seen, "env.CHECK"), "yes");
    assert_eq!(
        seen.keys().filter(|k| k.starts_with("env.")).count(),
        2,
        "only the config's env: {seen:?}"
    );
    assert_eq!(one(&seen, "uid"), "1000");
    assert_eq!(one(&seen, "gid"), "1000");
    assert_eq!(one(&seen, "groups"), "10,20");
    assert_eq!(one(&seen, "umask"), "0027");
    assert_eq!(one(&seen, "rlimit.nofile"), "512 1024");
    assert_eq!(
        one(&seen, "fds.extra"),
        "0",
        "a runtime descriptor leaked in"
    );
    // capabilities: CAP_CHOWN (0) and CAP_KILL (5) in all five sets; no_new_privileges; seccomp.
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(one(&seen, set), "0000000000000021", "{set}");
    }
    assert_eq!(one(&seen, "NoNewPrivs"), "1");
    assert_eq!(one(&seen, "Seccomp"), "2", "a seccomp filter is installed");
    assert_eq!(
        one(&seen, "mkdir:/tmp/blocked"),
        "EPERM",
        "seccomp's errnoRet"
    );
    // hostname, sysctl in the new IPC namespace, masked and read-only paths, the tmpfs mount.
    assert_eq!(one(&seen, "hostname"), "conformance");
    assert_eq!(one(&seen, "file:/proc/sys/kernel/msgmax"), "4096");
    assert_eq!(
        one(&seen, "file:/etc/secret"),
        "",
        "masked: /dev/null over it"
    );
    assert_eq!(one(&seen, "write:/ro/file"), "EROFS");
    assert_eq!(
        one(&seen, "write:/data/new"),
        "ENOENT",
        "tmpfs at /data is empty"
    );
    let data = seen["mount"]
        .iter()
        .find(|m| m.starts_with("/data "))
        .expect("no /data mount");
    assert!(
        data.starts_with("/data tmpfs ") && data.contains("nosuid") && data.contains("nodev"),
        "{data}"
    );
    // namespaces: all new but the user namespace (the config has none).
    for ns in ["pid", "net", "ipc", "uts", "mnt"] {
        let host = fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        assert_ne!(
            one(&seen, &format!("ns.{ns}")),
            host.to_str().unwrap(),
            "{ns} is the host's"
        );
    }
    let host_user = fs::read_link("/proc/self/ns/user").unwrap();
    assert_eq!(one(&seen, "ns.user"), host_user.to_str().unwrap());
}
