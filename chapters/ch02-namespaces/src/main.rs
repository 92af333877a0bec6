//! `ch02-namespaces`: run a command in new namespaces, or (no arguments) watch it being done.

mod demo;

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ch01_process::exec::Program;
use ch02_namespaces::args::IsolationArgs;
use ch02_namespaces::view;
use clap::Parser;

/// Run a command in new Linux namespaces, under a real PID 1.
///
/// With no arguments: a step-by-step demo of every namespace, seen from inside and outside.
#[derive(Debug, Parser)]
#[command(name = "ch02-namespaces", version, after_help = EXAMPLES)]
struct Cli {
    #[command(flatten)]
    isolation: IsolationArgs,

    /// The command to run, after `--`.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

const EXAMPLES: &str = "Examples:
  sudo ch02-namespaces                                   # the demo
  sudo ch02-namespaces -- ps ax                          # PID 1 is ours; no host processes
  sudo ch02-namespaces --hostname lab -- hostname        # prints: lab
  ch02-namespaces --rootless -- id                       # without root: uid=0(root) inside
  sudo ch02-namespaces --net veth -- ip addr             # eth0 with 10.241.x.2/30
  sudo ch02-namespaces -p 8080:80 -- /path/to/server     # host 127.0.0.1:8080 -> container :80";

fn main() -> ExitCode {
    // Hidden helper modes: the binary re-executes itself as the demo's and the tests' workload,
    // so no shell or rootfs is needed.
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("__view") => {
            print!("{}", view::capture().to_lines());
            return ExitCode::SUCCESS;
        }
        Some("__serve") => {
            return demo::serve_once(args.get(2).map(String::as_str).unwrap_or("80"))
        }
        _ => {}
    }
    let cli = Cli::parse();
    let result = if args.len() == 1 {
        demo::run()
    } else {
        run_command(&cli)
    };
    ch01_process::status::finish("ch02-namespaces", result)
}

fn run_command(cli: &Cli) -> Result<i32> {
    if cli.command.is_empty() {
        bail!(
            "no command given: put it after `--`, e.g. ch02-namespaces --hostname lab -- hostname"
        );
    }
    let isolation = cli.isolation.to_isolation("ch02")?;
    let program = Program::new(&cli.command)?;
    let child = isolation
        .spawn(&program)
        .with_context(|| format!("starting '{}'", program.display()))?;
    // Ctrl-C or a `kill` of the runtime goes to init, which passes it on; we stay to clean up.
    ch02_namespaces::init::forward_signals_to(child.pid());
    let status = child.wait()?;
    if cli.isolation.verbose {
        eprintln!("ch02: '{}' {status}", program.display());
    }
    Ok(status.shell_code())
}
