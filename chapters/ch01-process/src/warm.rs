//! A pre-warmed worker: a process started once, that loads what it needs once, and then answers
//! requests over a Unix socket for as long as it lives.
//!
//! This is what makes "serverless starts in milliseconds" true: the platform keeps a process like
//! this alive between requests, and a request that finds one pays only a round trip through the
//! kernel, not a fork, an exec and a load. The same handle also drives the zygote
//! ([`crate::zygote`]), which differs only in what its process does with a request.

use std::fmt;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::child::{fork_child, PANIC_STATUS};
use crate::frame::{kind, Conn, MAX_PAYLOAD};
use crate::status::{try_reap, wait_for_end, Exit};

/// Which kind of pre-started process an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A [`Worker`]: one process answers every request.
    Worker,
    /// A [`crate::zygote::Zygote`]: one process forks a child per request.
    Zygote,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Worker => "worker",
            Role::Zygote => "zygote",
        })
    }
}

/// Why starting or asking a pre-started process failed.
#[derive(Debug, thiserror::Error)]
pub enum WarmError {
    /// `socketpair` failed (out of file descriptors?).
    #[error("creating the socket pair for a {role}: {source}")]
    Socket { role: Role, source: io::Error },
    /// `fork` failed.
    #[error("fork() to start a {role} failed: {errno} (too many processes? see `ulimit -u`)")]
    Fork { role: Role, errno: Errno },
    /// The process ended (its handler or load step panicked, or it was killed).
    #[error("the {role} (pid {pid}) {exit}{}", died_hint(*exit))]
    Died { role: Role, pid: Pid, exit: Exit },
    /// A zygote's child for this one request ended without replying; the zygote lives on.
    #[error(
        "the request's child (pid {child}) {exit}{}; its zygote (pid {zygote}) still serves the next request",
        died_hint(*exit)
    )]
    RequestDied { zygote: Pid, child: Pid, exit: Exit },
    /// The zygote could not fork a child for this one request; the zygote lives on.
    #[error("the zygote (pid {zygote}) could not fork a child for this request: {errno} (too many processes?)")]
    RequestFork { zygote: Pid, errno: Errno },
    /// The request is larger than one message may be.
    #[error("request of {len} bytes is larger than the {MAX_PAYLOAD}-byte limit of one message")]
    TooLarge { len: usize },
    /// Reading or writing the socket failed, or the reply was malformed.
    #[error("talking to the {role} (pid {pid}): {source}")]
    Io {
        role: Role,
        pid: Pid,
        source: io::Error,
    },
    /// The handle was stopped already.
    #[error("the {role} (pid {pid}) was already stopped; start a new one")]
    Stopped { role: Role, pid: Pid },
    /// Waiting for the process failed.
    #[error("waitpid({pid}) for the {role} failed: {errno}")]
    Wait { role: Role, pid: Pid, errno: Errno },
}

fn died_hint(exit: Exit) -> &'static str {
    match exit {
        Exit::Code(PANIC_STATUS) => {
            " (its handler or load step panicked; the message is on stderr)"
        }
        Exit::Signal(Signal::SIGKILL) => " (killed from outside, or by the OOM killer)",
        _ => "",
    }
}

/// How long [`Server::stop`] lets a process finish its current request before `SIGKILL`.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// The parent's handle on a pre-started process: its pid and our end of the socket.
#[derive(Debug)]
pub(crate) struct Server {
    role: Role,
    pid: Pid,
    conn: Option<Conn>,
    /// How the process ended, once we know (we reaped it).
    ended: Option<Exit>,
    /// How long its load step took, as it reported.
    load_time: Duration,
}

