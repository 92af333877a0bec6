//! The VM column (chapter 7): our tiny guest from VM creation to its output and power-off
//! (cold), a snapshot restored into a fresh VM up to its output and power-off (warm), the
//! VMM's memory outside guest RAM, and a stock Linux kernel's boot where the host can run one.

use std::fs;
use std::process::Command;
use std::time::Instant;

use ch07_microvm::exits::RunOptions;
use ch07_microvm::initramfs::INIT_MARKER;
use ch07_microvm::linux::fetched_kernel;
use ch07_microvm::{host, overhead, GuestConfig, LinuxConfig, MicroVm, Snapshot, Stop};

use labkit::ScratchDir;

use super::measured::{need_root, Measured};
use super::progress::bar;
use super::stats::{bytes, Summary};

/// The column's figures.
pub struct VmColumn {
    pub cold: Measured<Summary>,
    pub warm: Measured<Summary>,
    pub linux_boot: Measured<Summary>,
    pub memory: Measured<VmMemory>,
    pub isolation: Measured<String>,
}

/// Whether this host can run VMs at all: root (or the kvm group) and a `/dev/kvm`.
fn can_use_kvm() -> Result<(), String> {
    need_root()?;
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(drop)
        .map_err(|e| format!("/dev/kvm: {e} (no KVM on this host)"))
}

pub fn measure(runs: usize, linux_runs: usize) -> VmColumn {
    if let Err(why) = can_use_kvm() {
        return VmColumn {
            cold: Err(why.clone()),
            warm: Err(why.clone()),
            linux_boot: Err(why.clone()),
            memory: Err(why.clone()),
            isolation: Err(why),
        };
    }
    let (cold, isolation) = measure_cold(runs);
    VmColumn {
        cold,
        warm: measure_warm(runs),
        linux_boot: measure_linux(linux_runs),
        memory: memory(),
        isolation,
    }
}

fn measure_cold(runs: usize) -> (Measured<Summary>, Measured<String>) {
    let config = GuestConfig::default();
    let expected = config.expected_output();
    let opts = RunOptions::default();
    let bar = bar(runs as u64, "VM cold (create→exit)");
    let mut samples = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let began = Instant::now();
        let report = MicroVm::tiny_guest(&config).and_then(|mut vm| vm.run(&opts, &mut |_| {}));
        let elapsed = began.elapsed();
        let report = match report {
            Ok(r) => r,
            Err(e) => return (Err(format!("tiny guest: {e}")), Err(e.to_string())),
        };
        if report.stop != Stop::PowerOff || report.output_text() != expected {
            let why = format!(
                "the tiny guest ended {:?} with output {:?}",
                report.stop,
                report.output_text()
            );
            return (Err(why.clone()), Err(why));
        }
        samples.push(elapsed);
        last = Some(report);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let isolation = last
        .map(|report| {
            let text = report.output_text();
            let ram = text
                .lines()
                .find(|l| l.starts_with("ram:"))
                .unwrap_or("ram: ?")
                .to_string();
            format!(
                "own kernel: the guest booted its own kernel image and reports its own machine (`{ram}`, not the host's {}); it has no view of host processes: its only way out was {} VM exits to the two devices the VMM emulates (serial port, i8042)",
                super::machine::host_memory()
                    .map(bytes)
                    .unwrap_or_else(|| "RAM".into()),
                report.exits
            )
        })
        .ok_or_else(|| "no runs".to_string());
    (
        Summary::of(&samples).ok_or_else(|| "no runs".into()),
        isolation,
    )
}

