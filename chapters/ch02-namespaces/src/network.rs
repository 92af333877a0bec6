//! The container's network: its own loopback, and optionally a veth pair to the host.
//!
//! A new network namespace has only `lo`, and even that is down. A *veth pair* is a virtual
//! cable: two devices where what goes in one comes out of the other. We keep one end on the host
//! (`bxl<N>`) and move the other into the container, where it becomes `eth0`. Each pair gets its
//! own /30 subnet out of 10.241.0.0/16: the host end is `.1`, the container `.2`.

use std::fs::{self, File};
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use nix::fcntl::{Flock, FlockArg};
use nix::sched::{setns, CloneFlags};
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
use nix::unistd::Pid;

use crate::NamespaceError;

/// The block veth subnets are carved from.
const SUBNET_BASE: Ipv4Addr = Ipv4Addr::new(10, 241, 0, 0);
/// /30 subnets in a /16.
const SUBNETS: u32 = 1 << 14;
/// Serialises address allocation between concurrent runtimes.
const LOCK_FILE: &str = "/run/lock/boxlab-net.lock";

// ANCHOR: loopback
/// Brings `lo` up in the calling process's network namespace, with the two ioctls `ip link set lo
/// up` uses: read the interface flags, add IFF_UP, write them back.
pub fn loopback_up() -> Result<(), String> {
    let sock: OwnedFd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| format!("socket for configuring lo: {e}"))?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads into the ifreq we own, which names an interface.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) } < 0 {
        return Err(format!(
            "SIOCGIFFLAGS on lo: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: after SIOCGIFFLAGS the flags member of the union is the one that is set.
    unsafe { request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &request) } < 0 {
        return Err(format!(
            "SIOCSIFFLAGS on lo (IFF_UP): {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}
// ANCHOR_END: loopback

/// A veth pair between the host and one container.
#[derive(Debug)]
pub struct Veth {
    /// The host end's name, `bxl<N>`.
    pub host_device: String,
    /// The host end's address.
    pub host_address: Ipv4Addr,
    /// The container end's address (on its `eth0`).
    pub container_address: Ipv4Addr,
    /// The host end's interface index: names are reused, indexes are not.
    host_ifindex: Option<u32>,
}

impl Veth {
    // ANCHOR: veth
    /// Creates a veth pair, moves one end into the network namespace of `pid`, and gives both ends
    /// addresses, a route and the "up" flag. Needs root on the host.
    pub fn create(pid: Pid) -> Result<Veth, NamespaceError> {
        let _lock = allocation_lock()?;
        let index = free_subnet_index()?;
        let base = u32::from(SUBNET_BASE) + index * 4;
        let mut veth = Veth {
            host_device: format!("bxl{index}"),
            host_address: Ipv4Addr::from(base + 1),
            container_address: Ipv4Addr::from(base + 2),
            host_ifindex: None,
        };
        let peer = format!("bxc{index}");
        // Host side: one `ip` process reading a batch of commands.
        run_ip_batch(
            &format!(
                "link add {host} type veth peer name {peer} netns {pid}\n\
                 addr add {host_ip}/30 dev {host}\n\
                 link set {host} up\n",
                host = veth.host_device,
                host_ip = veth.host_address,
            ),
            None,
        )?;
        veth.host_ifindex = ifindex_of(&veth.host_device);
        // Container side: the same `ip`, run inside the container's network namespace.
        let inside = run_ip_batch(
            &format!(
                "link set {peer} name eth0\n\
                 addr add {ip}/30 dev eth0\n\
                 link set eth0 up\n\
                 route add default via {gateway}\n",
                ip = veth.container_address,
                gateway = veth.host_address,
            ),
            Some(pid),
        );
        if let Err(e) = inside {
            veth.delete_host_end();
            return Err(e);
        }
        Ok(veth)
    }
    // ANCHOR_END: veth

    /// Deletes the host end (which deletes the pair). Harmless if the kernel already did, as it
    /// does when the container's network namespace goes away; and never deletes a *new* device
    /// that reused the name meanwhile (checked by interface index, under the allocation lock).
    pub fn remove(&self) {
        let Ok(_lock) = allocation_lock() else { return };
        self.delete_host_end();
    }

    fn delete_host_end(&self) {
        if self.host_ifindex.is_some() && ifindex_of(&self.host_device) == self.host_ifindex {
            let _ = Command::new("ip")
                .args(["link", "del", &self.host_device])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Holds the lock that serialises allocation and removal of veth pairs between runtimes.
fn allocation_lock() -> Result<Flock<File>, NamespaceError> {
    let lock_file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK_FILE)
        .map_err(|e| NamespaceError::Network {
            step: format!("open {LOCK_FILE}"),
            detail: e.to_string(),
        })?;
    Flock::lock(lock_file, FlockArg::LockExclusive).map_err(|(_, e)| NamespaceError::Network {
        step: format!("flock {LOCK_FILE}"),
        detail: e.to_string(),
    })
}

/// The interface index of a host network device, if it exists.
pub fn ifindex_of(device: &str) -> Option<u32> {
    fs::read_to_string(format!("/sys/class/net/{device}/ifindex"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The first /30 whose device name and addresses nobody uses. Call with the lock held.
fn free_subnet_index() -> Result<u32, NamespaceError> {
    let listing = Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .map_err(|e| NamespaceError::Network {
            step: "ip -o -4 addr show".into(),
            detail: missing_ip(e),
        })?;
    let used = String::from_utf8_lossy(&listing.stdout).into_owned();
    (0..SUBNETS)
        .find(|&index| {
            let host_ip = Ipv4Addr::from(u32::from(SUBNET_BASE) + index * 4 + 1);
            !fs::exists(format!("/sys/class/net/bxl{index}")).unwrap_or(true)
                && !used.contains(&format!("inet {host_ip}/"))
        })
        .ok_or_else(|| NamespaceError::Network {
            step: "allocate a subnet".into(),
            detail: "all of 10.241.0.0/16 is in use; remove stale bxl* devices with 'ip link del'"
                .into(),
        })
}

fn missing_ip(e: std::io::Error) -> String {
    format!("{e}: is iproute2 installed? (scripts/setup installs it)")
}

/// Runs `ip -batch -` with `commands` on stdin, inside the network namespace of `netns_of` if
/// given. Any failing line fails the whole batch, with ip's own message.
fn run_ip_batch(commands: &str, netns_of: Option<Pid>) -> Result<(), NamespaceError> {
    let mut command = Command::new("ip");
    command
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(pid) = netns_of {
        let netns =
            File::open(format!("/proc/{pid}/ns/net")).map_err(|e| NamespaceError::Network {
                step: format!("open /proc/{pid}/ns/net"),
                detail: e.to_string(),
            })?;
        // SAFETY: the closure runs in the forked child before exec and only calls setns(2).
        unsafe {
            command.pre_exec(move || {
                setns(&netns, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
            });
        }
    }
    let step = format!(
        "ip -batch ({})",
        commands.lines().next().unwrap_or_default()
    );
    let mut child = command.spawn().map_err(|e| NamespaceError::Network {
        step: step.clone(),
        detail: missing_ip(e),
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(commands.as_bytes())
            .map_err(|e| NamespaceError::Network {
                step: step.clone(),
                detail: e.to_string(),
            })?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| NamespaceError::Network {
            step: step.clone(),
            detail: e.to_string(),
        })?;
    if !output.status.success() {
        let detail = String::from_utf8_lossy(&output.stderr)
            .trim()
            .replace('\n', "; ");
        return Err(NamespaceError::Network { step, detail });
    }
    Ok(())
}
