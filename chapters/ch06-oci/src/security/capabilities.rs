//! Capabilities: root's powers, cut into ~40 pieces, in five sets per process.
//!
//! - **bounding**: the most this process and everything it execs can ever get. Only shrinks.
//! - **permitted**: what it may switch on. **effective**: what is switched on now (the kernel
//!   checks these).
//! - **inheritable** and **ambient**: what survives `execve` into a program without file
//!   capabilities — ambient is what makes a capability reach a non-root command.
//!
//! After `execve`, for root (uid 0) the kernel recomputes permitted = bounding ∪ inheritable and
//! effective = permitted: that is why runc (and we) shrink the *bounding* set — for root,
//! dropping from permitted alone would be undone by the exec.

use caps::Capability as Cap;
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

use super::{hook, SecurityError};
use ch02_namespaces::ChildHook;

/// The five sets as bit masks (bit n = capability number n), ready for the kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapabilityPlan {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

/// The kernel's name for an OCI capability (`SysAdmin` → `CAP_SYS_ADMIN`).
fn to_caps(cap: &oci_spec::runtime::Capability, field: &str) -> Result<Cap, SecurityError> {
    let name = format!("CAP_{cap}");
    name.parse::<Cap>()
        .map_err(|_| SecurityError::UnknownCapability {
            field: format!("process.capabilities.{field}"),
            name,
        })
}

fn mask_of(set: &Option<Capabilities>, field: &str) -> Result<u64, SecurityError> {
    let mut mask = 0;
    for cap in set.iter().flatten() {
        mask |= to_caps(cap, field)?.bitmask();
    }
    Ok(mask)
}

/// The names of the capabilities in `mask`, for messages.
pub fn names(mask: u64) -> String {
    let names: Vec<String> = caps::all()
        .into_iter()
        .filter(|c| mask & c.bitmask() != 0)
        .map(|c| c.to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

impl CapabilityPlan {
    /// Translates the spec's sets; a set that is absent is empty (as in runc).
    pub fn from_spec(spec: &LinuxCapabilities) -> Result<Self, SecurityError> {
        Ok(CapabilityPlan {
            bounding: mask_of(spec.bounding(), "bounding")?,
            effective: mask_of(spec.effective(), "effective")?,
            permitted: mask_of(spec.permitted(), "permitted")?,
            inheritable: mask_of(spec.inheritable(), "inheritable")?,
            ambient: mask_of(spec.ambient(), "ambient")?,
        })
    }

    /// Removes capabilities above `last_cap` (the kernel's highest) from every set; returns
    /// the ones removed, if any.
    pub fn keep_known(&mut self, last_cap: u32) -> Option<u64> {
        let known = if last_cap >= 63 {
            u64::MAX
        } else {
            (1u64 << (last_cap + 1)) - 1
        };
        let all = self.bounding | self.effective | self.permitted | self.inheritable | self.ambient;
        for set in [
            &mut self.bounding,
            &mut self.effective,
            &mut self.permitted,
            &mut self.inheritable,
            &mut self.ambient,
        ] {
            *set &= known;
        }
        (all & !known != 0).then_some(all & !known)
    }

    /// Whether `cap` ends up in the effective set.
    pub fn effective_has(&self, cap: Cap) -> bool {
        self.effective & cap.bitmask() != 0
    }

    // ANCHOR: bounding
    /// Step: drop from the bounding set every capability the spec does not list. Needs
    /// `CAP_SETPCAP`, so it runs before the user and the other sets change.
    pub fn bounding_step(&self) -> ChildHook {
        let keep = self.bounding;
        hook(move || {
            let last = last_cap();
            for bit in 0..=last {
                if keep & (1 << bit) != 0 {
                    continue;
                }
                // SAFETY: PR_CAPBSET_DROP takes a capability number and touches no memory.
                let rc =
                    unsafe { libc::prctl(libc::PR_CAPBSET_DROP, bit as libc::c_ulong, 0, 0, 0) };
                if rc != 0 {
                    let err = std::io::Error::last_os_error();
                    // Numbers the kernel does not know are simply not there to drop.
                    if err.raw_os_error() == Some(libc::EINVAL) {
                        continue;
                    }
                    return Err(format!(
                        "dropping {} from the bounding set (prctl PR_CAPBSET_DROP): {err}; the runtime needs CAP_SETPCAP for this",
                        names(1 << bit)
                    ));
                }
            }
            Ok(())
        })
    }
    // ANCHOR_END: bounding

    // ANCHOR: sets
    /// Step: set effective, permitted and inheritable in one `capset`, then the ambient set.
    /// Runs after the uid change (which, with `PR_SET_KEEPCAPS`, kept the permitted set).
    pub fn sets_step(&self) -> ChildHook {
        let plan = *self;
        hook(move || {
            capset(plan.effective, plan.permitted, plan.inheritable).map_err(|err| {
                let (_, held) = capget().unwrap_or((0, 0));
                let missing = (plan.permitted | plan.effective | plan.inheritable) & !held;
                if missing != 0 {
                    format!(
                        "capset: {err}: the container asks for {} which the runtime itself does not hold (its permitted set: {}); remove them from process.capabilities",
                        names(missing),
                        names(held)
                    )
                } else {
                    format!(
                        "capset(effective: {}; permitted: {}; inheritable: {}): {err}; effective must be a subset of permitted",
                        names(plan.effective),
                        names(plan.permitted),
                        names(plan.inheritable)
                    )
                }
            })?;
            // Ambient: start from nothing, raise each. The kernel wants each one permitted and
            // inheritable too.
            // SAFETY: prctl with integer arguments only.
            let rc = unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                    0,
                    0,
                    0,
                )
            };
            if rc != 0 && plan.ambient != 0 {
                return Err(format!(
                    "clearing the ambient capabilities: {}; this kernel may be older than 4.3, which has none",
                    std::io::Error::last_os_error()
                ));
            }
            for bit in 0..64u64 {
                if plan.ambient & (1 << bit) == 0 {
                    continue;
                }
                // SAFETY: prctl with integer arguments only.
                let rc = unsafe {
                    libc::prctl(
                        libc::PR_CAP_AMBIENT,
                        libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                        bit as libc::c_ulong,
                        0,
                        0,
                    )
                };
                if rc != 0 {
                    return Err(format!(
                        "raising ambient capability {}: {}; an ambient capability must also be in the permitted and inheritable sets",
                        names(1 << bit),
                        std::io::Error::last_os_error()
                    ));
                }
            }
            Ok(())
        })
    }
    // ANCHOR_END: sets
}

