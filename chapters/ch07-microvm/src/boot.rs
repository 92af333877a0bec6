//! The zero page: `struct boot_params`, Linux's boot protocol, filled in by the VMM.
//!
//! Whatever a boot loader would tell a kernel, a VMM writes here: where the command line is,
//! where the initrd is and how big, and the e820 map of which physical addresses are RAM. Our
//! tiny guest reads the very same structure, so stages 3 and 4 share this code.

use linux_loader::cmdline::Cmdline;
use linux_loader::configurator::linux::LinuxBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params, setup_header};
use vm_memory::GuestAddress;

use crate::error::{Result, VmError};
use crate::layout::*;
use crate::memory::GuestRam;

/// What the boot parameters describe.
pub struct BootInfo<'a> {
    pub cmdline: &'a str,
    /// Guest-physical address and size of the initrd (our tiny guest's input).
    pub initrd: Option<(u64, u64)>,
    /// A bzImage's own setup header, which the loader must copy and complete.
    pub setup_header: Option<setup_header>,
}

/// Validates the command line (the kernel wants printable ASCII, NUL-terminated, bounded).
pub fn parse_cmdline(cmdline: &str) -> Result<Cmdline> {
    if let Some(bad) = cmdline.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(VmError::Cmdline {
            cmdline: cmdline.into(),
            reason: format!(
                "{bad:?} is not printable ASCII: the kernel splits its command line on spaces only"
            ),
        });
    }
    Cmdline::try_from(cmdline, CMDLINE_MAX_SIZE).map_err(|e| VmError::Cmdline {
        cmdline: cmdline.into(),
        reason: format!(
            "{e} (at most {} bytes of printable ASCII)",
            CMDLINE_MAX_SIZE - 1
        ),
    })
}

// ANCHOR: e820
/// The e820 map: RAM below the EBDA, the legacy hole (BIOS, VGA) reserved, RAM from 1 MiB on.
pub fn e820_map(mem_size: u64) -> Vec<boot_e820_entry> {
    let entry = |addr: u64, end: u64, r#type: u32| boot_e820_entry {
        addr,
        size: end - addr,
        r#type,
    };
    vec![
        entry(0, EBDA_START, E820_RAM),
        entry(EBDA_START, HIMEM_START, E820_RESERVED),
        entry(HIMEM_START, mem_size, E820_RAM),
    ]
}
// ANCHOR_END: e820

// ANCHOR: zero_page
/// Writes the command line and the zero page into guest memory.
pub fn write_boot_params(ram: &GuestRam, info: &BootInfo) -> Result<()> {
    let cmdline = parse_cmdline(info.cmdline)?;
    linux_loader::loader::load_cmdline(ram.memory(), GuestAddress(CMDLINE_START), &cmdline)
        .map_err(|e| VmError::Cmdline {
            cmdline: info.cmdline.into(),
            reason: e.to_string(),
        })?;

    let mut params = boot_params::default();
    if let Some(header) = info.setup_header {
        params.hdr = header; // a bzImage's own header: its version, flags, sizes
    }
    params.hdr.type_of_loader = KERNEL_LOADER_OTHER;
    params.hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
    params.hdr.header = KERNEL_HDR_MAGIC;
    params.hdr.kernel_alignment = KERNEL_MIN_ALIGNMENT;
    params.hdr.cmd_line_ptr = CMDLINE_START as u32;
    params.hdr.cmdline_size = info.cmdline.len() as u32 + 1;
    if let Some((addr, size)) = info.initrd {
        params.hdr.ramdisk_image = addr as u32;
        params.hdr.ramdisk_size = size as u32;
    }
    let map = e820_map(ram.base() + ram.size());
    for (slot, entry) in params.e820_table.iter_mut().zip(&map) {
        *slot = *entry;
    }
    params.e820_entries = map.len() as u8;

    LinuxBootConfigurator::write_bootparams(
        &BootParams::new(&params, GuestAddress(ZERO_PAGE_START)),
        ram.memory(),
    )
    .map_err(|e| VmError::Memory {
        what: format!("writing the zero page at {ZERO_PAGE_START:#x}"),
        reason: e.to_string(),
    })
}
// ANCHOR_END: zero_page

/// Where an initrd of `size` bytes goes: as high in RAM as possible, page-aligned, above
/// `lowest` (the end of the kernel). `None` if it does not fit.
pub fn initrd_address(mem_end: u64, lowest: u64, size: u64) -> Option<u64> {
    let addr = mem_end.checked_sub(size)? & !0xfff;
    (addr >= lowest).then_some(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initrd_goes_high_and_page_aligned() {
        assert_eq!(initrd_address(0x20_0000, 0x10_1000, 43), Some(0x1f_f000));
        assert_eq!(initrd_address(0x20_0000, 0x10_1000, 0x10_0000), None);
        assert_eq!(initrd_address(0x20_0000, 0x10_1000, 0x30_0000), None);
    }

    #[test]
    fn a_command_line_with_a_newline_or_too_long_is_refused() {
        assert!(parse_cmdline("console=ttyS0 reboot=k").is_ok());
        assert!(parse_cmdline("bad\nline").is_err());
        assert!(parse_cmdline(&"x".repeat(CMDLINE_MAX_SIZE + 1)).is_err());
    }

    #[test]
    fn the_zero_page_has_the_magic_and_the_pointers() {
        let ram = GuestRam::anonymous(0, TINY_MEM_SIZE).unwrap();
        let info = BootInfo {
            cmdline: "task=crc32",
            initrd: Some((0x1f_f000, 43)),
            setup_header: None,
        };
        write_boot_params(&ram, &info).unwrap();
        let page = ram.read(ZERO_PAGE_START, 4096).unwrap();
        let u32_at = |o: usize| u32::from_le_bytes(page[o..o + 4].try_into().unwrap());
        assert_eq!(u32_at(0x202), KERNEL_HDR_MAGIC);
        assert_eq!(u32_at(0x228), CMDLINE_START as u32);
        assert_eq!((u32_at(0x218), u32_at(0x21c)), (0x1f_f000, 43));
        assert_eq!(page[0x1e8], 3);
        assert_eq!(ram.read(CMDLINE_START, 11).unwrap(), b"task=crc32\0");
    }
}
