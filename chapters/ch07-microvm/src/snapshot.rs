//! Snapshot and restore: a running VM saved to two files, and a fresh VM made from them.
//!
//! Everything a VM *is* sits in a few places: guest memory, the vCPU's registers (general,
//! segment and control, FPU, MSRs, local APIC, pending events), the in-kernel interrupt
//! controllers and timer, and the state of the devices the VMM emulates (our UART). Save them
//! all and a new process can carry on as if nothing happened: the "warm start" serverless
//! platforms use to skip booting (Firecracker's snapshots, AWS Lambda SnapStart).
//!
//! Files: `memory.bin` (the guest's RAM, sparse: all-zero pages are holes) and `vm.state`
//! (tagged records of the raw KVM structures, in this machine's byte order: a snapshot is
//! restored on the same kind of host, with the same KVM).
//!
//! The floating-point and vector registers: where KVM has KVM_CAP_XSAVE, the whole XSAVE area
//! (x87, SSE's XMM registers and MXCSR, AVX's upper halves, …) with KVM_GET_XSAVE, and the
//! extended control registers (XCR0: which of those the guest turned on) with KVM_GET_XCRS
//! where it has KVM_CAP_XCRS; elsewhere the legacy KVM_GET_FPU (x87 and XMM0-15 only). The
//! `machine` record says which was saved, and a restore on a host without it is refused.

use std::fs::{self, File};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kvm_bindings::{
    kvm_clock_data, kvm_cpuid_entry2, kvm_debugregs, kvm_fpu, kvm_irqchip, kvm_lapic_state,
    kvm_mp_state, kvm_msr_entry, kvm_pit_state2, kvm_regs, kvm_sregs, kvm_vcpu_events, kvm_xcrs,
    kvm_xsave, CpuId, Msrs, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE,
    KVM_MAX_CPUID_ENTRIES,
};
use kvm_ioctls::{Cap, Kvm};
use vm_superio::serial::SerialState;

use crate::error::{kvm, Result, VmError};
use crate::exits::{ExitEvent, RunOptions, RunReport, Stop};
use crate::guest::GuestConfig;
use crate::layout::READY_PORT;
use crate::memory::GuestRam;
use crate::vm::{create_parts, MicroVm};

const MAGIC: &[u8; 8] = b"BOXLABVM";
/// 2: the machine record says how the FPU was saved (legacy FPU or XSAVE), and XCRs are
/// saved whenever KVM can.
const VERSION: u32 = 2;
const MEMORY_FILE: &str = "memory.bin";
const STATE_FILE: &str = "vm.state";

/// Plain C structs that can be saved as their bytes and read back.
///
/// # Safety
/// Implement only for `#[repr(C)]` types made of integers (and arrays/unions of them), with no
/// pointers, references, invariants or `Drop`: every byte pattern of the right length is a valid
/// value, and a bitwise copy is a complete, independent value (they are all `Copy`, except
/// `kvm_xsave`, whose bindgen flexible array member stops the derive).
unsafe trait Pod {}

// SAFETY: all of these are bindgen-generated `#[repr(C)]` mirrors of KVM's UAPI structs,
// made only of integer fields, arrays and unions of integers.
unsafe impl Pod for kvm_regs {}
// SAFETY: as above.
unsafe impl Pod for kvm_sregs {}
// SAFETY: as above.
unsafe impl Pod for kvm_fpu {}
// SAFETY: as above.
unsafe impl Pod for kvm_lapic_state {}
// SAFETY: as above.
unsafe impl Pod for kvm_mp_state {}
// SAFETY: as above.
unsafe impl Pod for kvm_vcpu_events {}
// SAFETY: as above.
unsafe impl Pod for kvm_xcrs {}
// SAFETY: as above (its flexible array member `extra` has size 0: the record is the classic
// 4096-byte area, see `FpuFormat`).
unsafe impl Pod for kvm_xsave {}
// SAFETY: as above.
unsafe impl Pod for kvm_debugregs {}
// SAFETY: as above.
unsafe impl Pod for kvm_irqchip {}
// SAFETY: as above.
unsafe impl Pod for kvm_pit_state2 {}
// SAFETY: as above.
unsafe impl Pod for kvm_clock_data {}
// SAFETY: as above.
unsafe impl Pod for kvm_cpuid_entry2 {}
// SAFETY: as above.
unsafe impl Pod for kvm_msr_entry {}

