//! Serial input: bytes from the host reach the guest's UART, and the guest's answer comes back.

use std::time::Duration;

use ch07_microvm::exits::{RunOptions, Stop};
use ch07_microvm::guest::echo_reply;
use ch07_microvm::{GuestConfig, MicroVm};
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
    for irqchip in [false, true] {
        if !require_root("input_sent_from_another_thread_while_the_guest_runs") {
            return;
        }
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
