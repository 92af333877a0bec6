//! `ch05-gpu`: run a command in a container that sees exactly the GPUs it was given; or (no
//! arguments) watch that happen on fake NVIDIA devices — or real ones, where the host has them.

mod demo;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ch01_process::exec::Program;
use ch02_namespaces::args::IsolationArgs;
use ch03_cgroups::args::LimitArgs;
use ch03_cgroups::run::run_limited_with;
use ch04_rootfs::args::RootfsArgs;
use ch04_rootfs::pivot::RootfsSpec;
use ch04_rootfs::with_rootfs_spec;
use ch05_gpu::cdi::CdiRegistry;
use ch05_gpu::discover::{discover, HostRoots};
use ch05_gpu::expose::{build_plan, GpuPlan, LdCache, PlanOptions};
use ch05_gpu::gpu_container::{apply_rules, rules_for_plan, StateDir};
use ch05_gpu::libraries::host_driver_files;
use ch05_gpu::mps::{parse_thread_percentage, MpsOptions};
use ch05_gpu::select::{parse_gpus_flag, parse_visible_devices};
use clap::Parser;

/// Run a command in its own root filesystem with exactly the chosen GPUs (plus chapters 2–4).
///
/// With no arguments: a demo on fake NVIDIA devices (or the real ones, on a GPU host).
#[derive(Debug, Parser)]
#[command(name = "ch05-gpu", version, after_help = EXAMPLES)]
struct Cli {
    /// GPUs as docker takes them: all, a count (2), '"device=0,1"', device=GPU-uuid[,capabilities=…].
    /// Without it, NVIDIA_VISIBLE_DEVICES from the environment decides (as the toolkit does).
    #[arg(long, value_name = "SPEC")]
    gpus: Option<String>,

    /// A CDI device, e.g. nvidia.com/gpu=0 (repeatable); specs are read from /etc/cdi and /var/run/cdi.
    #[arg(long = "device", value_name = "CDI_NAME")]
    cdi_devices: Vec<String>,

    /// Extra directories to read CDI specs from.
    #[arg(long, value_name = "DIR")]
    cdi_dir: Vec<PathBuf>,

    /// Share a GPU through MPS: the MPS pipe directory of the host's MPS daemon.
    #[arg(long, value_name = "DIR")]
    mps_pipe: Option<PathBuf>,

    /// Share a GPU through MPS: at most this percentage of its SMs (1–100).
    #[arg(long, value_name = "PERCENT")]
    mps_percentage: Option<String>,

    /// Run the image's ldconfig before the command, instead of setting LD_LIBRARY_PATH.
    #[arg(long)]
    ldconfig: bool,

    /// Look for devices under DIR/dev and DIR/proc/driver/nvidia instead of the host's (a lab's
    /// fake host).
    #[arg(long, value_name = "DIR")]
    host_root: Option<PathBuf>,

    #[command(flatten)]
    root: RootfsArgs,

    #[command(flatten)]
    limits: LimitArgs,

    #[command(flatten)]
    isolation: IsolationArgs,

    /// The command to run, after `--`.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

const EXAMPLES: &str = "Examples:
  sudo ch05-gpu                                                   # the demo
  sudo ch05-gpu --gpus '\"device=0\"' --rootfs / -- nvidia-smi -L  # only GPU 0 (on a GPU host)
  sudo ch05-gpu --gpus all --rootfs ./rootfs --memory 16g -- python3 train.py
  sudo NVIDIA_VISIBLE_DEVICES=1 ch05-gpu --rootfs ./rootfs -- sh
  sudo ch05-gpu --device nvidia.com/gpu=0 --rootfs ./rootfs -- sh  # through CDI";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let cli = Cli::parse();
    let result = if args.len() == 1 {
        demo::run()
    } else {
        run(&cli)
    };
    ch01_process::status::finish("ch05-gpu", result)
}

