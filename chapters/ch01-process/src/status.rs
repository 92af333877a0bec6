//! How a process ended: an exit code or a signal, read from `waitpid`.
//!
//! Every process in this chapter (a cold command, a worker, a zygote's per-request child) ends up
//! here, so a student sees the same words everywhere: "exited with status 7", "killed by signal
//! SIGKILL".

use std::fmt;

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// How a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It called `exit(code)` (or returned `code` from `main`).
    Code(i32),
    /// A signal ended it (`kill -9`, a segfault, an abort).
    Signal(Signal),
}

impl Exit {
    /// The status a shell would report in `$?`: the code itself, or 128 + the signal number.
    pub fn shell_code(self) -> i32 {
        match self {
            Exit::Code(code) => code,
            Exit::Signal(signal) => 128 + signal as i32,
        }
    }

    /// True for `exit(0)`.
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }

    /// Reads the end of a process from a `WaitStatus`; `None` for a status that is not an end
    /// (stopped or continued, which only a tracer or `WUNTRACED` sees).
    pub fn from_wait(status: WaitStatus) -> Option<Exit> {
        match status {
            WaitStatus::Exited(_, code) => Some(Exit::Code(code)),
            WaitStatus::Signaled(_, signal, _) => Some(Exit::Signal(signal)),
            _ => None,
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exited with status {code}"),
            Exit::Signal(signal) => write!(f, "was killed by signal {}", signal.as_str()),
        }
    }
}

/// How every chapter binary ends: with the command's status (clamped to 0..=255), or with one
/// line `NAME: error: …` on stderr and status 1. (`{:#}` prints an `anyhow` error's whole chain
/// on one line.)
pub fn finish<E: fmt::Display>(program: &str, result: Result<i32, E>) -> std::process::ExitCode {
    match result {
        Ok(code) => std::process::ExitCode::from(code.clamp(0, 255) as u8),
        Err(err) => {
            eprintln!("{program}: error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Waits until `pid` has ended and reaps it (so no zombie is left), retrying on `EINTR`.
pub fn wait_for_end(pid: Pid) -> Result<Exit, Errno> {
    loop {
        match waitpid(pid, None) {
            Ok(status) => {
                if let Some(exit) = Exit::from_wait(status) {
                    return Ok(exit);
                }
            }
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(errno),
        }
    }
}

/// Reaps `pid` if it has already ended; `Ok(None)` if it is still running.
pub(crate) fn try_reap(pid: Pid) -> Result<Option<Exit>, Errno> {
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return Ok(None),
            Ok(status) => {
                if let Some(exit) = Exit::from_wait(status) {
                    return Ok(Some(exit));
                }
            }
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(errno),
        }
    }
}
