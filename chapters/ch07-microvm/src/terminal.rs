//! The host side of the serial console: our stdin goes to the guest's UART.
//!
//! When stdin is a terminal it is put in raw mode, so that each key reaches the guest at once
//! (no line editing, no echo: the guest echoes, as a real serial line's far end does), and
//! Ctrl-C goes to the guest's shell instead of killing the VMM. Output processing is left on, so
//! a guest's bare "\n" still starts a new line. Ctrl-A then x leaves the VM (QEMU's escape).
//! The terminal is restored when the guard is dropped (normal end, error, panic) and on
//! SIGTERM, SIGHUP and SIGQUIT; a SIGKILL cannot be caught: `stty sane` then.

use std::io::Read;
use std::os::fd::AsFd;
use std::sync::OnceLock;

use anyhow::{Context, Result};
use ch07_microvm::InputHandle;
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::termios::{self, InputFlags, LocalFlags, SetArg, SpecialCharacterIndices, Termios};

/// Ctrl-A: the start of an escape sequence to the VMM itself.
const ESCAPE: u8 = 0x01;

/// The terminal's settings before we changed them, for the signal handler.
static SAVED: OnceLock<libc::termios> = OnceLock::new();

const RESTORE_ON: [Signal; 3] = [Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT];

// ANCHOR: raw
/// Raw mode on stdin, for as long as this lives.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Raw mode if stdin is a terminal; `None` (nothing changed) if it is a pipe or a file.
    pub fn enable() -> Result<Option<RawMode>> {
        let stdin = std::io::stdin();
        if !nix::unistd::isatty(stdin.as_fd()).unwrap_or(false) {
            return Ok(None);
        }
        let saved = termios::tcgetattr(stdin.as_fd()).context("tcgetattr on stdin")?;
        let _ = SAVED.set(saved.clone().into());
        for sig in RESTORE_ON {
            let action = SigAction::new(
                SigHandler::Handler(restore_and_die),
                SaFlags::SA_RESETHAND,
                SigSet::empty(),
            );
            // SAFETY: the handler only calls tcsetattr and raise, both async-signal-safe.
            unsafe { signal::sigaction(sig, &action) }
                .with_context(|| format!("installing a {sig} handler"))?;
        }
        let mut raw = saved.clone();
        raw.input_flags &= !(InputFlags::IGNBRK
            | InputFlags::BRKINT
            | InputFlags::PARMRK
            | InputFlags::ISTRIP
            | InputFlags::INLCR
            | InputFlags::IGNCR
            | InputFlags::ICRNL
            | InputFlags::IXON);
        raw.local_flags &= !(LocalFlags::ECHO
            | LocalFlags::ECHONL
            | LocalFlags::ICANON
            | LocalFlags::ISIG
            | LocalFlags::IEXTEN);
        raw.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
        raw.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)
            .context("tcsetattr: raw mode on stdin")?;
        Ok(Some(RawMode { saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
        for sig in RESTORE_ON {
            // SAFETY: back to the default action; no handler of ours stays installed.
            let _ = unsafe { signal::signal(sig, SigHandler::SigDfl) };
        }
    }
}

extern "C" fn restore_and_die(sig: libc::c_int) {
    if let Some(saved) = SAVED.get() {
        // SAFETY: tcsetattr is async-signal-safe; `saved` is a valid termios, never mutated.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, saved) };
    }
    // SA_RESETHAND put the default action back: die of the same signal.
    // SAFETY: raise is async-signal-safe.
    unsafe { libc::raise(sig) };
}
// ANCHOR_END: raw

// ANCHOR: forward
/// Copies stdin to the guest's serial port on a thread of its own, until stdin ends. With a
/// terminal, Ctrl-A x asks the VM to stop (Ctrl-A Ctrl-A sends one Ctrl-A).
pub fn forward_stdin(input: InputHandle, tty: bool) {
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 256];
        let mut escaped = false;
        loop {
            let n = match stdin.read(&mut buf) {
                Ok(0) | Err(_) => return, // end of input: the guest just gets no more bytes
                Ok(n) => n,
            };
            if !tty {
                input.send(&buf[..n]);
                continue;
            }
            let mut out = Vec::with_capacity(n);
            for &byte in &buf[..n] {
                match (escaped, byte) {
                    (false, ESCAPE) => escaped = true,
                    (true, b'x' | b'X') => {
                        input.send(&out);
                        input.quit();
                        return;
                    }
                    (true, b) => {
                        escaped = false;
                        if b != ESCAPE {
                            out.push(ESCAPE);
                        }
                        out.push(b);
                    }
                    (false, b) => out.push(b),
                }
            }
            input.send(&out);
        }
    });
}
// ANCHOR_END: forward
