//! Cost of creating each kind of namespace: `/bin/true` run through ch02's isolation with one
//! namespace at a time, with none (our fork→init→command chain alone), and with all six of the
//! course's table, next to a plain fork+exec (ch01) for reference.
//!
//! Needs root for everything but the user namespace; without root only the rootless variants run.

use ch01_process::exec::Program;
use ch02_namespaces::{Isolation, Namespace};
use criterion::{criterion_group, criterion_main, Criterion};

fn run(isolation: &Isolation, program: &Program) {
    let child = isolation.spawn(program).expect("spawn /bin/true isolated");
    let status = child.wait().expect("wait");
    assert!(status.success(), "/bin/true {status}");
}

fn namespaces(c: &mut Criterion) {
    let program = Program::new(&["/bin/true"]).unwrap();
    let root = labkit::is_root();
    let mut group = c.benchmark_group("namespaces");

    group.bench_function("plain_fork_exec", |b| {
        b.iter(|| ch01_process::cold::run(&program).unwrap())
    });
    if root {
        let none = Isolation::new([]);
        group.bench_function("none", |b| b.iter(|| run(&none, &program)));
        for ns in Namespace::ALL.into_iter().filter(|ns| ns.supported()) {
            let one = Isolation::new([ns]);
            group.bench_function(ns.name(), |b| b.iter(|| run(&one, &program)));
        }
        let six = Isolation::new(Namespace::COURSE_TABLE);
        group.bench_function("all_six", |b| b.iter(|| run(&six, &program)));
    } else {
        eprintln!("namespaces: not root, so only the rootless (user namespace) variants run");
        let user = Isolation::new([Namespace::User]);
        group.bench_function("user", |b| b.iter(|| run(&user, &program)));
        let rootless = Isolation::rootless();
        group.bench_function("rootless_defaults", |b| b.iter(|| run(&rootless, &program)));
    }
    group.finish();
}

criterion_group!(benches, namespaces);
criterion_main!(benches);