fn bytes_of<T: Pod>(value: &T) -> &[u8] {
    // SAFETY: `T: Pod` has no padding-dependent invariants and lives for the borrow; reading its
    // bytes (padding included, which KVM zeroes) is what a raw ioctl does too.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
}

fn slice_bytes<T: Pod>(values: &[T]) -> &[u8] {
    // SAFETY: as in `bytes_of`, for a contiguous slice.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), size_of_val(values)) }
}

/// A snapshot on disk.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub dir: PathBuf,
}

/// A snapshot just taken ([`Snapshot::take`]), and how it went.
#[derive(Debug, Clone)]
pub struct Taken {
    pub snapshot: Snapshot,
    /// The run up to the snapshot point: the output before the snapshot.
    pub first: RunReport,
    /// How long [`Snapshot::save`] took (not the first VM's teardown, which can take longer).
    pub save_time: Duration,
}

// ANCHOR: fpu_format
/// How a snapshot holds the vCPU's floating-point and vector state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FpuFormat {
    /// KVM_GET_FPU: x87 registers, XMM0-15, MXCSR. All any KVM offers.
    #[default]
    Legacy,
    /// KVM_GET_XSAVE: the XSAVE area, every state component the host's KVM supports.
    Xsave,
}

impl FpuFormat {
    /// What this host's KVM can save: XSAVE where it has KVM_CAP_XSAVE and the area fits the
    /// classic 4096-byte `kvm_xsave` (KVM_CAP_XSAVE2 reports larger only once a process has
    /// enabled AMX tiles, which we never do).
    pub fn for_host(kvm: &Kvm) -> FpuFormat {
        let size = kvm.check_extension_int(Cap::Xsave2);
        if kvm.check_extension(Cap::Xsave) && size <= size_of::<kvm_xsave>() as i32 {
            FpuFormat::Xsave
        } else {
            FpuFormat::Legacy
        }
    }
}
// ANCHOR_END: fpu_format

/// The records of `vm.state`, in the order they are restored.
#[derive(Default)]
struct State {
    mem_base: u64,
    mem_size: u64,
    irqchip: bool,
    fpu_format: FpuFormat,
    cpuid: Vec<kvm_cpuid_entry2>,
    mp_state: Option<kvm_mp_state>,
    regs: Option<kvm_regs>,
    sregs: Option<kvm_sregs>,
    fpu: Option<kvm_fpu>,
    xsave: Option<kvm_xsave>,
    xcrs: Option<kvm_xcrs>,
    debugregs: Option<kvm_debugregs>,
    lapic: Option<kvm_lapic_state>,
    msrs: Vec<kvm_msr_entry>,
    events: Option<kvm_vcpu_events>,
    pit: Option<kvm_pit_state2>,
    clock: Option<kvm_clock_data>,
    pics: Vec<kvm_irqchip>,
    serial: Option<SerialState>,
}

impl Snapshot {
    // ANCHOR: take
    /// Takes a snapshot of the tiny guest `guest` into `dir`: a new VM runs it, with `ready`
    /// added to its command line, to its snapshot point, and is saved there; the VM is gone
    /// when this returns. A guest that ends any other way (powers off, is stopped) is an error,
    /// not a snapshot.
    pub fn take(guest: &GuestConfig, dir: &Path) -> Result<Taken> {
        Self::take_with(guest, dir, &RunOptions::default(), &mut |_| {})
    }