impl Server {
    /// Forks a process that serves `our socket`'s peer with `serve`, then waits until it says it
    /// is ready (its load step is done).
    pub fn start(role: Role, serve: impl FnOnce(Conn) -> i32) -> Result<Server, WarmError> {
        let (ours, theirs) =
            UnixStream::pair().map_err(|source| WarmError::Socket { role, source })?;
        let theirs_fd = theirs.as_raw_fd();
        let pid = fork_child(&[theirs_fd], move || serve(Conn::new(theirs)))
            .map_err(|errno| WarmError::Fork { role, errno })?;
        // (`theirs` moved into the closure, which fork_child dropped here in the parent: only the
        // child holds that end now, so when the child ends we read end-of-file.)
        let mut server = Server {
            role,
            pid,
            conn: Some(Conn::new(ours)),
            ended: None,
            load_time: Duration::ZERO,
        };
        let ready = server.recv()?;
        let payload = server.conn()?.payload(&ready);
        if ready.kind != kind::READY || payload.len() != 8 {
            return Err(
                server.protocol_error(format!("expected a READY message, got kind {}", ready.kind))
            );
        }
        let mut nanos = [0u8; 8];
        nanos.copy_from_slice(payload);
        server.load_time = Duration::from_nanos(u64::from_le_bytes(nanos));
        Ok(server)
    }

    pub fn pid(&self) -> Pid {
        self.pid
    }

    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    // ANCHOR: request
    /// Sends `request` and waits for the reply.
    pub fn request(&mut self, request: &[u8]) -> Result<Vec<u8>, WarmError> {
        if request.len() > MAX_PAYLOAD {
            return Err(WarmError::TooLarge { len: request.len() });
        }
        if let Err(source) = self.conn()?.send(kind::DATA, request) {
            // EPIPE or ECONNRESET: nobody reads the other end any more. Find out why.
            return Err(self.died_or(source));
        }
        let reply = self.recv()?;
        let payload = self.conn()?.payload(&reply);
        if reply.kind == kind::DATA {
            return Ok(payload.to_vec());
        }
        Err(self.request_failure(reply.kind, payload))
    }
    // ANCHOR_END: request

    /// Decodes the message a zygote sends instead of a reply when this request's child ended
    /// without replying, or could not be forked.
    fn request_failure(&self, what: u32, payload: &[u8]) -> WarmError {
        let word = |at: usize| {
            i32::from_le_bytes([
                payload[at],
                payload[at + 1],
                payload[at + 2],
                payload[at + 3],
            ])
        };
        match what {
            kind::EXITED | kind::SIGNALED if payload.len() == 8 => {
                let (child, value) = (Pid::from_raw(word(0)), word(4));
                let exit = if what == kind::EXITED {
                    Exit::Code(value)
                } else {
                    match Signal::try_from(value) {
                        Ok(signal) => Exit::Signal(signal),
                        Err(_) => {
                            return self.protocol_error(format!("unknown signal number {value}"))
                        }
                    }
                };
                WarmError::RequestDied {
                    zygote: self.pid,
                    child,
                    exit,
                }
            }
            kind::FORK_FAILED if payload.len() == 4 => WarmError::RequestFork {
                zygote: self.pid,
                errno: Errno::from_raw(word(0)),
            },
            other => self.protocol_error(format!("unexpected message kind {other}")),
        }
    }

    /// Our end of the socket, or why there is none.
    fn conn(&self) -> Result<&Conn, WarmError> {
        self.conn.as_ref().ok_or_else(|| self.gone())
    }

    fn gone(&self) -> WarmError {
        match self.ended {
            Some(exit) => WarmError::Died {
                role: self.role,
                pid: self.pid,
                exit,
            },
            None => WarmError::Stopped {
                role: self.role,
                pid: self.pid,
            },
        }
    }

