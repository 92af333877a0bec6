//! Errors of the devices cgroup, each saying what failed, where, and what to do.

use std::path::PathBuf;

use ch03_cgroups::CgroupError;
use nix::errno::Errno;

/// An error from setting up a container's device access.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("device rule '{rule}': {reason}")]
    BadRule { rule: String, reason: String },

    #[error("{path} cannot be allowed as a device: {reason}")]
    NotADevice { path: PathBuf, reason: String },

    #[error(
        "cgroup {cgroup} has neither a v1 'devices' directory nor a cgroup2 directory: {hint}"
    )]
    NoDevicesCgroup { cgroup: String, hint: &'static str },

    #[error(
        "writing the v1 device list of {dir}: {source} \
         (an EPERM there can also mean the parent cgroup denies that device: a v1 cgroup can \
         only allow what its parent allows)"
    )]
    V1 {
        dir: PathBuf,
        #[source]
        source: CgroupError,
    },

    #[error(
        "bpf(BPF_PROG_LOAD) refused the {insns}-instruction device program: {errno} ({hint})\n\
         last lines of the verifier log:\n{log_tail}"
    )]
    Load {
        insns: usize,
        errno: Errno,
        hint: &'static str,
        log_tail: String,
    },

    #[error("opening cgroup directory {dir} to attach a device program: {errno} ({hint})")]
    OpenCgroup {
        dir: PathBuf,
        errno: Errno,
        hint: &'static str,
    },

    #[error("bpf({command}) on cgroup {dir}: {errno} ({hint})")]
    Bpf {
        command: &'static str,
        dir: PathBuf,
        errno: Errno,
        hint: &'static str,
    },
}

/// What to do about an errno from `bpf(2)`.
pub(crate) fn bpf_hint(errno: Errno) -> &'static str {
    match errno {
        Errno::EPERM | Errno::EACCES => {
            "loading and attaching device programs needs CAP_SYS_ADMIN (CAP_BPF is not enough for cgroup programs): run as root; \
             EPERM on attach can also mean an ancestor cgroup holds a program attached without BPF_F_ALLOW_MULTI/OVERRIDE"
        }
        Errno::ENOSYS => "this kernel has no bpf(2): it needs CONFIG_BPF_SYSCALL",
        Errno::EINVAL => {
            "the kernel rejected the request: does it have CONFIG_CGROUP_BPF (4.15+), and is the directory on a cgroup2 mount?"
        }
        Errno::EBADF => "the directory is not on a cgroup2 mount (an ordinary directory or a v1 hierarchy), or the program fd is stale",
        Errno::E2BIG => "the program is too large for this kernel: use fewer rules",
        Errno::ENOSPC => "the verifier's log did not fit its buffer",
        Errno::ENOENT => "the program or cgroup went away",
        _ => "see bpf(2)",
    }
}