    /// [`Snapshot::take`] with the first run's options (its time limit) and an observer of its
    /// exits.
    pub fn take_with(
        guest: &GuestConfig,
        dir: &Path,
        opts: &RunOptions,
        observer: &mut dyn FnMut(&ExitEvent),
    ) -> Result<Taken> {
        let guest = guest.with_ready();
        let mut vm = MicroVm::tiny_guest(&guest)?;
        let opts = RunOptions {
            stop_at_ready: true,
            ..*opts
        };
        let first = vm.run(&opts, observer)?;
        if first.stop != Stop::Ready {
            return Err(VmError::Snapshot {
                path: dir.into(),
                what: "running the guest to its snapshot point".into(),
                reason: format!(
                    "it ended ({:?}) without writing to the ready port {READY_PORT:#x}; output: {:?}",
                    first.stop,
                    first.output_text()
                ),
            });
        }
        let saving = Instant::now();
        let snapshot = Snapshot::save(&mut vm, dir)?;
        Ok(Taken {
            snapshot,
            first,
            save_time: saving.elapsed(),
        })
    }
    // ANCHOR_END: take

    // ANCHOR: save
    /// Saves `vm` into `dir`. Call it between runs (after [`crate::Stop::Ready`]).
    pub fn save(vm: &mut MicroVm, dir: &Path) -> Result<Snapshot> {
        let err = |what: &str, reason: String| VmError::Snapshot {
            path: dir.into(),
            what: what.into(),
            reason,
        };
        fs::create_dir_all(dir).map_err(|e| err("creating the directory", e.to_string()))?;

        // The guest's last instruction (an `out` to the ready port) is complete only once KVM_RUN
        // is entered again. `immediate_exit` makes KVM finish it and return at once, without
        // running one more guest instruction: now the registers are consistent.
        vm.vcpu.set_kvm_immediate_exit(1);
        let settled = vm.vcpu.run().map(|exit| format!("{exit:?}"));
        vm.vcpu.set_kvm_immediate_exit(0);
        match settled {
            Err(e) if e.errno() == libc::EINTR => {}
            Err(errno) => return Err(kvm("KVM_RUN (immediate_exit)", "settling the vCPU")(errno)),
            Ok(exit) => {
                return Err(err(
                    "settling the vCPU",
                    format!("expected an immediate exit, got {exit}"),
                ))
            }
        }

        let vcpu = &vm.vcpu;
        let mut state = State {
            mem_base: vm.ram.base(),
            mem_size: vm.ram.size(),
            irqchip: vm.irqchip,
            fpu_format: FpuFormat::for_host(&vm.kvm),
            ..State::default()
        };
        state.cpuid = vcpu
            .get_cpuid2(KVM_MAX_CPUID_ENTRIES)
            .map(|c| c.as_slice().to_vec())
            .unwrap_or_default();
        state.mp_state = Some(
            vcpu.get_mp_state()
                .map_err(kvm("KVM_GET_MP_STATE", "vCPU"))?,
        );
        state.regs = Some(vcpu.get_regs().map_err(kvm("KVM_GET_REGS", "vCPU"))?);
        state.sregs = Some(vcpu.get_sregs().map_err(kvm("KVM_GET_SREGS", "vCPU"))?);
        match state.fpu_format {
            FpuFormat::Xsave => {
                state.xsave = Some(vcpu.get_xsave().map_err(kvm("KVM_GET_XSAVE", "vCPU"))?)
            }
            FpuFormat::Legacy => {
                state.fpu = Some(vcpu.get_fpu().map_err(kvm("KVM_GET_FPU", "vCPU"))?)
            }
        }
        if vm.kvm.check_extension(Cap::Xcrs) {
            state.xcrs = Some(vcpu.get_xcrs().map_err(kvm("KVM_GET_XCRS", "vCPU"))?);
        }
        state.debugregs = Some(
            vcpu.get_debug_regs()
                .map_err(kvm("KVM_GET_DEBUGREGS", "vCPU"))?,
        );
        state.events = Some(
            vcpu.get_vcpu_events()
                .map_err(kvm("KVM_GET_VCPU_EVENTS", "vCPU"))?,
        );
        state.msrs = save_msrs(vm)?;
        if vm.irqchip {
            let vcpu = &vm.vcpu;
            state.lapic = Some(vcpu.get_lapic().map_err(kvm("KVM_GET_LAPIC", "vCPU"))?);
            state.pit = Some(vm.vm.get_pit2().map_err(kvm("KVM_GET_PIT2", "the PIT"))?);
            state.clock = Some(
                vm.vm
                    .get_clock()
                    .map_err(kvm("KVM_GET_CLOCK", "kvmclock"))?,
            );
            for chip_id in [
                KVM_IRQCHIP_PIC_MASTER,
                KVM_IRQCHIP_PIC_SLAVE,
                KVM_IRQCHIP_IOAPIC,
            ] {
                let mut chip = kvm_irqchip {
                    chip_id,
                    ..Default::default()
                };
                vm.vm
                    .get_irqchip(&mut chip)
                    .map_err(kvm("KVM_GET_IRQCHIP", "PIC or IOAPIC"))?;
                state.pics.push(chip);
            }
        }
        state.serial = Some(vm.console.state());

        write_memory(&vm.ram, &dir.join(MEMORY_FILE))?;
        fs::write(dir.join(STATE_FILE), encode(&state))
            .map_err(|e| err("writing vm.state", e.to_string()))?;
        Ok(Snapshot { dir: dir.into() })
    }
    // ANCHOR_END: save

