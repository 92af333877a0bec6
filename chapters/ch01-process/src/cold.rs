//! A cold start: `fork` a copy of this process, `exec` the program in the copy, wait for it.
//!
//! This is what a shell does for every command, and what a "serverless" platform does when no
//! warm instance is ready: a new process, a new address space, the program loaded from disk (or
//! page cache), the dynamic linker run, `main` reached. Everything the program needs (a model, a
//! config, a connection) is then loaded again on top.

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::unistd::{fork, ForkResult, Pid};

use crate::exec::{exec_report_pipe, ExecError, Program};
use crate::status::{wait_for_end, Exit};

/// What one cold run of a program looked like.
#[derive(Debug, Clone, Copy)]
pub struct ColdStart {
    /// The child's process id.
    pub pid: Pid,
    /// How the program ended.
    pub exit: Exit,
    /// From just before `fork` until the parent knew `execve` had succeeded: the cost of making
    /// a process and replacing its program.
    pub to_exec: Duration,
    /// From just before `fork` until the parent had reaped the child: the whole run.
    pub total: Duration,
}

/// Why a cold run failed (the program's own non-zero exit is *not* an error: see [`ColdStart::exit`]).
#[derive(Debug, thiserror::Error)]
pub enum ColdError {
    /// The program could not be executed (not found, not executable) or the report pipe failed.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// `fork` failed: too many processes (`EAGAIN`, see `ulimit -u` and the pids cgroup) or no memory.
    #[error("fork() to start '{program}' failed: {errno}")]
    Fork { program: String, errno: Errno },
    /// `waitpid` on the child failed.
    #[error("waitpid({pid}) for '{program}' failed: {errno}")]
    Wait {
        program: String,
        pid: Pid,
        errno: Errno,
    },
}

// ANCHOR: cold
/// Runs `program` cold: `fork`, `execvp` in the child, `waitpid` in the parent, timing each part.
pub fn run(program: &Program) -> Result<ColdStart, ColdError> {
    // The pipe is close-on-exec: a successful exec closes the child's end, so the parent reads
    // end-of-file; a failed exec writes the errno into it first.
    let (report, report_writer) = exec_report_pipe()?;
    let started = Instant::now();
    // SAFETY: after the fork the child has only this thread. It calls `execvp` (through
    // `Program::exec`, whose C strings were built before the fork), `write` and `_exit`, and
    // allocates nothing but the small argv pointer array, which is safe because glibc's `fork`
    // re-initialises malloc's locks in the child. It touches no other lock another thread could
    // have held at the moment of the fork, and never returns into the caller's code.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            program.exec(Some(&report_writer));
            // exec failed and the errno is in the pipe. `_exit` skips atexit handlers and the
            // flushing of stdio buffers copied from the parent, which belong to the parent.
            // SAFETY: `_exit` ends this process at once; it is always safe to call.
            unsafe { libc::_exit(127) }
        }
        Ok(ForkResult::Parent { child }) => {
            // Close our copy of the writer, or the reader never sees end-of-file.
            drop(report_writer);
            let exec_result = report.wait_for_exec(program);
            let to_exec = started.elapsed();
            // Reap the child in every case, also when exec failed: no zombie is left behind.
            let exit = wait_for_end(child).map_err(|errno| ColdError::Wait {
                program: program.name(),
                pid: child,
                errno,
            })?;
            let total = started.elapsed();
            exec_result?;
            Ok(ColdStart {
                pid: child,
                exit,
                to_exec,
                total,
            })
        }
        Err(errno) => Err(ColdError::Fork {
            program: program.name(),
            errno,
        }),
    }
}
// ANCHOR_END: cold
