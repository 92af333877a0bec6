//! The micro-VM's start-up (chapter 7): a tiny guest from KVM_CREATE_VM to its first serial
//! output and to power-off, and a snapshot restored into a fresh VM up to its next output.
//! Compared in the book with Firecracker's published figures. Needs root (/dev/kvm).
//!
//! Each iteration creates (or restores) a whole VM; the figures that matter are the times the
//! VM reports itself (creation -> first output), printed as medians at the end, next to what
//! criterion measures for the whole iteration.

use bench::stats::median;
use ch07_microvm::exits::RunOptions;
use ch07_microvm::overhead;
use ch07_microvm::{GuestConfig, MicroVm, Snapshot};
use criterion::{criterion_group, criterion_main, Criterion};
use labkit::ScratchDir;

fn microvm(c: &mut Criterion) {
    if !labkit::is_root() || !std::path::Path::new("/dev/kvm").exists() {
        eprintln!("microvm: needs root and /dev/kvm; nothing measured");
        return;
    }
    let config = GuestConfig::default();
    let opts = RunOptions::default();
    let mut group = c.benchmark_group("microvm");
    group.sample_size(50);

    // Memory after a run: the VMM process, minus the guest pages it touched.
    let mut vm = MicroVm::tiny_guest(&config).unwrap();
    vm.run(&opts, &mut |_| {}).unwrap();
    let memory = overhead::measure(&vm);
    drop(vm);

    let (mut first, mut end) = (Vec::new(), Vec::new());
    group.bench_function("tiny_guest_create_to_poweroff", |b| {
        b.iter(|| {
            let report = MicroVm::tiny_guest(&config)
                .unwrap()
                .run(&opts, &mut |_| {})
                .unwrap();
            first.push(report.first_output.unwrap());
            end.push(report.elapsed);
        })
    });

    // Removed when dropped, also when a step panics.
    let dir = ScratchDir::new("bench-snapshot").unwrap();
    let snap = Snapshot::take(&config, dir.path()).unwrap().snapshot;
    let (mut restore_first, mut restore_end) = (Vec::new(), Vec::new());
    group.bench_function("snapshot_restore_to_poweroff", |b| {
        b.iter(|| {
            let report = snap
                .restore(false)
                .unwrap()
                .run(&opts, &mut |_| {})
                .unwrap();
            restore_first.push(report.first_output.unwrap());
            restore_end.push(report.elapsed);
        })
    });
    group.finish();
    drop(dir);

    eprintln!(
        "microvm: tiny guest, median over {} runs: create -> first output {:.2?}, -> power-off {:.2?}",
        first.len(),
        median(&first).unwrap_or_default(),
        median(&end).unwrap_or_default()
    );
    eprintln!(
        "microvm: snapshot restore, median over {} runs: restore -> first output {:.2?}, -> power-off {:.2?}",
        restore_first.len(),
        median(&restore_first).unwrap_or_default(),
        median(&restore_end).unwrap_or_default()
    );
    eprintln!(
        "microvm: memory: RSS {} KiB, guest resident {} KiB of {} KiB, VMM overhead {} KiB ({} KiB anonymous, {} KiB file-backed)",
        memory.rss >> 10,
        memory.guest_resident >> 10,
        memory.guest_size >> 10,
        memory.vmm() >> 10,
        memory.vmm_anon() >> 10,
        memory.rss_file >> 10
    );
}

criterion_group!(benches, microvm);
criterion_main!(benches);