    // ANCHOR: restore
    /// Builds a new VM from the files and leaves it ready to [`MicroVm::run`]: the guest goes on
    /// from the instruction after the one it was saved at.
    pub fn restore(&self, echo: bool) -> Result<MicroVm> {
        let started = Instant::now();
        let err = |what: &str, reason: String| VmError::Snapshot {
            path: self.dir.clone(),
            what: what.into(),
            reason,
        };
        let raw = fs::read(self.dir.join(STATE_FILE))
            .map_err(|e| err("reading vm.state", e.to_string()))?;
        let state = decode(&raw).map_err(|reason| err("vm.state", reason))?;
        let memory = File::open(self.dir.join(MEMORY_FILE))
            .map_err(|e| err("opening memory.bin", e.to_string()))?;
        let len = memory.metadata().map(|m| m.len()).unwrap_or(0);
        if len != state.mem_size {
            return Err(err(
                "memory.bin",
                format!(
                    "{len} bytes, but the VM had {} bytes of RAM",
                    state.mem_size
                ),
            ));
        }

        // The machine first (interrupt controllers before the vCPU), then its memory, mapped
        // copy-on-write from the file: no copying.
        let parts = create_parts(state.irqchip)?;
        let ram = GuestRam::from_file(memory, state.mem_base, state.mem_size)?;
        let mut vm = MicroVm::assemble(parts, ram, state.irqchip, echo, started)?;
        if let Some(pit) = &state.pit {
            vm.vm
                .set_pit2(pit)
                .map_err(kvm("KVM_SET_PIT2", "the PIT"))?;
        }
        if let Some(clock) = &state.clock {
            let clock = kvm_clock_data {
                flags: 0, // a plain value: the kernel rejects most flags on SET
                ..*clock
            };
            vm.vm
                .set_clock(&clock)
                .map_err(kvm("KVM_SET_CLOCK", "kvmclock"))?;
        }
        for chip in &state.pics {
            vm.vm
                .set_irqchip(chip)
                .map_err(kvm("KVM_SET_IRQCHIP", "PIC or IOAPIC"))?;
        }

        // The vCPU, in the order Firecracker uses: CPUID first (it decides which MSRs and
        // features exist), events last.
        let vcpu = &vm.vcpu;
        if !state.cpuid.is_empty() {
            let cpuid = CpuId::from_entries(&state.cpuid)
                .map_err(|e| err("CPUID entries", format!("{e:?}")))?;
            vcpu.set_cpuid2(&cpuid)
                .map_err(kvm("KVM_SET_CPUID2", "saved CPUID"))?;
        }
        if let Some(mp) = state.mp_state {
            vcpu.set_mp_state(mp)
                .map_err(kvm("KVM_SET_MP_STATE", "vCPU"))?;
        }
        if let Some(regs) = &state.regs {
            vcpu.set_regs(regs).map_err(kvm("KVM_SET_REGS", "vCPU"))?;
        }
        if let Some(sregs) = &state.sregs {
            vcpu.set_sregs(sregs)
                .map_err(kvm("KVM_SET_SREGS", "vCPU"))?;
        }
        if let Some(fpu) = &state.fpu {
            vcpu.set_fpu(fpu).map_err(kvm("KVM_SET_FPU", "vCPU"))?;
        }
        if let Some(xsave) = &state.xsave {
            if FpuFormat::for_host(&vm.kvm) != FpuFormat::Xsave {
                return Err(err(
                    "the XSAVE record",
                    "saved with KVM_GET_XSAVE, but this host's KVM has no KVM_CAP_XSAVE (or a larger XSAVE area): restore it on the host it was taken on".into(),
                ));
            }
            // SAFETY: `for_host` checked that KVM's XSAVE area is at most the 4096 bytes of
            // `kvm_xsave`, so KVM_SET_XSAVE reads nothing past `xsave`.
            unsafe { vcpu.set_xsave(xsave) }.map_err(kvm(
                "KVM_SET_XSAVE",
                "an XSAVE area with components this host's KVM does not support?",
            ))?;
        }
        if let Some(xcrs) = &state.xcrs {
            if !vm.kvm.check_extension(Cap::Xcrs) {
                return Err(err(
                    "the XCRS record",
                    "this host's KVM has no KVM_CAP_XCRS: restore it on the host it was taken on"
                        .into(),
                ));
            }
            vcpu.set_xcrs(xcrs).map_err(kvm(
                "KVM_SET_XCRS",
                "an XCR0 the restored CPUID does not allow?",
            ))?;
        }
        if let Some(dregs) = &state.debugregs {
            vcpu.set_debug_regs(dregs)
                .map_err(kvm("KVM_SET_DEBUGREGS", "vCPU"))?;
        }
        if let Some(lapic) = &state.lapic {
            vcpu.set_lapic(lapic)
                .map_err(kvm("KVM_SET_LAPIC", "vCPU"))?;
        }
        if !state.msrs.is_empty() {
            let msrs = Msrs::from_entries(&state.msrs)
                .map_err(|e| err("MSR entries", format!("{e:?}")))?;
            let n = vcpu.set_msrs(&msrs).map_err(kvm("KVM_SET_MSRS", "vCPU"))?;
            if n != state.msrs.len() {
                return Err(err(
                    "restoring MSRs",
                    format!(
                        "KVM took {n} of {}; MSR {:#x} was refused",
                        state.msrs.len(),
                        state.msrs[n].index
                    ),
                ));
            }
        }
        if let Some(events) = &state.events {
            vcpu.set_vcpu_events(events)
                .map_err(kvm("KVM_SET_VCPU_EVENTS", "vCPU"))?;
        }
        if let Some(serial) = &state.serial {
            vm.console.restore(serial, echo)?;
        }
        Ok(vm)
    }
    // ANCHOR_END: restore

