//! A micro-VM: one VM, one vCPU, guest RAM, a serial port. The stages differ only in what the
//! VMM puts into memory and into the vCPU's registers before the first KVM_RUN.

use std::time::Instant;

use kvm_bindings::{kvm_pit_config, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::boot::{write_boot_params, BootInfo};
use crate::cpu::{setup_long_mode, setup_real_mode};
use crate::error::{kvm, Result, VmError};
use crate::guest::{GuestConfig, LONG_MODE_CODE_BYTES, REAL_MODE_CODE_BYTES, TINY_GUEST_BIN};
use crate::input::InputHandle;
use crate::layout::*;
use crate::memory::GuestRam;
use crate::paging::unmap_page;
use crate::serial::{Console, IrqLine};

/// A virtual machine with one vCPU.
pub struct MicroVm {
    // Field order is drop order: the vCPU and VM fds close before the memory is unmapped.
    pub(crate) vcpu: VcpuFd,
    pub(crate) vm: VmFd,
    pub(crate) kvm: Kvm,
    pub(crate) ram: GuestRam,
    pub(crate) console: Console,
    /// Bytes for the console from other threads, and the way to wake the vCPU for them.
    pub(crate) input: InputHandle,
    /// Does this VM have KVM's in-kernel PIC, IOAPIC, local APIC and PIT?
    pub(crate) irqchip: bool,
    /// When creation (or restore) began: the zero of all reported times.
    pub(crate) started: Instant,
}

/// The parts every machine has, before a stage fills them in.
pub(crate) struct Parts {
    pub kvm: Kvm,
    pub vm: VmFd,
    pub serial_irq: IrqLine,
}

// ANCHOR: create_vm
/// Opens /dev/kvm and creates the VM: KVM_CREATE_VM, then (for a full PC) the in-kernel
/// interrupt controllers and timer. Interrupt controllers must exist before the vCPU does.
pub(crate) fn create_parts(irqchip: bool) -> Result<Parts> {
    let kvm_fd = Kvm::new().map_err(|errno| VmError::OpenKvm { errno })?;
    let vm = kvm_fd.create_vm().map_err(kvm(
        "KVM_CREATE_VM",
        "is another hypervisor holding the CPU's virtualization?",
    ))?;
    let mut serial_irq = IrqLine::None;
    if irqchip {
        // Intel VMX needs 3 pages for real-mode emulation; harmless elsewhere.
        vm.set_tss_address(KVM_TSS_ADDRESS as usize)
            .map_err(kvm("KVM_SET_TSS_ADDR", "an address outside guest RAM"))?;
        vm.create_irq_chip()
            .map_err(kvm("KVM_CREATE_IRQCHIP", "the in-kernel PIC/IOAPIC"))?;
        let pit = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        vm.create_pit2(pit)
            .map_err(kvm("KVM_CREATE_PIT2", "the in-kernel timer"))?;
        // The UART's interrupt: an eventfd that KVM turns into IRQ 4 on the PIC/IOAPIC.
        let fd = EventFd::new(EFD_NONBLOCK).map_err(|e| VmError::Os {
            call: "eventfd",
            doing: "making the serial port's interrupt line",
            errno: vmm_sys_util::errno::Error::new(e.raw_os_error().unwrap_or(libc::EIO)),
        })?;
        vm.register_irqfd(&fd, COM1_IRQ)
            .map_err(kvm("KVM_IRQFD", "GSI 4 for COM1"))?;
        serial_irq = IrqLine::Irqfd(fd);
    }
    Ok(Parts {
        kvm: kvm_fd,
        vm,
        serial_irq,
    })
}
// ANCHOR_END: create_vm

impl MicroVm {
    /// Puts memory and one vCPU into the parts.
    pub(crate) fn assemble(
        parts: Parts,
        ram: GuestRam,
        irqchip: bool,
        echo: bool,
        started: Instant,
    ) -> Result<MicroVm> {
        ram.register(&parts.vm)?;
        let vcpu = parts
            .vm
            .create_vcpu(0)
            .map_err(kvm("KVM_CREATE_VCPU", "one vCPU, id 0"))?;
        Ok(MicroVm {
            vcpu,
            vm: parts.vm,
            kvm: parts.kvm,
            ram,
            console: Console::new(parts.serial_irq, echo),
            input: InputHandle::default(),
            irqchip,
            started,
        })
    }

    // ANCHOR: stage1
    /// Stage 1, "Hello, KVM": one page of memory, real mode, a few instructions.
    pub fn real_mode() -> Result<MicroVm> {
        let started = Instant::now();
        let parts = create_parts(false)?;
        let ram = GuestRam::anonymous(REAL_MODE_CODE, 0x1000)?;
        ram.write(REAL_MODE_CODE, REAL_MODE_CODE_BYTES)?;
        let vm = MicroVm::assemble(parts, ram, false, false, started)?;
        setup_real_mode(&vm.vcpu, REAL_MODE_CODE, 2, 3)?;
        Ok(vm)
    }
    // ANCHOR_END: stage1

    // ANCHOR: stage2
    /// Stage 2: straight into 64-bit mode, no firmware.
    pub fn long_mode() -> Result<MicroVm> {
        let started = Instant::now();
        let parts = create_parts(false)?;
        let ram = GuestRam::anonymous(0, TINY_MEM_SIZE)?;
        ram.write(HIMEM_START, LONG_MODE_CODE_BYTES)?;
        let vm = MicroVm::assemble(parts, ram, false, false, started)?;
        setup_long_mode(&vm.vcpu, &vm.ram, HIMEM_START)?;
        Ok(vm)
    }
    // ANCHOR_END: stage2

    // ANCHOR: stage3
    /// Stage 3: our tiny guest, booted like a Linux kernel: the program at 1 MiB, its input as
    /// the initrd, a command line and a zero page, the vCPU in long mode at its entry.
    pub fn tiny_guest(config: &GuestConfig) -> Result<MicroVm> {
        let started = Instant::now();
        if config.mem_size < HIMEM_START + 0x10_0000 || config.mem_size > MAX_MEM_SIZE {
            return Err(VmError::Config(format!(
                "guest memory of {} bytes: give between 2 MiB and {} MiB",
                config.mem_size,
                MAX_MEM_SIZE >> 20
            )));
        }
        let initrd = match config.input_address() {
            Some(addr) => Some((addr, config.input.len() as u64)),
            None if config.input.is_empty() => None,
            None => {
                return Err(VmError::Config(format!(
                    "the guest's input ({} bytes) does not fit in its {} bytes of memory",
                    config.input.len(),
                    config.mem_size
                )))
            }
        };
        let parts = create_parts(config.irqchip)?;
        let ram = GuestRam::anonymous(0, config.mem_size)?;
        ram.write(HIMEM_START, TINY_GUEST_BIN)?;
        if let Some((addr, _)) = initrd {
            ram.write(addr, &config.input)?;
        }
        write_boot_params(
            &ram,
            &BootInfo {
                cmdline: &config.cmdline,
                initrd,
                setup_header: None,
            },
        )?;
        let mut vm = MicroVm::assemble(parts, ram, config.irqchip, config.echo, started)?;
        setup_long_mode(&vm.vcpu, &vm.ram, HIMEM_START)?;
        vm.console.enqueue_input(&config.console_input)?;
        if let Some(page) = config.unmap {
            unmap_page(&vm.ram, page)?;
        }
        Ok(vm)
    }
    // ANCHOR_END: stage3

    /// The guest's RAM.
    pub fn memory(&self) -> &GuestRam {
        &self.ram
    }

    /// The VM, for inspecting the in-kernel devices (KVM_GET_IRQCHIP, KVM_GET_PIT2).
    pub fn vm_fd(&self) -> &VmFd {
        &self.vm
    }

    /// The vCPU, for inspecting registers.
    pub fn vcpu(&self) -> &VcpuFd {
        &self.vcpu
    }

    /// Everything the guest has written to the serial port so far.
    pub fn output(&self) -> &[u8] {
        &self.console.output().bytes
    }

    /// A handle that sends bytes to the guest's serial port, from any thread, also while
    /// [`MicroVm::run`] is running.
    pub fn input(&self) -> InputHandle {
        self.input.clone()
    }

    /// Input bytes not yet read by the guest (the UART's FIFO and the queue behind it).
    pub fn unread_input(&self) -> usize {
        self.console.state().in_buffer.len() + self.console.pending_input()
    }

    /// Copy the guest's output to our stdout as it comes (or stop doing so).
    pub fn set_echo(&mut self, echo: bool) {
        self.console.output_mut().echo = echo;
    }

    pub fn has_irqchip(&self) -> bool {
        self.irqchip
    }

    /// When this VM's creation (or restore) began.
    pub fn started(&self) -> Instant {
        self.started
    }
}
