//! Everything that can go wrong in the runtime, each with what failed, on which container or
//! path, and what to do.

use std::path::PathBuf;

use ch01_process::exec::ExecError;
use ch02_namespaces::NamespaceError;
use ch03_cgroups::CgroupError;
use ch04_rootfs::RootfsError;
use ch05_gpu::devices::DeviceError;
use nix::errno::Errno;

/// An error from chapter 6's runtime.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("invalid container id '{id}': {reason}")]
    BadId { id: String, reason: &'static str },

    #[error("reading the bundle's config {path}: {reason}")]
    Config { path: PathBuf, reason: String },

    #[error("config.json has ociVersion '{version}': this runtime implements the runtime spec 1.x; a different major version may mean something else")]
    OciVersion { version: String },

    #[error("config.json is missing {field}: {hint}")]
    Missing {
        field: &'static str,
        hint: &'static str,
    },

    #[error("config.json: {field} = {value:?} is invalid: {reason}")]
    Invalid {
        field: String,
        value: String,
        reason: String,
    },

    #[error("{what} is not supported yet by boxlab's runtime: {hint}")]
    Unsupported { what: String, hint: &'static str },

    #[error("the root filesystem {path} is not usable: {reason}")]
    Rootfs { path: PathBuf, reason: String },

    #[error(
        "container '{id}' already exists (state in {dir}): pick another id, or delete it first"
    )]
    Exists { id: String, dir: PathBuf },

    #[error("container '{id}' does not exist (no state directory under {root})")]
    NotFound { id: String, root: PathBuf },

    #[error("container '{id}' is {status}: {hint}")]
    WrongState {
        id: String,
        status: String,
        hint: &'static str,
    },

    /// A signal for a container whose processes are gone. The words are runc's: containerd's
    /// shim recognises "container not running" as "already gone" and carries on with delete.
    #[error(
        "container not running: '{id}' is stopped; there is no process left to signal (delete it)"
    )]
    NotRunning { id: String },

    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("the state of container '{id}' in {path} is unreadable: {reason}")]
    BadState {
        id: String,
        path: PathBuf,
        reason: String,
    },

    #[error("unknown signal '{signal}': use a name (TERM, SIGKILL) or a number (15)")]
    BadSignal { signal: String },

    #[error("{what}: {errno}")]
    Sys { what: String, errno: Errno },

    #[error("starting container '{id}': {reason}")]
    Start { id: String, reason: String },

    #[error("published ports: {0}")]
    Ports(String),

    #[error("image '{reference}': {reason}")]
    Image { reference: String, reason: String },

    #[error("option {option} = {value}: {hint}")]
    BadOption {
        option: String,
        value: String,
        hint: &'static str,
    },

    #[error("security settings of config.json: {0}")]
    Security(String),

    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),

    #[error("{0}")]
    Console(String),

    #[error(transparent)]
    Namespace(#[from] NamespaceError),

    #[error(transparent)]
    Cgroup(#[from] CgroupError),

    #[error(transparent)]
    RootfsSetup(#[from] RootfsError),

    #[error(transparent)]
    Device(#[from] DeviceError),

    #[error(transparent)]
    Exec(#[from] ExecError),
}

impl OciError {
    /// Shorthand for a failed file operation.
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        OciError::Io {
            what,
            path: path.into(),
            source,
        }
    }

    /// Shorthand for an invalid config value.
    pub(crate) fn invalid(
        field: impl Into<String>,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        OciError::Invalid {
            field: field.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}
