//! Published ports (docker's `-p 8080:80`, the builder's `.port("8080:80")`) for a container
//! that outlives the runtime.
//!
//! An OCI runtime makes no network of its own: dockerd or a CNI plugin builds it around the
//! runtime. The builder does what dockerd does, in small: the container gets chapter 2's veth
//! (its own address), and a **port keeper** — a process of ours on the host, like
//! `docker-proxy` — accepts on each host port and connects to the container's address. The
//! keeper ends by itself when the container's init does (it watches a pidfd), and `delete`
//! ends it too. The veth needs nobody: the kernel deletes both ends with the container's
//! network namespace.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use ch02_namespaces::port::{PortMapping, PortProxy};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::Pid;

use crate::OciError;

/// Checks that every host port can be bound now, before anything is made.
pub fn check_free(ports: &[PortMapping]) -> Result<(), OciError> {
    for mapping in ports {
        PortProxy::bind(mapping)?; // dropped at once: the keeper binds it again
    }
    Ok(())
}

// ANCHOR: keeper
/// Forks the port keeper for container init `init`, whose address is `address`. Returns its
/// pid once every port is bound and forwarding (or the reason one could not be bound).
pub fn start_keeper(ports: &[PortMapping], address: Ipv4Addr, init: Pid) -> Result<Pid, OciError> {
    let pidfd = pidfd_open(init)?;
    let (ready_read, ready_write) = nix::unistd::pipe().map_err(|errno| OciError::Sys {
        what: "pipe for the port keeper".into(),
        errno,
    })?;
    let mut ready_read = std::fs::File::from(ready_read);
    let keep = [pidfd.as_raw_fd(), ready_write.as_raw_fd()];
    let ports = ports.to_vec();
    let keeper = ch01_process::child::fork_child(&keep, move || {
        keeper_main(&ports, address, &pidfd, ready_write)
    })
    .map_err(|errno| OciError::Sys {
        what: "fork of the port keeper".into(),
        errno,
    })?;
    let mut answer = String::new();
    let _ = ready_read.read_to_string(&mut answer);
    match answer.strip_prefix("ok") {
        Some(_) => Ok(keeper),
        None => {
            let _ = nix::sys::wait::waitpid(keeper, None);
            Err(OciError::Ports(if answer.is_empty() {
                "the port keeper ended before it was ready".into()
            } else {
                answer
            }))
        }
    }
}

/// The keeper: bind, say "ok", forward until init's pidfd says it has ended.
fn keeper_main(ports: &[PortMapping], address: Ipv4Addr, pidfd: &OwnedFd, ready: OwnedFd) -> i32 {
    let mut ready = std::fs::File::from(ready);
    let mut proxies = Vec::new();
    for mapping in ports {
        match PortProxy::bind(mapping) {
            Ok(listener) => proxies.push(PortProxy::start(
                listener,
                SocketAddr::new(address.into(), mapping.container_port),
            )),
            Err(e) => {
                let _ = ready.write_all(e.to_string().as_bytes());
                return 1;
            }
        }
    }
    let _ = ready.write_all(b"ok");
    drop(ready);
    // A pidfd becomes readable when its process ends.
    let mut fds = [PollFd::new(
        std::os::fd::AsFd::as_fd(pidfd),
        PollFlags::POLLIN,
    )];
    // Only a signal interrupts the wait; any other error ends it (and the forwarding) too.
    while poll(&mut fds, PollTimeout::NONE) == Err(nix::errno::Errno::EINTR) {}
    drop(proxies); // stops them and closes the host ports
    0
}
// ANCHOR_END: keeper

/// `pidfd_open(2)`: a descriptor that follows one process, never a later one with its pid.
fn pidfd_open(pid: Pid) -> Result<OwnedFd, OciError> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd < 0 {
        return Err(OciError::Sys {
            what: format!("pidfd_open({pid})"),
            errno: nix::errno::Errno::last(),
        });
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
