//! Snapshot -> restore into a fresh VM -> the guest finishes with the same output.

use std::fs;
use std::path::PathBuf;

use ch07_microvm::exits::{RunOptions, Stop};
use ch07_microvm::{GuestConfig, MicroVm, Snapshot, VmError};
use labkit::require_root;

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn dir(name: &str) -> Dir {
    Dir(std::env::temp_dir().join(format!("boxlab-ch07-{name}-{}", std::process::id())))
}

fn round_trip(config: &GuestConfig, dir: &Dir) {
    let mut vm = MicroVm::tiny_guest(config).unwrap();
    let opts = RunOptions {
        stop_at_ready: true,
        ..RunOptions::default()
    };
    let before = vm.run(&opts, &mut |_| {}).unwrap();
    assert_eq!(before.stop, Stop::Ready);
    let snap = Snapshot::save(&mut vm, &dir.0).unwrap();
    drop(vm);

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
    let state = fs::read(d.0.join("vm.state")).unwrap();
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
    let mut vm = MicroVm::tiny_guest(&config).unwrap();
    let opts = RunOptions {
        stop_at_ready: true,
        ..RunOptions::default()
    };
    vm.run(&opts, &mut |_| {}).unwrap();
    let snap = Snapshot::save(&mut vm, &d.0).unwrap();
    let state = d.0.join("vm.state");
    let bytes = fs::read(&state).unwrap();
    fs::write(&state, &bytes[..bytes.len() / 2]).unwrap();
    let err = snap.restore(false).err().unwrap();
    assert!(matches!(err, VmError::Snapshot { .. }), "{err}");
    fs::write(d.0.join("memory.bin"), b"short").unwrap();
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
    let mut vm = MicroVm::tiny_guest(&config).unwrap();
    let opts = RunOptions {
        stop_at_ready: true,
        ..RunOptions::default()
    };
    let before = vm.run(&opts, &mut |_| {}).unwrap();
    assert_eq!(vm.unread_input(), config.console_input.len());
    let snap = Snapshot::save(&mut vm, &d.0).unwrap();
    drop(vm);
    let after = snap
        .restore(false)
        .unwrap()
        .run(&RunOptions::default(), &mut |_| {})
        .unwrap();
    assert_eq!(
        before.output_text() + &after.output_text(),
        config.expected_output()
    );
    assert!(after.output_text().contains("TYPED BEFORE THE SNAPSHOT"));
}
