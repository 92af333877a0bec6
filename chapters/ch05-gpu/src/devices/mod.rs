//! The devices cgroup: which device nodes a container may open, read, write or create.
//!
//! A container's `/dev` holds only the nodes its runtime put there, but a node is only a name:
//! anyone who can `mknod c 1 5 zero` has `/dev/zero` back. What really decides is the devices
//! cgroup, which the kernel consults on every `open(2)` and `mknod(2)` of a device node. The
//! runtime denies everything, then allows exactly the chosen devices plus a standard set
//! ([`standard_rules`]).
//!
//! The kernel offers two mechanisms, and a host has one or both:
//!
//! - **cgroup v1**: the `devices` hierarchy's control files: `a` to `devices.deny`, then one line
//!   per rule to `devices.allow` (`c 195:* rwm`). See [`v1`].
//! - **cgroup v2**: no control files at all. Instead a small eBPF program of type
//!   `BPF_PROG_TYPE_CGROUP_DEVICE` is attached to the cgroup; the kernel runs it on each access
//!   and the program answers 1 (allow) or 0 (deny). [`program`] builds it from the rules, one
//!   instruction at a time ([`ebpf`] encodes them), and [`attach`] loads it with `bpf(2)` and
//!   attaches it to the cgroup — as runc and crun do.
//!
//! [`apply()`] picks by layout: v1 → the list, v2 → the program, hybrid → both (the v1 list on
//! the `devices` hierarchy and the program on the cgroup2 twin; the kernel checks both).

pub mod apply;
pub mod attach;
pub mod ebpf;
mod error;
pub mod program;
pub mod rule;
pub mod v1;

pub use apply::{apply, apply_ebpf, apply_v1, Applied, EbpfApplied};
pub use attach::{attach_to_cgroup, attached_programs, load, Attached, LoadedProgram};
pub use ebpf::Insn;
pub use error::DeviceError;
pub use program::Program;
pub use rule::{allow_device_node, standard_rules, Access, DeviceKind, DeviceRule};
