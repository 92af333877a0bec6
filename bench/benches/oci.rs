//! Chapter 6's runtime against the real ones: `run` of `/bin/true` on one busybox bundle (the
//! container's cold start), create + start + delete of it, and `start` alone of a container
//! created beforehand (the warm start: the OCI create/start split is the pre-warm), by ours,
//! crun and runc, paired in one run (same bundle, same host, same moment), plus each runtime's
//! peak RSS during `run`. Needs root.
//!
//! ```text
//! cargo build --release -p ch06-oci          # ours: the release binary, as users run it
//! sudo cargo bench -p bench --bench oci
//! ```
//!
//! Ours is found at `$BOXLAB_OCI_BIN`, else beside this bench in `target/release/`, else in
//! `$CARGO_TARGET_DIR/release/` (a bench cannot ask cargo to build another package's binary
//! for it: `bench::peers::find_workspace_binary`). crun and runc are looked up on `PATH` and in `/usr/sbin`, `/usr/bin`
//! (Debian's packages; `scripts/setup` installs them). A runtime that is missing is named in
//! one line and left out; nothing is ever made up for it.
//!
//! Each runtime has its own `--root` in a scratch directory, each iteration a new container id
//! (with `boxlab` in it, so the leak check finds anything left). The bench process is the child
//! subreaper, as containerd's shim is: after `start` it reaps the container's init, then
//! `delete` runs on a stopped container.
//!
//! Two regimes, because on this host they differ by 2-3x for every runtime alike:
//!
//! - **back to back** (criterion's groups, one runtime after the other): a container starts
//!   right after the previous one. Moving the container's first process into its cgroup (the
//!   first write to a `cgroup.procs`) takes the kernel's cgroup_threadgroup_rwsem for writing,
//!   which waits for an RCU grace period — unless another migration happened within about one
//!   grace period before, which back-to-back starts always find. Measured here: `run` ~7 ms.
//! - **spaced** (the second pass): one container of each runtime in turn, the order rotated
//!   every round, with a pause before each, so that every start pays the grace period, as a
//!   single `docker run` on a quiet host does: `run` ~18-20 ms here. Ratios are taken within
//!   each round (the same moment's load on all three), then their median. `BOXLAB_OCI_ROUNDS`
//!   rounds (default 40; 0 skips the pass).
//!
//! Peak RSS is `ru_maxrss` of the runtime process from `wait4` (what `/usr/bin/time -v` shows):
//! the largest resident set of the runtime or any descendant it waited for. It is taken by the
//! bench's small `peak-rss` program (src/bin/peak-rss.rs), not from this process, whose own size
//! would count in (see there); its floor, `/bin/true` measured the same way, is printed too.
//!
//! On a hybrid cgroup host whose cgroup2 half has controllers (this project's machines:
//! `hugetlb`), crun 1.8 refuses to run ("cgroups in hybrid mode not supported"). The bench then
//! moves itself into a private mount namespace without `/sys/fs/cgroup/unified`, so that all
//! three runtimes see the same v1-only view of the same cgroup trees; it says so when it does.

use std::cell::RefCell;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bench::peers::{bundle, find_ours, find_program, force_delete_all, hide_cgroup2_for_crun};
use bench::stats::{median, Summary};
use criterion::{criterion_group, criterion_main, Criterion};
use labkit::ScratchDir;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

/// One runtime under test.
struct Runtime {
    name: &'static str,
    bin: PathBuf,
    root: PathBuf,
}