fn run(cli: &Cli) -> Result<i32> {
    if cli.command.is_empty() {
        bail!(
            "no command given: put it after `--`, e.g. ch05-gpu --gpus all --rootfs ./rootfs -- sh"
        );
    }
    let Some(rootfs) = &cli.root.rootfs else {
        bail!("no root filesystem: give --rootfs DIR (the GPUs' device nodes go into its fresh /dev; --rootfs / uses the host's files)");
    };
    // `extend_spec` refuses this too; checked here as well so that the refusal comes before
    // discovery, which on a host without a GPU would fail first with another reason.
    ld_cache(cli).check_rootfs(rootfs)?;
    let plan = plan_from(cli)?;
    for note in &plan.notes {
        eprintln!("ch05: note: {note}");
    }
    let state = StateDir::create().context("making a state directory under /run/boxlab")?;
    let mut spec = RootfsSpec {
        path: rootfs.clone(),
        readonly: cli.root.read_only,
        ..RootfsSpec::default()
    };
    plan.extend_spec(&mut spec, state.path())?;
    let isolation = with_rootfs_spec(cli.isolation.to_isolation("ch05")?, spec)?;
    let program =
        Program::new(&plan.wrap_argv(&cli.command))?.with_env(&plan.env_over(&base_env()))?;
    let rules = rules_for_plan(&plan);
    let resolved = cli.limits.resolve()?;
    let exit = run_limited_with(
        isolation,
        &resolved,
        cli.limits.cgroup.as_deref(),
        &program,
        "ch05",
        |cgroup| apply_rules(cgroup, &rules).map(|_| ()),
    )
    .with_context(|| format!("running '{}'", program.display()))?;
    drop(state);
    Ok(exit.shell_code())
}

/// The GPU plan the flags ask for: `--gpus` (or NVIDIA_VISIBLE_DEVICES) and `--device` CDI names.
fn plan_from(cli: &Cli) -> Result<GpuPlan> {
    let roots = cli
        .host_root
        .as_deref()
        .map(HostRoots::under)
        .unwrap_or_default();
    let selection = match &cli.gpus {
        Some(spec) => parse_gpus_flag(spec)?,
        None => parse_visible_devices(
            std::env::var("NVIDIA_VISIBLE_DEVICES").ok().as_deref(),
            std::env::var("NVIDIA_DRIVER_CAPABILITIES").ok().as_deref(),
        )?,
    };
    let mps = MpsOptions {
        pipe_dir: cli.mps_pipe.clone(),
        thread_percentage: cli
            .mps_percentage
            .as_deref()
            .map(parse_thread_percentage)
            .transpose()?,
    };
    let options = PlanOptions {
        mps,
        ld_cache: ld_cache(cli),
    };
    let discovery = discover(&roots)?;
    let driver = host_driver_files(&selection.effective_capabilities());
    let mut plan = build_plan(&discovery, &selection, &driver, &options)?;
    if !cli.cdi_devices.is_empty() {
        let mut dirs = vec![PathBuf::from("/etc/cdi"), PathBuf::from("/var/run/cdi")];
        dirs.extend(cli.cdi_dir.iter().cloned());
        let registry = CdiRegistry::load(&dirs);
        let names: Vec<&str> = cli.cdi_devices.iter().map(String::as_str).collect();
        plan.merge(registry.resolve(&names)?.to_plan()?);
    }
    Ok(plan)
}

fn ld_cache(cli: &Cli) -> LdCache {
    if cli.ldconfig {
        LdCache::Ldconfig
    } else {
        LdCache::LdLibraryPath
    }
}

/// What a container starts with before the GPU plan adds to it.
pub fn base_env() -> Vec<String> {
    let mut env = vec![
        format!("PATH={}", ch01_process::exec::DEFAULT_PATH),
        "HOME=/root".to_string(),
    ];
    if let Ok(term) = std::env::var("TERM") {
        env.push(format!("TERM={term}"));
    }
    env
}
