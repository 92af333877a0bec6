//! vCPU set-up: registers for real mode and for 64-bit long mode, CPUID, MSRs and the local
//! APIC's two interrupt pins.
//!
//! A physical x86 CPU wakes up in 16-bit real mode, and firmware walks it up to protected and
//! long mode. A VMM can skip all of that: it *writes* the registers of a CPU that is already in
//! long mode (KVM_SET_SREGS / KVM_SET_REGS), as Firecracker does. No BIOS, no boot loader.

use kvm_bindings::{kvm_msr_entry, kvm_regs, CpuId, Msrs, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Kvm, VcpuFd};

use crate::error::{kvm, Result, VmError};
use crate::gdt::{segment, BOOT_GDT};
use crate::layout::*;
use crate::memory::GuestRam;
use crate::paging::write_identity_map;

// ANCHOR: real_mode
/// Stage 1: a CPU just out of reset, except that CS points at our page instead of the BIOS.
/// Real mode: address = segment × 16 + offset, so CS = 0 and RIP = the code's address.
pub fn setup_real_mode(vcpu: &VcpuFd, rip: u64, rax: u64, rbx: u64) -> Result<()> {
    let mut sregs = vcpu
        .get_sregs()
        .map_err(kvm("KVM_GET_SREGS", "a fresh vCPU"))?;
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    vcpu.set_sregs(&sregs)
        .map_err(kvm("KVM_SET_SREGS", "real-mode segments"))?;
    let regs = kvm_regs {
        rip,
        rax,
        rbx,
        rflags: 0x2, // bit 1 is reserved and always 1; interrupts off
        ..Default::default()
    };
    vcpu.set_regs(&regs)
        .map_err(kvm("KVM_SET_REGS", "real-mode registers"))
}
// ANCHOR_END: real_mode

// ANCHOR: long_mode
/// Stages 2-4: a CPU already in 64-bit mode, at `entry`, with `%rsi` pointing at the zero page
/// (Linux's 64-bit boot protocol) and a stack.
pub fn setup_long_mode(vcpu: &VcpuFd, ram: &GuestRam, entry: u64) -> Result<()> {
    // The tables the CPU will read: a GDT, an empty IDT, identity page tables.
    let gdt: Vec<u8> = BOOT_GDT.iter().flat_map(|e| e.to_le_bytes()).collect();
    ram.write(BOOT_GDT_START, &gdt)?;
    ram.write_u64(BOOT_IDT_START, 0)?;
    write_identity_map(ram)?;

    let mut sregs = vcpu
        .get_sregs()
        .map_err(kvm("KVM_GET_SREGS", "a fresh vCPU"))?;
    let code = segment(BOOT_GDT[1], 1);
    let data = segment(BOOT_GDT[2], 2);
    sregs.cs = code;
    (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data);
    sregs.tr = segment(BOOT_GDT[3], 3);
    sregs.gdt.base = BOOT_GDT_START;
    sregs.gdt.limit = (gdt.len() - 1) as u16;
    sregs.idt.base = BOOT_IDT_START;
    sregs.idt.limit = 0; // no gates at all: any exception ends in a triple fault
    sregs.cr3 = PML4_START;
    sregs.cr4 |= CR4_PAE;
    sregs.cr0 |= CR0_PE | CR0_PG;
    sregs.efer |= EFER_LME | EFER_LMA;
    vcpu.set_sregs(&sregs).map_err(kvm(
        "KVM_SET_SREGS",
        "long mode needs CR0.PG, CR4.PAE, EFER.LME/LMA and a 64-bit code segment together",
    ))?;

    let regs = kvm_regs {
        rip: entry,
        rsp: BOOT_STACK_TOP,
        rbp: BOOT_STACK_TOP,
        rsi: ZERO_PAGE_START,
        rflags: 0x2,
        ..Default::default()
    };
    vcpu.set_regs(&regs)
        .map_err(kvm("KVM_SET_REGS", "64-bit entry registers"))
}
// ANCHOR_END: long_mode

