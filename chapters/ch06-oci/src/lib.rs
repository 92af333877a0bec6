//! Chapter 6: an OCI runtime — a bundle (`config.json` + a root filesystem) through every stage
//! the earlier chapters built, with runc's command line so that containerd and podman can drive
//! it.
//!
//! A container lives through the OCI lifecycle:
//!
//! ```text
//!   create ──▶ created ──start──▶ running ──(process ends / kill)──▶ stopped ──delete──▶ gone
//! ```
//!
//! `create` builds everything — namespaces (chapter 2), cgroup (chapter 3), root filesystem
//! (chapter 4), devices (chapter 5) — and leaves the command waiting at the last step before
//! `exec`, blocked on opening the FIFO `exec.fifo` in the container's state directory. `start`
//! opens that FIFO for reading, and the command goes. The state directory `<root>/<id>/` is all
//! the runtime remembers between two invocations.
//!
//! - [`config`] reads `config.json` and translates it into chapters 2–5;
//! - [`mounts`] performs the config's `mounts` list inside the new root;
//! - [`state`] keeps the state directory and answers "created, running or stopped?";
//! - [`verbs`] has one file per runc verb;
//! - [`hooks`] runs the config's OCI hooks; [`console`] gives the process a terminal;
//! - [`log`] writes the error lines containerd reads (`--log`, `--log-format json`);
//! - [`builder`] is the seed's Docker SDK call, `Container::builder(image).mem_limit(..).run()`;
//! - [`sealed`] re-executes the runtime from a sealed copy before it enters a container.

pub mod builder;
pub mod config;
pub mod console;
mod error;
pub mod fifo_watch;
pub mod hooks;
pub mod log;
pub mod mounts;
pub mod ports;
pub mod sealed;
pub mod security;
pub mod state;
pub mod verbs;

pub use error::OciError;

/// Where state directories live unless `--root` says otherwise. Under `/run/boxlab`, so that
/// anyone (and the leak check) can find what a runtime left behind.
pub const DEFAULT_ROOT: &str = "/run/boxlab/runtime";
