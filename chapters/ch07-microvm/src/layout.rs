// The micro-VM's memory map and magic numbers. (Plain `const`s with outer doc comments only:
// `build.rs` reads this file with `include!` to hand the guest the same addresses.)

// ANCHOR: layout
// Guest-physical memory map (low addresses first). All our structures live below 1 MiB, where
// a PC's real-mode world lives, and the kernel (or our tiny guest) is loaded at 1 MiB.

/// The Global Descriptor Table: 4 entries (null, 64-bit code, data, TSS) of 8 bytes.
pub const BOOT_GDT_START: u64 = 0x500;
/// The Interrupt Descriptor Table: we load an *empty* one (limit 0), so any exception the guest
/// takes cannot be delivered, becomes a double fault, then a triple fault: KVM_EXIT_SHUTDOWN.
pub const BOOT_IDT_START: u64 = 0x520;
/// Stage 1 ("Hello, KVM") maps just this one page and puts its real-mode code at its start.
pub const REAL_MODE_CODE: u64 = 0x1000;
/// Linux's "zero page" (`struct boot_params`): what the loader tells the kernel. Its address is
/// passed in %rsi on the 64-bit entry.
pub const ZERO_PAGE_START: u64 = 0x7000;
/// Page tables for the identity map: PML4 -> PDPT -> PD (2 MiB pages) and one PT that splits the
/// first 2 MiB into 4 KiB pages, so that a single page can be unmapped ("try breaking it").
pub const PML4_START: u64 = 0x9000;
pub const PDPT_START: u64 = 0xa000;
pub const PD_START: u64 = 0xb000;
pub const PT_START: u64 = 0xc000;
/// How much the identity map covers: one PD of 512 × 2 MiB pages = 1 GiB.
pub const IDENTITY_MAP_SIZE: u64 = 1 << 30;
/// The kernel command line (NUL-terminated), pointed to by `boot_params.hdr.cmd_line_ptr`.
pub const CMDLINE_START: u64 = 0x2_0000;
/// Longest command line we accept (Linux's x86 COMMAND_LINE_SIZE is 2048).
pub const CMDLINE_MAX_SIZE: usize = 2048;
/// Top of the stack the VMM gives the first instruction (%rsp); it grows down, below the
/// 640 KiB line.
pub const BOOT_STACK_TOP: u64 = 0x8_0000;
/// Start of the Extended BIOS Data Area: conventional RAM ends here (e820 entry 1).
pub const EBDA_START: u64 = 0x9_fc00;
/// 1 MiB: where "high memory" starts, where the kernel (and our tiny guest) is loaded.
pub const HIMEM_START: u64 = 0x10_0000;
/// Guest RAM of the tiny-guest machines: 2 MiB is plenty for a 4 KiB program.
pub const TINY_MEM_SIZE: u64 = 2 << 20;
/// Default RAM of the Linux machine.
pub const LINUX_MEM_SIZE: u64 = 256 << 20;
/// Most RAM we let a VM have: our page tables map 1 GiB, and the addresses above RAM are where
/// MMIO devices would go.
pub const MAX_MEM_SIZE: u64 = 768 << 20;
/// An address that the page tables map but no memory or device backs: a guest access here
/// leaves the CPU as KVM_EXIT_MMIO, and the VMM has nothing to answer with.
pub const UNBACKED_PROBE_ADDR: u64 = 0x3000_0000;
/// An address the page tables do not map at all (the second PDPT entry is empty): touching it is
/// a page fault, and with no IDT a triple fault.
pub const UNMAPPED_VIRT_ADDR: u64 = 0x4000_0000;
/// Where KVM needs 3 pages for its TSS (real-mode emulation on Intel VMX), out of RAM's way.
pub const KVM_TSS_ADDRESS: u64 = 0xfffb_d000;
// ANCHOR_END: layout

// ANCHOR: ports
// I/O ports the VMM answers.

/// COM1, the first 8250 UART: 8 registers at 0x3f8..0x3ff; IRQ 4 on a PC.
pub const COM1_PORT: u16 = 0x3f8;
pub const COM1_PORT_COUNT: u16 = 8;
pub const COM1_IRQ: u32 = 4;
/// The i8042 keyboard controller's command port: writing 0xfe "pulses the reset line". This is
/// how Linux reboots with `reboot=k`, and how our guest powers off.
pub const I8042_COMMAND_PORT: u16 = 0x64;
pub const I8042_DATA_PORT: u16 = 0x60;
pub const I8042_RESET_CMD: u8 = 0xfe;
/// A boxlab-only port: the guest writes here when it is at a good point for a snapshot.
pub const READY_PORT: u16 = 0x0510;
// ANCHOR_END: ports

/// The 64-bit code segment's selector (GDT entry 1), data (2) and TSS (3).
pub const CODE64_SELECTOR: u16 = 0x08;
pub const DATA_SELECTOR: u16 = 0x10;
pub const TSS_SELECTOR: u16 = 0x18;

// x86 architectural numbers the VMM sets (Intel SDM vol. 3).

/// CR0: protected mode enable, paging.
pub const CR0_PE: u64 = 1 << 0;
pub const CR0_PG: u64 = 1 << 31;
/// CR4: physical address extension (4-level paging needs it).
pub const CR4_PAE: u64 = 1 << 5;
/// EFER: long mode enable (asked for) and long mode active (what the CPU reports once paging is
/// on). KVM_SET_SREGS wants both, as if the guest had switched itself.
pub const EFER_LME: u64 = 1 << 8;
pub const EFER_LMA: u64 = 1 << 10;
/// MSRs Linux expects a boot loader to have zeroed or set (as Firecracker does).
pub const MSR_IA32_SYSENTER_CS: u32 = 0x174;
pub const MSR_IA32_SYSENTER_ESP: u32 = 0x175;
pub const MSR_IA32_SYSENTER_EIP: u32 = 0x176;
pub const MSR_STAR: u32 = 0xc000_0081;
pub const MSR_LSTAR: u32 = 0xc000_0082;
pub const MSR_CSTAR: u32 = 0xc000_0083;
pub const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
pub const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
pub const MSR_IA32_TSC: u32 = 0x10;
pub const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
pub const MISC_ENABLE_FAST_STRING: u64 = 1;
/// Local APIC registers (offsets in its 4 KiB page) and delivery modes, for LINT0/LINT1.
pub const APIC_LVT0: usize = 0x350;
pub const APIC_LVT1: usize = 0x360;
pub const APIC_MODE_EXTINT: u32 = 0x7;
pub const APIC_MODE_NMI: u32 = 0x4;
/// e820 memory types.
pub const E820_RAM: u32 = 1;
pub const E820_RESERVED: u32 = 2;
/// Linux boot protocol magic (Documentation/arch/x86/boot.rst).
pub const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
/// "HdrS": the setup header is present.
pub const KERNEL_HDR_MAGIC: u32 = 0x5372_6448;
/// Where "HdrS" sits in a bzImage file.
pub const BZIMAGE_HDR_MAGIC_OFFSET: usize = 0x202;
/// `type_of_loader`: "undefined" boot loader, i.e. us.
pub const KERNEL_LOADER_OTHER: u8 = 0xff;
/// The alignment we promise for a relocatable kernel (16 MiB, like Firecracker).
pub const KERNEL_MIN_ALIGNMENT: u32 = 0x0100_0000;
/// A bzImage's 64-bit entry point is 0x200 bytes past where its protected-mode code is loaded.
pub const BZIMAGE_64BIT_ENTRY_OFFSET: u64 = 0x200;
