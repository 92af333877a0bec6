//! `features`: what this runtime supports, in the runtime spec's features format (what `runc
//! features` prints, and what containerd and others read to decide what they may ask for).
//! Every list comes from what the code here actually handles.

use serde_json::{json, Value};

/// The mount options [`crate::mounts::parse_options`] turns into flags (the rest go to the
/// filesystem as data).
pub const MOUNT_OPTIONS: [&str; 34] = [
    "async",
    "atime",
    "bind",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "lazytime",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "private",
    "rbind",
    "relatime",
    "remount",
    "ro",
    "rprivate",
    "rshared",
    "rslave",
    "runbindable",
    "rw",
    "shared",
    "slave",
    "strictatime",
    "suid",
    "sync",
    "unbindable",
    "rro",
];

/// The `linux.namespaces` types [`crate::config::namespaces`] accepts.
pub const NAMESPACES: [&str; 8] = [
    "cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts",
];

/// The seccomp actions [`crate::security::seccomp`] compiles (no `SCMP_ACT_NOTIFY`).
pub const SECCOMP_ACTIONS: [&str; 8] = [
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
];

/// The argument comparisons it compiles.
pub const SECCOMP_OPERATORS: [&str; 7] = [
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];

/// The features document.
pub fn features() -> Value {
    let mut mount_options: Vec<&str> = MOUNT_OPTIONS
        .iter()
        .copied()
        .filter(|o| *o != "rro")
        .collect();
    mount_options.sort_unstable();
    let capabilities: Vec<String> = caps::all()
        .into_iter()
        .map(|c| c.to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": oci_spec::runtime::VERSION,
        "hooks": crate::hooks::Kind::ALL.map(crate::hooks::Kind::name),
        "mountOptions": mount_options,
        "linux": {
            "namespaces": NAMESPACES,
            "capabilities": capabilities,
            "cgroup": { "v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false },
            "seccomp": {
                "enabled": true,
                "actions": SECCOMP_ACTIONS,
                "operators": SECCOMP_OPERATORS,
                "archs": ["SCMP_ARCH_X86_64"],
                "knownFlags": [],
                "supportedFlags": [],
            },
            "apparmor": { "enabled": false },
            "selinux": { "enabled": false },
            "intelRdt": { "enabled": false },
            "mountExtensions": { "idmap": { "enabled": false } },
        },
        "annotations": {
            "org.opencontainers.runc.checkpoint.enabled": "false",
            "io.github.boxlab.runtime": "ch06-oci",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_what_is_supported() {
        let f = features();
        assert!(f["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .contains(&json!("pid")));
        assert!(f["linux"]["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("CAP_SYS_ADMIN")));
        let opts: Vec<String> = f["mountOptions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap().to_string())
            .collect();
        for o in &opts {
            let (flags, prop, data) = crate::mounts::parse_options(std::slice::from_ref(o));
            assert!(
                data.is_empty()
                    && (!flags.is_empty()
                        || !prop.is_empty()
                        || o.as_str() == "rw"
                        || matches!(
                            o.as_str(),
                            "suid"
                                | "dev"
                                | "exec"
                                | "async"
                                | "nomand"
                                | "atime"
                                | "diratime"
                                | "norelatime"
                                | "nostrictatime"
                        )),
                "{o} is not understood by parse_options"
            );
        }
    }
}