impl Runtime {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.bin);
        command
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }

    /// Runs the runtime with `args`; panics, with its error output, if it fails.
    fn must(&self, args: &[&str], scratch: &Path) {
        let err = scratch.join(format!("stderr-{}", self.name));
        let status = self
            .command(args)
            .stderr(File::create(&err).expect("a stderr file"))
            .status()
            .unwrap_or_else(|e| panic!("{} {args:?}: {e}", self.name));
        assert!(
            status.success(),
            "{} {args:?}: {status}: {}",
            self.name,
            fs::read_to_string(&err).unwrap_or_default()
        );
    }

    /// `run` of the bundle's `/bin/true` as container `id`, in the foreground.
    fn run(&self, bundle: &str, id: &str, scratch: &Path) {
        self.must(&["run", "--bundle", bundle, id], scratch);
    }

    /// create, start, wait for `/bin/true` to end (reaping its init, the shim's part), delete.
    fn create_start_delete(&self, bundle: &str, id: &str, scratch: &Path) {
        let init = self.create(bundle, id, scratch);
        self.start_and_wait(init, id, scratch);
        self.must(&["delete", id], scratch);
    }

    /// `create` of container `id`: its init waits at the start gate. Returns the init's PID.
    fn create(&self, bundle: &str, id: &str, scratch: &Path) -> Pid {
        let pid_file = scratch.join(format!("pid-{}", self.name));
        let pid_arg = pid_file.to_str().unwrap();
        self.must(
            &["create", "--bundle", bundle, "--pid-file", pid_arg, id],
            scratch,
        );
        let init: i32 = fs::read_to_string(&pid_file)
            .expect("the pid file")
            .trim()
            .parse()
            .expect("a pid in the pid file");
        Pid::from_raw(init)
    }

    /// The warm start: `create` (not timed), then `start` and the wait for `/bin/true` to end
    /// (timed), then `delete` (not timed).
    fn start_of_created(&self, bundle: &str, id: &str, scratch: &Path) -> Duration {
        let init = self.create(bundle, id, scratch);
        let elapsed = timed(|| self.start_and_wait(init, id, scratch));
        self.must(&["delete", id], scratch);
        elapsed
    }

    /// `start` of a created container, and the wait for its `/bin/true` to end.
    fn start_and_wait(&self, init: Pid, id: &str, scratch: &Path) {
        self.must(&["start", id], scratch);
        match waitpid(init, None) {
            Ok(WaitStatus::Exited(_, 0)) => {}
            other => panic!("{}: /bin/true's init ended as {other:?}", self.name),
        }
    }

    /// Force-deletes whatever is left under its root (after a failed iteration).
    fn clean_up(&self) {
        force_delete_all(&self.bin, &self.root);
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.clean_up();
    }
}

