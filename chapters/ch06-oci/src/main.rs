//! `ch06-oci`: an OCI runtime with runc's command line.
//!
//! ```text
//! ch06-oci spec [--rootless]                 write a config.json to start from
//! ch06-oci create --bundle DIR ID            build the container; its command waits
//! ch06-oci start ID                          ... and now runs
//! ch06-oci run --bundle DIR [--detach] ID    both (and wait, unless --detach)
//! ch06-oci state ID | list | ps ID           look
//! ch06-oci kill ID [SIGNAL] [--all]          signal
//! ch06-oci delete [--force] ID               remove
//! ```

mod demo;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use ch06_oci::log::{self, LogConfig, LogFormat};
use ch06_oci::state::Store;
use ch06_oci::verbs::{self, create::CreateOptions, Globals};
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "ch06-oci",
    version,
    about = "boxlab chapter 6: an OCI runtime with runc's command line, driving chapters 2-5"
)]
struct Cli {
    /// Where container state lives.
    #[arg(long, global = true, default_value = ch06_oci::DEFAULT_ROOT)]
    root: PathBuf,
    /// Also write errors (and --debug lines) to this file.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Format of the --log file: text or json (containerd uses json).
    #[arg(long, global = true, default_value = "text")]
    log_format: LogFormat,
    /// Log each set-up step.
    #[arg(long, global = true)]
    debug: bool,
    /// Use systemd to make cgroups (not supported: an error at create).
    #[arg(long, global = true)]
    systemd_cgroup: bool,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(clap::Args, Debug)]
struct CreateArgs {
    /// The bundle: a directory with config.json and the root filesystem.
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Write the container's init pid here.
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// A unix socket to receive the console's pty master (not supported yet).
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// Accepted for runc compatibility: no session keyring is ever made.
    #[arg(long)]
    no_new_keyring: bool,
    id: String,
}

impl CreateArgs {
    fn options(&self) -> CreateOptions {
        CreateOptions {
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
        }
    }
}

#[derive(Subcommand, Debug)]
enum Verb {
    /// Write a default config.json into the bundle directory.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// A config for a container without root on the host.
        #[arg(long)]
        rootless: bool,
    },
    /// Create a container; its command waits until `start`.
    Create(CreateArgs),
    /// Start a created container.
    Start { id: String },
    /// Create and start a container, and wait for it (unless --detach).
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return at once, leaving the container running.
        #[arg(short, long)]
        detach: bool,
    },
    /// Print the OCI state of a container as JSON.
    State { id: String },
    /// Send a signal (default SIGTERM) to a container.
    Kill {
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
        /// Send it to every process in the container's cgroup.
        #[arg(short, long)]
        all: bool,
    },
    /// Delete a container's processes, cgroup and state.
    Delete {
        /// Kill a running container first.
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// List the containers.
    List {
        /// table or json
        #[arg(short, long, default_value = "table")]
        format: String,
        /// Only the ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// List the processes of a container.
    Ps {
        /// table or json
        #[arg(short, long, default_value = "table")]
        format: String,
        id: String,
    },
}

fn main() -> ExitCode {
    if std::env::args().len() == 1 {
        return ch01_process::status::finish("ch06-oci", demo::run());
    }
    let cli = Cli::parse();
    log::init(LogConfig {
        file: cli.log.clone(),
        format: cli.log_format,
        debug: cli.debug,
    });
    match run(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            log::error(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<i32> {
    let store = Store::new(&cli.root);
    let globals = Globals {
        systemd_cgroup: cli.systemd_cgroup,
    };
    match cli.verb {
        Verb::Spec { bundle, rootless } => verbs::spec::write_spec(&bundle, rootless)?,
        Verb::Create(args) => {
            verbs::create::create(&store, &args.id, &args.options(), &globals)?;
        }
        Verb::Start { id } => verbs::start::start(&store, &id)?,
        Verb::Run { create, detach } => {
            return Ok(verbs::run::run(
                &store,
                &create.id,
                &create.options(),
                &globals,
                detach,
            )?)
        }
        Verb::State { id } => println!("{}", verbs::state::state_json(&store, &id)?),
        Verb::Kill { id, signal, all } => {
            let signal = verbs::kill::parse_signal(&signal)?;
            verbs::kill::kill(&store, &id, signal, all)?;
        }
        Verb::Delete { force, id } => verbs::delete::delete(&store, &id, force)?,
        Verb::List { format, quiet } => {
            let json = output_format(&format)?;
            print!(
                "{}",
                verbs::list::render(&verbs::list::list(&store), json, quiet)
            );
        }
        Verb::Ps { format, id } => {
            let json = output_format(&format)?;
            println!("{}", verbs::ps::ps(&store, &id, json)?.trim_end());
        }
    }
    Ok(0)
}

fn output_format(format: &str) -> Result<bool> {
    match format {
        "json" => Ok(true),
        "table" => Ok(false),
        other => anyhow::bail!("unknown format '{other}': use table or json"),
    }
}
