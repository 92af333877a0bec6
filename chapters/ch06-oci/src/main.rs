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
//! ch06-oci exec ID [--detach] -- CMD...      run another process inside
//! ch06-oci pause ID | resume ID              freeze, thaw
//! ch06-oci events ID [--stats]               cgroup statistics
//! ch06-oci features                          what this runtime supports
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
    /// A unix socket to receive the console's pty master (with process.terminal).
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
            ports: Vec::new(), // runc's command line has none: see the builder
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
    /// Run another process in a running container.
    Exec {
        /// A JSON OCI process (what containerd passes); replaces the command, --env and --cwd.
        #[arg(short, long)]
        process: Option<PathBuf>,
        /// Return at once, leaving the process running.
        #[arg(short, long)]
        detach: bool,
        /// Write the process's host pid here.
        #[arg(long)]
        pid_file: Option<PathBuf>,
        /// Add (or replace) an environment variable: K=V.
        #[arg(short, long)]
        env: Vec<String>,
        /// The working directory inside the container.
        #[arg(long)]
        cwd: Option<PathBuf>,
        /// Give the process a terminal (runc's -t).
        #[arg(short, long)]
        tty: bool,
        /// A unix socket to receive the terminal's pty master (with --tty and --detach).
        #[arg(long)]
        console_socket: Option<PathBuf>,
        id: String,
        /// The command and its arguments.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Freeze every process of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Print the container's cgroup statistics as JSON.
    Events {
        /// Print them once and exit.
        #[arg(long)]
        stats: bool,
        /// How often to print them (5s, 500ms, 1m).
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// Print what this runtime supports, as JSON.
    Features,
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
    // The verbs that run code of ours inside a container first leave the binary on disk
    // behind (CVE-2019-5736): see `ch06_oci::sealed`.
    if matches!(
        cli.verb,
        Verb::Create(_) | Verb::Run { .. } | Verb::Exec { .. }
    ) {
        // The mount point of the read-only bind goes in the state root (ours, and made anyway).
        let _ = std::fs::create_dir_all(&cli.root);
        ch06_oci::sealed::reexec_from_sealed_copy(&cli.root)?;
        log::debug("running from a read-only view or a sealed copy of the runtime binary");
    }
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
        Verb::Exec {
            process,
            detach,
            pid_file,
            env,
            cwd,
            tty,
            console_socket,
            id,
            command,
        } => {
            let opts = verbs::exec::ExecOptions {
                process,
                detach,
                pid_file,
                env,
                cwd,
                args: command,
                tty,
                console_socket,
            };
            return Ok(verbs::exec::exec(&store, &id, &opts)?);
        }
        Verb::Pause { id } => verbs::pause::pause(&store, &id)?,
        Verb::Resume { id } => verbs::pause::resume(&store, &id)?,
        Verb::Events {
            stats,
            interval,
            id,
        } => {
            if stats {
                println!("{}", verbs::events::stats(&store, &id)?);
            } else {
                let interval = verbs::events::parse_interval(&interval)?;
                verbs::events::watch(&store, &id, interval)?;
            }
        }
        Verb::Features => println!(
            "{}",
            serde_json::to_string_pretty(&verbs::features::features())?
        ),
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
