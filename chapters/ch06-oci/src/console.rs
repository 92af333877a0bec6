//! `process.terminal: true`: the container's process gets a pseudo-terminal, and whoever runs the
//! container gets the other end of it.
//!
//! A pty is a pair: the *slave* (`/dev/pts/N`) behaves like a serial terminal for the program —
//! line editing, Ctrl-C becoming SIGINT, a window size — and the *master* is a plain descriptor
//! for the program at the keyboard: bytes written to it are "typed", bytes read from it are what
//! the program printed. runc's protocol for handing the master over (what containerd and podman
//! speak): the caller listens on a unix socket and passes its path with `--console-socket`; the
//! runtime connects and sends the master as `SCM_RIGHTS` ancillary data, with the terminal's name
//! as the message. The runtime keeps nothing: the caller holds the master from then on.
//!
//! ```text
//!  init, before pivot_root      connect(console socket)        (a host path, visible only now)
//!  init, after pivot_root       posix_openpt(/dev/ptmx)        the container's own devpts
//!                               grantpt, unlockpt, ptsname → /dev/pts/0, open it
//!                               sendmsg(master, SCM_RIGHTS)    ── before `create` returns
//!  command, after the gate      setsid(); ioctl(slave, TIOCSCTTY); dup2(slave → 0, 1, 2)
//! ```
//!
//! Without `--detach`, `run` is its own caller: it listens on a socket in the state directory,
//! takes the master, and copies between its own stdin/stdout and the terminal ([`relay`]).

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use ch02_namespaces::ChildHook;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout, isatty, setsid};

use crate::OciError;

/// The socket in the state directory on which a foreground `run` receives its own console.
pub const RUN_SOCKET: &str = "console.sock";

// ANCHOR: check
/// runc's rules, checked before anything is made: a terminal needs somebody to hand it to, and
/// a console socket is only for a terminal.
pub fn check(terminal: bool, socket: Option<&Path>, foreground: bool) -> Result<(), OciError> {
    match (terminal, socket) {
        (true, None) if !foreground => Err(OciError::Console(
            "process.terminal is true but no --console-socket was given: a detached container's \
             terminal must be handed to somebody; pass --console-socket PATH (or set \
             process.terminal to false)"
                .into(),
        )),
        (false, Some(path)) => Err(OciError::Console(format!(
            "--console-socket {} was given but process.terminal is false: set \
             process.terminal to true, or drop --console-socket",
            path.display()
        ))),
        _ => Ok(()),
    }
}
// ANCHOR_END: check

/// The window size to give the terminal at first (`process.consoleSize`), as `(rows, columns)`.
pub type Size = (u16, u16);

// ANCHOR: init_steps
/// Init's steps for a console sent to `socket`:
/// - `before_pivot`: connect to the socket while its path is still in sight;
/// - `after_pivot`: open a pty in the container's own devpts, give the slave to the process's
///   user, set its size, send the master and forget it; keep the slave;
/// - `pre_exec` (the command's process): a new session whose controlling terminal is the
///   slave, which becomes its stdin, stdout and stderr.
pub fn init_steps(
    socket: PathBuf,
    size: Option<Size>,
    owner: (u32, u32),
) -> (ChildHook, ChildHook, ChildHook) {
    // Filled in init's memory; the command's process, forked from init, inherits them.
    let connection: Arc<OnceLock<UnixStream>> = Arc::new(OnceLock::new());
    let slave: Arc<OnceLock<OwnedFd>> = Arc::new(OnceLock::new());

    let conn = Arc::clone(&connection);
    let before_pivot: ChildHook = Arc::new(move || {
        let stream = UnixStream::connect(&socket)
            .map_err(|e| format!("connecting to the console socket {}: {e}", socket.display()))?;
        let _ = conn.set(stream);
        Ok(())
    });

    let slave_in = Arc::clone(&slave);
    let after_pivot: ChildHook = Arc::new(move || {
        let stream = connection
            .get()
            .ok_or("the console socket was not connected")?;
        let pty = hand_over_pty(stream.as_fd(), size, owner)?;
        let _ = slave_in.set(pty);
        Ok(())
    });

    let pre_exec: ChildHook = Arc::new(move || {
        let pty = slave.get().ok_or("no console was opened")?;
        // The slave's own descriptor is close-on-exec: the program keeps 0, 1, 2.
        become_controlling_terminal(pty)
    });
    (before_pivot, after_pivot, pre_exec)
}
// ANCHOR_END: init_steps

