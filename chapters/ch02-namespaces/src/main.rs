//! `ch02-namespaces`: run a command in new namespaces, or (no arguments) watch it being done.

mod demo;

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use ch01_process::exec::Program;
use ch02_namespaces::{parse_list, view, IdMap, Isolation, Namespace, Network, PortMapping};
use clap::{Parser, ValueEnum};

/// Run a command in new Linux namespaces, under a real PID 1.
///
/// With no arguments: a step-by-step demo of every namespace, seen from inside and outside.
#[derive(Debug, Parser)]
#[command(name = "ch02-namespaces", version, after_help = EXAMPLES)]
struct Cli {
    /// Namespaces to create, comma-separated: user, mnt, uts, ipc, net, pid, cgroup, time.
    /// Default: mnt,uts,ipc,net,pid,cgroup (as docker run), plus user when not root.
    #[arg(long, value_name = "LIST")]
    ns: Option<String>,

    /// Add a user namespace in which you are root (works without root on the host).
    #[arg(long)]
    rootless: bool,

    /// Hostname inside (needs uts).
    #[arg(long)]
    hostname: Option<String>,

    /// uid map INSIDE:OUTSIDE:COUNT[,…] (needs user). Default: your uid is root inside.
    #[arg(long, value_name = "MAP")]
    uid_map: Option<String>,

    /// gid map INSIDE:OUTSIDE:COUNT[,…] (needs user). Default: your gid is root's group inside.
    #[arg(long, value_name = "MAP")]
    gid_map: Option<String>,

    /// Network inside a net namespace: loopback only, or a veth pair to the host (root).
    #[arg(long, value_enum, default_value_t = NetworkArg::Loopback)]
    net: NetworkArg,

    /// Publish a TCP port: [HOST_IP:]HOST_PORT:CONTAINER_PORT (root; implies --net veth).
    #[arg(short, long, value_name = "MAPPING")]
    publish: Option<String>,

    /// Print each set-up step on stderr as it happens.
    #[arg(short, long)]
    verbose: bool,

    /// The command to run, after `--`.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum NetworkArg {
    Loopback,
    Veth,
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
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(err) => {
            eprintln!("ch02-namespaces: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_command(cli: &Cli) -> Result<i32> {
    if cli.command.is_empty() {
        bail!(
            "no command given: put it after `--`, e.g. ch02-namespaces --hostname lab -- hostname"
        );
    }
    let isolation = isolation_from(cli)?;
    let program = Program::new(&cli.command)?;
    let child = isolation
        .spawn(&program)
        .with_context(|| format!("starting '{}'", program.display()))?;
    // Ctrl-C or a `kill` of the runtime goes to init, which passes it on; we stay to clean up.
    ch02_namespaces::init::forward_signals_to(child.pid());
    let status = child.wait()?;
    if cli.verbose {
        eprintln!("ch02: '{}' {status}", program.display());
    }
    Ok(status.shell_code())
}

fn isolation_from(cli: &Cli) -> Result<Isolation> {
    let root = nix::unistd::geteuid().is_root();
    let mut isolation = match &cli.ns {
        Some(list) => Isolation::new(parse_list(list)?),
        None if root => Isolation::container_defaults(),
        None => {
            if !cli.rootless {
                eprintln!("ch02: not root, so adding a user namespace (rootless mode; say --rootless to silence this)");
            }
            Isolation::rootless()
        }
    };
    if cli.rootless {
        isolation = isolation.with_namespace(Namespace::User);
    }
    if let Some(name) = &cli.hostname {
        isolation = isolation.hostname(name);
    }
    if let Some(map) = &cli.uid_map {
        isolation = isolation.uid_maps(IdMap::parse_list("uid", map)?);
    }
    if let Some(map) = &cli.gid_map {
        isolation = isolation.gid_maps(IdMap::parse_list("gid", map)?);
    }
    if let NetworkArg::Veth = cli.net {
        isolation = isolation.network(Network::Veth);
    }
    if let Some(spec) = &cli.publish {
        isolation = isolation.publish(spec.parse::<PortMapping>()?);
    }
    if cli.verbose {
        isolation = isolation.observe(Arc::new(|step: &str| {
            let _ = writeln!(std::io::stderr(), "ch02: {step}");
        }));
    }
    Ok(isolation)
}
