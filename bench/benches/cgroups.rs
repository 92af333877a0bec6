//! Cost of a cgroup's life: create it, write memory, cpu and pids limits, remove it (chapter 3).
//! Compared in the book with crun's cgroup set-up on the same host. Needs root.

use ch03_cgroups::{detect, Cgroup, CgroupPath, Limits};
use criterion::{criterion_group, criterion_main, Criterion};

fn cgroups(c: &mut Criterion) {
    if !labkit::is_root() {
        eprintln!("cgroups: needs root to create cgroups; nothing measured");
        return;
    }
    let layout = detect().expect("a cgroup filesystem");
    let limits = Limits {
        memory: Some(64 << 20),
        cpu_millis: Some(500),
        pids: Some(100),
        ..Limits::default()
    };
    let mut group = c.benchmark_group("cgroups");
    group.bench_function(format!("create_apply_remove_{}", layout.name()), |b| {
        b.iter(|| {
            let (cgroup, _) =
                Cgroup::create(&layout, &CgroupPath::unique("bench"), &limits).unwrap();
            cgroup.remove().unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, cgroups);
criterion_main!(benches);