// ANCHOR: cpuid
/// CPUID: what the guest is told the CPU can do. We pass on what KVM supports
/// (KVM_GET_SUPPORTED_CPUID), say "running under a hypervisor" (leaf 1, ECX bit 31) and give
/// the one vCPU APIC id 0. A kernel reads these to choose its code paths; anything claimed here
/// that the host cannot do would fault later.
pub fn setup_cpuid(kvm_fd: &Kvm, vcpu: &VcpuFd) -> Result<CpuId> {
    let mut cpuid = kvm_fd
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(kvm("KVM_GET_SUPPORTED_CPUID", "an old kernel?"))?;
    for entry in cpuid.as_mut_slice() {
        if entry.function == 1 {
            entry.ecx |= 1 << 31; // hypervisor present
            entry.ebx &= 0x00ff_ffff; // initial APIC id 0
            entry.ebx = (entry.ebx & !0x00ff_0000) | (1 << 16); // one logical CPU
        }
    }
    vcpu.set_cpuid2(&cpuid)
        .map_err(kvm("KVM_SET_CPUID2", "the CPUID table KVM itself returned"))?;
    Ok(cpuid)
}
// ANCHOR_END: cpuid

// ANCHOR: msrs
/// The model-specific registers a boot loader leaves in a known state: no SYSCALL/SYSENTER
/// targets yet, TSC from 0, and "fast strings" on (Linux checks it).
pub fn setup_msrs(vcpu: &VcpuFd) -> Result<()> {
    let entry = |index: u32, data: u64| kvm_msr_entry {
        index,
        data,
        ..Default::default()
    };
    let entries = [
        entry(MSR_IA32_SYSENTER_CS, 0),
        entry(MSR_IA32_SYSENTER_ESP, 0),
        entry(MSR_IA32_SYSENTER_EIP, 0),
        entry(MSR_STAR, 0),
        entry(MSR_CSTAR, 0),
        entry(MSR_KERNEL_GS_BASE, 0),
        entry(MSR_SYSCALL_MASK, 0),
        entry(MSR_LSTAR, 0),
        entry(MSR_IA32_TSC, 0),
        entry(MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING),
    ];
    let msrs = Msrs::from_entries(&entries)
        .map_err(|e| VmError::Config(format!("building the MSR list: {e:?}")))?;
    let written = vcpu
        .set_msrs(&msrs)
        .map_err(kvm("KVM_SET_MSRS", "boot MSRs"))?;
    if written != entries.len() {
        return Err(VmError::Config(format!(
            "KVM_SET_MSRS set only {written} of {} boot MSRs: MSR {:#x} was refused",
            entries.len(),
            entries[written].index
        )));
    }
    Ok(())
}
// ANCHOR_END: msrs

// ANCHOR: lapic
/// The local APIC's two interrupt pins, wired the way a PC's are: LINT0 receives the legacy
/// PIC's interrupts (ExtINT), LINT1 the NMI. Without this, Linux's timer check fails.
pub fn setup_lapic(vcpu: &VcpuFd) -> Result<()> {
    let mut lapic = vcpu
        .get_lapic()
        .map_err(kvm("KVM_GET_LAPIC", "needs the in-kernel irqchip"))?;
    let set_mode = |regs: &mut [std::os::raw::c_char], offset: usize, mode: u32| {
        let mut bytes = [0u8; 4];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = regs[offset + i] as u8;
        }
        let value = (u32::from_le_bytes(bytes) & !0x700) | (mode << 8);
        for (i, b) in value.to_le_bytes().iter().enumerate() {
            regs[offset + i] = *b as std::os::raw::c_char;
        }
    };
    set_mode(&mut lapic.regs, APIC_LVT0, APIC_MODE_EXTINT);
    set_mode(&mut lapic.regs, APIC_LVT1, APIC_MODE_NMI);
    vcpu.set_lapic(&lapic)
        .map_err(kvm("KVM_SET_LAPIC", "LINT0/LINT1 delivery modes"))
}
// ANCHOR_END: lapic
