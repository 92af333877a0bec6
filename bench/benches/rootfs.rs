//! Chapter 4's costs: unpacking a layer (the busybox root: one 1.9 MiB binary and ~270 symlinks),
//! and starting `/bin/true` on a prepared root (bind + pivot_root) or on an overlay of two layers
//! (overlay mount + pivot_root), next to the same namespaces without a root of their own.
//! Needs root for the container parts.

use std::fs::File;

use ch01_process::exec::Program;
use ch02_namespaces::Isolation;
use ch04_rootfs::unpack::{unpack_layer, UnpackOptions};
use ch04_rootfs::{with_layers, with_rootfs};
use criterion::{criterion_group, criterion_main, Criterion};
use labkit::{busybox_rootfs, ScratchDir};

fn rootfs(c: &mut Criterion) {
    let scratch = ScratchDir::new("bench-rootfs").unwrap();
    let root = busybox_rootfs(&scratch.join("root")).unwrap();
    let layer = scratch.join("layer.tar");
    let mut builder = tar::Builder::new(File::create(&layer).unwrap());
    builder.follow_symlinks(false);
    builder.append_dir_all(".", &root).unwrap();
    builder.into_inner().unwrap();

    let mut group = c.benchmark_group("rootfs");
    let mut n = 0;
    group.bench_function("unpack_busybox_layer", |b| {
        b.iter(|| {
            n += 1;
            let target = scratch.join(format!("unpacked-{n}"));
            unpack_layer(&layer, &target, &UnpackOptions::default()).unwrap();
            std::fs::remove_dir_all(&target).unwrap();
        })
    });

    if labkit::is_root() {
        let program = Program::new(&["/bin/true"]).unwrap();
        let run = |isolation: &Isolation| isolation.spawn(&program).unwrap().wait().unwrap();
        let plain = Isolation::container_defaults();
        group.bench_function("true_in_namespaces_host_root", |b| b.iter(|| run(&plain)));
        let pivoted = with_rootfs(Isolation::container_defaults(), &root, false).unwrap();
        group.bench_function("true_with_pivot_root", |b| b.iter(|| run(&pivoted)));
        let top = scratch.join("top");
        std::fs::create_dir_all(top.join("etc")).unwrap();
        let mut m = 0;
        group.bench_function("true_with_overlay_and_pivot_root", |b| {
            b.iter(|| {
                m += 1;
                let dir = scratch.join(format!("container-{m}"));
                let isolation = with_layers(
                    Isolation::container_defaults(),
                    vec![root.clone(), top.clone()],
                    &dir,
                    false,
                )
                .unwrap();
                run(&isolation);
                std::fs::remove_dir_all(&dir).unwrap();
            })
        });
    } else {
        eprintln!("rootfs: not root, so only the unpack benchmark runs");
    }
    group.finish();
}

criterion_group!(benches, rootfs);
criterion_main!(benches);
