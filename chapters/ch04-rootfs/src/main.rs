//! `ch04-rootfs`: run a command in namespaces, a cgroup and a root filesystem of its own; and
//! the image tools that make such filesystems (`unpack` so far).

mod demo;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ch01_process::exec::Program;
use ch02_namespaces::args::IsolationArgs;
use ch03_cgroups::args::LimitArgs;
use ch03_cgroups::run::run_limited;
use ch04_rootfs::with_rootfs;
use clap::{Parser, Subcommand};

/// Run a command in its own root filesystem (plus chapter 2's namespaces and chapter 3's limits).
///
/// With no arguments: a demo that builds a tiny busybox root and runs a shell in it.
#[derive(Debug, Parser)]
#[command(name = "ch04-rootfs", version, args_conflicts_with_subcommands = true, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    verb: Option<Verb>,

    /// The directory that becomes the container's `/`.
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,

    /// Make `/` read-only inside (docker's --read-only).
    #[arg(long)]
    read_only: bool,

    #[command(flatten)]
    limits: LimitArgs,

    #[command(flatten)]
    isolation: IsolationArgs,

    /// The command to run, after `--`; it is looked up in the new root's PATH.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Apply one image layer (tar, tar.gz or tar.zst), whiteouts included, onto a directory.
    Unpack {
        /// The layer file.
        layer: PathBuf,
        /// The directory to apply it to (created if missing).
        dir: PathBuf,
        /// Refuse the layer unless its sha256 is this ("sha256:<hex>").
        #[arg(long)]
        digest: Option<String>,
        /// Create device nodes the layer contains (root only; skipped otherwise).
        #[arg(long)]
        devices: bool,
    },
}

const EXAMPLES: &str = "Examples:
  sudo ch04-rootfs                                              # the demo
  sudo ch04-rootfs --rootfs ./rootfs -- sh -c 'ls /; ps'        # a shell in its own root
  sudo ch04-rootfs --rootfs ./rootfs --read-only --memory 64m -- sh
  ch04-rootfs unpack layer.tar.gz ./rootfs                      # apply a layer, whiteouts and all";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let cli = Cli::parse();
    let result = match (&cli.verb, args.len()) {
        (Some(verb), _) => run_verb(verb),
        (None, 1) => demo::run(),
        (None, _) => run_command(&cli),
    };
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(err) => {
            eprintln!("ch04-rootfs: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_command(cli: &Cli) -> Result<i32> {
    if cli.command.is_empty() {
        bail!("no command given: put it after `--`, e.g. ch04-rootfs --rootfs ./rootfs -- sh");
    }
    let Some(rootfs) = &cli.rootfs else {
        bail!(
            "no root filesystem: give --rootfs DIR (chapter 3 runs commands on the host's files)"
        );
    };
    let resolved = cli.limits.resolve()?;
    let program = Program::new(&cli.command)?;
    let isolation = with_rootfs(cli.isolation.to_isolation("ch04")?, rootfs, cli.read_only)?;
    let exit = run_limited(
        isolation,
        &resolved,
        cli.limits.cgroup.as_deref(),
        &program,
        "ch04",
    )
    .with_context(|| format!("running '{}' in {}", program.display(), rootfs.display()))?;
    Ok(exit.shell_code())
}

fn run_verb(verb: &Verb) -> Result<i32> {
    match verb {
        Verb::Unpack {
            layer,
            dir,
            digest,
            devices,
        } => demo::unpack_verb(layer, dir, digest.clone(), *devices),
    }
}
