//! Each stage's guest runs on the real /dev/kvm and prints exactly what it should.

use ch07_microvm::exits::{ExitEvent, RunOptions, Stop};
use ch07_microvm::guest::{crc32, LONG_MODE_OUTPUT, REAL_MODE_OUTPUT, TINY_GUEST_ELF};
use ch07_microvm::{GuestConfig, LinuxConfig, MicroVm};
use labkit::require_root;

fn halt() -> RunOptions {
    RunOptions {
        halt_ends_run: true,
        ..RunOptions::default()
    }
}

#[test]
fn stage1_real_mode_prints_the_sum_and_halts() {
    if !require_root("stage1_real_mode_prints_the_sum_and_halts") {
        return;
    }
    let mut events = Vec::new();
    let report = MicroVm::real_mode()
        .unwrap()
        .run(&halt(), &mut |e| events.push(e.clone()))
        .unwrap();
    assert_eq!(report.output_text(), REAL_MODE_OUTPUT);
    assert_eq!(report.stop, Stop::Halted);
    assert_eq!(
        events.first(),
        Some(&ExitEvent::SerialOut {
            offset: 0,
            value: b'H'
        })
    );
    assert_eq!(
        events[0].to_string(),
        "KVM_EXIT_IO: guest wrote 'H' to port 0x3f8 (COM1 data)"
    );
    assert_eq!(events.last(), Some(&ExitEvent::Halt));
}

#[test]
fn stage2_long_mode_is_entered_by_the_vmm() {
    if !require_root("stage2_long_mode_is_entered_by_the_vmm") {
        return;
    }
    let mut vm = MicroVm::long_mode().unwrap();
    let report = vm.run(&halt(), &mut |_| {}).unwrap();
    assert_eq!(report.output_text(), LONG_MODE_OUTPUT);
    let sregs = vm.vcpu().get_sregs().unwrap();
    assert_ne!(sregs.efer & (1 << 10), 0, "EFER.LMA: long mode active");
    assert_eq!(sregs.cs.l, 1, "a 64-bit code segment");
}

#[test]
fn stage3_the_tiny_guest_checksums_its_input() {
    if !require_root("stage3_the_tiny_guest_checksums_its_input") {
        return;
    }
    let config = GuestConfig::default();
    let report = MicroVm::tiny_guest(&config)
        .unwrap()
        .run(&RunOptions::default(), &mut |_| {})
        .unwrap();
    assert_eq!(report.stop, Stop::PowerOff);
    assert_eq!(report.output_text(), config.expected_output());
    assert!(report
        .output_text()
        .contains(&format!("crc32: {:#010x}", crc32(&config.input))));
    assert!(report.first_output.unwrap() <= report.elapsed);
}

#[test]
fn stage3_another_function_and_input() {
    if !require_root("stage3_another_function_and_input") {
        return;
    }
    let config = GuestConfig {
        cmdline: "task=upper".into(),
        input: b"a function call in a VM".to_vec(),
        mem_size: 4 << 20,
        ..GuestConfig::default()
    };
    let report = MicroVm::tiny_guest(&config)
        .unwrap()
        .run(&RunOptions::default(), &mut |_| {})
        .unwrap();
    assert_eq!(report.output_text(), config.expected_output());
    assert!(report
        .output_text()
        .contains("upper: A FUNCTION CALL IN A VM\n"));
    assert!(report.output_text().contains("ram: 3711 KiB"));
}

#[test]
fn stage3_with_an_in_kernel_irqchip() {
    if !require_root("stage3_with_an_in_kernel_irqchip") {
        return;
    }
    let config = GuestConfig {
        irqchip: true,
        ..GuestConfig::default()
    };
    let report = MicroVm::tiny_guest(&config)
        .unwrap()
        .run(&RunOptions::default(), &mut |_| {})
        .unwrap();
    assert_eq!(report.output_text(), config.expected_output());
}

#[test]
fn stage4_boot_path_runs_the_tiny_guest_elf_as_a_kernel() {
    if !require_root("stage4_boot_path_runs_the_tiny_guest_elf_as_a_kernel") {
        return;
    }
    // linux-loader, the zero page with a bzImage-style header, e820, the initrd at the top of
    // RAM, PIC/IOAPIC/PIT, the UART's irqfd, CPUID, MSRs, LAPIC: all of stage 4 but the kernel.
    let dir = labkit::ScratchDir::new("ch07-stage4").unwrap();
    let (elf, input) = (dir.join("guest.elf"), dir.join("input"));
    std::fs::write(&elf, TINY_GUEST_ELF).unwrap();
    std::fs::write(&input, b"initrd bytes").unwrap();
    let config = LinuxConfig {
        initrd: Some(input),
        cmdline: "task=crc32".into(),
        mem_size: 16 << 20,
        force: true,
        ..LinuxConfig::new(&elf)
    };
    let result = MicroVm::linux(&config).and_then(|mut vm| {
        assert!(vm.has_irqchip());
        vm.run(&RunOptions::default(), &mut |_| {})
    });
    let report = result.unwrap();
    let expected = GuestConfig {
        cmdline: "task=crc32".into(),
        input: b"initrd bytes".to_vec(),
        mem_size: 16 << 20,
        ..GuestConfig::default()
    }
    .expected_output();
    assert_eq!(report.output_text(), expected);
    assert_eq!(report.stop, Stop::PowerOff);
}
