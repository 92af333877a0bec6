//! Serial input: bytes from the host reach the guest's UART, and the guest's answer comes back.

use std::time::Duration;

use ch07_microvm::exits::{ExitEvent, RunOptions, Stop};
use ch07_microvm::guest::echo_reply;
use ch07_microvm::layout::COM1_IRQ;
use ch07_microvm::{GuestConfig, MicroVm};
use kvm_bindings::{kvm_irqchip, KVM_IRQCHIP_PIC_MASTER};
use labkit::require_root;

fn echo_config(irqchip: bool) -> GuestConfig {
    GuestConfig {
        cmdline: "task=echo".into(),
        irqchip,
        ..GuestConfig::default()
    }
}

#[test]
fn input_queued_before_boot_is_echoed_back_transformed() {
    if !require_root("input_queued_before_boot_is_echoed_back_transformed") {
        return;
    }
    let config = GuestConfig {
        console_input: b"hello, vm\rsecond line\n\x04never read".to_vec(),
        ..echo_config(false)
    };
    let mut vm = MicroVm::tiny_guest(&config).unwrap();
    let report = vm.run(&RunOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(report.stop, Stop::PowerOff);
    assert_eq!(report.output_text(), config.expected_output());
    assert!(report
        .output_text()
        .contains("echo: type, Ctrl-D to end\nHELLO, VM\nSECOND LINE\n\necho: 22 bytes\n"));
    // What followed Ctrl-D is still in the UART: the guest stopped reading.
    assert_eq!(vm.unread_input(), b"never read".len());
}

/// More input than the UART's 64-byte FIFO holds: the rest waits in the VMM's queue.
#[test]
fn input_larger_than_the_fifo_arrives_whole() {
    if !require_root("input_larger_than_the_fifo_arrives_whole") {
        return;
    }
    let mut typed: Vec<u8> = (0..300).map(|i| b'a' + (i % 26) as u8).collect();
    typed.push(0x04);
    let config = GuestConfig {
        console_input: typed.clone(),
        ..echo_config(false)
    };
    let report = MicroVm::tiny_guest(&config)
        .unwrap()
        .run(&RunOptions::default(), &mut |_| {})
        .unwrap();
    assert_eq!(report.output_text(), config.expected_output());
    assert!(report.output_text().contains("echo: 300 bytes"));
}

/// The way a console works: the guest is already running (and waiting) when the bytes come,
/// from another thread, through the VM's input handle; with the in-kernel irqchip, as on the
/// Linux path, so the UART's interrupt goes through the irqfd.
#[test]
fn input_sent_from_another_thread_while_the_guest_runs() {
    if !require_root("input_sent_from_another_thread_while_the_guest_runs") {
        return;
    }
    for irqchip in [false, true] {
        let config = echo_config(irqchip);
        let mut vm = MicroVm::tiny_guest(&config).unwrap();
        let input = vm.input();
        let typist = std::thread::spawn(move || {
            for chunk in [&b"ls -l"[..], b"\r", b"exit", b"\x04"] {
                input.send(chunk);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let report = vm.run(&RunOptions::default(), &mut |_| {}).unwrap();
        typist.join().unwrap();
        assert_eq!(report.stop, Stop::PowerOff);
        let expected = GuestConfig {
            console_input: b"ls -l\rexit\x04".to_vec(),
            ..config
        }
        .expected_output();
        assert_eq!(report.output_text(), expected, "irqchip: {irqchip}");
        assert!(expected.contains(&echo_reply(b"ls -l\rexit")));
    }
}

/// A guest spinning without a single exit never gives the VMM a turn: only the kick (a signal
/// that sets `immediate_exit`) gets the vCPU out of KVM_RUN. Without it this run would end at
/// its 60 s limit with a Timeout error.
#[test]
fn quit_from_another_thread_stops_a_guest_that_never_exits() {
    if !require_root("quit_from_another_thread_stops_a_guest_that_never_exits") {
        return;
    }
    let config = GuestConfig {
        cmdline: "fault=spin".into(),
        irqchip: true,
        ..GuestConfig::default()
    };
    let mut vm = MicroVm::tiny_guest(&config).unwrap();
    let input = vm.input();
    let quitter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        input.quit();
    });
    let opts = RunOptions {
        time_limit: Some(Duration::from_secs(60)),
        ..RunOptions::default()
    };
    let report = vm.run(&opts, &mut |_| {}).unwrap();
    quitter.join().unwrap();
    assert_eq!(report.stop, Stop::Quit);
    assert!(report.output_text().ends_with("fault: spinning forever\n"));
}

/// The UART's interrupt line, end to end: the guest enables "received data" in the IER, the VMM
/// puts a byte in the FIFO, vm-superio writes the irqfd, and KVM raises IRQ 4 on the in-kernel
/// PIC: its interrupt request register (IRR) shows bit 4. (The guest runs with interrupts off,
/// so the request stays pending for us to see.) Without the input, no request.
#[test]
fn input_raises_irq4_on_the_in_kernel_pic_through_the_irqfd() {
    if !require_root("input_raises_irq4_on_the_in_kernel_pic_through_the_irqfd") {
        return;
    }
    let pic_irr = |vm: &MicroVm| {
        let mut chip = kvm_irqchip {
            chip_id: KVM_IRQCHIP_PIC_MASTER,
            ..Default::default()
        };
        vm.vm_fd().get_irqchip(&mut chip).unwrap();
        // SAFETY: for chip_id PIC_MASTER, KVM fills the `pic` member of the union.
        unsafe { chip.chip.pic }.irr
    };
    let mut vm = MicroVm::tiny_guest(&echo_config(true)).unwrap();
    let input = vm.input();
    let quitter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        input.quit();
    });
    vm.run(&RunOptions::default(), &mut |_| {}).unwrap();
    quitter.join().unwrap();
    assert_eq!(pic_irr(&vm) & (1 << COM1_IRQ), 0, "IRQ 4 before any input");

    // Sent when the guest first polls the line status register (so after it wrote the IER), like
    // a key pressed while it waits. The observer runs on the vCPU thread: a kick to itself.
    let mut vm = MicroVm::tiny_guest(&echo_config(true)).unwrap();
    let input = vm.input();
    let mut sent = false;
    let report = vm
        .run(&RunOptions::default(), &mut |event| {
            if !sent && matches!(event, ExitEvent::SerialIn { offset: 5, .. }) {
                input.send(b"x\x04");
                sent = true;
            }
        })
        .unwrap();
    assert!(report.output_text().contains("\nX\necho: 1 bytes\n"));
    // KVM injects an irqfd's interrupt into the PIC from a kernel work queue, not at the
    // eventfd write: under load the guest can power off first. Give the worker a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while pic_irr(&vm) & (1 << COM1_IRQ) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_ne!(pic_irr(&vm) & (1 << COM1_IRQ), 0, "IRQ 4 after input");
}
