//! `boxlab-check chNN [OPTIONS]`: checks a chapter's lab result on the running system and ends
//! with `N passed, N failed`; exits 1 if any check failed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use labcheck::{ch02, ch03, ch06, Check, Report};

#[derive(Debug, Parser)]
#[command(
    name = "boxlab-check",
    about = "Checks a boxlab lab result against the running system (run it as root: sudo scripts/check chNN)"
)]
struct Cli {
    #[command(subcommand)]
    chapter: Chapter,
}

#[derive(Debug, Subcommand)]
enum Chapter {
    /// A command left running in its own namespaces by ch02-namespaces.
    Ch02 {
        /// The container's init (PID 1 inside), as a host pid; default: the newest one.
        #[arg(long)]
        pid: Option<i32>,
        /// The hostname the lab set.
        #[arg(long, default_value = "lab")]
        hostname: String,
    },
    /// A command left running in a cgroup with limits by ch03-cgroups.
    Ch03 {
        /// The cgroup's path (`--cgroup` of ch03-cgroups).
        #[arg(long, default_value = "boxlab/lab")]
        cgroup: String,
        /// The memory limit the lab set (docker's spelling: 64m).
        #[arg(long, default_value = "64m")]
        memory: String,
        /// The pids limit the lab set.
        #[arg(long, default_value_t = 20)]
        pids: u64,
    },
    /// A container of ch06-oci, created and started, left running.
    Ch06 {
        /// The container's id.
        #[arg(long, default_value = "mybox")]
        id: String,
        /// The runtime's state root (ch06-oci --root).
        #[arg(long, default_value = ch06_oci::DEFAULT_ROOT)]
        root: PathBuf,
    },
}

impl Chapter {
    fn title(&self) -> &'static str {
        match self {
            Chapter::Ch02 { .. } => "ch02: a command in namespaces of its own",
            Chapter::Ch03 { .. } => "ch03: a command in a cgroup with limits",
            Chapter::Ch06 { .. } => "ch06: a container of our OCI runtime, running",
        }
    }

    fn run(&self) -> anyhow::Result<Vec<Check>> {
        Ok(match self {
            Chapter::Ch02 { pid, hostname } => ch02::check(&ch02::Expect {
                pid: *pid,
                hostname: hostname.clone(),
            }),
            Chapter::Ch03 {
                cgroup,
                memory,
                pids,
            } => ch03::check(&ch03::Expect {
                cgroup: cgroup.clone(),
                memory: ch03_cgroups::quantity::parse_docker_bytes(memory)
                    .with_context(|| format!("--memory {memory}"))?,
                pids: *pids,
            }),
            Chapter::Ch06 { id, root } => ch06::check(&ch06::Expect {
                id: id.clone(),
                root: root.clone(),
            }),
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    println!("boxlab-check {}", cli.chapter.title());
    let checks = if nix::unistd::geteuid().is_root() {
        match cli.chapter.run() {
            Ok(checks) => checks,
            Err(e) => {
                eprintln!("boxlab-check: error: {e:#}");
                return ExitCode::from(2);
            }
        }
    } else {
        vec![Check::fail(
            "root",
            "to run as root (other processes' namespaces, roots and cgroups are readable only by root)",
            format!("uid {}", nix::unistd::geteuid()),
            "sudo scripts/check CHAPTER",
        )]
    };
    let report = Report { checks };
    for check in &report.checks {
        println!("{check}");
    }
    println!("{}", report.summary());
    if report.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