fn measure_warm(runs: usize) -> Measured<Summary> {
    // The guest stops at its "ready" point (booted, before its task); we save it there.
    let config = GuestConfig::default();
    // Removed when dropped, whichever way this returns.
    let dir =
        ScratchDir::new("report-snapshot").map_err(|e| format!("a scratch directory: {e}"))?;
    let snapshot = Snapshot::take(&config, dir.path())
        .map_err(|e| format!("taking the snapshot: {e}"))?
        .snapshot;
    let opts = RunOptions::default();
    let bar = bar(runs as u64, "VM warm (restore→exit)");
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let began = Instant::now();
        let mut vm = snapshot
            .restore(false)
            .map_err(|e| format!("restoring the snapshot: {e}"))?;
        let report = vm
            .run(&opts, &mut |_| {})
            .map_err(|e| format!("running the restored guest: {e}"))?;
        // Timed to the VM's teardown, as the cold row is.
        drop(vm);
        samples.push(began.elapsed());
        if report.stop != Stop::PowerOff || !report.output_text().contains("crc32: ") {
            return Err(format!(
                "the restored guest ended {:?} with output {:?}",
                report.stop,
                report.output_text()
            ));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Summary::of(&samples).ok_or_else(|| "no runs".to_string())
}

/// A stock Linux kernel + initramfs, creation to power-off: only on hardware KVM.
fn measure_linux(runs: usize) -> Measured<Summary> {
    let kvm = host::detect();
    if !kvm.can_boot_linux() {
        return Err(kvm.describe());
    }
    let (kernel, initrd) = fetched_kernel().map_err(|e| e.to_string())?;
    let config = LinuxConfig {
        initrd: Some(initrd),
        ..LinuxConfig::new(kernel)
    };
    let opts = RunOptions {
        time_limit: Some(std::time::Duration::from_secs(60)),
        ..RunOptions::default()
    };
    let bar = bar(runs as u64, "VM Linux boot");
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let began = Instant::now();
        let report = MicroVm::linux(&config)
            .and_then(|mut vm| vm.run(&opts, &mut |_| {}))
            .map_err(|e| format!("Linux boot: {e}"))?;
        samples.push(began.elapsed());
        if !report.output_text().contains(INIT_MARKER) {
            return Err(format!(
                "the kernel ended {:?} before its init ran",
                report.stop
            ));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Summary::of(&samples).ok_or_else(|| "no runs".into())
}

/// The VMM's memory, measured in a fresh process of this binary whose only job is one VM (the
/// report's own heap, progress bars and earlier sections would count in otherwise).
#[derive(Debug, Clone, Copy)]
pub struct VmMemory {
    /// RSS of the probe process before it created the VM.
    pub before: u64,
    pub after: overhead::Overhead,
}

impl VmMemory {
    /// Anonymous memory outside guest RAM: what each further VMM process adds.
    pub fn overhead(&self) -> u64 {
        self.after.vmm_anon()
    }

    pub fn describe(&self) -> String {
        format!(
            "VMM process RSS {} = guest RAM resident {} (of {}) + outside guest RAM {} ({} anonymous, {} file-backed: the binary and libc, shared); the VM itself added {} to the process",
            bytes(self.after.rss),
            bytes(self.after.guest_resident),
            bytes(self.after.guest_size),
            bytes(self.after.vmm()),
            bytes(self.after.vmm_anon()),
            bytes(self.after.rss_file),
            bytes(self.after.rss.saturating_sub(self.before)),
        )
    }
}

/// `bench vm-probe`: one tiny-guest VM, run to power-off, then its memory, as one line of
/// numbers on stdout: `before rss rss_anon rss_file guest_size guest_resident`.
pub fn probe() -> anyhow::Result<()> {
    let before = overhead::process_memory().rss;
    let mut vm = MicroVm::tiny_guest(&GuestConfig::default())?;
    vm.run(&RunOptions::default(), &mut |_| {})?;
    let m = overhead::measure(&vm);
    println!(
        "{before} {} {} {} {} {}",
        m.rss, m.rss_anon, m.rss_file, m.guest_size, m.guest_resident
    );
    Ok(())
}

fn memory() -> Measured<VmMemory> {
    let exe = std::env::current_exe().map_err(|e| format!("finding this binary: {e}"))?;
    let out = Command::new(&exe)
        .arg("vm-probe")
        .output()
        .map_err(|e| format!("{} vm-probe: {e}", exe.display()))?;
    if !out.status.success() {
        return Err(format!(
            "vm-probe: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let n: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [before, rss, rss_anon, rss_file, guest_size, guest_resident] = n[..] else {
        return Err(format!(
            "vm-probe printed {:?}",
            String::from_utf8_lossy(&out.stdout)
        ));
    };
    Ok(VmMemory {
        before,
        after: overhead::Overhead {
            rss,
            rss_anon,
            rss_file,
            guest_size,
            guest_resident,
        },
    })
}
