//! `cargo run -p bench --release [-- --quick] [--out DIR]`: the seed's comparison table —
//! VM vs container vs serverless — measured on this machine, printed row by row with the
//! seed's claim, the measured value and a verdict, and written as markdown and SVG charts for
//! the book's "Reproducing the table" chapter.
//!
//! `--quick` is the CI smoke run (a few iterations, seconds) and writes to
//! `target/boxlab-report/` unless `--out` says otherwise; the full run writes to
//! `book/src/generated/`. Containers and VMs need root; without it their rows say so.

mod report;

use std::fs;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use labkit::ScratchDir;

use report::{container, gpu, machine, peers, process, sizes, table, vm, Results};

#[derive(Parser, Debug)]
#[command(
    name = "bench",
    about = "boxlab's report: the seed's VM / container / serverless table, measured here"
)]
struct Cli {
    /// CI smoke run: a few iterations of everything, in seconds.
    #[arg(long)]
    quick: bool,
    /// Where to write table.md, details.md and the SVG charts (default: book/src/generated for
    /// a full run, target/boxlab-report for --quick).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(subcommand)]
    probe: Option<Probe>,
}

/// Helpers the report runs as separate processes of this binary (see vm.rs and peers.rs).
#[derive(Subcommand, Debug)]
enum Probe {
    /// One tiny-guest VM in a fresh process; prints its memory figures.
    #[command(hide = true)]
    VmProbe,
    /// Times `run` of a bundle by each runtime, paired; prints one figure a line.
    #[command(hide = true)]
    PeersProbe {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// How many iterations of each measurement.
struct Iterations {
    process_cold: usize,
    process_warm: usize,
    container: usize,
    vm: usize,
    linux: usize,
    peers: usize,
}

const QUICK: Iterations = Iterations {
    process_cold: 20,
    process_warm: 200,
    container: 5,
    vm: 5,
    linux: 1,
    peers: 3,
};

const FULL: Iterations = Iterations {
    process_cold: 300,
    process_warm: 5000,
    container: 100,
    vm: 200,
    linux: 10,
    peers: 50,
};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.probe {
        Some(Probe::VmProbe) => return vm::probe(),
        Some(Probe::PeersProbe { args }) => return peers::probe(&args),
        None => {}
    }
    let (mode, n) = if cli.quick {
        ("quick", QUICK)
    } else {
        ("full", FULL)
    };
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest.parent().unwrap_or(&manifest).to_path_buf();
    let out = cli.out.unwrap_or_else(|| {
        if cli.quick {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace.join("target"))
                .join("boxlab-report")
        } else {
            workspace.join("book/src/generated")
        }
    });
    eprintln!("boxlab report ({mode} run): the seed's table, measured on this machine");
    // The machine's line is the table's first line (stdout); not repeated here.
    let machine = machine::Machine::describe(mode);

    let process = process::measure(n.process_cold, n.process_warm);
    let container = container::measure(n.container);
    let vm = vm::measure(n.vm, n.linux);

    // The peers' bundle, whose rootfs is also the container image measured for its size.
    let scratch = ScratchDir::new("report").context("a scratch directory")?;
    let bundle = bench::peers::bundle(&scratch.join("bundle"), &["/bin/true"], false);
    let rootfs = bundle
        .as_ref()
        .map(|b| b.join("rootfs"))
        .map_err(Clone::clone);
    let sizes = sizes::measure(rootfs.as_deref().map_err(Clone::clone));
    let peers = match &bundle {
        Ok(bundle) => peers::measure(bundle, &scratch.join("peers"), n.peers),
        Err(why) => peers::Peers {
            runtimes: Err(why.clone()),
            qemu: Err(why.clone()),
        },
    };
    drop(scratch);

    let results = Results {
        machine,
        process,
        container,
        vm,
        sizes,
        gpu: gpu::host_gpus(),
        peers,
    };
    table::print(&results);

    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    fs::write(out.join("table.md"), table::markdown(&results))?;
    fs::write(out.join("details.md"), table::details(&results))?;
    let charts = report::charts::write_all(&results, &out)?;
    println!(
        "\nwrote table.md, details.md, {} to {}",
        charts.join(", "),
        out.display()
    );
    Ok(())
}
