//! Guests that misbehave end with a clear error, and the VMM carries on cleanly.

use std::time::Duration;

use ch07_microvm::exits::RunOptions;
use ch07_microvm::layout::{UNBACKED_PROBE_ADDR, UNMAPPED_VIRT_ADDR};
use ch07_microvm::{GuestConfig, MicroVm, VmError};
use labkit::require_root;

fn run(config: &GuestConfig, limit: Duration) -> Result<String, VmError> {
    let opts = RunOptions {
        time_limit: Some(limit),
        ..RunOptions::default()
    };
    MicroVm::tiny_guest(config)?
        .run(&opts, &mut |_| {})
        .map(|r| r.output_text())
}

fn faulty(cmdline: &str) -> GuestConfig {
    GuestConfig {
        cmdline: cmdline.into(),
        ..GuestConfig::default()
    }
}

#[test]
fn a_triple_fault_is_reported_with_the_faulting_address() {
    if !require_root("a_triple_fault_is_reported_with_the_faulting_address") {
        return;
    }
    let err = run(&faulty("fault=triple"), Duration::from_secs(10)).unwrap_err();
    assert!(matches!(err, VmError::TripleFault { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("triple-faulted (KVM_EXIT_SHUTDOWN)"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{UNMAPPED_VIRT_ADDR:#x} (CR2)")),
        "{text}"
    );
    assert!(
        text.contains("fault: touching an unmapped address"),
        "{text}"
    );
}

#[test]
fn removing_a_page_table_entry_triple_faults_at_that_page() {
    if !require_root("removing_a_page_table_entry_triple_faults_at_that_page") {
        return;
    }
    let config = GuestConfig::default();
    let input = config.input_address().unwrap();
    let broken = GuestConfig {
        unmap: Some(input),
        ..config
    };
    let err = run(&broken, Duration::from_secs(10)).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, VmError::TripleFault { .. }), "{text}");
    assert!(text.contains(&format!("{input:#x} (CR2)")), "{text}");
}

#[test]
fn reading_unbacked_memory_is_an_mmio_exit_nobody_answers() {
    if !require_root("reading_unbacked_memory_is_an_mmio_exit_nobody_answers") {
        return;
    }
    let err = run(&faulty("fault=mmio"), Duration::from_secs(10)).unwrap_err();
    match &err {
        VmError::Unbacked {
            access, addr, size, ..
        } => {
            assert_eq!((*access, *addr, *size), ("read", UNBACKED_PROBE_ADDR, 4));
        }
        other => panic!("expected an unbacked access, got {other}"),
    }
    assert!(err.to_string().contains("KVM_EXIT_MMIO"));
}

#[test]
fn a_guest_that_loops_forever_is_stopped_at_the_time_limit() {
    if !require_root("a_guest_that_loops_forever_is_stopped_at_the_time_limit") {
        return;
    }
    let err = run(&faulty("fault=spin"), Duration::from_millis(300)).unwrap_err();
    assert!(matches!(err, VmError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("fault: spinning forever"), "{err}");
    // The VMM is fine afterwards: the next VM on this thread runs to completion.
    let config = GuestConfig::default();
    assert_eq!(
        run(&config, Duration::from_secs(10)).unwrap(),
        config.expected_output()
    );
}

#[test]
fn a_command_line_the_kernel_could_not_take_is_refused() {
    if !require_root("a_command_line_the_kernel_could_not_take_is_refused") {
        return;
    }
    let err = run(&faulty("two\nlines"), Duration::from_secs(10)).unwrap_err();
    assert!(matches!(err, VmError::Cmdline { .. }), "{err}");
}
