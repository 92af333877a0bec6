//! Guest memory: an ordinary `mmap` in the VMM, shown to KVM as the guest's physical RAM.
//!
//! KVM does not allocate guest memory. The VMM maps some of its own address space and tells KVM
//! "guest-physical address X is my virtual address Y" (KVM_SET_USER_MEMORY_REGION). The guest's
//! RAM therefore *is* VMM memory: the VMM writes boot structures into it with plain stores, and
//! a snapshot is just a copy of it. Pages are only allocated when first touched, which is why a
//! 2 MiB guest costs what it uses.

use std::fs::File;

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::{
    Bytes, FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestRegionMmap,
    MmapRegion,
};

use crate::error::{kvm, Result, VmError};

/// Guest pages are 4 KiB, like the host's.
pub const PAGE_SIZE: u64 = 4096;

/// The guest's RAM: one contiguous range of guest-physical addresses.
pub struct GuestRam {
    mem: GuestMemoryMmap,
    base: u64,
    size: u64,
}

impl GuestRam {
    /// Fresh, zeroed, lazily allocated memory (anonymous `mmap`).
    pub fn anonymous(base: u64, size: u64) -> Result<GuestRam> {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(base), size as usize)])
            .map_err(|e| memory_error(format!("mapping {size} bytes at {base:#x}"), e))?;
        Ok(GuestRam { mem, base, size })
    }

    // ANCHOR: from_file
    /// Memory whose contents come from a snapshot file, mapped copy-on-write (MAP_PRIVATE):
    /// nothing is read until the guest touches a page, and the file is never written. This is
    /// what makes a restore fast: its cost does not grow with the guest's memory size.
    pub fn from_file(file: File, base: u64, size: u64) -> Result<GuestRam> {
        let region = MmapRegion::build(
            Some(FileOffset::new(file, 0)),
            size as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_NORESERVE,
        )
        .map_err(|e| memory_error(format!("mapping the snapshot's {size} bytes"), e))?;
        let region = GuestRegionMmap::new(region, GuestAddress(base))
            .ok_or_else(|| memory_error("placing the snapshot's memory", "address overflow"))?;
        let mem = GuestMemoryMmap::from_regions(vec![region])
            .map_err(|e| memory_error("placing the snapshot's memory", e))?;
        Ok(GuestRam { mem, base, size })
    }
    // ANCHOR_END: from_file

    // ANCHOR: register
    /// Tells KVM that guest-physical `base..base+size` is this mapping (memory slot 0).
    pub fn register(&self, vm: &VmFd) -> Result<()> {
        let host = self.host_address(self.base)?;
        let region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: self.base,
            memory_size: self.size,
            userspace_addr: host as u64,
        };
        // SAFETY: `host` points to a mapping of exactly `size` bytes owned by `self.mem`, which
        // lives as long as the `MicroVm` that owns both this memory and `vm`; the VM is dropped
        // (closing its fd, so KVM stops using the mapping) before or together with the memory.
        unsafe { vm.set_user_memory_region(region) }.map_err(kvm(
            "KVM_SET_USER_MEMORY_REGION",
            "the guest memory must be page-aligned and not overlap another slot",
        ))
    }
    // ANCHOR_END: register

    pub fn base(&self) -> u64 {
        self.base
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The `vm-memory` view, for loaders that want one (`linux-loader`).
    pub fn memory(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    /// Writes `bytes` at guest-physical `addr`.
    pub fn write(&self, addr: u64, bytes: &[u8]) -> Result<()> {
        self.mem
            .write_slice(bytes, GuestAddress(addr))
            .map_err(|e| {
                memory_error(
                    format!("writing {} bytes at {addr:#x}", bytes.len()),
                    format!(
                        "{e} (guest RAM is {:#x}..{:#x})",
                        self.base,
                        self.base + self.size
                    ),
                )
            })
    }

    pub fn write_u64(&self, addr: u64, value: u64) -> Result<()> {
        self.write(addr, &value.to_le_bytes())
    }

    /// Reads `len` bytes at guest-physical `addr`.
    pub fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0; len];
        self.mem
            .read_slice(&mut buf, GuestAddress(addr))
            .map_err(|e| memory_error(format!("reading {len} bytes at {addr:#x}"), e))?;
        Ok(buf)
    }

    pub fn read_u64(&self, addr: u64) -> Result<u64> {
        let bytes = self.read(addr, 8)?;
        Ok(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }

    /// All of guest memory, as the VMM sees it (for a snapshot).
    pub fn as_slice(&self) -> Result<&[u8]> {
        let host = self.host_address(self.base)?;
        // SAFETY: `host..host+size` is the single mapping owned by `self.mem`, alive as long as
        // `self`; the vCPU is not running while a snapshot reads it (the VMM is single-threaded
        // and only snapshots between KVM_RUN calls), so no one writes it meanwhile.
        Ok(unsafe { std::slice::from_raw_parts(host, self.size as usize) })
    }

    /// How many bytes of guest memory are resident in host RAM now (`mincore`).
    pub fn resident_bytes(&self) -> u64 {
        self.resident_pages().iter().filter(|r| **r).count() as u64 * PAGE_SIZE
    }

    /// For each 4 KiB page of guest memory: has it ever been touched (is it in host RAM)?
    /// A page never touched reads as zeros, so a snapshot can skip it without reading it
    /// (reading would map it, and make every page look resident).
    pub fn resident_pages(&self) -> Vec<bool> {
        let pages = self.size.div_ceil(PAGE_SIZE) as usize;
        let Ok(host) = self.host_address(self.base) else {
            return vec![true; pages];
        };
        let mut vec = vec![0u8; pages];
        // SAFETY: `host` is page-aligned (mmap) and `host..host+size` is mapped by `self.mem`;
        // `vec` has one byte per page, as mincore(2) requires.
        let rc = unsafe { libc::mincore(host.cast(), self.size as usize, vec.as_mut_ptr()) };
        if rc != 0 {
            return vec![true; pages];
        }
        vec.iter().map(|b| b & 1 == 1).collect()
    }

    fn host_address(&self, addr: u64) -> Result<*mut u8> {
        self.mem
            .get_host_address(GuestAddress(addr))
            .map_err(|e| memory_error(format!("finding the host address of {addr:#x}"), e))
    }
}

fn memory_error(what: impl Into<String>, reason: impl ToString) -> VmError {
    VmError::Memory {
        what: what.into(),
        reason: reason.to_string(),
    }
}
