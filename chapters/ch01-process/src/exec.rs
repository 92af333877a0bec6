//! A command made ready for `execvp` *before* `fork`, and the pipe that tells the parent whether
//! the exec worked.
//!
//! Between `fork` and `exec` the child should do as little as possible: so the argument strings
//! are built here, in the parent, and the child only calls `execvp`. If `execvp` fails, the child
//! writes the errno into a close-on-exec pipe; if it succeeds, the kernel closes the pipe and the
//! parent reads end-of-file. That is how "command not found" becomes an error in the parent
//! instead of a mysterious exit status 127. Later chapters exec through this too.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::unistd::{execvp, pipe2, read, write};

/// Why a command could not be prepared or started.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// No command was given.
    #[error("no command given: name a program to run, e.g. `-- /bin/true`")]
    Empty,
    /// An argument contains a NUL byte, which no C string can hold.
    #[error("argument {index} of '{program}' contains a NUL byte")]
    NulByte { program: String, index: usize },
    /// `execvp` failed in the child.
    #[error("cannot execute '{program}': {}", describe_exec_errno(program, *errno))]
    Exec { program: String, errno: Errno },
    /// The pipe that carries the exec result failed.
    #[error("exec status pipe: {0}")]
    Pipe(Errno),
}

fn describe_exec_errno(program: &str, errno: Errno) -> String {
    match errno {
        // execvp searches PATH only for a name without a slash.
        Errno::ENOENT if program.contains('/') => "no such file or directory".into(),
        Errno::ENOENT => "command not found in PATH".into(),
        Errno::EACCES => "permission denied (not executable?)".into(),
        Errno::ENOEXEC => "not an executable format".into(),
        other => other.desc().to_string(),
    }
}

/// A program and its arguments, already converted to C strings.
#[derive(Debug, Clone)]
pub struct Program {
    argv: Vec<CString>,
}

impl Program {
    /// Prepares `args[0]` with arguments `args[1..]`. The program is looked up in `PATH` when it
    /// is exec'd, in the child, so that a child with another root filesystem looks in its own.
    pub fn new<S: AsRef<OsStr>>(args: &[S]) -> Result<Self, ExecError> {
        if args.is_empty() {
            return Err(ExecError::Empty);
        }
        let argv = args
            .iter()
            .enumerate()
            .map(|(index, arg)| {
                CString::new(arg.as_ref().as_bytes()).map_err(|_| ExecError::NulByte {
                    program: args[0].as_ref().to_string_lossy().into_owned(),
                    index,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { argv })
    }

    /// The program's name as given (`argv[0]`), for messages.
    pub fn name(&self) -> String {
        self.argv[0].to_string_lossy().into_owned()
    }

    /// The whole command line, for messages.
    pub fn display(&self) -> String {
        self.argv
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    }

    // ANCHOR: exec
    /// Replaces the calling process with the program. Returns only if `execvp` failed; the
    /// failure is written to `report` (when given) for the parent to read.
    pub fn exec(&self, report: Option<&ExecReportWriter>) -> Errno {
        let errno = match execvp(&self.argv[0], &self.argv) {
            Ok(never) => match never {},
            Err(errno) => errno,
        };
        if let Some(writer) = report {
            // Four bytes, well under PIPE_BUF: the write is atomic.
            let _ = write(writer.0.as_fd(), &(errno as i32).to_ne_bytes());
        }
        errno
    }
    // ANCHOR_END: exec
}

/// The child's end of an exec status pipe (close-on-exec).
#[derive(Debug)]
pub struct ExecReportWriter(OwnedFd);

/// The parent's end of an exec status pipe.
#[derive(Debug)]
pub struct ExecReportReader(OwnedFd);

/// Makes a close-on-exec pipe for reporting exec failures: create it before `fork`; the child
/// keeps the writer, the parent the reader (each drops the other end).
pub fn exec_report_pipe() -> Result<(ExecReportReader, ExecReportWriter), ExecError> {
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).map_err(ExecError::Pipe)?;
    Ok((ExecReportReader(read_end), ExecReportWriter(write_end)))
}

impl ExecReportReader {
    /// Waits until the child has exec'd (end-of-file: `Ok`) or failed to (`Err` with its errno).
    /// The writer end must already be closed in the parent, or this waits forever.
    pub fn wait_for_exec(self, program: &Program) -> Result<(), ExecError> {
        let mut buf = [0u8; 4];
        let mut filled = 0;
        while filled < buf.len() {
            match read(&self.0, &mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(Errno::EINTR) => continue,
                Err(errno) => return Err(ExecError::Pipe(errno)),
            }
        }
        match filled {
            0 => Ok(()),
            4 => Err(ExecError::Exec {
                program: program.name(),
                errno: Errno::from_raw(i32::from_ne_bytes(buf)),
            }),
            _ => Err(ExecError::Pipe(Errno::EIO)),
        }
    }
}
