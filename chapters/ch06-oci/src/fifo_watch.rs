//! Reading a FIFO that a container's process writes to, without hanging when that process
//! dies first. `start` reads two: the start gate's byte, and the startContainer hooks' report.

use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::stat::Mode;

/// What one look at the FIFO found.
#[derive(Debug, PartialEq, Eq)]
pub enum Heard<'a> {
    /// Nothing within the poll's 100 ms.
    Nothing,
    /// Readable, but no bytes: no writer has it open (one that wrote may have left).
    NoWriter,
    /// Bytes that arrived.
    Bytes(&'a [u8]),
}

// ANCHOR: watch
/// Opens `fifo` for reading and hands `listen` what it hears until `listen` returns a value
/// (or an error, a reason in words). Opened non-blocking and polled with a timeout, so that
/// `listen` gets a turn every 100 ms to ask whether the writer is still alive: a blocking
/// `open` or `read` would wait for ever on a writer that died.
pub fn watch_fifo<T>(
    fifo: &Path,
    mut listen: impl FnMut(Heard) -> Result<Option<T>, String>,
) -> Result<T, String> {
    let fd = open(
        fifo,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("opening {}: {e}", fifo.display()))?;
    let mut buf = [0u8; 4096];
    loop {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        let heard = match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(0) | Err(Errno::EINTR) => Heard::Nothing,
            Ok(_) => match nix::unistd::read(&fd, &mut buf) {
                Ok(0) | Err(Errno::EAGAIN) => Heard::NoWriter,
                Ok(n) => Heard::Bytes(&buf[..n]),
                Err(e) => return Err(format!("reading {}: {e}", fifo.display())),
            },
            Err(e) => return Err(format!("waiting on {}: {e}", fifo.display())),
        };
        let no_writer = heard == Heard::NoWriter;
        if let Some(value) = listen(heard)? {
            return Ok(value);
        }
        if no_writer {
            // A FIFO whose writer left stays readable (end of file): poll would not wait.
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
// ANCHOR_END: watch

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn fifo_in(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("fifo");
        nix::unistd::mkfifo(&path, Mode::from_bits_truncate(0o600)).unwrap();
        path
    }

    #[test]
    fn bytes_from_a_writer_arrive_and_its_leaving_is_heard() {
        let dir = labkit::ScratchDir::new("fifo-watch").unwrap();
        let fifo = fifo_in(dir.path());
        let writer_path = fifo.clone();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let mut w = std::fs::OpenOptions::new()
                .write(true)
                .open(writer_path)
                .unwrap();
            w.write_all(b"ok").unwrap();
        });
        let mut got = Vec::new();
        let said = watch_fifo(&fifo, |heard| match heard {
            Heard::Bytes(b) => {
                got.extend_from_slice(b);
                Ok(None)
            }
            Heard::NoWriter if !got.is_empty() => Ok(Some(got.clone())),
            _ => Ok(None),
        })
        .unwrap();
        writer.join().unwrap();
        assert_eq!(said, b"ok");
    }

    #[test]
    fn a_listener_gives_up_with_its_reason_and_a_missing_fifo_is_named() {
        let dir = labkit::ScratchDir::new("fifo-watch-quiet").unwrap();
        let fifo = fifo_in(dir.path());
        let mut turns = 0;
        let err = watch_fifo::<()>(&fifo, |heard| {
            assert_eq!(heard, Heard::Nothing, "no writer ever came");
            turns += 1;
            if turns == 3 {
                Err("the writer died".into())
            } else {
                Ok(None)
            }
        })
        .unwrap_err();
        assert_eq!(err, "the writer died");

        let missing = dir.join("no-such-fifo");
        let err = watch_fifo::<()>(&missing, |_| Ok(None)).unwrap_err();
        assert!(
            err.starts_with(&format!("opening {}", missing.display())),
            "{err}"
        );
    }
}