    /// How this snapshot holds the FPU and vector registers.
    pub fn fpu_format(&self) -> Result<FpuFormat> {
        let raw = fs::read(self.dir.join(STATE_FILE)).map_err(|e| VmError::Snapshot {
            path: self.dir.clone(),
            what: "reading vm.state".into(),
            reason: e.to_string(),
        })?;
        decode(&raw)
            .map(|state| state.fpu_format)
            .map_err(|reason| VmError::Snapshot {
                path: self.dir.clone(),
                what: "vm.state".into(),
                reason,
            })
    }

    /// Sizes of the two files: (memory as stored on disk, state).
    pub fn sizes(&self) -> (u64, u64) {
        use std::os::unix::fs::MetadataExt;
        let disk = |name: &str| {
            fs::metadata(self.dir.join(name))
                .map(|m| m.blocks() * 512)
                .unwrap_or(0)
        };
        let state = fs::metadata(self.dir.join(STATE_FILE))
            .map(|m| m.len())
            .unwrap_or(0);
        (disk(MEMORY_FILE), state)
    }
}

/// Reads every MSR KVM can save (KVM_GET_MSR_INDEX_LIST), keeping those this vCPU will also
/// take back: KVM lets the VMM *read* some paravirtual MSRs that a guest without the matching
/// CPUID bits may not have *set* (our tiny guest has no CPUID table), so we check by writing
/// the same values back now.
fn save_msrs(vm: &MicroVm) -> Result<Vec<kvm_msr_entry>> {
    let list = vm
        .kvm
        .get_msr_index_list()
        .map_err(kvm("KVM_GET_MSR_INDEX_LIST", "which MSRs exist"))?;
    let entries: Vec<kvm_msr_entry> = list
        .as_slice()
        .iter()
        .map(|&index| kvm_msr_entry {
            index,
            ..Default::default()
        })
        .collect();
    let readable = accepted(&entries, |msrs| vm.vcpu.get_msrs(msrs), "KVM_GET_MSRS")?;
    accepted(&readable, |msrs| vm.vcpu.set_msrs(msrs), "KVM_SET_MSRS")
}

