//! Chapter 2: namespaces — a private view of the system for one command.
//!
//! [`Isolation`] says which namespaces to create and what to set up in them; [`Isolation::spawn`]
//! runs a [`Program`](ch01_process::exec::Program) there under a real PID 1, and returns an
//! [`IsolatedChild`] to signal and wait for. Later chapters build on exactly this: chapter 3 puts
//! the child into a cgroup (a [`ParentHook`]), chapter 4 gives it a root filesystem (a
//! [`ChildHook`]).

pub mod args;
mod error;
pub mod idmap;
pub mod init;
mod isolate;
pub mod mounts;
pub mod namespace;
pub mod network;
pub mod port;
pub mod rootless;
pub mod sync;
pub mod view;

pub use ch01_process::status::Exit;
pub use error::NamespaceError;
pub use idmap::IdMap;
pub use isolate::{ChildHook, IsolatedChild, Isolation, Network, Observer, ParentHook};
pub use namespace::{flags_of, parse_list, Namespace};
pub use port::PortMapping;