// ANCHOR: exec_console
/// `exec` with a terminal, in the command's process (inside the container's namespaces and
/// root): a pty from the container's devpts, the master sent over `channel` — the caller's
/// `--console-socket`, or our own runtime's end of a socket pair in the foreground — and the
/// slave made this process's controlling terminal and stdio. The same steps as
/// [`init_steps`], in one go: `exec` has no pivot to do in between.
pub fn exec_console(
    channel: BorrowedFd,
    size: Option<Size>,
    owner: (u32, u32),
) -> Result<(), String> {
    let pty = hand_over_pty(channel, size, owner)?;
    become_controlling_terminal(&pty)
}
// ANCHOR_END: exec_console

// ANCHOR: pty_steps
/// Opens a pty, gives the slave to the process's user with the configured size, and sends the
/// master over `channel` (named like `/dev/pts/3`). Returns the slave.
fn hand_over_pty(
    channel: BorrowedFd,
    size: Option<Size>,
    owner: (u32, u32),
) -> Result<OwnedFd, String> {
    let (master, pty, name) = open_pty()?;
    nix::unistd::fchown(
        &pty,
        Some(nix::unistd::Uid::from_raw(owner.0)),
        Some(nix::unistd::Gid::from_raw(owner.1)),
    )
    .map_err(|e| format!("fchown {name}: {e}"))?;
    if let Some((rows, cols)) = size {
        set_size(pty.as_fd(), rows, cols).map_err(|e| format!("TIOCSWINSZ on {name}: {e}"))?;
    }
    send_fd(channel, master.as_fd(), &name)
        .map_err(|e| format!("sending the console master over the console socket: {e}"))?;
    Ok(pty) // the master is the receiver's now: ours closes here
}

/// A new session whose controlling terminal is `pty`, which becomes stdin, stdout and stderr.
fn become_controlling_terminal(pty: &OwnedFd) -> Result<(), String> {
    setsid().map_err(|e| format!("setsid: {e}"))?;
    // SAFETY: TIOCSCTTY takes an int argument (0: do not steal a terminal from another
    // session); `pty` is an open descriptor of this process.
    let done = unsafe { libc::ioctl(pty.as_raw_fd(), libc::TIOCSCTTY, 0) };
    if done != 0 {
        return Err(format!("ioctl(TIOCSCTTY): {}", Errno::last()));
    }
    dup2_stdin(pty).map_err(|e| format!("dup2 the terminal to stdin: {e}"))?;
    dup2_stdout(pty).map_err(|e| format!("dup2 the terminal to stdout: {e}"))?;
    dup2_stderr(pty).map_err(|e| format!("dup2 the terminal to stderr: {e}"))?;
    Ok(())
}
// ANCHOR_END: pty_steps

// ANCHOR: open_pty
/// `posix_openpt(O_RDWR|O_NOCTTY)` on `/dev/ptmx` (after the pivot: the container's devpts, so
/// the slave is `/dev/pts/N` inside), `grantpt`, `unlockpt`, and the slave opened.
fn open_pty() -> Result<(OwnedFd, OwnedFd, String), String> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(|e| format!("posix_openpt(/dev/ptmx): {e}"))?;
    grantpt(&master).map_err(|e| format!("grantpt: {e}"))?;
    unlockpt(&master).map_err(|e| format!("unlockpt: {e}"))?;
    let name = ptsname_r(&master).map_err(|e| format!("ptsname: {e}"))?;
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| format!("opening {name}: {e}"))?;
    Ok((master.into(), slave, name))
}
// ANCHOR_END: open_pty

// ANCHOR: send_fd
/// Sends `fd` over a connected unix socket as `SCM_RIGHTS`, with `name` as the message (what
/// runc sends: the receiver gets its own descriptor of the same open file).
pub fn send_fd(socket: BorrowedFd, fd: BorrowedFd, name: &str) -> Result<(), Errno> {
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(name.as_bytes())];
    sendmsg::<()>(socket.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)?;
    Ok(())
}

/// Receives one descriptor sent by [`send_fd`], and the message with it.
pub fn receive_fd(socket: BorrowedFd) -> Result<(OwnedFd, String), Errno> {
    let mut buf = [0u8; 4096];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut received = None;
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                // SAFETY: the kernel just installed this descriptor in our table for us; nothing
                // else owns it.
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                received.get_or_insert(owned);
            }
        }
    }
    let len = msg.bytes;
    let fd = received.ok_or(Errno::EBADMSG)?;
    Ok((fd, String::from_utf8_lossy(&buf[..len]).into_owned()))
}
// ANCHOR_END: send_fd

