//! What can go wrong while looking at the running system.

use std::path::PathBuf;

/// A file under `/proc` or `/sys` that could not be read or made sense of.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Reading failed (the process ended, or no permission: run the checker as root).
    #[error("cannot read {path}: {source} (did the process end? is the checker running as root?)")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file was read but did not hold what it should.
    #[error("{path} does not hold {what}")]
    Parse { path: PathBuf, what: &'static str },

    /// Entering a namespace to look from inside failed.
    #[error("cannot enter {path}: {errno}")]
    Enter { path: PathBuf, errno: nix::Error },
}
