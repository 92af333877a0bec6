//! Sharing a GPU through NVIDIA's Multi-Process Service (MPS): the host runs
//! `nvidia-cuda-mps-control -d`, whose server talks to clients through named pipes in a
//! directory. A container becomes an MPS client when it sees that directory (at the same path)
//! and `CUDA_MPS_PIPE_DIRECTORY` names it; `CUDA_MPS_ACTIVE_THREAD_PERCENTAGE` caps the share of
//! the GPU's streaming multiprocessors its kernels may use.
//!
//! MPS clients and the server also share memory through `/dev/shm`, so the container needs the
//! server's IPC namespace (what `docker run --ipc=host` gives); boxlab's plan notes that.

use std::path::{Path, PathBuf};

/// What a container asks of MPS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MpsOptions {
    /// The server's pipe directory (`/tmp/nvidia-mps` by default on the host).
    pub pipe_dir: Option<PathBuf>,
    /// 1 to 100: the percentage of the GPU's SMs this container's work may occupy.
    pub thread_percentage: Option<u8>,
}

/// An MPS option that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MpsError {
    #[error("MPS thread percentage {value:?} must be a whole number from 1 to 100 (the share of the GPU's SMs)")]
    BadPercentage { value: String },
    #[error("MPS pipe directory {path} must be an absolute path (it is mounted at the same path inside)")]
    RelativePipeDir { path: PathBuf },
    #[error("MPS pipe directory {path} {reason}; start the server with `nvidia-cuda-mps-control -d` (CUDA_MPS_PIPE_DIRECTORY={path}) first")]
    PipeDir { path: PathBuf, reason: String },
}

/// Parses `--mps-percentage 50`.
pub fn parse_thread_percentage(value: &str) -> Result<u8, MpsError> {
    match value.trim().parse::<u8>() {
        Ok(p) if (1..=100).contains(&p) => Ok(p),
        _ => Err(MpsError::BadPercentage {
            value: value.into(),
        }),
    }
}

// ANCHOR: mps
impl MpsOptions {
    /// Checks the options against the host: the percentage is in range, the pipe directory is
    /// absolute and is a directory.
    pub fn validate(&self) -> Result<(), MpsError> {
        if let Some(p) = self.thread_percentage {
            parse_thread_percentage(&p.to_string())?;
        }
        if let Some(dir) = &self.pipe_dir {
            if !dir.is_absolute() {
                return Err(MpsError::RelativePipeDir { path: dir.clone() });
            }
            match std::fs::metadata(dir) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    return Err(MpsError::PipeDir {
                        path: dir.clone(),
                        reason: "is not a directory".into(),
                    })
                }
                Err(e) => {
                    return Err(MpsError::PipeDir {
                        path: dir.clone(),
                        reason: format!("cannot be read ({e})"),
                    })
                }
            }
        }
        Ok(())
    }

    /// The environment a client needs.
    pub fn env(&self) -> Vec<String> {
        let mut env = Vec::new();
        if let Some(dir) = &self.pipe_dir {
            env.push(format!("CUDA_MPS_PIPE_DIRECTORY={}", dir.display()));
        }
        if let Some(p) = self.thread_percentage {
            env.push(format!("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE={p}"));
        }
        env
    }

    /// The pipe directory, to bind at the same path (read-write: clients create pipes there).
    pub fn bind(&self) -> Option<&Path> {
        self.pipe_dir.as_deref()
    }
}
// ANCHOR_END: mps
