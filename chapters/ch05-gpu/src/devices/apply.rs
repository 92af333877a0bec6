//! Applying device rules to a chapter 3 cgroup, with whichever mechanism its layout has.

use std::path::PathBuf;

use ch03_cgroups::files::Written;
use ch03_cgroups::{Cgroup, V1Controller};

use crate::devices::{attach_to_cgroup, load, v1, DeviceError, DeviceRule, Program};

/// What [`apply`] did.
#[derive(Debug, Default)]
pub struct Applied {
    /// The v1 files written, in order (empty on a pure v2 host).
    pub v1: Vec<Written>,
    /// The eBPF program attached (none on a pure v1 host).
    pub ebpf: Option<EbpfApplied>,
}

/// The device program [`apply_ebpf`] attached.
#[derive(Debug, Clone)]
pub struct EbpfApplied {
    /// The cgroup2 directory it is attached to.
    pub dir: PathBuf,
    /// The program (its [`Program::listing`] is the assembly).
    pub program: Program,
    /// The verifier's log for it.
    pub verifier_log: String,
    /// Ids of earlier device programs it replaced.
    pub replaced: Vec<u32>,
}

// ANCHOR: apply
/// Gives `cgroup` exactly `rules` (after an implicit "deny everything"): on a v1 host the
/// `devices` hierarchy's list, on a v2 host the eBPF program, and on a hybrid host both — the
/// v1 list on the `devices` hierarchy and the program on the cgroup2 twin (the kernel consults
/// both, and the container's processes are in both).
///
/// Call it before a process joins the cgroup: a process already inside keeps the devices it has
/// open.
pub fn apply(cgroup: &Cgroup, rules: &[DeviceRule]) -> Result<Applied, DeviceError> {
    let has_v1 = cgroup.v1_dir(V1Controller::Devices).is_some();
    // None on a v1 host, which has no cgroup2 mount.
    let has_unified = cgroup.unified_dir().is_some();
    if !has_v1 && !has_unified {
        return Err(DeviceError::NoDevicesCgroup {
            cgroup: cgroup.path().to_string(),
            hint: "on cgroup v1, mount the devices hierarchy (mount -t cgroup -o devices cgroup /sys/fs/cgroup/devices); \
                   on v2 the cgroup needs its directory under the cgroup2 mount",
        });
    }
    let mut applied = Applied::default();
    if has_v1 {
        applied.v1 = apply_v1(cgroup, rules)?;
    }
    if has_unified {
        applied.ebpf = Some(apply_ebpf(cgroup, rules)?);
    }
    Ok(applied)
}
// ANCHOR_END: apply

/// Only the v1 mechanism: writes the list into the cgroup's `devices` hierarchy directory.
pub fn apply_v1(cgroup: &Cgroup, rules: &[DeviceRule]) -> Result<Vec<Written>, DeviceError> {
    let dir = cgroup
        .v1_dir(V1Controller::Devices)
        .ok_or_else(|| DeviceError::NoDevicesCgroup {
            cgroup: cgroup.path().to_string(),
            hint: "it has no v1 'devices' directory: this host has no devices hierarchy mounted (a v2 host uses the eBPF program)",
        })?;
    v1::write_rules(dir, rules)
}

/// Only the v2 mechanism: builds the program, loads it and attaches it to the cgroup's cgroup2
/// directory (the cgroup itself on v2, its twin under the cgroup2 mount on a hybrid host).
pub fn apply_ebpf(cgroup: &Cgroup, rules: &[DeviceRule]) -> Result<EbpfApplied, DeviceError> {
    let dir = cgroup
        .unified_dir()
        .ok_or_else(|| DeviceError::NoDevicesCgroup {
            cgroup: cgroup.path().to_string(),
            hint: "it has no cgroup2 directory: this host has no cgroup2 mount (a v1 host uses the devices.allow list)",
        })?;
    let program = Program::build(rules);
    let loaded = load(&program)?;
    let attached = attach_to_cgroup(dir, &loaded)?;
    // `loaded` (the program's fd) closes here; the cgroup holds the program now.
    Ok(EbpfApplied {
        dir: attached.dir,
        program,
        verifier_log: loaded.verifier_log,
        replaced: attached.replaced,
    })
}
