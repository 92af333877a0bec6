//! Resource limits (`ulimit`): per-process ceilings the kernel enforces — open files, processes,
//! core size, locked memory. Each has a soft limit (what is enforced) and a hard limit (how far
//! the process may raise the soft one itself). Only `CAP_SYS_RESOURCE` raises a hard limit.

use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

use super::{hook, SecurityError};
use ch02_namespaces::ChildHook;

/// A resource number for `setrlimit(2)` (`RLIMIT_NOFILE`, …).
pub type Resource = libc::__rlimit_resource_t;

/// The kernel's resource for an OCI rlimit type.
pub fn resource_of(typ: PosixRlimitType) -> Resource {
    use PosixRlimitType as T;
    match typ {
        T::RlimitCpu => libc::RLIMIT_CPU,
        T::RlimitFsize => libc::RLIMIT_FSIZE,
        T::RlimitData => libc::RLIMIT_DATA,
        T::RlimitStack => libc::RLIMIT_STACK,
        T::RlimitCore => libc::RLIMIT_CORE,
        T::RlimitRss => libc::RLIMIT_RSS,
        T::RlimitNproc => libc::RLIMIT_NPROC,
        T::RlimitNofile => libc::RLIMIT_NOFILE,
        T::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        T::RlimitAs => libc::RLIMIT_AS,
        T::RlimitLocks => libc::RLIMIT_LOCKS,
        T::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        T::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        T::RlimitNice => libc::RLIMIT_NICE,
        T::RlimitRtprio => libc::RLIMIT_RTPRIO,
        T::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// `getrlimit(2)`: (soft, hard).
pub fn getrlimit(resource: Resource) -> std::io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one struct rlimit into `limit`.
    if unsafe { libc::getrlimit(resource, &mut limit) } == 0 {
        Ok((limit.rlim_cur, limit.rlim_max))
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `setrlimit(2)`.
fn setrlimit(resource: Resource, soft: u64, hard: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads one struct rlimit from `limit`.
    if unsafe { libc::setrlimit(resource, &limit) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Whether this process may raise hard limits (`CAP_SYS_RESOURCE` in its effective set).
fn can_raise_hard_limits() -> bool {
    caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_RESOURCE,
    )
    .unwrap_or(false)
}

// ANCHOR: rlimits
/// Checks every limit now (soft ≤ hard; a hard limit above ours needs `CAP_SYS_RESOURCE`, which
/// the container's process inherits from the runtime or not at all) and returns the step that
/// sets them with `setrlimit`.
pub fn step(rlimits: &[PosixRlimit]) -> Result<ChildHook, SecurityError> {
    let mut limits = Vec::with_capacity(rlimits.len());
    let may_raise = can_raise_hard_limits();
    for rlimit in rlimits {
        let name = rlimit.typ().to_string();
        let resource = resource_of(rlimit.typ());
        let (soft, hard) = (rlimit.soft(), rlimit.hard());
        if soft > hard {
            return Err(SecurityError::RlimitSoftAboveHard {
                typ: name,
                soft,
                hard,
            });
        }
        if let Ok((_, current)) = getrlimit(resource) {
            if hard > current && !may_raise {
                return Err(SecurityError::RlimitHardAboveCurrent {
                    typ: name,
                    hard,
                    current,
                });
            }
        }
        limits.push((name, resource, soft, hard));
    }
    Ok(hook(move || {
        for (name, resource, soft, hard) in &limits {
            setrlimit(*resource, *soft, *hard).map_err(|e| {
                let current = getrlimit(*resource).map(|(_, h)| h).unwrap_or(0);
                if *hard > current {
                    format!(
                        "setrlimit({name}, soft {soft}, hard {hard}): {e}: raising the hard limit above {current} needs CAP_SYS_RESOURCE, which this process lacks; lower 'hard'"
                    )
                } else {
                    format!("setrlimit({name}, soft {soft}, hard {hard}): {e}")
                }
            })?;
        }
        Ok(())
    }))
}
// ANCHOR_END: rlimits

#[cfg(test)]
mod tests {
    use super::*;

    fn rlimit(json: &str) -> PosixRlimit {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn soft_above_hard_is_refused() {
        let err = step(&[rlimit(
            r#"{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}"#,
        )])
        .err()
        .unwrap();
        let text = err.to_string();
        assert!(text.contains("RLIMIT_NOFILE"), "{text}");
        assert!(text.contains("soft limit 2048"), "{text}");
    }

    #[test]
    fn a_hard_limit_above_ours_is_refused_without_cap_sys_resource() {
        if can_raise_hard_limits() {
            return; // this host's runtime may raise it: nothing to refuse
        }
        let (_, current) = getrlimit(libc::RLIMIT_NOFILE).unwrap();
        if current == u64::MAX {
            return;
        }
        let json = format!(
            r#"{{"type": "RLIMIT_NOFILE", "soft": 64, "hard": {}}}"#,
            current + 1
        );
        let text = step(&[rlimit(&json)]).err().unwrap().to_string();
        assert!(text.contains("CAP_SYS_RESOURCE"), "{text}");
    }

    #[test]
    fn lowering_is_fine() {
        assert!(step(&[rlimit(
            r#"{"type": "RLIMIT_NOFILE", "soft": 64, "hard": 64}"#
        )])
        .is_ok());
    }
}
