//! The container's PID 1: starts the command, forwards signals to it, reaps every orphan, and
//! exits with the command's status.
//!
//! In a new PID namespace the first process is PID 1, and the kernel treats PID 1 specially:
//! orphans are re-parented to it (so it must reap them, or they stay zombies), and it gets no
//! default signal actions (a `SIGTERM` it has no handler for is simply dropped). A shell or a
//! Python server is not written to be PID 1, so, like `tini` or `docker run --init`, we put a
//! tiny init in front of it.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

use ch01_process::exec::{exec_report_pipe, ExecError, ExecReportWriter, Program};
use nix::errno::Errno;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult, Pid};

use crate::sync::{Channel, Message};
use crate::{ChildHook, Exit};

/// The signals PID 1 passes on to the command (what `docker stop`, Ctrl-C and friends send).
const FORWARDED: [Signal; 8] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

/// The command's pid, for the signal handler (which may only touch atomics).
static COMMAND_PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward_signal(signal: libc::c_int) {
    let pid = COMMAND_PID.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe and takes plain integers.
        unsafe { libc::kill(pid, signal) };
    }
}

/// From now on, the usual termination and job-control signals this process receives are passed
/// on to `pid`. Init does this for its command; the runtime does it for init.
pub fn forward_signals_to(pid: Pid) {
    COMMAND_PID.store(pid.as_raw(), Ordering::Relaxed);
    for signal in FORWARDED {
        let handler = SigAction::new(
            SigHandler::Handler(forward_signal),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        // SAFETY: the handler only reads an atomic and calls kill(2), both async-signal-safe.
        let _ = unsafe { sigaction(signal, &handler) };
    }
}

/// Puts every signal back to its default action and unblocks all, so the command starts clean
/// (an ignored signal stays ignored across exec, and our parent ignores some).
pub fn reset_signals() {
    for signal in Signal::iterator() {
        if matches!(signal, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
        // SAFETY: installing SIG_DFL runs no code of ours in signal context.
        let _ = unsafe { sigaction(signal, &default) };
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

// ANCHOR: init
/// Runs as the container's init (PID 1 when there is a PID namespace). Never returns.
///
/// `setup` says what the command's process does between `fork` and `exec`.
pub fn run_init(program: &Program, channel: &Channel, setup: &CommandSetup) -> ! {
    let (report_reader, report_writer) = match exec_report_pipe() {
        Ok(pair) => pair,
        Err(e) => fail(channel, &e.to_string()),
    };
    // The command says "created" itself, maybe before this process forwards signals; until then
    // init ignores them (as the waiter it was forked from does), so one sent meanwhile would be
    // lost. Blocked, it waits for the handler instead. The command unblocks in `reset_signals`.
    let forwarded: SigSet = FORWARDED.into_iter().collect();
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwarded), None);
    // SAFETY: this process has one thread (it was forked), so the child may run any code.
    let command = match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop(report_reader);
            exec_command(program, channel, setup, &report_writer)
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => fail(channel, &format!("fork of the command: {e}")),
    };
    drop(report_writer);
    forward_signals_to(command);
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&forwarded), None);

    let _ = channel.send(&exec_outcome(report_reader.wait_for_exec(program)));

    // Reap everything; the command's end is the container's end.
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(status) if status.pid() == Some(command) => {
                if let Some(exit) = Exit::from_wait(status) {
                    let _ = channel.send(&Message::Exited(exit));
                    // SAFETY: ending init; nothing of ours needs unwinding.
                    unsafe { libc::_exit(exit.shell_code()) }
                }
            }
            Ok(_orphan_reaped) => {}
            Err(Errno::EINTR) => {}
            Err(e) => fail(channel, &format!("waitpid in init: {e}")),
        }
    }
}
// ANCHOR_END: init

/// What the runtime is told once the command's `exec` has happened or failed: "running", the
/// `execvp` errno (so the runtime can say "not found" or "permission denied"), or why the report
/// pipe itself failed. Init sends it for the command it forks; the waiter sends it when the
/// command is init.
pub(crate) fn exec_outcome(exec: Result<(), ExecError>) -> Message {
    match exec {
        Ok(()) => Message::Running,
        Err(ExecError::Exec { errno, .. }) => Message::ExecFailed(errno as i32),
        Err(other) => Message::Failed(other.to_string()),
    }
}

