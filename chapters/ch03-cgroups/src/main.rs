//! `ch03-cgroups`: run a command in namespaces and a cgroup with limits, or (no arguments) watch
//! three limits being enforced.

mod demo;
mod workloads;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use ch01_process::exec::Program;
use ch02_namespaces::args::IsolationArgs;
use ch03_cgroups::k8s::{translate, Resources};
use ch03_cgroups::quantity::{human_bytes, parse_docker_bytes, parse_millicpus};
use ch03_cgroups::{confine, detect, Cgroup, CgroupPath, Limits};
use clap::{Args, Parser};

/// Run a command in new namespaces, inside a cgroup with resource limits.
///
/// With no arguments: three experiments (an OOM kill, a CPU quota, a fork bomb), step by step.
#[derive(Debug, Parser)]
#[command(name = "ch03-cgroups", version, after_help = EXAMPLES)]
struct Cli {
    #[command(flatten)]
    limits: LimitArgs,

    #[command(flatten)]
    isolation: IsolationArgs,

    /// The command to run, after `--`.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

/// The limits, spelled as `docker run` spells them.
#[derive(Debug, Args)]
struct LimitArgs {
    /// Memory limit, e.g. 64m, 16g (docker's --memory).
    #[arg(long, value_name = "SIZE")]
    memory: Option<String>,

    /// Memory plus swap, e.g. 128m; equal to --memory means no swap (docker's --memory-swap).
    #[arg(long, value_name = "SIZE")]
    memory_swap: Option<String>,

    /// CPUs the command may keep busy, e.g. 0.5 or 2 (docker's --cpus).
    #[arg(long, value_name = "N")]
    cpus: Option<String>,

    /// Relative CPU weight under contention, 2..262144, default 1024 (docker's --cpu-shares).
    #[arg(long, value_name = "N")]
    cpu_shares: Option<u64>,

    /// Most processes and threads at once (docker's --pids-limit).
    #[arg(long, value_name = "N")]
    pids: Option<u64>,

    /// CPUs it may run on, e.g. 0 or 0-1 (docker's --cpuset-cpus).
    #[arg(long, value_name = "LIST")]
    cpuset_cpus: Option<String>,

    /// A Kubernetes container's requests, e.g. cpu=500m,memory=1Gi.
    #[arg(long, value_name = "RESOURCES")]
    k8s_requests: Option<String>,

    /// A Kubernetes container's limits, e.g. cpu=1,memory=2Gi.
    #[arg(long, value_name = "RESOURCES")]
    k8s_limits: Option<String>,

