//! `boxlab-check chNN [OPTIONS]`: checks a chapter's lab result on the running system and ends
//! with `N passed, N failed`; exits 1 if any check failed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use labcheck::{ch01, ch02, ch03, ch04, ch05, ch06, ch07, Check, Report};

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
    /// A pre-forked worker left waiting by `ch01-process --serve worker`.
    Ch01 {
        /// The worker's pid, as `--serve` printed it; default: the newest server's worker.
        #[arg(long)]
        pid: Option<i32>,
        /// What `--serve` started.
        #[arg(long, value_enum, default_value_t = ServeKind::Worker)]
        kind: ServeKind,
    },
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
    /// A container left running by ch04-rootfs, from an image or a --rootfs directory.
    Ch04 {
        /// The container's init (PID 1 inside), as a host pid; default: the newest one.
        #[arg(long)]
        pid: Option<i32>,
        /// Where its root came from: `run IMAGE` (an overlay) or `--rootfs DIR`.
        #[arg(long, value_enum, default_value_t = RootFrom::Image)]
        from: RootFrom,
        /// The lab did not ask for --read-only: expect a writable root.
        #[arg(long)]
        writable: bool,
        /// The command the lab left running.
        #[arg(long, default_value = "sleep 600")]
        command: String,
    },
    /// A container given GPUs of a fake host by ch05-gpu, left running.
    Ch05 {
        /// The container's init (PID 1 inside), as a host pid; default: the newest one.
        #[arg(long)]
        pid: Option<i32>,
        /// The GPUs the lab gave (`--gpus '"device=1"'`), by index: 1, or 0,1.
        #[arg(long, value_delimiter = ',', default_value = "1")]
        gpus: Vec<u32>,
        /// The lab's --host-root (its fake host), to tell which GPU a UUID names.
        #[arg(long, value_name = "DIR")]
        host_root: Option<PathBuf>,
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
    /// The micro-VM's snapshot, left by `ch07-microvm --stage snapshot --snapshot-dir DIR`.
    Ch07 {
        /// The snapshot directory.
        #[arg(long, default_value = ch07::DEFAULT_DIR)]
        dir: PathBuf,
        /// The guest's --cmdline in the lab.
        #[arg(long, default_value = "task=crc32")]
        cmdline: String,
        /// The guest's --input in the lab (default: the VMM's own).
        #[arg(long)]
        input: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ServeKind {
    Worker,
    Zygote,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RootFrom {
    Image,
    Rootfs,
}

impl Chapter {
    fn title(&self) -> &'static str {
        match self {
            Chapter::Ch01 { .. } => "ch01: a pre-forked worker (or zygote), waiting for requests",
            Chapter::Ch02 { .. } => "ch02: a command in namespaces of its own",
            Chapter::Ch03 { .. } => "ch03: a command in a cgroup with limits",
            Chapter::Ch04 { .. } => "ch04: a container in a root filesystem of its own",
            Chapter::Ch05 { .. } => "ch05: a container with exactly its GPU",
            Chapter::Ch06 { .. } => "ch06: a container of our OCI runtime, running",
            Chapter::Ch07 { .. } => "ch07: a micro-VM's snapshot, restored",
        }
    }

    fn run(&self) -> anyhow::Result<Vec<Check>> {
        Ok(match self {
            Chapter::Ch01 { pid, kind } => ch01::check(&ch01::Expect {
                pid: *pid,
                kind: match kind {
                    ServeKind::Worker => ch01::Kind::Worker,
                    ServeKind::Zygote => ch01::Kind::Zygote,
                },
            }),
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
            Chapter::Ch04 {
                pid,
                from,
                writable,
                command,
            } => ch04::check(&ch04::Expect {
                pid: *pid,
                from: match from {
                    RootFrom::Image => ch04::From::Image,
                    RootFrom::Rootfs => ch04::From::Rootfs,
                },
                read_only: !writable,
                command: command.split_whitespace().map(str::to_string).collect(),
            }),
            Chapter::Ch05 {
                pid,
                gpus,
                host_root,
            } => ch05::check(&ch05::Expect {
                pid: *pid,
                gpus: gpus.clone(),
                host_root: host_root.clone(),
            }),
            Chapter::Ch06 { id, root } => ch06::check(&ch06::Expect {
                id: id.clone(),
                root: root.clone(),
            }),
            Chapter::Ch07 {
                dir,
                cmdline,
                input,
            } => ch07::check(&ch07::Expect {
                dir: dir.clone(),
                cmdline: cmdline.clone(),
                input: input
                    .as_ref()
                    .map(|i| i.as_bytes().to_vec())
                    .unwrap_or_else(|| ch07_microvm::guest::DEFAULT_INPUT.to_vec()),
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