/// Runs a GET/SET_MSRS-style ioctl over `entries`; KVM stops at the first MSR it refuses, so
/// skip that one and go on after it. Returns the entries that went through.
fn accepted(
    entries: &[kvm_msr_entry],
    mut ioctl: impl FnMut(&mut Msrs) -> std::result::Result<usize, vmm_sys_util::errno::Error>,
    name: &'static str,
) -> Result<Vec<kvm_msr_entry>> {
    let mut done = Vec::with_capacity(entries.len());
    let mut rest = entries;
    while !rest.is_empty() {
        let mut msrs =
            Msrs::from_entries(rest).map_err(|e| VmError::Config(format!("MSR list: {e:?}")))?;
        let n = ioctl(&mut msrs).map_err(kvm(name, "saving the vCPU's MSRs"))?;
        done.extend_from_slice(&msrs.as_slice()[..n]);
        rest = &rest[(n + 1).min(rest.len())..];
    }
    Ok(done)
}

/// Writes guest memory, leaving holes for pages never touched and for all-zero pages (most of a
/// small guest's RAM).
fn write_memory(ram: &GuestRam, path: &Path) -> Result<()> {
    let err = |e: std::io::Error| VmError::Snapshot {
        path: path.into(),
        what: "writing guest memory".into(),
        reason: e.to_string(),
    };
    let mut file = File::create(path).map_err(err)?;
    let resident = ram.resident_pages();
    for (i, page) in ram.as_slice()?.chunks(4096).enumerate() {
        if resident[i] && page.iter().any(|&b| b != 0) {
            file.seek(SeekFrom::Start(i as u64 * 4096)).map_err(err)?;
            file.write_all(page).map_err(err)?;
        }
    }
    file.set_len(ram.size()).map_err(err)
}

