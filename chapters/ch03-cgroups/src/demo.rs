//! The chapter's demo: the host's layout, then three limits enforced while you watch.

use anyhow::{Context, Result};
use ch01_process::exec::Program;
use ch02_namespaces::Isolation;
use ch03_cgroups::files::Written;
use ch03_cgroups::k8s::{node_memory, translate, Resources};
use ch03_cgroups::quantity::human_bytes;
use ch03_cgroups::{detect, fs_kind, run_confined, Cgroup, CgroupPath, Confined, Layout, Limits};
use nix::unistd::geteuid;

pub fn run() -> Result<i32> {
    println!("boxlab chapter 3: cgroups\n");
    println!(
        "A cgroup is a directory in a special filesystem. Processes listed in its cgroup.procs"
    );
    println!(
        "are limited by the values in its other files. Everything below is mkdir, write, read.\n"
    );

    let layout = detect()?;
    println!("Step 0. Which cgroups does this host have?");
    describe_layout(&layout);

    if !geteuid().is_root() {
        println!("\nThe experiments create cgroups, which on this host needs root:");
        match Cgroup::create(
            &layout,
            &CgroupPath::unique("ch03-demo"),
            &Limits::default(),
        ) {
            Ok(_) => {
                println!("  (though it worked here: this user has a delegated cgroup v2 subtree)")
            }
            Err(e) => println!("  {e}"),
        }
        println!("Run it again with sudo to see the OOM killer, a CPU quota and a fork bomb.");
        kubernetes_table();
        return Ok(0);
    }

    println!("\nExperiment 1. Memory: a hog that allocates 8 MiB at a time, limited to 64 MiB");
    let before = available_memory();
    let memory = Limits {
        memory: Some(64 << 20),
        memory_swap: Some(64 << 20),
        ..Limits::default()
    };
    let run = experiment(&layout, "memory", &memory, &["__hog", "8"])?;
    println!(
        "  outcome: the hog {}; OOM kills recorded by the cgroup: {}",
        run.exit,
        or_na(run.usage.oom_kills)
    );
    println!(
        "  peak memory charged to the cgroup: {}",
        run.usage
            .memory_peak
            .map(human_bytes)
            .unwrap_or("n/a".into())
    );
    println!(
        "  the host is fine: MemAvailable {} before, {} after",
        human_bytes(before),
        human_bytes(available_memory())
    );

    println!("\nExperiment 2. CPU: a burner that spins for 1.5 s, limited to half a CPU");
    let cpu = Limits {
        cpu_millis: Some(500),
        ..Limits::default()
    };
    let run = experiment(&layout, "cpu", &cpu, &["__burn", "1.5"])?;
    if let Some(cpu_time) = run.usage.cpu_time {
        let share = cpu_time.as_secs_f64() / run.wall_time.as_secs_f64();
        println!(
            "  outcome: it ran {:.2} s and got {:.2} s of CPU: {share:.2} CPU (the quota: 0.50)",
            run.wall_time.as_secs_f64(),
            cpu_time.as_secs_f64()
        );
    }

    println!("\nExperiment 3. Processes: a fork bomb, limited to 20 tasks");
    let pids = Limits {
        pids: Some(20),
        ..Limits::default()
    };
    let run = experiment(&layout, "pids", &pids, &["__forkbomb"])?;
    println!(
        "  outcome: the bomb {}; the cgroup's removal killed its children",
        run.exit
    );
    println!("  (20 tasks: our waiter, init, the bomb and its children: the runtime's helpers count too)");

    kubernetes_table();
    println!("\nDone; every cgroup made here is removed. Try your own command:");
    println!("  sudo cargo run -p ch03-cgroups -- --memory 64m --cpus 0.5 --pids 50 -- sh");
    Ok(0)
}

fn describe_layout(layout: &Layout) {
    let root = layout.root();
    let kind = |p: &std::path::Path| {
        fs_kind(p)
            .map(|k| format!("{k:?}"))
            .unwrap_or("missing".into())
    };
    println!("  statfs({}) -> {}", root.display(), kind(root));
    match layout {
        Layout::V1 { .. } => println!("  => cgroup v1: one hierarchy per controller, each its own directory tree"),
        Layout::V2 { .. } => println!("  => cgroup v2: one unified tree; controllers are passed down via cgroup.subtree_control"),
        Layout::Hybrid { unified, .. } => {
            println!("  statfs({}) -> {}", unified.display(), kind(unified));
            println!("  => hybrid: v1 hierarchies for the controllers, plus a cgroup2 tree (no limits of its own)");
        }
    }
}

// ANCHOR: experiment
/// One experiment: a fresh cgroup with `limits`, this binary re-executed as the workload inside
/// chapter 2's namespaces, then the outcome read back from the cgroup.
fn experiment(
    layout: &Layout,
    label: &str,
    limits: &Limits,
    workload: &[&str],
) -> Result<Confined> {
    let path = CgroupPath::unique(&format!("ch03-demo-{label}"));
    let (cgroup, written) =
        Cgroup::create(layout, &path, limits).with_context(|| format!("creating cgroup {path}"))?;
    print_written(&written);
    let cgroup_dirs: Vec<String> = cgroup.dirs().map(|d| d.display().to_string()).collect();
    println!(
        "  runtime: the child writes its pid to cgroup.procs in {}",
        cgroup_dirs.join(", ")
    );
    let args: Vec<&str> = std::iter::once("/proc/self/exe")
        .chain(workload.iter().copied())
        .collect();
    let program = Program::new(&args)?;
    Ok(run_confined(
        Isolation::container_defaults(),
        cgroup,
        &program,
    )?)
}
// ANCHOR_END: experiment

fn print_written(written: &[Written]) {
    for w in written {
        println!("  write {} <- {}", w.file.display(), w.value);
    }
}

fn kubernetes_table() {
    println!(
        "\nAnd Kubernetes? The course's pod asks for requests = limits = {{cpu: 4, memory: 16Gi}}."
    );
    let pod = Resources {
        cpu_millis: Some(4000),
        memory_bytes: Some(16 << 30),
    };
    let translation = translate(pod, pod, node_memory());
    print!("  the kubelet would write: {}", translation.table());
    println!("  (try: cargo run -p ch03-cgroups -- --k8s-requests cpu=500m,memory=1Gi --k8s-limits cpu=1,memory=2Gi)");
}

fn or_na(value: Option<u64>) -> String {
    value.map_or("n/a".into(), |v| v.to_string())
}

/// `MemAvailable` from /proc/meminfo, in bytes.
fn available_memory() -> u64 {
    ch03_cgroups::k8s::meminfo("MemAvailable:")
}
