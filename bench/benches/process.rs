//! Chapter 1's start-up costs: a cold fork+exec, a warm worker's request→reply, and a zygote's
//! fork-per-request, all on this host.
//!
//! `cargo bench -p bench --bench process`. The warm and zygote benches send a 64-byte request
//! that the handler echoes back, so they measure the mechanism (socket round trip, fork), not
//! the work.

use ch01_process::{cold, Program, Worker, Zygote};
use criterion::{criterion_group, criterion_main, Criterion};

fn echo(request: &[u8]) -> Vec<u8> {
    request.to_vec()
}

fn process(c: &mut Criterion) {
    let mut group = c.benchmark_group("process");
    let request = [b'x'; 64];

    let true_program = Program::new(&["/bin/true"]).expect("/bin/true as a program");
    group.bench_function("cold_fork_exec_true", |b| {
        b.iter(|| {
            let run = cold::run(&true_program).expect("fork+exec /bin/true");
            assert!(run.exit.success(), "/bin/true {}", run.exit);
        })
    });

    let mut worker = Worker::start(echo).expect("starting the warm worker");
    group.bench_function("warm_request_reply", |b| {
        b.iter(|| worker.request(&request).expect("warm request"))
    });
    drop(worker);

    let mut zygote = Zygote::start(echo).expect("starting the zygote");
    group.bench_function("zygote_request_reply", |b| {
        b.iter(|| zygote.request(&request).expect("zygote request"))
    });
    drop(zygote);

    group.finish();
}

criterion_group!(benches, process);
criterion_main!(benches);
