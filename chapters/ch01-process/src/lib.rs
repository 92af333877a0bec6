//! Chapter 1: a process — the "serverless" column of the comparison table.
//!
//! A plain process shares everything with the host (namespaces, cgroup, filesystem): see
//! [`inspect`]. What we measure here is what it costs to *start* one:
//!
//! - [`cold::run`]: cold, `fork` + `exec` + wait, as a shell or a cold serverless start does it;
//! - [`warm::Worker`]: pre-warmed, a process started once that answers requests over a socket;
//! - [`zygote::Zygote`]: a process started once that forks a fresh child per request.

pub mod child;
pub mod cold;
pub mod demo;
pub mod exec;
mod frame;
pub mod inspect;
pub mod status;
pub mod warm;
pub mod zygote;

pub use cold::{ColdError, ColdStart};
pub use exec::{ExecError, Program};
pub use status::Exit;
pub use warm::{Role, WarmError, Worker};
pub use zygote::Zygote;