/// The peak RSS (KiB) of `program args`, measured by our small `peak-rss` (see its source for
/// why not from this process).
fn peak_rss_kib(program: &Path, args: &[&str]) -> i64 {
    let out = Command::new(env!("CARGO_BIN_EXE_peak-rss"))
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("running peak-rss");
    assert!(out.status.success(), "{program:?} {args:?}: {}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("peak-rss printed {text:?}"))
}

/// Per-iteration times of one benchmark, as criterion's samples see them: the last
/// `sample_size` entries are the measurement (warm-up comes first).
type Samples = Rc<RefCell<Vec<Duration>>>;

/// How long `work` took.
fn timed(work: impl FnOnce()) -> Duration {
    let began = Instant::now();
    work();
    began.elapsed()
}

const SAMPLE_SIZE: usize = 20;

fn oci(c: &mut Criterion) {
    if !labkit::is_root() {
        eprintln!("oci: needs root to create containers; nothing measured");
        return;
    }
    // Containers' inits are ours to reap once `create` has exited, as they are a shim's.
    nix::sys::prctl::set_child_subreaper(true).expect("PR_SET_CHILD_SUBREAPER");
    let scratch = ScratchDir::new("bench-oci").unwrap();

    let mut runtimes = Vec::new();
    match find_ours() {
        Ok(bin) => runtimes.push(("ours", bin)),
        Err(why) => eprintln!("oci: ours not measured: {why}"),
    }
    for peer in ["crun", "runc"] {
        match find_program(peer) {
            Some(bin) => runtimes.push((peer, bin)),
            None => eprintln!(
                "oci: {peer} is not installed (apt install {peer}): not measured, no figure for it"
            ),
        }
    }
    if runtimes.iter().any(|(name, _)| *name == "crun") {
        if let Some(note) = hide_cgroup2_for_crun().expect("hiding the cgroup2 half for crun") {
            eprintln!("oci: {note}");
        }
    }
    let bundle = bundle(&scratch.join("bundle"), &["/bin/true"], false)
        .unwrap_or_else(|e| panic!("the busybox bundle: {e}"));
    let bundle_arg = bundle.to_str().unwrap().to_string();
    let runtimes: Vec<Runtime> = runtimes
        .into_iter()
        .map(|(name, bin)| {
            let root = scratch.join(format!("root-{name}"));
            fs::create_dir_all(&root).unwrap();
            eprintln!("oci: {name} = {}", bin.display());
            Runtime { name, bin, root }
        })
        .collect();
    let mut serial = 0u64;
    let mut next_id = |runtime: &str| {
        serial += 1;
        format!("boxlab-bench-{runtime}-{}-{serial}", std::process::id())
    };

    // Peak RSS of `run`: a few runs each, outside criterion's timing; and the floor of the
    // measurement, /bin/true's.
    let mut rss_lines = Vec::new();
    let floor = peak_rss_kib(Path::new("/bin/true"), &[]);
    rss_lines.push(("(/bin/true: floor)", floor, floor));
    for runtime in &runtimes {
        let mut peaks: Vec<i64> = (0..15)
            .map(|_| {
                let id = next_id(runtime.name);
                let root = runtime.root.to_str().unwrap();
                peak_rss_kib(
                    &runtime.bin,
                    &["--root", root, "run", "--bundle", &bundle_arg, &id],
                )
            })
            .collect();
        peaks.sort();
        rss_lines.push((runtime.name, peaks[peaks.len() / 2], *peaks.last().unwrap()));
    }

    let mut results: Vec<(&str, &str, Duration)> = Vec::new();
    // Each operation returns the time that counts for it: all of `run` and of
    // create+start+delete; for the warm start only `start` and the wait for the command's exit
    // (the OCI create/start split is the container's pre-warm: create and delete not timed, as
    // in the report's "container warm" row).
    type Operation = fn(&Runtime, &str, &str, &Path) -> Duration;
    let operations: [(&str, &str, Operation); 3] = [
        ("oci_run_true", "run", |runtime, bundle, id, scratch| {
            timed(|| runtime.run(bundle, id, scratch))
        }),
        (
            "oci_create_start_delete",
            "create+start+delete",
            |runtime, bundle, id, scratch| {
                timed(|| runtime.create_start_delete(bundle, id, scratch))
            },
        ),
        (
            "oci_start_warm",
            "start (created)",
            Runtime::start_of_created,
        ),
    ];
    for (group_name, label, operation) in operations {
        let mut group = c.benchmark_group(group_name);
        group
            .sample_size(SAMPLE_SIZE)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(5));
        for runtime in &runtimes {
            let samples: Samples = Rc::default();
            group.bench_function(runtime.name, |b| {
                b.iter_custom(|iters| {
                    let ids: Vec<String> = (0..iters).map(|_| next_id(runtime.name)).collect();
                    let elapsed: Duration = ids
                        .iter()
                        .map(|id| operation(runtime, &bundle_arg, id, scratch.path()))
                        .sum();
                    samples.borrow_mut().push(elapsed / iters as u32);
                    elapsed
                })
            });
            let all = samples.borrow();
            let measured = &all[all.len().saturating_sub(SAMPLE_SIZE)..];
            // Nothing measured when a criterion filter left this one out.
            if !measured.is_empty() {
                results.push((label, runtime.name, median(measured).unwrap_or_default()));
            }
            runtime.clean_up();
        }
        group.finish();
    }

    // The spaced pass (see the top of this file): rotated order, a pause before each start.
    let rounds = spaced_rounds();
    let mut paired = Vec::new();
    if rounds > 0 && !runtimes.is_empty() {
        for (_, what, operation) in operations {
            let mut times: Vec<Vec<Duration>> = vec![Vec::new(); runtimes.len()];
            for round in 0..rounds {
                for k in 0..runtimes.len() {
                    let i = (round + k) % runtimes.len();
                    let runtime = &runtimes[i];
                    let id = next_id(runtime.name);
                    std::thread::sleep(PAUSE);
                    times[i].push(operation(runtime, &bundle_arg, &id, scratch.path()));
                }
            }
            paired.push((what, times));
        }
    }

    report(&results, &rss_lines);
    report_spaced(&runtimes, rounds, &paired);
}

