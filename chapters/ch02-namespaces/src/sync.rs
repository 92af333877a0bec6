//! The channel between the runtime (parent) and the isolated child while it is being set up.
//!
//! Some steps can only be done from outside (writing the child's uid map, moving a network device
//! into its namespace), some only from inside (mounting its `/proc`). So the two take turns: the
//! child says what it has done and waits; the parent does its part and says "go". A
//! `SOCK_SEQPACKET` socket pair keeps each message whole, and close-on-exec means the user's
//! command never inherits it.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::unistd::read;

use crate::{Exit, NamespaceError};

/// What the parent and the child say to each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// child: I made my user namespace; write my id maps.
    UserNamespaceReady,
    /// child: my other namespaces exist; do your outside set-up (network, cgroups) now.
    NamespacesReady,
    /// child: the container's init has this pid on the host.
    InitPid(i32),
    /// child: the command has been exec'd.
    Running,
    /// child: the command is forked and waits at the start gate (OCI "created").
    Created,
    /// child: exec of the command failed with this errno.
    ExecFailed(i32),
    /// child: a set-up step failed, with the reason.
    Failed(String),
    /// child: the command ended like this.
    Exited(Exit),
    /// child: a step done, in words (sent only when somebody is watching).
    Note(String),
    /// parent: carry on.
    Go,
}

impl Message {
    fn encode(&self) -> Vec<u8> {
        match self {
            Message::UserNamespaceReady => vec![b'U'],
            Message::NamespacesReady => vec![b'N'],
            Message::InitPid(pid) => [&[b'P'][..], &pid.to_ne_bytes()].concat(),
            Message::Running => vec![b'R'],
            Message::Created => vec![b'K'],
            Message::ExecFailed(errno) => [&[b'E'][..], &errno.to_ne_bytes()].concat(),
            Message::Failed(reason) => [&[b'F'][..], reason.as_bytes()].concat(),
            Message::Exited(Exit::Code(code)) => [&[b'C'][..], &code.to_ne_bytes()].concat(),
            Message::Exited(Exit::Signal(sig)) => {
                [&[b'S'][..], &(*sig as i32).to_ne_bytes()].concat()
            }
            Message::Note(text) => [&[b'T'][..], text.as_bytes()].concat(),
            Message::Go => vec![b'G'],
        }
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let int = |b: &[u8]| b.try_into().ok().map(i32::from_ne_bytes);
        let (tag, rest) = bytes.split_first()?;
        Some(match tag {
            b'U' => Message::UserNamespaceReady,
            b'N' => Message::NamespacesReady,
            b'P' => Message::InitPid(int(rest)?),
            b'R' => Message::Running,
            b'K' => Message::Created,
            b'E' => Message::ExecFailed(int(rest)?),
            b'F' => Message::Failed(String::from_utf8_lossy(rest).into_owned()),
            b'C' => Message::Exited(Exit::Code(int(rest)?)),
            b'S' => Message::Exited(Exit::Signal(
                nix::sys::signal::Signal::try_from(int(rest)?).ok()?,
            )),
            b'T' => Message::Note(String::from_utf8_lossy(rest).into_owned()),
            b'G' => Message::Go,
            _ => return None,
        })
    }
}

/// One end of the set-up channel.
#[derive(Debug)]
pub struct Channel(OwnedFd);

/// Makes the two ends: one for the parent, one for the child.
pub fn channel_pair() -> Result<(Channel, Channel), NamespaceError> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| NamespaceError::sys("socketpair(AF_UNIX, SOCK_SEQPACKET)", e))?;
    Ok((Channel(a), Channel(b)))
}

impl AsRawFd for Channel {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl Channel {
    /// Sends one message. `MSG_NOSIGNAL`: a detached container's init may outlive the runtime
    /// that started it, and writing to the closed channel must not kill it with SIGPIPE.
    pub fn send(&self, message: &Message) -> Result<(), Errno> {
        let bytes = message.encode();
        loop {
            match nix::sys::socket::send(
                self.0.as_raw_fd(),
                &bytes,
                nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
            ) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Shuts the socket down both ways: the other side reads end-of-file.
    pub fn shut_down(&self) {
        let _ = nix::sys::socket::shutdown(self.0.as_raw_fd(), nix::sys::socket::Shutdown::Both);
    }

    /// Receives one message; `Ok(None)` when the other side has closed (exited).
    pub fn recv(&self) -> Result<Option<Message>, Errno> {
        let mut buf = [0u8; 4096];
        loop {
            match read(self.0.as_fd(), &mut buf) {
                Ok(0) => return Ok(None),
                Ok(n) => return Ok(Message::decode(&buf[..n])),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_survives_the_round_trip() {
        let (a, b) = channel_pair().unwrap();
        let all = [
            Message::UserNamespaceReady,
            Message::NamespacesReady,
            Message::InitPid(4242),
            Message::Running,
            Message::Created,
            Message::ExecFailed(2),
            Message::Failed("mount /proc: EPERM".into()),
            Message::Exited(Exit::Code(3)),
            Message::Exited(Exit::Signal(nix::sys::signal::Signal::SIGTERM)),
            Message::Note("mounted /proc".into()),
            Message::Go,
        ];
        for message in &all {
            a.send(message).unwrap();
            assert_eq!(b.recv().unwrap().as_ref(), Some(message));
        }
        drop(a);
        assert_eq!(b.recv().unwrap(), None);
    }
}