// ANCHOR: exec_command
/// The command's process between `fork` and `exec` — or init itself, which becomes the command
/// this way (runc's way, [`command_is_init`](crate::Isolation::command_is_init)): clean signals,
/// its stdout/stderr, "created" and the start gate, the pre-exec steps, then `exec` in place.
/// Whoever forked this process reads `report` and tells the runtime how the `exec` went. Never
/// returns.
pub(crate) fn exec_command(
    program: &Program,
    channel: &Channel,
    setup: &CommandSetup,
    report: &ExecReportWriter,
) -> ! {
    reset_signals();
    for &(from, to) in setup.redirect {
        // SAFETY: dup2 on descriptors this process owns; `to` is 0, 1 or 2.
        unsafe { libc::dup2(from, to) };
    }
    for &(from, _) in setup.redirect {
        if from > 2 {
            // The copy at 0–2 is what the command gets; the original (often a pipe made
            // without close-on-exec) must not leak into it.
            // SAFETY: closing a descriptor of this process that nothing here uses again.
            unsafe { libc::close(from) };
        }
    }
    if let Some(gate) = setup.start_gate {
        // Said by the process that waits at the gate, once its signals and descriptors are
        // the command's: the runtime's `create` returns on this message.
        let _ = channel.send(&Message::Created);
        wait_at_gate(gate, channel);
    }
    run_hooks(setup.pre_exec, channel, CANNOT_RUN);
    let errno = program.exec(Some(report));
    // SAFETY: _exit ends this forked child without running the parent's atexit handlers.
    unsafe { libc::_exit(if errno == Errno::ENOENT { 127 } else { 126 }) }
}
// ANCHOR_END: exec_command

/// What the command's process does between `fork` and `exec`.
#[derive(Default)]
pub struct CommandSetup<'a> {
    /// `(from, to)` descriptor pairs it gets via `dup2` (its stdout, say).
    pub redirect: &'a [(RawFd, RawFd)],
    /// A FIFO to wait at before the pre-exec steps: the OCI "created" state.
    pub start_gate: Option<StartGate<'a>>,
    /// Steps just before `exec`, after the gate (later chapters drop capabilities here).
    pub pre_exec: &'a [ChildHook],
}

/// The start gate: a FIFO whose opening for writing blocks until somebody opens it for
/// reading — `start` does, and the command goes.
#[derive(Debug, Clone, Copy)]
pub struct StartGate<'a> {
    /// The FIFO's path on the host.
    pub path: &'a std::ffi::CStr,
    /// An `O_PATH` descriptor of it, opened before the root changed: the command reopens it
    /// through `/proc/self/fd/N`, as runc does with its `exec.fifo`.
    pub held: RawFd,
}

// ANCHOR: gate
/// Blocks until `start` opens the gate FIFO for reading, then tells it so with one byte.
///
/// Through `/proc/self/fd/<held>`, the descriptor init holds (the path itself may be outside
/// the container's new root); by its path where there is no such `/proc`.
fn wait_at_gate(gate: StartGate, channel: &Channel) {
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::Mode;
    let flags = OFlag::O_WRONLY | OFlag::O_CLOEXEC;
    let held = format!("/proc/self/fd/{}", gate.held);
    let opened = match open(held.as_str(), flags, Mode::empty()) {
        Err(Errno::ENOENT) => open(gate.path, flags, Mode::empty()),
        other => other,
    };
    match opened {
        Ok(fd) => {
            let _ = nix::unistd::write(&fd, b"0");
        }
        Err(e) => fail_with(
            channel,
            &format!("opening the start gate {:?}: {e}", gate.path),
            CANNOT_RUN,
        ),
    }
}
// ANCHOR_END: gate

/// The status of a command's process that could not get as far as `exec` (the gate or a
/// pre-exec step failed): 126, what a shell exits with for a command it found but cannot run.
const CANNOT_RUN: i32 = 126;

/// The status of the waiter or init when a set-up step before the command failed.
pub(crate) const SETUP_FAILED: i32 = 1;

/// Reports a set-up failure to the parent and ends this process with status 1.
pub fn fail(channel: &Channel, reason: &str) -> ! {
    fail_with(channel, reason, SETUP_FAILED)
}

/// Reports a failure to the parent and ends this process with status `code`.
pub fn fail_with(channel: &Channel, reason: &str, code: i32) -> ! {
    let _ = channel.send(&Message::Failed(reason.to_string()));
    // SAFETY: ending a forked child without unwinding into the parent's stack frames.
    unsafe { libc::_exit(code) }
}

/// Runs `hooks` in order; the first to fail is reported to the parent and ends this process with
/// status `code`.
pub(crate) fn run_hooks(hooks: &[ChildHook], channel: &Channel, code: i32) {
    for hook in hooks {
        if let Err(reason) = hook() {
            fail_with(channel, &reason, code);
        }
    }
}
