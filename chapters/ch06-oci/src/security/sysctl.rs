//! Kernel parameters (`sysctl`) for the container. Most of `/proc/sys` is global: writing
//! `vm.swappiness` in a container changes it for the whole host. Only the parameters that belong
//! to a namespace the container has of its own are safe, and only those are accepted.

use std::collections::HashMap;

use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

use super::{hook, SecurityError};
use ch02_namespaces::ChildHook;

/// IPC-namespace parameters (ipc/ipc_sysctl.c in the kernel), as runc's list.
const IPC_NAMES: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

// ANCHOR: namespaced
/// The namespace a sysctl belongs to, or `None` for a global (host-wide) one.
pub fn namespace_of(key: &str) -> Option<LinuxNamespaceType> {
    if IPC_NAMES.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(LinuxNamespaceType::Ipc)
    } else if key.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(LinuxNamespaceType::Uts)
    } else {
        None
    }
}
// ANCHOR_END: namespaced

/// The namespace's `type` as config.json spells it.
fn json_name(namespace: LinuxNamespaceType) -> &'static str {
    match namespace {
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Time => "time",
    }
}

fn valid_name(key: &str) -> bool {
    !key.is_empty()
        && key.split(['.', '/']).all(|part| {
            !part.is_empty()
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-+:@".contains(&b))
        })
}

/// Checks every sysctl (a known name in a namespace the container gets) and returns the step
/// that writes them to `/proc/sys`.
pub fn steps(
    sysctls: &HashMap<String, String>,
    namespaces: &[LinuxNamespace],
) -> Result<Vec<ChildHook>, SecurityError> {
    let mut writes = Vec::new();
    let mut keys: Vec<&String> = sysctls.keys().collect();
    keys.sort();
    for key in keys {
        if !valid_name(key) {
            return Err(SecurityError::BadSysctlName { key: key.clone() });
        }
        let Some(namespace) = namespace_of(key) else {
            return Err(SecurityError::SysctlNotNamespaced { key: key.clone() });
        };
        if !namespaces.iter().any(|ns| ns.typ() == namespace) {
            return Err(SecurityError::SysctlNeedsNamespace {
                key: key.clone(),
                namespace: json_name(namespace).into(),
            });
        }
        // `net.ipv4.conf.eth0/1.rp_filter`: a '/' stands for a '.' inside a name (sysctl(8)).
        let path: String = key
            .chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect();
        writes.push((
            key.clone(),
            format!("/proc/sys/{path}"),
            sysctls[key].clone(),
        ));
    }
    if writes.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![hook(move || {
        for (key, path, value) in &writes {
            std::fs::write(path, value.as_bytes())
                .map_err(|e| format!("sysctl {key}={value} (writing {path}): {e}"))?;
        }
        Ok(())
    })])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namespaces(json: &str) -> Vec<LinuxNamespace> {
        serde_json::from_str(json).unwrap()
    }

    fn one(key: &str, ns: &[LinuxNamespace]) -> Result<Vec<ChildHook>, SecurityError> {
        steps(&HashMap::from([(key.to_string(), "1".to_string())]), ns)
    }

    #[test]
    fn global_sysctls_are_refused() {
        let ns = namespaces(r#"[{"type": "ipc"}, {"type": "network"}]"#);
        let text = one("vm.swappiness", &ns).err().unwrap().to_string();
        assert!(
            text.contains("vm.swappiness") && text.contains("not namespaced"),
            "{text}"
        );
        assert!(one("kernel.pid_max", &ns).is_err());
    }

    #[test]
    fn namespaced_sysctls_need_their_namespace() {
        let ipc = namespaces(r#"[{"type": "ipc"}]"#);
        assert!(one("kernel.shmmax", &ipc).is_ok());
        assert!(one("fs.mqueue.msg_max", &ipc).is_ok());
        let text = one("net.ipv4.ip_forward", &ipc).err().unwrap().to_string();
        assert!(text.contains("network"), "{text}");
        assert!(one("kernel.shmmax", &[]).is_err());
    }

    #[test]
    fn odd_names_are_refused() {
        let ipc = namespaces(r#"[{"type": "ipc"}, {"type": "network"}]"#);
        assert!(one("net.ipv4/../../vm.swappiness", &ipc).is_err());
        assert!(one("net..x", &ipc).is_err());
    }
}
