//! The Global Descriptor Table: the segments a 64-bit CPU still insists on.
//!
//! In long mode segmentation is mostly gone (bases and limits are ignored for code and data),
//! but the CPU still loads a code segment whose `L` bit says "64-bit", and a task register. The
//! VMM writes the table into guest memory (for the day the guest reloads a segment) *and* hands
//! KVM the same descriptors, already decoded, as `kvm_segment`s.

use kvm_bindings::kvm_segment;

// ANCHOR: gdt
/// Packs one 8-byte descriptor. `flags` holds the access byte (low 8 bits) and the
/// granularity/size nibble (bits 12..16), as the Intel manual draws them.
pub const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    ((base as u64 & 0xff00_0000) << 32)
        | ((base as u64 & 0x00ff_ffff) << 16)
        | (limit as u64 & 0x0000_ffff)
        | ((limit as u64 & 0x000f_0000) << 32)
        | ((flags as u64 & 0x0000_f0ff) << 40)
}

/// null; code: present, ring 0, executable, **L=1 (64-bit)**; data: present, writable;
/// TSS: present, "64-bit TSS (busy)". Base 0 and limit 4 GiB (granularity 4 KiB) everywhere.
pub const BOOT_GDT: [u64; 4] = [
    0,
    gdt_entry(0xa09b, 0, 0xfffff),
    gdt_entry(0xc093, 0, 0xfffff),
    gdt_entry(0x808b, 0, 0xfffff),
];
// ANCHOR_END: gdt

/// Decodes a descriptor into the form KVM_SET_SREGS wants.
pub fn segment(entry: u64, index: u8) -> kvm_segment {
    let bits = |shift: u32, mask: u64| ((entry >> shift) & mask) as u8;
    kvm_segment {
        base: ((entry >> 16) & 0x00ff_ffff) | (((entry >> 56) & 0xff) << 24),
        limit: {
            let raw = ((entry & 0xffff) | (((entry >> 48) & 0xf) << 16)) as u32;
            // With granularity set, the limit counts 4 KiB pages.
            if bits(55, 1) == 1 {
                (raw << 12) | 0xfff
            } else {
                raw
            }
        },
        selector: u16::from(index) * 8,
        type_: bits(40, 0xf),
        present: bits(47, 1),
        dpl: bits(45, 0x3),
        db: bits(54, 1),
        s: bits(44, 1),
        l: bits(53, 1),
        g: bits(55, 1),
        avl: bits(52, 1),
        unusable: u8::from(bits(47, 1) == 0),
        padding: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_segment_is_64_bit_and_present() {
        let code = segment(BOOT_GDT[1], 1);
        assert_eq!((code.l, code.present, code.selector), (1, 1, 0x08));
        assert_eq!(code.limit, 0xffff_ffff);
        assert_eq!(code.type_, 0xb);
        let tss = segment(BOOT_GDT[3], 3);
        assert_eq!((tss.type_, tss.s, tss.selector), (0xb, 0, 0x18));
    }

    #[test]
    fn entries_match_the_firecracker_encoding() {
        // Values from the Intel SDM's example flat segments.
        assert_eq!(gdt_entry(0xa09b, 0, 0xfffff), 0x00af_9b00_0000_ffff);
        assert_eq!(gdt_entry(0xc093, 0, 0xfffff), 0x00cf_9300_0000_ffff);
    }
}
