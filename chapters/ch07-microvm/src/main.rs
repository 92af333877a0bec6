//! `ch07-microvm`: run a micro-VM. With no arguments, the chapter's demo: every stage, the
//! exits as they happen, timings, memory, and a snapshot restored into a new VM.

mod demo;
mod terminal;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ch07_microvm::exits::{ExitEvent, RunOptions, RunReport};
use ch07_microvm::layout::TINY_MEM_SIZE;
use ch07_microvm::{initramfs, GuestConfig, LinuxConfig, MicroVm, Snapshot};
use clap::{Parser, Subcommand, ValueEnum};

/// A KVM micro-VM built with the rust-vmm crates: real mode, long mode, a tiny guest of our
/// own, a Linux kernel, snapshot/restore.
///
/// With no arguments: the chapter's demo (needs root for /dev/kvm).
#[derive(Debug, Parser)]
#[command(name = "ch07-microvm", version, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Which stage to run.
    #[arg(long, value_enum)]
    stage: Option<Stage>,

    /// The guest's command line (tiny guest: task=crc32|upper|echo, ready, fault=mmio|triple|spin).
    #[arg(long)]
    cmdline: Option<String>,

    /// The tiny guest's input (passed as its initrd).
    #[arg(long)]
    input: Option<String>,

    /// Guest memory in MiB.
    #[arg(long, value_name = "MIB")]
    mem: Option<u64>,

    /// Try breaking it: remove this guest-physical page (below 2 MiB) from the page tables.
    #[arg(long, value_name = "ADDR", value_parser = parse_addr)]
    unmap: Option<u64>,

    /// Give the tiny guest's VM an in-kernel PIC/IOAPIC/LAPIC and PIT (as the Linux VM has).
    #[arg(long)]
    irqchip: bool,

    /// Print every exit the VMM handles.
    #[arg(long)]
    trace: bool,

    /// Stop the guest after this many seconds [default: 10, none for a console session].
    #[arg(long, value_name = "SECONDS")]
    time_limit: Option<f64>,

    /// Linux: the kernel (bzImage or ELF vmlinux); implies --stage linux.
    #[arg(long, value_name = "FILE")]
    kernel: Option<PathBuf>,

    /// Linux: the initramfs.
    #[arg(long, value_name = "FILE")]
    initrd: Option<PathBuf>,

    /// Linux: ask the initramfs's /init for a shell on the serial console (adds boxlab.shell
    /// to the kernel command line); `exit` in it powers the VM off.
    #[arg(long)]
    shell: bool,

    /// Linux: boot even where the host's KVM cannot run a kernel (PVM, no vmx/svm).
    #[arg(long)]
    force: bool,

    /// Snapshot stage: keep the snapshot in this directory (default: a temporary one, removed).
    #[arg(long, value_name = "DIR")]
    snapshot_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build the stage-4 initramfs: a static busybox and an /init that prints a marker and
    /// reboots.
    MakeInitramfs {
        #[arg(long, default_value = "/bin/busybox")]
        busybox: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Stage {
    RealMode,
    LongMode,
    Guest,
    Linux,
    Snapshot,
}

const EXAMPLES: &str = "Examples:
  sudo ch07-microvm                                   # the demo: all stages
  sudo ch07-microvm --stage real-mode --trace
  sudo ch07-microvm --stage guest --cmdline 'task=upper' --input 'make me loud'
  sudo ch07-microvm --stage guest --cmdline task=echo  # type to the guest; Ctrl-D ends it
  sudo ch07-microvm --stage guest --unmap 0x1ff000    # try breaking it: a triple fault
  sudo ch07-microvm --stage snapshot
  sudo ch07-microvm --kernel vmlinuz --initrd initramfs.cpio   # hardware KVM only
  sudo ch07-microvm --kernel vmlinuz --initrd initramfs.cpio --shell   # a shell on ttyS0

A console session (--kernel, or --cmdline task=echo): stdin goes to the guest's serial port,
a terminal in raw mode (Ctrl-C goes to the guest; Ctrl-A x leaves the VM).
  ch07-microvm make-initramfs --busybox /bin/busybox -o initramfs.cpio";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // One line, like every other error of this program.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("bad arguments");
            eprintln!(
                "ch07-microvm: {} (see --help)",
                first.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    let result = if args.len() == 1 {
        demo::run()
    } else {
        run(&cli)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if ch07_microvm::serial::echo_mid_line() {
                println!(); // end the guest's unfinished line first
            }
            eprintln!("ch07-microvm: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the guest to its snapshot point, saves it to `dir`, drops it, restores and finishes it.
fn save_and_restore(
    guest: &GuestConfig,
    dir: &std::path::Path,
    opts: RunOptions,
    observer: &mut dyn FnMut(&ExitEvent),
) -> Result<RunReport> {
    // The first VM is gone once `take_with` returns.
    let taken = Snapshot::take_with(guest, dir, &opts, observer)?;
    eprintln!(
        "\nch07-microvm: {:?}: saved to {}; the first VM is gone",
        taken.first.stop,
        dir.display()
    );
    Ok(taken.snapshot.restore(guest.echo)?.run(&opts, observer)?)
}

fn parse_addr(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let parsed = match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|e| format!("{s:?} is not an address ({e}); write e.g. 0x1ff000"))
}

fn run(cli: &Cli) -> Result<()> {
    if let Some(Command::MakeInitramfs { busybox, output }) = &cli.command {
        let size = initramfs::build(busybox, output)?;
        println!(
            "wrote {} ({size} bytes): /init prints {:?}, starts a shell if the kernel command line has {}, and reboots",
            output.display(),
            initramfs::INIT_MARKER,
            initramfs::SHELL_WORD
        );
        return Ok(());
    }
    let stage = match (cli.stage, &cli.kernel) {
        (Some(Stage::Linux), None) => {
            bail!("--stage linux needs --kernel FILE (see scripts/fetch-kernel)")
        }
        (Some(stage), _) => stage,
        (None, Some(_)) => Stage::Linux,
        (None, None) => Stage::Guest,
    };
    let console_session = match stage {
        Stage::Linux => true,
        Stage::Guest => cli
            .cmdline
            .as_deref()
            .is_some_and(|c| c.split(' ').any(|w| w == "task=echo")),
        _ => false,
    };
    let time_limit = match cli.time_limit {
        Some(s) if s > 0.0 && s.is_finite() => Some(Duration::from_secs_f64(s)),
        Some(s) => bail!("--time-limit {s}: give a positive number of seconds"),
        None if console_session => None,
        None => Some(Duration::from_secs(10)),
    };
    let mut opts = RunOptions {
        time_limit,
        ..RunOptions::default()
    };
    let trace = cli.trace;
    let mut observer = |event: &ExitEvent| {
        if trace {
            eprintln!("  exit: {event}");
        }
    };
    let mut guest = GuestConfig {
        echo: !trace,
        irqchip: cli.irqchip,
        unmap: cli.unmap,
        ..GuestConfig::default()
    };
    if let Some(cmdline) = &cli.cmdline {
        guest.cmdline = cmdline.clone();
    }
    if let Some(input) = &cli.input {
        guest.input = input.clone().into_bytes();
    }
    if let Some(mib) = cli.mem {
        guest.mem_size = mib << 20;
    } else {
        guest.mem_size = TINY_MEM_SIZE;
    }

    let report = match stage {
        Stage::RealMode | Stage::LongMode => {
            opts.halt_ends_run = true;
            let mut vm = if stage == Stage::RealMode {
                MicroVm::real_mode()?
            } else {
                MicroVm::long_mode()?
            };
            vm.set_echo(!trace);
            vm.run(&opts, &mut observer)?
        }
        Stage::Guest => {
            let vm = MicroVm::tiny_guest(&guest)?;
            run_console(vm, console_session, &opts, &mut observer)?
        }
        Stage::Linux => {
            let kernel = cli.kernel.clone().context("--kernel FILE")?;
            let mut config = LinuxConfig::new(kernel);
            config.initrd = cli.initrd.clone();
            config.force = cli.force;
            config.echo = !trace;
            if let Some(cmdline) = &cli.cmdline {
                config.cmdline = cmdline.clone();
            }
            if cli.shell {
                config.cmdline.push(' ');
                config.cmdline.push_str(initramfs::SHELL_WORD);
            }
            if let Some(mib) = cli.mem {
                config.mem_size = mib << 20;
            }
            run_console(MicroVm::linux(&config)?, true, &opts, &mut observer)?
        }
        Stage::Snapshot => return snapshot(cli, guest, opts, &mut observer),
    };
    if trace {
        print!("{}", report.output_text());
    }
    eprintln!(
        "ch07-microvm: {:?} after {} exits; first output {}, end {:.2?} after VM creation",
        report.stop,
        report.exits,
        report
            .first_output
            .map(|d| format!("{d:.2?}"))
            .unwrap_or("never".into()),
        report.elapsed
    );
    Ok(())
}

// ANCHOR: console_session
/// Runs `vm`; for a console session with our stdin on its serial port (raw mode on a terminal,
/// restored when this returns, whichever way).
fn run_console(
    mut vm: MicroVm,
    console_session: bool,
    opts: &RunOptions,
    observer: &mut dyn FnMut(&ExitEvent),
) -> Result<RunReport> {
    let _raw = if console_session {
        let raw = terminal::RawMode::enable()?;
        terminal::forward_stdin(vm.input(), raw.is_some());
        raw
    } else {
        None
    };
    Ok(vm.run(opts, observer)?)
}
// ANCHOR_END: console_session

fn snapshot(
    cli: &Cli,
    guest: GuestConfig,
    opts: RunOptions,
    observer: &mut dyn FnMut(&ExitEvent),
) -> Result<()> {
    let (dir, temporary) = match &cli.snapshot_dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("boxlab-ch07-snapshot-{}", std::process::id())),
            true,
        ),
    };
    let result = save_and_restore(&guest, &dir, opts, observer);
    if temporary {
        // Also when saving failed half way: a temporary snapshot never outlives the command.
        let _ = std::fs::remove_dir_all(&dir);
    }
    let report = result?;
    eprintln!(
        "ch07-microvm: restored VM: {:?}; first output {:.2?} after the restore began",
        report.stop,
        report.first_output.unwrap_or_default()
    );
    Ok(())
}