    /// Receives one message; end-of-file means the process ended, so reap it and say how.
    fn recv(&mut self) -> Result<crate::frame::Frame, WarmError> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(self.gone());
        };
        match conn.recv() {
            Ok(Some(frame)) => Ok(frame),
            Ok(None) => Err(self.died_or(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "socket closed",
            ))),
            Err(source) => Err(self.died_or(source)),
        }
    }

    /// After the socket failed: if the process ended, that is the real error; reap it and say how.
    fn died_or(&mut self, source: io::Error) -> WarmError {
        let peer_gone = matches!(
            source.kind(),
            io::ErrorKind::UnexpectedEof
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionReset
        );
        if peer_gone {
            // The process's end of the socket is closed, so it has ended or is ending; waiting for
            // it is short.
            match wait_for_end(self.pid) {
                Ok(exit) => {
                    self.ended = Some(exit);
                    self.conn = None;
                    return WarmError::Died {
                        role: self.role,
                        pid: self.pid,
                        exit,
                    };
                }
                Err(errno) => {
                    return WarmError::Wait {
                        role: self.role,
                        pid: self.pid,
                        errno,
                    }
                }
            }
        }
        WarmError::Io {
            role: self.role,
            pid: self.pid,
            source,
        }
    }

    fn protocol_error(&self, detail: String) -> WarmError {
        WarmError::Io {
            role: self.role,
            pid: self.pid,
            source: io::Error::new(io::ErrorKind::InvalidData, detail),
        }
    }

    /// Closes the socket, so the process reads end-of-file and exits, then reaps it. A process
    /// still busy after [`STOP_GRACE`] is killed. Returns how it ended.
    pub fn stop(&mut self) -> Result<Exit, WarmError> {
        if let Some(exit) = self.ended {
            return Ok(exit);
        }
        self.conn = None;
        let deadline = Instant::now() + STOP_GRACE;
        let mut pause = Duration::from_micros(20);
        let wait_error = |errno| WarmError::Wait {
            role: self.role,
            pid: self.pid,
            errno,
        };
        let exit = loop {
            if let Some(exit) = try_reap(self.pid).map_err(wait_error)? {
                break exit;
            }
            if Instant::now() >= deadline {
                // ESRCH cannot happen (it is our unreaped child); any error shows in the wait.
                let _ = kill(self.pid, Signal::SIGKILL);
                break wait_for_end(self.pid).map_err(wait_error)?;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        };
        self.ended = Some(exit);
        Ok(exit)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Also runs while a panic unwinds (a failing test): the process never outlives its handle.
        let _ = self.stop();
    }
}

// ANCHOR: worker_loop
/// The worker's whole life: load once, say READY, then answer requests until end-of-file.
fn worker_main<S>(
    mut conn: Conn,
    load: impl FnOnce() -> S,
    mut handler: impl FnMut(&mut S, &[u8]) -> Vec<u8>,
) -> i32 {
    let started = Instant::now();
    let mut state = load();
    let load_ns = started.elapsed().as_nanos() as u64;
    if conn.send(kind::READY, &load_ns.to_le_bytes()).is_err() {
        return 1;
    }
    loop {
        let request = match conn.recv() {
            Ok(Some(frame)) => frame,
            Ok(None) => return 0, // the parent closed its end: stop() or the parent exited
            Err(_) => return 1,
        };
        let reply = handler(&mut state, conn.payload(&request));
        if conn.send(kind::DATA, &reply).is_err() {
            return 1;
        }
    }
}
// ANCHOR_END: worker_loop

/// A pre-warmed worker process. Dropping it stops the process and reaps it.
#[derive(Debug)]
pub struct Worker {
    server: Server,
}

impl Worker {
    /// Starts a worker that answers each request with `handler(request)`.
    pub fn start(mut handler: impl FnMut(&[u8]) -> Vec<u8>) -> Result<Worker, WarmError> {
        Self::start_with(|| (), move |_: &mut (), request: &[u8]| handler(request))
    }

    /// Starts a worker that first runs `load` once (read a model, open a database) in the new
    /// process, then answers each request with `handler(&mut state, request)`. Returns when the
    /// load is done, so the first request is already warm.
    ///
    /// `load` and `handler` run in the forked child, which has only one thread: they must not
    /// wait on a lock that another thread of this program might hold.
    pub fn start_with<S>(
        load: impl FnOnce() -> S,
        handler: impl FnMut(&mut S, &[u8]) -> Vec<u8>,
    ) -> Result<Worker, WarmError> {
        let server = Server::start(Role::Worker, move |conn| worker_main(conn, load, handler))?;
        Ok(Worker { server })
    }

    /// Sends one request and returns the reply.
    pub fn request(&mut self, request: &[u8]) -> Result<Vec<u8>, WarmError> {
        self.server.request(request)
    }

    /// The worker's process id.
    pub fn pid(&self) -> Pid {
        self.server.pid()
    }

    /// How long the worker's load step took (paid once, when it started).
    pub fn load_time(&self) -> Duration {
        self.server.load_time()
    }

    /// Stops the worker: closes its socket, waits for it to exit (killing it after a grace
    /// period if it is stuck in a request) and reaps it. Returns how it ended.
    pub fn stop(mut self) -> Result<Exit, WarmError> {
        self.server.stop()
    }
}
