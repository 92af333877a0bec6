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
use nix::unistd::{execve, execvp, pipe2, read, write};

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

/// The key of a `KEY=value` environment pair (all of it when there is no `=`).
pub fn env_key(pair: &str) -> &str {
    pair.split_once('=').map_or(pair, |(key, _)| key)
}

/// Puts `pair` (`KEY=value`) over `env`: any entry with the same key goes, `pair` comes last.
/// What `docker run -e`, `exec --env` and a CDI edit do to an image's environment; one key
/// twice would leave which one wins to the program that reads it.
pub fn put_env(env: &mut Vec<String>, pair: impl Into<String>) {
    let pair = pair.into();
    env.retain(|old| env_key(old) != env_key(&pair));
    env.push(pair);
}

/// A program and its arguments, already converted to C strings.
#[derive(Debug, Clone)]
pub struct Program {
    argv: Vec<CString>,
    /// The whole environment for the program, `KEY=value`; `None` inherits ours.
    env: Option<Vec<CString>>,
    /// The directory to start in; `None` keeps the current one.
    cwd: Option<CString>,
}

/// The search path used when an explicit environment has no `PATH` (what docker uses).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

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
        Ok(Self {
            argv,
            env: None,
            cwd: None,
        })
    }

    /// Gives the program exactly this environment (`KEY=value` pairs) instead of ours; the
    /// program is then looked up in its `PATH`.
    pub fn with_env<S: AsRef<OsStr>>(mut self, env: &[S]) -> Result<Self, ExecError> {
        let env = env
            .iter()
            .enumerate()
            .map(|(index, kv)| {
                CString::new(kv.as_ref().as_bytes()).map_err(|_| ExecError::NulByte {
                    program: self.name(),
                    index,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.env = Some(env);
        Ok(self)
    }

    /// Starts the program in `dir` (a path as the program will see it).
    pub fn with_cwd(mut self, dir: impl AsRef<OsStr>) -> Result<Self, ExecError> {
        let cwd = CString::new(dir.as_ref().as_bytes()).map_err(|_| ExecError::NulByte {
            program: self.name(),
            index: 0,
        })?;
        self.cwd = Some(cwd);
        Ok(self)
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
        let errno = self.exec_inner();
        if let Some(writer) = report {
            // Four bytes, well under PIPE_BUF: the write is atomic.
            let _ = write(writer.0.as_fd(), &(errno as i32).to_ne_bytes());
        }
        errno
    }

    fn exec_inner(&self) -> Errno {
        if let Some(dir) = &self.cwd {
            if let Err(errno) = nix::unistd::chdir(dir.as_c_str()) {
                return errno;
            }
        }
        let Some(env) = &self.env else {
            return match execvp(&self.argv[0], &self.argv) {
                Ok(never) => match never {},
                Err(errno) => errno,
            };
        };
        // With an environment of its own, the program is looked up in *that* PATH (execvpe would
        // use ours, the runtime's).
        let path = env
            .iter()
            .find_map(|kv| kv.to_bytes().strip_prefix(b"PATH="))
            .map(|p| OsStr::from_bytes(p).to_os_string())
            .unwrap_or_else(|| DEFAULT_PATH.into());
        let name = self.argv[0].as_bytes();
        let candidates: Vec<CString> = if name.contains(&b'/') {
            vec![self.argv[0].clone()]
        } else {
            std::env::split_paths(&path)
                .filter_map(|dir| {
                    CString::new(dir.join(OsStr::from_bytes(name)).as_os_str().as_bytes()).ok()
                })
                .collect()
        };
        let mut last = Errno::ENOENT;
        for candidate in &candidates {
            match execve(candidate, &self.argv, env) {
                Ok(never) => match never {},
                // Keep looking on "not here"; remember a more telling error (EACCES) if one comes.
                Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => {}
                Err(errno) => last = errno,
            }
        }
        last
    }
    // ANCHOR_END: exec
}

/// The child's end of an exec status pipe (close-on-exec).
#[derive(Debug)]
pub struct ExecReportWriter(OwnedFd);

impl std::os::fd::AsRawFd for ExecReportWriter {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.0)
    }
}

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
