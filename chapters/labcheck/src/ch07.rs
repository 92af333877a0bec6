//! Chapter 7's lab result: a snapshot of the micro-VM left on disk
//! (`sudo cargo run -p ch07-microvm -- --stage snapshot --snapshot-dir /tmp/boxlab-ch07-lab`).
//!
//! The files must be there, `vm.state` must parse, and a VM restored from them (by
//! `ch07-microvm`'s own library, as `--stage snapshot` restores) must finish the guest's work with
//! the output an uninterrupted run gives. The files are only read: memory is mapped
//! copy-on-write, so the snapshot can be restored again afterwards.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use ch07_microvm::{GuestConfig, RunOptions, Snapshot, Stop};

use crate::Check;

/// Where the lab's snapshot goes by default.
pub const DEFAULT_DIR: &str = "/tmp/boxlab-ch07-lab";

/// What the lab asked for.
#[derive(Debug, Clone)]
pub struct Expect {
    /// The snapshot directory (`--snapshot-dir`).
    pub dir: PathBuf,
    /// The guest's command line as the lab gave it (`--cmdline`; `ready` is added, as the
    /// snapshot stage adds it).
    pub cmdline: String,
    /// The guest's input (`--input`).
    pub input: Vec<u8>,
}

fn start(expect: &Expect) -> String {
    format!(
        "make it: sudo cargo run -p ch07-microvm -- --stage snapshot --snapshot-dir {}",
        expect.dir.display()
    )
}

/// The guest the lab ran, as `--stage snapshot` runs it (`Snapshot::take` adds `ready`).
fn guest(expect: &Expect) -> GuestConfig {
    GuestConfig {
        cmdline: expect.cmdline.clone(),
        input: expect.input.clone(),
        ..GuestConfig::default()
    }
    .with_ready()
}

/// Runs every check; always returns the same number of checks.
pub fn check(expect: &Expect) -> Vec<Check> {
    let names = [
        "snapshot files",
        "vm.state",
        "restore",
        "restored run",
        "output",
    ];
    let memory = expect.dir.join("memory.bin");
    let state = expect.dir.join("vm.state");
    let (mem_meta, state_meta) = (fs::metadata(&memory), fs::metadata(&state));
    let (Ok(mem_meta), Ok(state_meta)) = (&mem_meta, &state_meta) else {
        let missing: Vec<String> = [(&memory, &mem_meta), (&state, &state_meta)]
            .iter()
            .filter(|(_, m)| m.is_err())
            .map(|(p, _)| p.display().to_string())
            .collect();
        let failed = Check::fail(
            names[0],
            format!("memory.bin and vm.state in {}", expect.dir.display()),
            format!("no {}", missing.join(", no ")),
            start(expect),
        );
        return Check::stop_after(vec![failed], &names, "no snapshot");
    };
    let want_ram = GuestConfig::default().mem_size;
    let files_ok = mem_meta.len() > 0 && mem_meta.len() % 4096 == 0 && state_meta.len() > 0;
    let (mem, state) = (mem_meta, state_meta);
    let mut checks = vec![Check::expect(
        names[0],
        files_ok,
        "memory.bin (whole pages of guest RAM) and a non-empty vm.state",
        format!(
            "memory.bin: {} KiB of guest RAM{} ({} KiB on disk: zero pages are holes), vm.state: {} bytes",
            mem.len() >> 10,
            if mem.len() == want_ram { ", the tiny guest's" } else { "" },
            (mem.blocks() * 512) >> 10,
            state.len()
        ),
        start(expect),
    )];
    if !files_ok {
        return Check::stop_after(checks, &names, "the files are incomplete");
    }
    let snapshot = Snapshot {
        dir: expect.dir.clone(),
    };
    match snapshot.fpu_format() {
        Ok(format) => checks.push(Check::ok(
            names[1],
            format!("parses: boxlab's VM state record, the FPU saved as {format:?}"),
        )),
        Err(e) => {
            checks.push(Check::fail(
                names[1],
                "a vm.state that ch07-microvm can read",
                e,
                format!(
                    "the file is damaged or from another version; {}",
                    start(expect)
                ),
            ));
            return Check::stop_after(checks, &names, "vm.state does not parse");
        }
    }
    let mut vm = match snapshot.restore(false) {
        Ok(vm) => {
            checks.push(Check::ok(
                names[2],
                "a new VM made from memory.bin and vm.state (KVM_CREATE_VM, the registers and devices set back)",
            ));
            vm
        }
        Err(e) => {
            checks.push(Check::fail(
                names[2],
                "a VM restored from the files",
                e,
                format!(
                    "restore on the host that saved it, as root; {}",
                    start(expect)
                ),
            ));
            return Check::stop_after(checks, &names, "not restored");
        }
    };
    let report = match vm.run(&RunOptions::default(), &mut |_| {}) {
        Ok(report) => report,
        Err(e) => {
            checks.push(Check::fail(
                names[3],
                "the restored guest to power off",
                e,
                start(expect),
            ));
            return Check::stop_after(checks, &names, "the restored run failed");
        }
    };
    checks.push(Check::expect(
        names[3],
        report.stop == Stop::PowerOff,
        "the restored guest to run on from its snapshot point and power off",
        format!(
            "{:?} after {} exits, first output {:.2?} after the restore",
            report.stop,
            report.exits,
            report.first_output.unwrap_or_default()
        ),
        start(expect),
    ));
    let output = report.output_text();
    let whole = guest(expect).expected_output();
    let before = whole.len().saturating_sub(output.len());
    let last = output.lines().last().unwrap_or("").to_string();
    let same = !output.is_empty() && output.len() < whole.len() && whole.ends_with(&output);
    checks.push(Check::expect(
        names[4],
        same,
        format!(
            "the rest of an uninterrupted run's output for cmdline '{}' ({} bytes in all)",
            guest(expect).cmdline,
            whole.len()
        ),
        if same {
            format!(
                "{} bytes after the restore, the last {} of {}: the same as an uninterrupted run ({before} before the snapshot); last line '{last}'",
                output.len(),
                output.len(),
                whole.len()
            )
        } else {
            format!("{} bytes after the restore: '{}'", output.len(), output.trim_end())
        },
        "give the checker the lab's --cmdline and --input, or make the snapshot again",
    ));
    checks
}
