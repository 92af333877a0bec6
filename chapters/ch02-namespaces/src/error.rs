//! Everything that can go wrong while isolating a command, each with what failed and where.

use std::net::SocketAddr;
use std::path::PathBuf;

use ch01_process::exec::ExecError;
use nix::errno::Errno;

use crate::Namespace;

/// An error from chapter 2's library.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error(
        "unknown namespace '{name}': expected a comma-separated list of user, mnt, uts, ipc, net, pid, cgroup, time"
    )]
    UnknownNamespace { name: String },

    #[error("this kernel has no {0} namespace (/proc/self/ns/{0} is missing)")]
    Unsupported(Namespace),

    #[error(
        "creating {namespaces} namespaces needs root: run as root, or add --rootless to do it inside a user namespace"
    )]
    NeedsRoot { namespaces: String },

    #[error("{what} needs root on the host: {why}")]
    RootOnly { what: String, why: String },

    #[error("unprivileged user namespaces are disabled on this host: {reason}")]
    UserNamespacesDisabled { reason: String },

    #[error("invalid {kind} map '{spec}': {reason} (expected INSIDE:OUTSIDE:COUNT, e.g. 0:100000:65536)")]
    InvalidIdMap {
        kind: &'static str,
        spec: String,
        reason: String,
    },

    #[error("the kernel refused {file} = '{content}': {errno} ({hint})")]
    IdMapRejected {
        file: PathBuf,
        content: String,
        errno: Errno,
        hint: &'static str,
    },

    #[error("cannot read the id map {file}: {reason}")]
    IdMapUnreadable { file: PathBuf, reason: String },

    #[error("invalid {option}: {reason}")]
    InvalidOption {
        option: &'static str,
        reason: String,
    },

    #[error("{option} needs the {namespace} namespace: add it to --ns")]
    NeedsNamespace {
        option: &'static str,
        namespace: Namespace,
    },

    #[error("invalid port mapping '{spec}': {reason} (expected [HOST_IP:]HOST_PORT:CONTAINER_PORT, e.g. 8080:80)")]
    InvalidPortMapping { spec: String, reason: String },

    #[error("cannot publish port: {addr} is already in use or not bindable: {source}")]
    PortUnavailable {
        addr: SocketAddr,
        source: std::io::Error,
    },

    #[error("network set-up failed at '{step}': {detail}")]
    Network { step: String, detail: String },

    #[error(transparent)]
    Exec(#[from] ExecError),

    #[error("setting up the isolated child failed: {0}")]
    ChildSetup(String),

    #[error("{what} failed: {errno}")]
    Sys { what: String, errno: Errno },

    #[error("the isolated child exited before it was ready ({0})")]
    ChildVanished(String),
}

impl NamespaceError {
    /// Shorthand for a failed system call in the parent.
    pub(crate) fn sys(what: impl Into<String>, errno: Errno) -> Self {
        NamespaceError::Sys {
            what: what.into(),
            errno,
        }
    }
}