/// The pause before each start of the spaced pass: several RCU grace periods.
const PAUSE: Duration = Duration::from_millis(50);

/// Rounds of the spaced pass: `BOXLAB_OCI_ROUNDS`, default 40 (0: skip it).
fn spaced_rounds() -> usize {
    std::env::var("BOXLAB_OCI_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40)
}

/// Medians of the spaced pass, and the median of ours/peer over the rounds.
fn report_spaced(runtimes: &[Runtime], rounds: usize, paired: &[(&str, Vec<Vec<Duration>>)]) {
    if paired.is_empty() {
        return;
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "\noci spaced ({rounds} rounds, one container of each runtime per round, {} ms apart)",
        PAUSE.as_millis()
    );
    let ours = runtimes.iter().position(|r| r.name == "ours");
    for (what, times) in paired {
        let figures: Vec<String> = runtimes
            .iter()
            .zip(times)
            .map(|(r, t)| format!("{} {:.2} ms", r.name, ms(median(t).unwrap_or_default())))
            .collect();
        println!("  {what:<20} {} (medians)", figures.join(", "));
        let Some(ours) = ours else { continue };
        for (peer, theirs) in runtimes.iter().zip(times) {
            if peer.name == "ours" {
                continue;
            }
            let mut ratios: Vec<f64> = times[ours]
                .iter()
                .zip(theirs)
                .map(|(a, b)| a.as_secs_f64() / b.as_secs_f64())
                .collect();
            let Some(ratio) = Summary::of_ms(&mut ratios) else {
                continue;
            };
            println!(
                "  {:<20} ours/{} = {:.2} (median of the {} rounds' ratios)",
                "", peer.name, ratio.median, ratio.n
            );
        }
    }
}

/// The summary: medians, ours as a multiple of each peer, peak RSS.
fn report(results: &[(&str, &str, Duration)], rss: &[(&str, i64, i64)]) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("\noci back to back (median of {SAMPLE_SIZE} criterion samples, per container)");
    for what in ["run", "create+start+delete", "start (created)"] {
        let of = |name: &str| {
            results
                .iter()
                .find(|(w, n, _)| *w == what && *n == name)
                .map(|r| r.2)
        };
        let figures: Vec<String> = results
            .iter()
            .filter(|(w, _, _)| *w == what)
            .map(|(_, name, d)| format!("{name} {:.2} ms", ms(*d)))
            .collect();
        if figures.is_empty() {
            continue; // left out by a criterion filter
        }
        println!("  {what:<20} {}", figures.join(", "));
        if let Some(ours) = of("ours") {
            for peer in ["crun", "runc"] {
                if let Some(theirs) = of(peer) {
                    println!(
                        "  {:<20} ours/{peer} = {:.2}",
                        "",
                        ours.as_secs_f64() / theirs.as_secs_f64()
                    );
                }
            }
        }
    }
    println!("  peak RSS of `run` (wait4 ru_maxrss via peak-rss, 15 runs: median, max)");
    for (name, median, max) in rss {
        println!(
            "  {name:<20} {median} KiB ({:.1} MiB), {max} KiB ({:.1} MiB)",
            *median as f64 / 1024.0,
            *max as f64 / 1024.0
        );
    }
}

criterion_group!(benches, oci);
criterion_main!(benches);