// ANCHOR: format
// vm.state: "BOXLABVM", version, then records: a 8-byte tag, a u64 length, the bytes.
fn encode(state: &State) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    let mut record = |tag: &[u8; 8], bytes: &[u8]| {
        out.extend_from_slice(tag);
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    let mut machine = Vec::new();
    machine.extend_from_slice(&state.mem_base.to_le_bytes());
    machine.extend_from_slice(&state.mem_size.to_le_bytes());
    machine.push(u8::from(state.irqchip));
    machine.push(match state.fpu_format {
        FpuFormat::Legacy => 0,
        FpuFormat::Xsave => 1,
    });
    record(b"machine\0", &machine);
    record(b"cpuid\0\0\0", slice_bytes(&state.cpuid));
    fn one<T: Pod>(record: &mut impl FnMut(&[u8; 8], &[u8]), tag: &[u8; 8], v: &Option<T>) {
        if let Some(v) = v {
            record(tag, bytes_of(v));
        }
    }
    one(&mut record, b"mpstate\0", &state.mp_state);
    one(&mut record, b"regs\0\0\0\0", &state.regs);
    one(&mut record, b"sregs\0\0\0", &state.sregs);
    one(&mut record, b"fpu\0\0\0\0\0", &state.fpu);
    one(&mut record, b"xsave\0\0\0", &state.xsave);
    one(&mut record, b"xcrs\0\0\0\0", &state.xcrs);
    one(&mut record, b"dregs\0\0\0", &state.debugregs);
    one(&mut record, b"lapic\0\0\0", &state.lapic);
    record(b"msrs\0\0\0\0", slice_bytes(&state.msrs));
    one(&mut record, b"events\0\0", &state.events);
    one(&mut record, b"pit\0\0\0\0\0", &state.pit);
    one(&mut record, b"clock\0\0\0", &state.clock);
    record(b"irqchips", slice_bytes(&state.pics));
    if let Some(s) = &state.serial {
        let mut bytes = vec![
            s.baud_divisor_low,
            s.baud_divisor_high,
            s.interrupt_enable,
            s.interrupt_identification,
            s.line_control,
            s.line_status,
            s.modem_control,
            s.modem_status,
            s.scratch,
        ];
        bytes.extend_from_slice(&s.in_buffer);
        record(b"serial\0\0", &bytes);
    }
    out
}
// ANCHOR_END: format

