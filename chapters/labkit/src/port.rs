//! Free TCP ports for tests that publish one.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};

/// A loopback TCP port that is free now and lies *below* the kernel's ephemeral range.
///
/// Asking the kernel for port 0 and closing it is racy in a parallel test run: the same number
/// is soon handed out again as the source port of some test's outgoing connection. Ports below
/// `ip_local_port_range` are never handed out that way, and each call in this process moves on
/// to the next one.
pub fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let ephemeral_low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let low = ephemeral_low.saturating_sub(12000).max(1024);
    let span = ephemeral_low - low;
    // Start somewhere that depends on the process, so parallel test binaries spread out.
    let start = (std::process::id() % u32::from(span)) as u16;
    for _ in 0..span {
        let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = low + offset;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {low}..{ephemeral_low}");
}
