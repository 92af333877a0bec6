//! Chapter 3: cgroups — limits on what an isolated command may use.
//!
//! [`detect`] finds the host's layout (v1, v2 or hybrid); [`Cgroup::create`] makes a cgroup with
//! [`Limits`] on it; [`confine`] hands it to chapter 2's [`Isolation`](ch02_namespaces::Isolation)
//! so the isolated child starts inside it. [`k8s`] translates a pod's requests and limits into
//! the same files.

pub mod args;
mod cgroup;
mod confine;
mod error;
pub mod files;
mod freezer;
pub mod k8s;
mod layout;
pub mod limits;
mod path;
pub mod quantity;
pub mod rootless;
pub mod run;
mod usage;
pub mod v1;
pub mod v2;

pub use cgroup::{Cgroup, V1Controller};
pub use confine::{confine, run_confined, Confined};
pub use error::CgroupError;
pub use freezer::Freezer;
pub use layout::{classify, detect, detect_at, fs_kind, FsKind, Layout, DEFAULT_ROOT};
pub use limits::Limits;
pub use path::{CgroupPath, BOXLAB_PARENT};
pub use usage::Usage;
