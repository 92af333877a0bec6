//! Errors of chapter 3, each saying what failed, on which file or value, and what to do.

use std::path::PathBuf;

use nix::errno::Errno;

/// An error from chapter 3's library.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no cgroup filesystem at {root}: {reason}")]
    NoCgroupFs { root: PathBuf, reason: String },

    #[error("the {controller} controller is not available at {where_}: {hint}")]
    ControllerMissing {
        controller: &'static str,
        where_: PathBuf,
        hint: String,
    },

    #[error("cgroup path '{path}' is not allowed: {reason}")]
    BadPath { path: String, reason: &'static str },

    #[error("invalid {what} '{value}': {reason}")]
    BadValue {
        what: &'static str,
        value: String,
        reason: String,
    },

    #[error("the kernel refused {file} = '{value}': {errno} ({hint})")]
    WriteRefused {
        file: PathBuf,
        value: String,
        errno: Errno,
        hint: &'static str,
    },

    #[error("reading {file}: {reason}")]
    Read { file: PathBuf, reason: String },

    #[error(
        "cgroup {path} does not exist on this host: none of {} is a directory",
        list(checked)
    )]
    NotFound { path: String, checked: Vec<PathBuf> },

    #[error("{file} did not settle to {value} within {seconds} s: a process inside may be stuck in the kernel (state D); try again")]
    NotSettled {
        file: PathBuf,
        value: &'static str,
        seconds: u64,
    },

    #[error("creating {dir}: {errno}{hint}")]
    Create {
        dir: PathBuf,
        errno: Errno,
        hint: &'static str,
    },

    #[error(
        "cgroup {dir} already exists: pick another name, or remove it (rmdir) if it is a leftover"
    )]
    Exists { dir: PathBuf },

    #[error("removing {dir}: {reason}")]
    Remove { dir: PathBuf, reason: String },

    #[error("cgroups without root: {0}")]
    Rootless(String),

    #[error(transparent)]
    Isolation(#[from] ch02_namespaces::NamespaceError),

    /// A later chapter's step on the cgroup (chapter 5's device rules) failed.
    #[error("{what}: {source}")]
    Step {
        what: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// `a, b, c`, for a message.
fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl CgroupError {
    pub(crate) fn read(file: impl Into<PathBuf>, reason: impl ToString) -> Self {
        CgroupError::Read {
            file: file.into(),
            reason: reason.to_string(),
        }
    }
}
