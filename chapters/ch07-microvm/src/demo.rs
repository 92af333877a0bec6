//! The chapter's demo: each stage in turn, the exits in words, the figures.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use ch07_microvm::exits::{ExitEvent, RunOptions, RunReport};
use ch07_microvm::guest::{LONG_MODE_OUTPUT, REAL_MODE_OUTPUT, TINY_GUEST_ELF};
use ch07_microvm::layout::*;
use ch07_microvm::linux::host_summary;
use ch07_microvm::overhead;
use ch07_microvm::snapshot::FpuFormat;
use ch07_microvm::{GuestConfig, LinuxConfig, MicroVm, Snapshot};

pub fn run() -> Result<()> {
    println!("boxlab chapter 7: a micro-VM on KVM\n");
    if !nix::unistd::geteuid().is_root() {
        bail!("the demo opens /dev/kvm, which on this host needs root: run it with sudo");
    }
    let (host, line) = host_summary();
    println!("The host: {line}.\n");

    println!("Stage 1. Hello, KVM: one page of guest memory, 16-bit real mode");
    println!("  KVM_CREATE_VM; one 4 KiB page at {REAL_MODE_CODE:#x} (KVM_SET_USER_MEMORY_REGION); KVM_CREATE_VCPU");
    println!("  registers: CS=0, RIP={REAL_MODE_CODE:#x}, AX=2, BX=3; KVM_RUN:");
    let mut vm = MicroVm::real_mode()?;
    let report = vm.run(&halt(), &mut |e| println!("    {e}"))?;
    check("stage 1", &report, REAL_MODE_OUTPUT)?;
    println!(
        "  the guest printed {:?}: its own sum of the registers we gave it\n",
        report.output_text()
    );

    println!(
        "Stage 2. Long mode: the VMM builds a GDT and page tables and enters 64-bit mode itself"
    );
    println!("  GDT at {BOOT_GDT_START:#x}, PML4 at {PML4_START:#x} (identity map of 1 GiB), CR0.PG|PE, CR4.PAE, EFER.LME|LMA; RIP={HIMEM_START:#x}");
    let mut vm = MicroVm::long_mode()?;
    let mut shown = 0;
    let report = vm.run(&halt(), &mut |e| {
        shown += 1;
        if shown <= 3 {
            println!("    {e}");
        }
    })?;
    println!(
        "    … {} more exits like these, then KVM_EXIT_HLT",
        report.exits - 4
    );
    check("stage 2", &report, LONG_MODE_OUTPUT)?;
    let sregs = vm.vcpu().get_sregs().context("KVM_GET_SREGS")?;
    println!(
        "  output {:?}; EFER={:#x} (LMA set: long mode active), CS.L={}",
        report.output_text(),
        sregs.efer,
        sregs.cs.l
    );
    println!();

    println!("Stage 3. Our tiny guest, booted like Linux: program at {HIMEM_START:#x}, zero page at {ZERO_PAGE_START:#x},");
    println!("  command line at {CMDLINE_START:#x}, its input as the initrd at the top of RAM; every exit as it happens:");
    let config = GuestConfig::default();
    let mut vm = MicroVm::tiny_guest(&config)?;
    let report = vm.run(&RunOptions::default(), &mut |e| println!("    {e}"))?;
    check("stage 3", &report, &config.expected_output())?;
    println!("  the guest's output:");
    for line in report.output_text().lines() {
        println!("  | {line}");
    }
    println!(
        "  crc32 computed here, on the host, for comparison: {:#010x}",
        ch07_microvm::guest::crc32(&config.input)
    );
    let memory = overhead::measure(&vm);
    drop(vm);
    let (first, total) = median_runs(&config, 11)?;
    println!(
        "  timing (median of 11 runs, no printing): VM creation -> first output {first:.2?}, -> power-off {total:.2?}"
    );
    println!(
        "  memory: VMM RSS {} KiB, of which guest RAM resident {} KiB (of {} KiB): VMM overhead {} KiB",
        memory.rss >> 10,
        memory.guest_resident >> 10,
        memory.guest_size >> 10,
        memory.vmm() >> 10
    );
    println!(
        "          (anonymous memory alone: {} KiB; the rest, {} KiB, is this binary and libc, shared by all VMM processes)\n",
        memory.vmm_anon() >> 10,
        memory.rss_file >> 10
    );

    println!("Stage 4. Linux: linux-loader, zero page, e820, initramfs, PIC/IOAPIC/PIT, UART IRQ 4, CPUID, MSRs");
    if host.can_boot_linux() {
        println!("  this host can boot Linux: scripts/fetch-kernel, then");
    } else {
        println!("  a stock kernel cannot run on this host; on a machine with vmx/svm: scripts/fetch-kernel, then");
    }
    println!("  sudo cargo run -p ch07-microvm -- --kernel target/boxlab-kernel/vmlinuz --initrd target/boxlab-kernel/initramfs.cpio");
    println!("  The same boot path, with our guest's ELF file as the \"kernel\" (it follows the same protocol):");
    let elf = std::env::temp_dir().join(format!("boxlab-ch07-guest-{}.elf", std::process::id()));
    std::fs::write(&elf, TINY_GUEST_ELF).context("writing the guest's ELF")?;
    let input = std::env::temp_dir().join(format!("boxlab-ch07-input-{}", std::process::id()));
    std::fs::write(&input, &config.input).context("writing the input")?;
    let linux = LinuxConfig {
        initrd: Some(input.clone()),
        cmdline: "task=crc32".into(),
        mem_size: 16 << 20,
        force: true,
        ..LinuxConfig::new(&elf)
    };
    let result =
        MicroVm::linux(&linux).and_then(|mut vm| vm.run(&RunOptions::default(), &mut |_| {}));
    let _ = std::fs::remove_file(&elf);
    let _ = std::fs::remove_file(&input);
    let report = result?;
    for line in report.output_text().lines() {
        println!("  | {line}");
    }
    println!(
        "  {:?} {:.2?} after creation (the in-kernel interrupt controllers and PIT cost most of it here)\n",
        report.stop, report.elapsed
    );

    println!("Stage 5. Snapshot/restore: run to the guest's \"ready\" port, save, throw the VM away, restore");
    let config = GuestConfig::default().with_ready();
    let dir = std::env::temp_dir().join(format!("boxlab-ch07-snapshot-{}", std::process::id()));
    let result = snapshot_demo(&config, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result?;

    println!("\nDone. Try one stage with every exit shown, or break it:");
    println!("  sudo cargo run -p ch07-microvm -- --stage guest --trace");
    let input_page = GuestConfig::default()
        .input_address()
        .unwrap_or(HIMEM_START);
    println!("  sudo cargo run -p ch07-microvm -- --stage guest --unmap {input_page:#x}");
    println!("  sudo cargo run -p ch07-microvm -- --stage guest --cmdline task=echo");
    Ok(())
}

fn snapshot_demo(config: &GuestConfig, dir: &std::path::Path) -> Result<()> {
    let taken = Snapshot::take_with(config, dir, &RunOptions::default(), &mut |e| {
        if matches!(e, ExitEvent::Ready) {
            println!("    {e}");
        }
    })?;
    let (snap, before, saved_in) = (taken.snapshot, taken.first, taken.save_time);
    let (mem_disk, state) = snap.sizes();
    println!(
        "  saved in {saved_in:.2?}: {}/memory.bin ({} KiB of RAM, {} KiB on disk: zero pages are holes), vm.state ({state} bytes:",
        dir.display(),
        config.mem_size >> 10,
        mem_disk >> 10
    );
    let fpu = match snap.fpu_format()? {
        FpuFormat::Xsave => "the XSAVE area and XCR0",
        FpuFormat::Legacy => "the FPU",
    };
    println!("  regs, sregs, {fpu}, MSRs, events, debug registers, the UART)");
    let mut restored = snap.restore(false)?;
    let after = restored.run(&RunOptions::default(), &mut |_| {})?;
    let mut whole = before.output.clone();
    whole.extend_from_slice(&after.output);
    let expected = config.expected_output();
    println!("  output before the snapshot, then from the restored VM:");
    for line in String::from_utf8_lossy(&whole).lines() {
        println!("  | {line}");
    }
    if whole != expected.as_bytes() {
        bail!(
            "the restored guest's output differs from an uninterrupted run: {:?}",
            String::from_utf8_lossy(&whole)
        );
    }
    println!(
        "  same output as an uninterrupted run; restore -> first output {:.2?}, -> power-off {:.2?}",
        after.first_output.unwrap_or_default(),
        after.elapsed
    );
    Ok(())
}

fn halt() -> RunOptions {
    RunOptions {
        halt_ends_run: true,
        ..RunOptions::default()
    }
}

fn check(stage: &str, report: &RunReport, expected: &str) -> Result<()> {
    if report.output != expected.as_bytes() {
        bail!(
            "{stage}: expected {expected:?}, the guest printed {:?}",
            report.output_text()
        );
    }
    Ok(())
}

fn median_runs(config: &GuestConfig, n: usize) -> Result<(Duration, Duration)> {
    let mut firsts = Vec::new();
    let mut totals = Vec::new();
    for _ in 0..n {
        let report = MicroVm::tiny_guest(config)?.run(&RunOptions::default(), &mut |_| {})?;
        firsts.push(report.first_output.unwrap_or_default());
        totals.push(report.elapsed);
    }
    firsts.sort();
    totals.sort();
    Ok((firsts[n / 2], totals[n / 2]))
}
