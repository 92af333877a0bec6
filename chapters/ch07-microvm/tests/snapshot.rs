//! Snapshot -> restore into a fresh VM -> the guest finishes with the same output.

use std::fs;

use ch07_microvm::exits::{RunOptions, Stop};
use ch07_microvm::guest::TINY_GUEST_ELF;
use ch07_microvm::snapshot::FpuFormat;
use ch07_microvm::{GuestConfig, LinuxConfig, MicroVm, Snapshot, Taken, VmError};
use kvm_ioctls::{Cap, Kvm};
use labkit::{require_root, ScratchDir};

fn dir(name: &str) -> ScratchDir {
    ScratchDir::new(&format!("ch07-{name}")).unwrap()
}

fn round_trip(config: &GuestConfig, dir: &ScratchDir) {
    let Taken {
        snapshot: snap,
        first: before,
        ..
    } = Snapshot::take(config, dir.path()).unwrap();
    assert_eq!(before.stop, Stop::Ready);

    let mut restored = snap.restore(false).unwrap();
    let after = restored.run(&RunOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(after.stop, Stop::PowerOff);
    let mut whole = before.output_text();
    whole.push_str(&after.output_text());
    assert_eq!(whole, config.expected_output());
    assert!(
        !after.output_text().contains("up in 64-bit mode"),
        "the restored guest did not start over"
    );

    // A snapshot can be restored again: the file is mapped copy-on-write, never written.
    let again = snap
        .restore(false)
        .unwrap()
        .run(&RunOptions::default(), &mut |_| {})
        .unwrap();
    assert_eq!(again.output, after.output);
}

#[test]
fn a_restored_guest_finishes_with_the_same_output() {
    if !require_root("a_restored_guest_finishes_with_the_same_output") {
        return;
    }
    let config = GuestConfig {
        cmdline: "task=crc32 ready".into(),
        ..GuestConfig::default()
    };
    round_trip(&config, &dir("snap"));
}

#[test]
fn irqchip_and_pit_state_travel_with_the_snapshot() {
    if !require_root("irqchip_and_pit_state_travel_with_the_snapshot") {
        return;
    }
    let config = GuestConfig {
        cmdline: "task=upper ready".into(),
        input: b"warm start".to_vec(),
        irqchip: true,
        ..GuestConfig::default()
    };
    let d = dir("snap-irqchip");
    round_trip(&config, &d);
    let state = fs::read(d.join("vm.state")).unwrap();
    for tag in [
        &b"lapic\0\0\0"[..],
        b"pit\0\0\0\0\0",
        b"irqchips",
        b"msrs\0\0\0\0",
    ] {
        assert!(state.windows(8).any(|w| w == tag), "record {tag:?} missing");
    }
}

#[test]
fn a_damaged_snapshot_is_refused() {
    if !require_root("a_damaged_snapshot_is_refused") {
        return;
    }
    let config = GuestConfig {
        cmdline: "ready".into(),
        ..GuestConfig::default()
    };
    let d = dir("snap-damaged");
    let snap = Snapshot::take(&config, d.path()).unwrap().snapshot;
    let state = d.join("vm.state");
    let bytes = fs::read(&state).unwrap();
    fs::write(&state, &bytes[..bytes.len() / 2]).unwrap();
    let err = snap.restore(false).err().unwrap();
    assert!(matches!(err, VmError::Snapshot { .. }), "{err}");
    fs::write(d.join("memory.bin"), b"short").unwrap();
    fs::write(&state, &bytes).unwrap();
    let err = snap.restore(false).err().unwrap();
    assert!(err.to_string().contains("memory.bin"), "{err}");
}

/// Input the guest has not read yet sits in the UART's receive FIFO, which is part of the
/// UART's state: it travels in the snapshot, and the restored guest reads it.
#[test]
fn unread_serial_input_travels_with_the_snapshot() {
    if !require_root("unread_serial_input_travels_with_the_snapshot") {
        return;
    }
    let config = GuestConfig {
        cmdline: "task=echo ready".into(),
        console_input: b"typed before the snapshot\x04".to_vec(),
        irqchip: true,
        ..GuestConfig::default()
    };
    let d = dir("snap-input");
    let Taken {
        snapshot: snap,
        first: before,
        ..
    } = Snapshot::take(&config, d.path()).unwrap();
    let mut restored = snap.restore(false).unwrap();
    // Nothing was read before the snapshot: all of it is in the restored UART's FIFO.
    assert_eq!(restored.unread_input(), config.console_input.len());
    let after = restored.run(&RunOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(
        before.output_text() + &after.output_text(),
        config.expected_output()
    );
    assert!(after.output_text().contains("TYPED BEFORE THE SNAPSHOT"));
}

/// The vector registers and XCR0 travel with the snapshot: XSAVE and XCRS where this host's
/// KVM has them (KVM_CAP_XSAVE, KVM_CAP_XCRS), the legacy FPU record elsewhere. The values are
/// put in with KVM_SET_XSAVE / KVM_SET_FPU / KVM_SET_XCRS while the guest waits at its snapshot
/// point (no SSE instruction has to run in the emulator), and read back from the restored VM.
/// The Linux boot path, with our guest's ELF as the kernel, gives the vCPU a CPUID table, which
/// is what lets XCR0 say "SSE on".
#[test]
fn xmm_registers_and_xcr0_travel_with_the_snapshot() {
    if !require_root("xmm_registers_and_xcr0_travel_with_the_snapshot") {
        return;
    }
    let d = dir("snap-xsave");
    let elf = d.join("guest.elf");
    fs::write(&elf, TINY_GUEST_ELF).unwrap();
    let config = LinuxConfig {
        cmdline: "task=crc32 ready".into(),
        mem_size: 16 << 20,
        force: true,
        ..LinuxConfig::new(&elf)
    };
    let mut vm = MicroVm::linux(&config).unwrap();
    let opts = RunOptions {
        stop_at_ready: true,
        ..RunOptions::default()
    };
    let before = vm.run(&opts, &mut |_| {}).unwrap();
    assert_eq!(before.stop, Stop::Ready);

    let kvm = Kvm::new().unwrap();
    let format = FpuFormat::for_host(&kvm);
    let xmm0: [u8; 16] = *b"boxlab xmm0 \x01\x02\x03\x04";
    let xmm15: [u8; 16] = *b"\xffxmm15 survives!";
    let vcpu = vm.vcpu();
    match format {
        FpuFormat::Xsave => {
            let mut xsave = vcpu.get_xsave().unwrap();
            put_xmm(&mut xsave.region, 0, &xmm0);
            put_xmm(&mut xsave.region, 15, &xmm15);
            xsave.region[XSTATE_BV] |= XFEATURE_SSE as u32; // "the SSE component is in use"
                                                            // SAFETY: `FpuFormat::for_host` said KVM's XSAVE area fits in `kvm_xsave`.
            unsafe { vcpu.set_xsave(&xsave) }.unwrap();
        }
        FpuFormat::Legacy => {
            let mut fpu = vcpu.get_fpu().unwrap();
            fpu.xmm[0] = xmm0;
            fpu.xmm[15] = xmm15;
            vcpu.set_fpu(&fpu).unwrap();
        }
    }
    let xcrs_supported = kvm.check_extension(Cap::Xcrs);
    if xcrs_supported {
        let mut xcrs = vcpu.get_xcrs().unwrap();
        assert_eq!((xcrs.nr_xcrs, xcrs.xcrs[0].xcr), (1, 0), "XCR0");
        xcrs.xcrs[0].value = XFEATURE_X87 | XFEATURE_SSE;
        vcpu.set_xcrs(&xcrs).unwrap();
    }

    let snap = Snapshot::save(&mut vm, &d.join("snapshot")).unwrap();
    drop(vm);
    assert_eq!(snap.fpu_format().unwrap(), format);
    let state = fs::read(d.join("snapshot/vm.state")).unwrap();
    let has = |tag: &[u8]| state.windows(8).any(|w| w == tag);
    assert_eq!(has(b"xsave\0\0\0"), format == FpuFormat::Xsave);
    assert_eq!(has(b"fpu\0\0\0\0\0"), format == FpuFormat::Legacy);
    assert_eq!(has(b"xcrs\0\0\0\0"), xcrs_supported);

    let mut restored = snap.restore(false).unwrap();
    let vcpu = restored.vcpu();
    let fpu = vcpu.get_fpu().unwrap(); // KVM_GET_FPU reads the same registers either way
    assert_eq!((fpu.xmm[0], fpu.xmm[15]), (xmm0, xmm15), "{format:?}");
    if format == FpuFormat::Xsave {
        let xsave = vcpu.get_xsave().unwrap();
        assert_eq!(get_xmm(&xsave.region, 0), xmm0);
        assert_eq!(get_xmm(&xsave.region, 15), xmm15);
    }
    if xcrs_supported {
        assert_eq!(
            vcpu.get_xcrs().unwrap().xcrs[0].value,
            XFEATURE_X87 | XFEATURE_SSE
        );
    }
    eprintln!("FPU saved as {format:?}, XCRS saved: {xcrs_supported}");

    // And the guest finishes as if nothing happened.
    let after = restored.run(&RunOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(after.stop, Stop::PowerOff);
    assert!(after
        .output_text()
        .ends_with("bye: powering off via the i8042\n"));
}

/// XCR0 bits (Intel SDM vol. 1, 13.3): x87 (always on) and SSE.
const XFEATURE_X87: u64 = 1 << 0;
const XFEATURE_SSE: u64 = 1 << 1;
/// In the XSAVE area (u32 words): XMM0 at byte 160 (the FXSAVE layout), XSTATE_BV at byte 512.
const XMM0_WORD: usize = 160 / 4;
const XSTATE_BV: usize = 512 / 4;

fn put_xmm(region: &mut [u32; 1024], n: usize, bytes: &[u8; 16]) {
    for (i, word) in bytes.chunks(4).enumerate() {
        region[XMM0_WORD + n * 4 + i] = u32::from_le_bytes(word.try_into().unwrap());
    }
}

fn get_xmm(region: &[u32; 1024], n: usize) -> [u8; 16] {
    let mut out = [0u8; 16];
    for i in 0..4 {
        out[i * 4..i * 4 + 4].copy_from_slice(&region[XMM0_WORD + n * 4 + i].to_le_bytes());
    }
    out
}
