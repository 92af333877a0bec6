//! labkit: what every chapter's tests need, written once.
//!
//! - [`require_root`]: privileged tests skip with one line outside CI and *fail* under `CI=true`,
//!   so a CI run can never pass by skipping.
//! - [`ScratchDir`]: a temporary directory whose name carries `boxlab` (so the leak check finds
//!   it) and which unmounts everything below it before removing it, also when a test panics.
//! - [`free_port`]: a loopback port no parallel test will take from under you.
//! - [`ppid`], [`proc_stat_field`]: fields of `/proc/<pid>/stat`, counted past the command name
//!   (which may hold spaces and `)`), with an error that names the pid and the field.
//! - [`LocalRegistry`]: a real OCI registry (Debian's `docker-registry`) on loopback, stopped
//!   and removed when dropped.
//! - [`busybox_rootfs`]: a minimal root filesystem built from the host's static busybox.

mod port;
mod privilege;
mod procstat;
mod registry;
mod rootfs;
mod scratch;

pub use port::free_port;
pub use privilege::{in_ci, is_root, require_root};
pub use procstat::{ppid, proc_stat_field, ProcStatError};
pub use registry::{LocalRegistry, LocalRegistryError, REGISTRY_BINARY};
pub use rootfs::{busybox_rootfs, check_static_elf, find_static_busybox, RootfsError};
pub use scratch::ScratchDir;
