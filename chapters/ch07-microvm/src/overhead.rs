//! What the VMM itself costs in memory: the process's resident memory minus the guest's.
//!
//! Guest RAM is VMM memory (an mmap), so `ps` shows guest and VMM together. The figure that
//! compares VMMs (Firecracker promises at most 5 MiB) is the rest: page tables, the VMM's code
//! and heap, KVM's per-vCPU page, the serial buffer. We read RSS from /proc/self/status and ask
//! the kernel (mincore) how much of the guest mapping is resident.

use std::fs;

use crate::vm::MicroVm;

/// Memory figures, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Overhead {
    /// Resident set of the whole VMM process.
    pub rss: u64,
    /// Of which anonymous memory (heap, stacks, guest RAM) and file-backed (our binary, libc).
    pub rss_anon: u64,
    pub rss_file: u64,
    /// Guest RAM: its size, and how much of it is resident now.
    pub guest_size: u64,
    pub guest_resident: u64,
}

impl Overhead {
    /// RSS outside guest memory.
    pub fn vmm(&self) -> u64 {
        self.rss.saturating_sub(self.guest_resident)
    }

    /// The same, counting only anonymous memory (what each extra VM process would add; the
    /// binary's file pages are shared between processes).
    pub fn vmm_anon(&self) -> u64 {
        self.rss_anon.saturating_sub(self.guest_resident)
    }
}

/// This process's resident memory, in bytes, as /proc/self/status reports it (0 where a line
/// is missing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessMemory {
    pub rss: u64,
    /// Anonymous memory (heap, stacks, guest RAM) and file-backed (the binary, libc, shmem).
    pub rss_anon: u64,
    pub rss_file: u64,
}

// ANCHOR: overhead
/// Reads /proc/self/status now.
pub fn process_memory() -> ProcessMemory {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    ProcessMemory {
        rss: kib("VmRSS:"),
        rss_anon: kib("RssAnon:"),
        rss_file: kib("RssFile:") + kib("RssShmem:"),
    }
}

/// Measures now, for `vm`.
pub fn measure(vm: &MicroVm) -> Overhead {
    let process = process_memory();
    Overhead {
        rss: process.rss,
        rss_anon: process.rss_anon,
        rss_file: process.rss_file,
        guest_size: vm.memory().size(),
        guest_resident: vm.memory().resident_bytes(),
    }
}
// ANCHOR_END: overhead

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_resident_memory_of_both_kinds() {
        let m = process_memory();
        assert!(m.rss > 0 && m.rss_anon > 0 && m.rss_file > 0, "{m:?}");
        // The kernel sums VmRSS from exactly these counters.
        assert_eq!(m.rss_anon + m.rss_file, m.rss, "{m:?}");
    }
}