/// A foreground `run`'s own console socket, in the state directory.
pub struct RunConsole {
    listener: UnixListener,
    path: PathBuf,
}

impl RunConsole {
    pub fn listen(dir: &Path) -> Result<Self, OciError> {
        let path = dir.join(RUN_SOCKET);
        let listener =
            UnixListener::bind(&path).map_err(|e| OciError::io("listening on", &path, e))?;
        Ok(RunConsole { listener, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The master init sent (init has sent it before `create`'s part returns: it waits here).
    pub fn master(self) -> Result<OwnedFd, OciError> {
        let (stream, _) = self
            .listener
            .accept()
            .map_err(|e| OciError::io("accepting on", &self.path, e))?;
        let _ = std::fs::remove_file(&self.path);
        receive_fd(stream.as_fd())
            .map(|(fd, _name)| fd)
            .map_err(|e| OciError::Console(format!("receiving the console master: {e}")))
    }
}

fn set_size(fd: BorrowedFd, rows: u16, cols: u16) -> Result<(), Errno> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` from the pointer, which outlives the call.
    Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &size) }).map(drop)
}

fn get_size(fd: BorrowedFd) -> Option<(u16, u16)> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the pointer, which outlives the call.
    let done = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut size) };
    (done == 0).then_some((size.ws_row, size.ws_col))
}

static RESIZED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigwinch(_: libc::c_int) {
    RESIZED.store(true, Ordering::Relaxed);
}

// ANCHOR: relay
/// A foreground `run` with a terminal: our stdin → the master (typed into the container), the
/// master → our stdout (what it printed), until the last holder of the slave is gone (EIO).
/// When our stdin is a terminal itself, it is put in raw mode (the container's terminal does
/// the line editing and turns Ctrl-C into SIGINT) and its size follows ours (SIGWINCH).
pub fn relay(master: OwnedFd) -> Result<(), OciError> {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let interactive = isatty(stdin.as_fd()).unwrap_or(false);
    let saved = if interactive {
        let saved = tcgetattr(stdin.as_fd()).ok();
        if let Some(mut raw) = saved.clone() {
            cfmakeraw(&mut raw);
            let _ = tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        }
        if let Some((rows, cols)) = get_size(stdin.as_fd()) {
            let _ = set_size(master.as_fd(), rows, cols);
        }
        let handler = SigAction::new(
            SigHandler::Handler(on_sigwinch),
            SaFlags::empty(),
            SigSet::empty(),
        );
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let _ = unsafe { sigaction(Signal::SIGWINCH, &handler) };
        saved
    } else {
        None
    };
    let result = copy_loop(stdin.as_fd(), stdout.as_fd(), master.as_fd(), interactive);
    if let Some(saved) = saved {
        let _ = tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &saved);
    }
    result
}

fn copy_loop(
    input: BorrowedFd,
    output: BorrowedFd,
    master: BorrowedFd,
    interactive: bool,
) -> Result<(), OciError> {
    let mut input_open = true;
    let mut buf = [0u8; 8192];
    loop {
        if interactive && RESIZED.swap(false, Ordering::Relaxed) {
            if let Some((rows, cols)) = get_size(input) {
                let _ = set_size(master, rows, cols);
            }
        }
        let mut fds = vec![PollFd::new(master, PollFlags::POLLIN)];
        if input_open {
            fds.push(PollFd::new(input, PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(OciError::Console(format!("poll on the console: {e}"))),
            Ok(_) => {}
        }
        let master_ready = fds[0].any().unwrap_or(false);
        let input_ready = input_open && fds[1].any().unwrap_or(false);
        if master_ready {
            match nix::unistd::read(master, &mut buf) {
                // EIO: every descriptor of the slave is closed — the container is gone.
                Ok(0) | Err(Errno::EIO) => return Ok(()),
                Ok(n) => write_all(output, &buf[..n])?,
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(e) => return Err(OciError::Console(format!("reading the console: {e}"))),
            }
        }
        if input_ready {
            match nix::unistd::read(input, &mut buf) {
                Ok(0) | Err(_) => input_open = false, // nothing more to type
                Ok(n) => write_all(master, &buf[..n])?,
            }
        }
    }
}
// ANCHOR_END: relay

fn write_all(fd: BorrowedFd, mut data: &[u8]) -> Result<(), OciError> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => {}
            // The other side is gone (EIO on the master, EPIPE on stdout): stop quietly.
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}
