//! Publishing one container port on the host, like `docker run -p 8080:80` (or the course's
//! `ports={'8080/tcp': 8080}`).
//!
//! Docker does this two ways: NAT rules in the kernel, and a small user-space proxy
//! (`docker-proxy`) that accepts on the host port and connects to the container's address. We
//! build the proxy: it is plain sockets, works on any host, and is easy to watch.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use crate::NamespaceError;

/// `[HOST_IP:]HOST_PORT:CONTAINER_PORT`, TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortMapping {
    /// Where the host listens; loopback unless you say otherwise.
    pub host: SocketAddr,
    /// The port inside the container.
    pub container_port: u16,
}

impl FromStr for PortMapping {
    type Err = NamespaceError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| NamespaceError::InvalidPortMapping {
            spec: spec.to_string(),
            reason: reason.into(),
        };
        let spec_no_proto = spec.strip_suffix("/tcp").unwrap_or(spec);
        let (host_part, container_part) = spec_no_proto
            .rsplit_once(':')
            .ok_or_else(|| invalid("no ':' between the ports"))?;
        let (ip, host_port) = match host_part.rsplit_once(':') {
            Some((ip, port)) => (
                IpAddr::from_str(ip)
                    .map_err(|_| invalid(&format!("'{ip}' is not an IP address")))?,
                port,
            ),
            None => (IpAddr::V4(Ipv4Addr::LOCALHOST), host_part),
        };
        let port = |p: &str, which: &str| match u16::from_str(p) {
            Ok(0) | Err(_) => Err(invalid(&format!(
                "{which} port '{p}' is not a number from 1 to 65535"
            ))),
            Ok(n) => Ok(n),
        };
        Ok(PortMapping {
            host: SocketAddr::new(ip, port(host_port, "host")?),
            container_port: port(container_part, "container")?,
        })
    }
}

/// A running proxy: a listener on the host and a thread per connection.
#[derive(Debug)]
pub struct PortProxy {
    listener: Option<Arc<TcpListener>>,
    stopping: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl PortProxy {
    /// Binds the host side now, so that "port in use" is found before any namespace is made.
    pub fn bind(mapping: &PortMapping) -> Result<TcpListener, NamespaceError> {
        TcpListener::bind(mapping.host).map_err(|source| NamespaceError::PortUnavailable {
            addr: mapping.host,
            source,
        })
    }

    // ANCHOR: proxy
    /// Starts forwarding connections on `listener` to `target` (the container's address).
    pub fn start(listener: TcpListener, target: SocketAddr) -> Self {
        let listener = Arc::new(listener);
        let stopping = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (listener, stopping) = (Arc::clone(&listener), Arc::clone(&stopping));
            thread::spawn(move || {
                for client in listener.incoming() {
                    if stopping.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    thread::spawn(move || {
                        if let Ok(container) = TcpStream::connect(target) {
                            let _ = pipe_both_ways(client, container);
                        } // else: dropping `client` closes it, as docker-proxy does.
                    });
                }
            })
        };
        PortProxy {
            listener: Some(listener),
            stopping,
            acceptor: Some(acceptor),
        }
    }
    // ANCHOR_END: proxy

    /// Stops accepting and releases the host port.
    pub fn stop(&mut self) {
        let Some(listener) = self.listener.take() else {
            return;
        };
        self.stopping.store(true, Ordering::Relaxed);
        // shutdown(2) on a listening socket wakes a blocked accept(2) on Linux.
        // SAFETY: the fd belongs to the listener, which is alive (we hold an Arc).
        unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RDWR) };
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        // The acceptor's clone is gone with its thread; this closes the socket.
        drop(listener);
    }
}

impl Drop for PortProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Copies bytes in both directions until each side has closed its half.
fn pipe_both_ways(client: TcpStream, container: TcpStream) -> io::Result<()> {
    let (mut client_read, mut container_write) = (client.try_clone()?, container.try_clone()?);
    let upstream = thread::spawn(move || {
        let _ = io::copy(&mut client_read, &mut container_write);
        let _ = container_write.shutdown(Shutdown::Write);
    });
    let (mut container_read, mut client_write) = (container, client);
    let _ = io::copy(&mut container_read, &mut client_write);
    let _ = client_write.shutdown(Shutdown::Write);
    let _ = upstream.join();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_docker_forms() {
        let m: PortMapping = "8080:80".parse().unwrap();
        assert_eq!(m.host, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(m.container_port, 80);
        let m: PortMapping = "127.0.0.2:9000:9001/tcp".parse().unwrap();
        assert_eq!(m.host, "127.0.0.2:9000".parse().unwrap());
        assert_eq!(m.container_port, 9001);
    }

    #[test]
    fn rejects_bad_mappings_with_the_reason() {
        for (spec, reason) in [
            ("8080", "no ':'"),
            ("0:80", "host port '0'"),
            ("80:99999", "container port '99999'"),
            ("x.y:1:2", "'x.y' is not an IP"),
        ] {
            let err = spec.parse::<PortMapping>().unwrap_err().to_string();
            assert!(err.contains(reason), "{spec}: {err}");
        }
    }

    #[test]
    fn proxy_forwards_bytes_both_ways_and_releases_the_port() {
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let echo_addr = echo.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (mut conn, _) = echo.accept().unwrap();
            let mut reader = conn.try_clone().unwrap();
            io::copy(&mut reader, &mut conn).unwrap();
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let front = listener.local_addr().unwrap();
        let mut proxy = PortProxy::start(listener, echo_addr);
        let mut client = TcpStream::connect(front).unwrap();
        io::Write::write_all(&mut client, b"ping").unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut reply = String::new();
        io::Read::read_to_string(&mut client, &mut reply).unwrap();
        assert_eq!(reply, "ping");
        server.join().unwrap();
        proxy.stop();
        assert!(
            TcpListener::bind(front).is_ok(),
            "the host port is free again after stop"
        );
    }
}
