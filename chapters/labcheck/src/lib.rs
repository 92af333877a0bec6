//! boxlab's lab checker: does the running system hold what a chapter's lab asked the student to
//! leave running? `scripts/check chNN` runs the `boxlab-check` binary, which prints one line per
//! check (`ok   …` or `FAIL …: expected …, found … (hint: …)`) and ends with
//! `N passed, N failed`.
//!
//! Every check looks from the host, at what the kernel says: `/proc/<pid>/ns/*` against PID 1's,
//! `/proc/<pid>/status` (`NSpid`), `/proc/<pid>/root`, `/proc/<pid>/cgroup`, the cgroup files
//! themselves, and the runtime's state directory. Nothing is changed: a cgroup handle opened to
//! look is let go with [`keep`](ch03_cgroups::Cgroup::keep), never removed. Two checks act, and
//! leave nothing behind: ch01 sends the worker one request, and ch05 opens device nodes from a
//! short-lived child placed in the container's cgroups.
//!
//! - [`ch01`]: a pre-forked worker (or zygote) of `ch01-process --serve`, waiting, in the host's
//!   namespaces, holding one socket, answering a request the checker sends;
//! - [`ch02`]: a command in its own PID, MNT, UTS and NET namespaces, with the lab's hostname,
//!   that cannot see the host's processes;
//! - [`ch03`]: the lab's cgroup with its memory and pids limits, and the command inside it;
//! - [`ch06`]: a container of our OCI runtime, listed, running, PID 1 in its own namespaces, in
//!   its own root and cgroup, running the config's `process.args`;
//! - [`ch04`]: a container in a root of its own: an overlay of an image's layers (or a
//!   `--rootfs` directory), read-only if asked, mounted only inside;
//! - [`ch05`]: a container with exactly the chosen GPU of a fake host: its node, a devices cgroup
//!   that opens it and refuses the others, the CUDA/NVIDIA variables;
//! - [`ch07`]: the micro-VM's snapshot files, restored into a new VM that finishes the guest's
//!   work.

pub mod ch01;
pub mod ch02;
pub mod ch03;
pub mod ch04;
pub mod ch05;
pub mod ch06;
pub mod ch07;
mod error;
pub mod find;
pub mod namespaces;
pub mod procfs;
mod report;

pub use error::ProbeError;
pub use report::{Check, Report};
