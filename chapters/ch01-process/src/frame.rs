//! Messages on a stream socket: an 8-byte header (payload length, kind) and the payload.
//!
//! A Unix stream socket carries bytes, not messages, so each message says how long it is. Each
//! message goes out in one `sendmsg` (header and payload gathered from two buffers, no copy) and
//! usually comes in with one `read` into a buffer that is reused: two system calls per message,
//! one on each side, as in the C worker this chapter is measured against.

use std::io::{self, IoSlice, Read};
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use nix::errno::Errno;
use nix::sys::socket::{sendmsg, MsgFlags, UnixAddr};

/// Header bytes: payload length (u32) and kind (u32), both little-endian.
const HEADER: usize = 8;

/// The largest payload accepted, so a confused peer cannot make us allocate gigabytes.
pub const MAX_PAYLOAD: usize = 64 << 20;

/// What a message is, written in its header.
pub(crate) mod kind {
    /// A request, or the reply to one.
    pub const DATA: u32 = 0;
    /// A pre-started process finished its load step; payload: load time in ns (u64 LE).
    pub const READY: u32 = 1;
    /// A zygote's child for this request ended without replying; payload: child pid (i32 LE),
    /// then exit code (i32 LE) or, for [`SIGNALED`], the signal number.
    pub const EXITED: u32 = 2;
    /// As [`EXITED`], for a child killed by a signal.
    pub const SIGNALED: u32 = 3;
    /// A zygote could not fork a child for this request; payload: errno (i32 LE).
    pub const FORK_FAILED: u32 = 4;
}

/// A received message: its kind, and where its payload lies in the connection's buffer.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub kind: u32,
    range: Range<usize>,
}

/// One end of a socket pair, with a receive buffer reused for every message.
#[derive(Debug)]
pub(crate) struct Conn {
    sock: UnixStream,
    buf: Vec<u8>,
    /// Bytes received and not yet handed out: `buf[consumed..filled]`.
    filled: usize,
    consumed: usize,
}

impl Conn {
    pub fn new(sock: UnixStream) -> Self {
        Self {
            sock,
            buf: vec![0; 64 * 1024],
            filled: 0,
            consumed: 0,
        }
    }

    pub fn socket(&self) -> &UnixStream {
        &self.sock
    }

    /// Sends one message with a single `sendmsg`. `MSG_NOSIGNAL`: if the peer is gone, return
    /// `EPIPE` instead of raising SIGPIPE, which would kill a program that did not ignore it.
    pub fn send(&self, kind: u32, payload: &[u8]) -> io::Result<()> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|&len| len as usize <= MAX_PAYLOAD)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "message too large"))?;
        let mut header = [0u8; HEADER];
        header[..4].copy_from_slice(&len.to_le_bytes());
        header[4..].copy_from_slice(&kind.to_le_bytes());
        let mut iov = [IoSlice::new(&header), IoSlice::new(payload)];
        let mut slices = &mut iov[..];
        // A large payload may be sent in pieces: go on from where the kernel stopped.
        while !slices.is_empty() {
            match sendmsg::<UnixAddr>(
                self.sock.as_raw_fd(),
                slices,
                &[],
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(sent) => IoSlice::advance_slices(&mut slices, sent),
                Err(Errno::EINTR) => continue,
                Err(errno) => return Err(errno.into()),
            }
        }
        Ok(())
    }

    /// Receives one message; `Ok(None)` when the peer closed the socket between messages.
    pub fn recv(&mut self) -> io::Result<Option<Frame>> {
        // The previous message's bytes are no longer needed: move any bytes after it to the front.
        if self.consumed > 0 {
            self.buf.copy_within(self.consumed..self.filled, 0);
            self.filled -= self.consumed;
            self.consumed = 0;
        }
        loop {
            if self.filled >= HEADER {
                let len = u32::from_le_bytes(self.buf[..4].try_into().expect("4 bytes")) as usize;
                let kind = u32::from_le_bytes(self.buf[4..8].try_into().expect("4 bytes"));
                if len > MAX_PAYLOAD {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("peer announced a {len}-byte message, over the {MAX_PAYLOAD}-byte limit"),
                    ));
                }
                let end = HEADER + len;
                if self.filled >= end {
                    self.consumed = end;
                    return Ok(Some(Frame {
                        kind,
                        range: HEADER..end,
                    }));
                }
                if self.buf.len() < end {
                    self.buf.resize(end, 0);
                }
            }
            match (&self.sock).read(&mut self.buf[self.filled..]) {
                Ok(0) if self.filled == 0 => return Ok(None),
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "peer closed the socket mid-message",
                    ))
                }
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The payload of a message that [`recv`](Self::recv) just returned.
    pub fn payload(&self, frame: &Frame) -> &[u8] {
        &self.buf[frame.range.clone()]
    }
}
