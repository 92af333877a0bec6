//! `ch03-cgroups`: run a command in namespaces and a cgroup with limits, or (no arguments) watch
//! three limits being enforced.

mod demo;
mod workloads;

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ch01_process::exec::Program;
use ch02_namespaces::args::IsolationArgs;
use ch03_cgroups::args::LimitArgs;
use ch03_cgroups::run::run_limited;
use clap::Parser;

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
    ch01_process::status::finish("ch03-cgroups", result)
}

fn run(cli: &Cli) -> Result<i32> {
    let resolved = cli.limits.resolve()?;
    if let Some(translation) = &resolved.translation {
        eprint!("ch03: Kubernetes -> cgroup: {}", translation.table());
    }
    if cli.command.is_empty() {
        if cli.limits.has_k8s() {
            return Ok(0); // the translation table was the point
        }
        bail!("no command given: put it after `--`, e.g. ch03-cgroups --memory 64m -- sh");
    }
    let program = Program::new(&cli.command)?;
    let isolation = cli.isolation.to_isolation("ch03")?;
    let exit = run_limited(
        isolation,
        &resolved,
        cli.limits.cgroup.as_deref(),
        &program,
        "ch03",
    )
    .with_context(|| format!("running '{}'", program.display()))?;
    Ok(exit.shell_code())
}
