//! A zygote: a process started once that loads what every request needs, and then forks a fresh
//! child for each request.
//!
//! Android starts every app this way, and so do Python servers with "preload then fork". The
//! expensive part (loading libraries, a model, a config) is done once, in the zygote. A `fork`
//! copies it for free: the child shares the zygote's memory pages until one of them writes to a
//! page (copy-on-write). So each request pays a fork, not an exec and a load; and because each
//! request runs in its own process, a request that crashes takes nothing else down and leaves no
//! state behind for the next one.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::sys::prctl::set_pdeathsig;
use nix::sys::signal::Signal;
use nix::unistd::{getpid, getppid, Pid};

use crate::child::fork_child;
use crate::frame::{kind, Conn};
use crate::status::{wait_for_end, Exit};
use crate::warm::{Role, Server, WarmError};

// ANCHOR: zygote_loop
/// The zygote's whole life: load once, say READY, then fork a child per request.
fn zygote_main<S>(
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
    let zygote = getpid();
    loop {
        let request = match conn.recv() {
            Ok(Some(frame)) => frame,
            Ok(None) => return 0, // the parent closed its end
            Err(_) => return 1,
        };
        // The child gets a copy-on-write copy of `state` and the socket; it replies itself.
        // Whatever it changes in `state` dies with it: the next child starts from the loaded copy.
        let forked = fork_child(&[conn.socket().as_raw_fd()], || {
            // If the zygote is killed while this request runs, die with it rather than live on as
            // an orphan. (The zygote has one thread, so "parent thread exits" = "zygote exits".)
            if set_pdeathsig(Signal::SIGKILL).is_err() || getppid() != zygote {
                return 1;
            }
            let reply = handler(&mut state, conn.payload(&request));
            match conn.send(kind::DATA, &reply) {
                Ok(()) => 0,
                Err(_) => 1,
            }
        });
        // The zygote waits for its child, so no zombie piles up, and tells the parent if the
        // child ended without replying.
        let sent = match forked.map(wait_for_end) {
            Ok(Ok(Exit::Code(0))) => Ok(()),
            Ok(Ok(exit)) => {
                let (what, value) = match exit {
                    Exit::Code(code) => (kind::EXITED, code),
                    Exit::Signal(signal) => (kind::SIGNALED, signal as i32),
                };
                let child = forked.map_or(0, Pid::as_raw);
                let mut payload = [0u8; 8];
                payload[..4].copy_from_slice(&child.to_le_bytes());
                payload[4..].copy_from_slice(&value.to_le_bytes());
                conn.send(what, &payload)
            }
            Ok(Err(_)) => return 1, // waitpid on our own child failed: nothing sensible is left
            Err(errno) => conn.send(kind::FORK_FAILED, &(errno as i32).to_le_bytes()),
        };
        if sent.is_err() {
            return 1;
        }
    }
}
// ANCHOR_END: zygote_loop

/// A zygote process. Dropping it stops the process and reaps it.
#[derive(Debug)]
pub struct Zygote {
    server: Server,
}

impl Zygote {
    /// Starts a zygote that forks a child per request to answer it with `handler(request)`.
    pub fn start(mut handler: impl FnMut(&[u8]) -> Vec<u8>) -> Result<Zygote, WarmError> {
        Self::start_with(|| (), move |_: &mut (), request: &[u8]| handler(request))
    }

    /// Starts a zygote that runs `load` once, then for each request forks a child that runs
    /// `handler(&mut state, request)` on its own copy of the loaded state and exits. Returns when
    /// the load is done.
    ///
    /// `load` runs in the forked zygote, which has only one thread: it must not wait on a lock
    /// that another thread of this program might hold.
    pub fn start_with<S>(
        load: impl FnOnce() -> S,
        handler: impl FnMut(&mut S, &[u8]) -> Vec<u8>,
    ) -> Result<Zygote, WarmError> {
        let server = Server::start(Role::Zygote, move |conn| zygote_main(conn, load, handler))?;
        Ok(Zygote { server })
    }

    /// Sends one request; a fresh child of the zygote answers it.
    pub fn request(&mut self, request: &[u8]) -> Result<Vec<u8>, WarmError> {
        self.server.request(request)
    }

    /// The zygote's process id (the same for every request; each request's child has its own).
    pub fn pid(&self) -> Pid {
        self.server.pid()
    }

    /// How long the zygote's load step took (paid once, when it started).
    pub fn load_time(&self) -> Duration {
        self.server.load_time()
    }

    /// Stops the zygote and reaps it. Returns how it ended.
    pub fn stop(mut self) -> Result<Exit, WarmError> {
        self.server.stop()
    }
}
