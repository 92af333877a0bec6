//! Identity page tables: virtual address == physical address, built by the VMM.
//!
//! 64-bit mode cannot run without paging, so before the first instruction the VMM writes a
//! four-level table into guest memory and points CR3 at it. We map the first 1 GiB: 2 MiB pages,
//! except the first 2 MiB, which get 4 KiB pages so that one page can be taken away to watch
//! what happens ("try breaking it").

use crate::error::{Result, VmError};
use crate::layout::{IDENTITY_MAP_SIZE, PDPT_START, PD_START, PML4_START, PT_START};
use crate::memory::GuestRam;

// ANCHOR: paging
const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
/// In a PD entry: this entry is a 2 MiB page, not a pointer to a page table.
const HUGE: u64 = 1 << 7;
const TWO_MIB: u64 = 2 << 20;

/// Writes PML4[0] -> PDPT[0] -> PD; PD[0] -> PT (512 × 4 KiB), PD[1..512] = 2 MiB pages.
pub fn write_identity_map(ram: &GuestRam) -> Result<()> {
    ram.write_u64(PML4_START, PDPT_START | PRESENT | WRITABLE)?;
    ram.write_u64(PDPT_START, PD_START | PRESENT | WRITABLE)?;
    ram.write_u64(PD_START, PT_START | PRESENT | WRITABLE)?;
    let mut pt = Vec::with_capacity(4096);
    for page in 0..512u64 {
        pt.extend_from_slice(&((page << 12) | PRESENT | WRITABLE).to_le_bytes());
    }
    ram.write(PT_START, &pt)?;
    let mut pd = Vec::with_capacity(4096);
    for i in 1..IDENTITY_MAP_SIZE / TWO_MIB {
        pd.extend_from_slice(&((i * TWO_MIB) | PRESENT | WRITABLE | HUGE).to_le_bytes());
    }
    ram.write(PD_START + 8, &pd)
}
// ANCHOR_END: paging

// ANCHOR: unmap
/// Takes one 4 KiB page out of the map (clears its PT entry). The guest's next access to it is
/// a page fault; with no IDT to deliver it, a triple fault.
pub fn unmap_page(ram: &GuestRam, addr: u64) -> Result<()> {
    if addr >= TWO_MIB {
        return Err(VmError::Config(format!(
            "--unmap {addr:#x}: only pages in the first 2 MiB have their own page-table entry"
        )));
    }
    ram.write_u64(PT_START + (addr >> 12) * 8, 0)
}
// ANCHOR_END: unmap

/// Walks the tables the way the MMU does, for a test and for the demo's words.
pub fn translate(ram: &GuestRam, virt: u64) -> Result<Option<u64>> {
    let pml4e = ram.read_u64(PML4_START + ((virt >> 39) & 0x1ff) * 8)?;
    if pml4e & PRESENT == 0 {
        return Ok(None);
    }
    let pdpte = ram.read_u64((pml4e & !0xfff) + ((virt >> 30) & 0x1ff) * 8)?;
    if pdpte & PRESENT == 0 {
        return Ok(None);
    }
    let pde = ram.read_u64((pdpte & !0xfff) + ((virt >> 21) & 0x1ff) * 8)?;
    if pde & PRESENT == 0 {
        return Ok(None);
    }
    if pde & HUGE != 0 {
        return Ok(Some(
            (pde & !(TWO_MIB - 1) & !HUGE) + (virt & (TWO_MIB - 1)),
        ));
    }
    let pte = ram.read_u64((pde & !0xfff) + ((virt >> 12) & 0x1ff) * 8)?;
    if pte & PRESENT == 0 {
        return Ok(None);
    }
    Ok(Some((pte & !0xfff) + (virt & 0xfff)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{TINY_MEM_SIZE, UNBACKED_PROBE_ADDR, UNMAPPED_VIRT_ADDR};

    #[test]
    fn the_identity_map_maps_each_address_to_itself() {
        let ram = GuestRam::anonymous(0, TINY_MEM_SIZE).unwrap();
        write_identity_map(&ram).unwrap();
        for addr in [0x1000, 0x10_0000, 0x1f_f123, 0x20_0000, UNBACKED_PROBE_ADDR] {
            assert_eq!(translate(&ram, addr).unwrap(), Some(addr), "{addr:#x}");
        }
        assert_eq!(translate(&ram, UNMAPPED_VIRT_ADDR).unwrap(), None);
        unmap_page(&ram, 0x1f_f000).unwrap();
        assert_eq!(translate(&ram, 0x1f_f010).unwrap(), None);
        assert_eq!(translate(&ram, 0x1f_e010).unwrap(), Some(0x1f_e010));
        assert!(unmap_page(&ram, 0x20_0000).is_err());
    }
}