fn decode(raw: &[u8]) -> std::result::Result<State, String> {
    if raw.len() < 12 || &raw[..8] != MAGIC {
        return Err("not a boxlab VM state file (no BOXLABVM magic)".into());
    }
    let version = u32::from_le_bytes(raw[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(format!(
            "version {version}, this VMM reads version {VERSION}"
        ));
    }
    let mut state = State::default();
    let mut rest = &raw[12..];
    while !rest.is_empty() {
        if rest.len() < 16 {
            return Err("truncated record header".into());
        }
        let tag: [u8; 8] = rest[..8].try_into().expect("8 bytes");
        let len = u64::from_le_bytes(rest[8..16].try_into().expect("8 bytes")) as usize;
        let body = rest
            .get(16..16 + len)
            .ok_or_else(|| format!("record {} is truncated", tag_name(&tag)))?;
        rest = &rest[16 + len..];
        match &tag {
            b"machine\0" if body.len() == 18 => {
                state.mem_base = u64::from_le_bytes(body[..8].try_into().expect("8"));
                state.mem_size = u64::from_le_bytes(body[8..16].try_into().expect("8"));
                state.irqchip = body[16] != 0;
                state.fpu_format = match body[17] {
                    0 => FpuFormat::Legacy,
                    1 => FpuFormat::Xsave,
                    n => return Err(format!("unknown FPU format {n} in the machine record")),
                };
            }
            b"cpuid\0\0\0" => state.cpuid = many(body, &tag)?,
            b"mpstate\0" => state.mp_state = Some(single(body, &tag)?),
            b"regs\0\0\0\0" => state.regs = Some(single(body, &tag)?),
            b"sregs\0\0\0" => state.sregs = Some(single(body, &tag)?),
            b"fpu\0\0\0\0\0" => state.fpu = Some(single(body, &tag)?),
            b"xsave\0\0\0" => state.xsave = Some(single(body, &tag)?),
            b"xcrs\0\0\0\0" => state.xcrs = Some(single(body, &tag)?),
            b"dregs\0\0\0" => state.debugregs = Some(single(body, &tag)?),
            b"lapic\0\0\0" => state.lapic = Some(single(body, &tag)?),
            b"msrs\0\0\0\0" => state.msrs = many(body, &tag)?,
            b"events\0\0" => state.events = Some(single(body, &tag)?),
            b"pit\0\0\0\0\0" => state.pit = Some(single(body, &tag)?),
            b"clock\0\0\0" => state.clock = Some(single(body, &tag)?),
            b"irqchips" => state.pics = many(body, &tag)?,
            b"serial\0\0" if body.len() >= 9 => {
                state.serial = Some(SerialState {
                    baud_divisor_low: body[0],
                    baud_divisor_high: body[1],
                    interrupt_enable: body[2],
                    interrupt_identification: body[3],
                    line_control: body[4],
                    line_status: body[5],
                    modem_control: body[6],
                    modem_status: body[7],
                    scratch: body[8],
                    in_buffer: body[9..].to_vec(),
                })
            }
            _ => return Err(format!("unknown or malformed record {}", tag_name(&tag))),
        }
    }
    if state.mem_size == 0 || state.regs.is_none() || state.sregs.is_none() {
        return Err("incomplete: the machine, regs and sregs records are required".into());
    }
    let fpu_ok = match state.fpu_format {
        FpuFormat::Legacy => state.fpu.is_some() && state.xsave.is_none(),
        FpuFormat::Xsave => state.xsave.is_some() && state.fpu.is_none(),
    };
    if !fpu_ok {
        return Err(format!(
            "the machine record says the FPU was saved as {:?}, but the fpu/xsave records disagree",
            state.fpu_format
        ));
    }
    Ok(state)
}

fn tag_name(tag: &[u8; 8]) -> String {
    String::from_utf8_lossy(tag)
        .trim_end_matches('\0')
        .to_string()
}

fn single<T: Pod>(body: &[u8], tag: &[u8; 8]) -> std::result::Result<T, String> {
    if body.len() != size_of::<T>() {
        return Err(format!(
            "record {} has {} bytes, expected {} (saved by another KVM version?)",
            tag_name(tag),
            body.len(),
            size_of::<T>()
        ));
    }
    // SAFETY: the length matches, and `T: Pod` accepts any bytes; read_unaligned because a
    // record's body has no alignment guarantee.
    Ok(unsafe { std::ptr::read_unaligned(body.as_ptr().cast::<T>()) })
}

fn many<T: Pod>(body: &[u8], tag: &[u8; 8]) -> std::result::Result<Vec<T>, String> {
    if body.len() % size_of::<T>() != 0 {
        return Err(format!("record {} has a partial entry", tag_name(tag)));
    }
    body.chunks(size_of::<T>())
        .map(|chunk| single::<T>(chunk, tag))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_file_round_trips_and_garbage_is_refused() {
        let state = State {
            mem_size: 4096,
            regs: Some(kvm_regs {
                rip: 0x1234,
                ..Default::default()
            }),
            sregs: Some(kvm_sregs::default()),
            fpu: Some(kvm_fpu::default()),
            msrs: vec![kvm_msr_entry {
                index: 0x10,
                data: 7,
                ..Default::default()
            }],
            ..State::default()
        };
        let back = decode(&encode(&state)).unwrap();
        assert_eq!(back.fpu_format, FpuFormat::Legacy);
        assert_eq!(back.regs.unwrap().rip, 0x1234);
        assert_eq!(back.msrs[0].data, 7);
        assert!(decode(b"not a state").err().unwrap().contains("magic"));
        let mut truncated = encode(&state);
        truncated.truncate(truncated.len() - 3);
        assert!(decode(&truncated).is_err());

        let mut xsave = kvm_xsave::default();
        xsave.region[40] = 0xdead_beef; // XMM0's low 4 bytes, at byte 160 of the area
        let with_xsave = State {
            fpu_format: FpuFormat::Xsave,
            fpu: None,
            xsave: Some(xsave),
            xcrs: Some(kvm_xcrs {
                nr_xcrs: 1,
                ..Default::default()
            }),
            ..state
        };
        let back = decode(&encode(&with_xsave)).unwrap();
        assert_eq!(back.fpu_format, FpuFormat::Xsave);
        assert_eq!(back.xsave.unwrap().region[40], 0xdead_beef);
        assert_eq!(back.xcrs.unwrap().nr_xcrs, 1);
        // The machine record and the records present must agree.
        let lying = State {
            fpu_format: FpuFormat::Legacy,
            ..with_xsave
        };
        assert!(decode(&encode(&lying)).err().unwrap().contains("disagree"));
    }
}
