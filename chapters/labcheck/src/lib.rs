//! boxlab's lab checker: does the running system hold what a chapter's lab asked the student to
//! leave running? `scripts/check chNN` runs the `boxlab-check` binary, which prints one line per
//! check (`ok   …` or `FAIL …: expected …, found … (hint: …)`) and ends with
//! `N passed, N failed`.
//!
//! Every check looks from the host, at what the kernel says: `/proc/<pid>/ns/*` against PID 1's,
//! `/proc/<pid>/status` (`NSpid`), `/proc/<pid>/root`, `/proc/<pid>/cgroup`, the cgroup files
//! themselves, and the runtime's state directory. Nothing is changed: a cgroup handle opened to
//! look is let go with [`keep`](ch03_cgroups::Cgroup::keep), never removed.
//!
//! - [`ch02`]: a command in its own PID, MNT, UTS and NET namespaces, with the lab's hostname,
//!   that cannot see the host's processes;
//! - [`ch03`]: the lab's cgroup with its memory and pids limits, and the command inside it;
//! - [`ch06`]: a container of our OCI runtime, listed, running, PID 1 in its own namespaces, in
//!   its own root and cgroup, running the config's `process.args`.

pub mod ch02;
pub mod ch03;
pub mod ch06;
mod error;
pub mod find;
pub mod namespaces;
pub mod procfs;
mod report;

pub use error::ProbeError;
pub use report::{Check, Report};