    /// The cgroup's path under each hierarchy (default: boxlab/ch03-<pid>-<n>).
    #[arg(long, value_name = "PATH")]
    cgroup: Option<String>,
}

const EXAMPLES: &str = "Examples:
  sudo ch03-cgroups                                            # the three experiments
  sudo ch03-cgroups --memory 64m -- python3 -c 'x = bytearray(10**9)'   # OOM-killed
  sudo ch03-cgroups --cpus 0.5 --pids 50 -- sh -c 'yes > /dev/null'
  ch03-cgroups --k8s-requests cpu=500m,memory=1Gi --k8s-limits cpu=1,memory=2Gi   # the table only
  sudo ch03-cgroups --k8s-limits cpu=1,memory=256Mi -- sh -c 'cat /proc/self/oom_score_adj'";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("__hog") => {
            return workloads::memory_hog(args.get(2).and_then(|s| s.parse().ok()).unwrap_or(8))
        }
        Some("__burn") => {
            return workloads::cpu_burner(args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1.0))
        }
        Some("__forkbomb") => return workloads::fork_bomb(),
        _ => {}
    }
    let cli = Cli::parse();
    let result = if args.len() == 1 {
        demo::run()
    } else {
        run(&cli)
    };
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(err) => {
            eprintln!("ch03-cgroups: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<i32> {
    let (limits, oom_score_adj) = limits_from(&cli.limits)?;
    if cli.command.is_empty() {
        if cli.limits.k8s_requests.is_some() || cli.limits.k8s_limits.is_some() {
            return Ok(0); // the translation table was the point
        }
        bail!("no command given: put it after `--`, e.g. ch03-cgroups --memory 64m -- sh");
    }
    let layout = detect()?;
    let path = match &cli.limits.cgroup {
        Some(path) => CgroupPath::new(path)?,
        None => CgroupPath::unique("ch03"),
    };
    let program = Program::new(&cli.command)?;
    let (cgroup, written) =
        Cgroup::create(&layout, &path, &limits).context("creating the cgroup")?;
    if cli.isolation.verbose {
        for w in &written {
            eprintln!("ch03: wrote {} = {}", w.file.display(), w.value);
        }
    }
    let cgroup = Arc::new(cgroup);
    let mut isolation = confine(cli.isolation.to_isolation("ch03")?, Arc::clone(&cgroup));
    if let Some(adj) = oom_score_adj {
        // As the kubelet does: the waiter's score is inherited by init and the command.
        isolation = isolation.parent_hook(Arc::new(move |pid| {
            if let Err(e) = std::fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string()) {
                // Lowering the score needs CAP_SYS_RESOURCE, which some sandboxes take away even
                // from root. The limits still hold; only the OOM killer's preference is lost.
                eprintln!("ch03: warning: could not write /proc/{pid}/oom_score_adj = {adj} ({e}; lowering it needs CAP_SYS_RESOURCE)");
            }
            Ok(())
        }));
    }
    let child = isolation
        .spawn(&program)
        .with_context(|| format!("starting '{}'", program.display()))?;
    ch02_namespaces::init::forward_signals_to(child.pid());
    let exit = child.wait()?;
    let usage = cgroup.usage()?;
    eprintln!(
        "ch03: '{}' {exit}; cgroup {}: {usage}",
        program.display(),
        cgroup.path()
    );
    if usage.oom_kills.unwrap_or(0) > 0 {
        let limit = limits.memory.map(human_bytes).unwrap_or_default();
        eprintln!("ch03: the kernel's OOM killer stopped it at the memory limit ({limit})");
    }
    drop(isolation);
    if let Ok(cgroup) = Arc::try_unwrap(cgroup) {
        cgroup.remove()?;
    }
    Ok(exit.shell_code())
}

/// Turns the flags into limits (and, for Kubernetes flags, an OOM score), printing the
/// Kubernetes translation when asked for one.
fn limits_from(args: &LimitArgs) -> Result<(Limits, Option<i32>)> {
    let mut limits = Limits::default();
    let mut oom_score_adj = None;
    if args.k8s_requests.is_some() || args.k8s_limits.is_some() {
        let requests = Resources::parse(args.k8s_requests.as_deref().unwrap_or(""))?;
        let k8s_limits = Resources::parse(args.k8s_limits.as_deref().unwrap_or(""))?;
        let translation = translate(requests, k8s_limits, demo::node_memory());
        eprint!("ch03: Kubernetes -> cgroup: {}", translation.table());
        limits = translation.limits;
        oom_score_adj = Some(translation.oom_score_adj);
    }
    if let Some(size) = &args.memory {
        limits.memory = Some(parse_docker_bytes(size)?);
    }
    if let Some(size) = &args.memory_swap {
        limits.memory_swap = Some(parse_docker_bytes(size)?);
    }
    if let Some(cpus) = &args.cpus {
        limits.cpu_millis = Some(parse_millicpus(cpus)?);
    }
    if args.cpu_shares.is_some() {
        limits.cpu_shares = args.cpu_shares;
    }
    if args.pids.is_some() {
        limits.pids = args.pids;
    }
    if let Some(cpus) = &args.cpuset_cpus {
        limits.cpuset_cpus = Some(cpus.clone());
    }
    limits.validate()?;
    Ok((limits, oom_score_adj))
}