/// The highest capability number this kernel knows.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `capset(2)` for this thread: all three sets at once (64 bits each, as two 32-bit halves).
fn capset(effective: u64, permitted: u64, inheritable: u64) -> std::io::Result<()> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        CapData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: header and data are valid, correctly laid out (repr(C)) for version 3, which
    // reads exactly two CapData.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `capget(2)` for this thread: (effective, permitted).
fn capget() -> std::io::Result<(u64, u64)> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: version 3 writes exactly two CapData into `data`, which has room for them.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok((
        join(data[0].effective, data[1].effective),
        join(data[0].permitted, data[1].permitted),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_translate_to_masks() {
        let spec: LinuxCapabilities = serde_json::from_str(
            r#"{"bounding": ["CAP_NET_BIND_SERVICE", "CAP_CHOWN"], "effective": ["CAP_CHOWN"]}"#,
        )
        .unwrap();
        let plan = CapabilityPlan::from_spec(&spec).unwrap();
        assert_eq!(plan.bounding, (1 << 10) | 1);
        assert_eq!(plan.effective, 1);
        assert_eq!(plan.permitted, 0, "an absent set is empty");
        assert!(plan.effective_has(Cap::CAP_CHOWN));
        assert!(!plan.effective_has(Cap::CAP_SYS_ADMIN));
        assert_eq!(names(plan.bounding), "CAP_CHOWN, CAP_NET_BIND_SERVICE");
    }

    #[test]
    fn capabilities_newer_than_the_kernel_are_skipped() {
        let spec: LinuxCapabilities =
            serde_json::from_str(r#"{"bounding": ["CAP_CHOWN", "CAP_CHECKPOINT_RESTORE"]}"#)
                .unwrap();
        let mut plan = CapabilityPlan::from_spec(&spec).unwrap();
        // A 5.4 kernel knows up to CAP_AUDIT_READ (37); CAP_CHECKPOINT_RESTORE is 40.
        assert_eq!(plan.keep_known(37), Some(1 << 40));
        assert_eq!(plan.bounding, 1);
        assert_eq!(plan.keep_known(40), None);
    }
}
