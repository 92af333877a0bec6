//! The seed's table, row by row: what the seed claims, what was measured here, and a verdict in
//! words. Printed on the terminal and written as markdown for the book.

use std::fmt::Write as _;

use super::measured::{not_measurable, Measured};
use super::stats::{bytes, ms, number, Summary};
use super::Results;

/// One cell of the seed's table, with its measurement.
pub struct Cell {
    pub column: &'static str,
    pub claim: &'static str,
    pub measured: String,
    pub verdict: String,
}

/// One row of the seed's table (a property, three columns).
pub struct Row {
    pub property: &'static str,
    pub cells: Vec<Cell>,
}

/// A figure or its reason, as text.
fn show<T>(m: &Measured<T>, f: impl Fn(&T) -> String) -> String {
    match m {
        Ok(v) => f(v),
        Err(why) => not_measurable(why),
    }
}

/// "400× faster than one minute".
fn times_under(claim_ms: f64, measured_ms: f64, claim: &str) -> String {
    let factor = claim_ms / measured_ms;
    if factor >= 10.0 {
        format!("about {}× below {claim}", number(factor))
    } else if factor >= 1.0 {
        format!("within {claim}")
    } else {
        format!("{}× above {claim}", number(1.0 / factor))
    }
}

pub fn rows(r: &Results) -> Vec<Row> {
    vec![
        isolation(r),
        startup(r),
        image_size(r),
        overhead(r),
        gpu(r),
        good_for(r),
    ]
}

/// What QEMU's boot of the same Linux kernel adds to the VM verdict, when it was measured.
fn qemu_note(r: &Results, pvm: bool) -> String {
    match &r.peers.qemu {
        Ok(qemu) if pvm => format!(
            " QEMU's -M microvm boots a stock Debian kernel and initramfs to power-off here in {}, emulating every instruction in software (TCG): a whole Linux guest, still seconds rather than minutes.",
            ms(qemu.median)
        ),
        Ok(qemu) => format!(
            " QEMU's -M microvm boots a stock Debian kernel and initramfs to power-off here in {} (with KVM).",
            ms(qemu.median)
        ),
        Err(_) => String::new(),
    }
}

fn startup(r: &Results) -> Row {
    let pvm = !ch07_microvm::host::detect().can_boot_linux();
    let vm_measured = format!(
        "cold {} (tiny guest: VM creation → output → power-off); warm {} (snapshot restore → output → power-off); stock Linux boot: {}",
        show(&r.vm.cold, Summary::describe),
        show(&r.vm.warm, Summary::describe),
        show(&r.vm.linux_boot, Summary::describe),
    );
    let vm_verdict = match &r.vm.cold {
        Ok(cold) => format!(
            "VM start: seed says minutes; a micro-VM here: {} cold, {} warm — {}{}. Because a micro-VM has no firmware, no devices to probe and no distribution to start: the VMM loads a kernel, writes the zero page and enters 64-bit mode itself. The minutes are a full OS booting on emulated PC hardware{}.{}",
            ms(cold.median),
            show(&r.vm.warm, |w| ms(w.median)),
            times_under(60_000.0, cold.median, "one minute"),
            restore_note(cold, &r.vm.warm),
            if pvm {
                "; and here the guest even runs in KVM's instruction emulator (PVM host), so hardware KVM would be faster still. A stock Linux kernel is not measurable here (see the measurement); Firecracker's published target for one on hardware KVM is 125 ms to the guest's init"
            } else {
                ""
            },
            qemu_note(r, pvm),
        ),
        Err(why) => not_measurable(why),
    };
    let container_measured = format!(
        "cold {} (`run` of /bin/true on a busybox bundle: namespaces, cgroup, pivot_root, exec, teardown); warm {} (`start` of a created container → its command exits)",
        show(&r.container.cold, Summary::describe),
        show(&r.container.warm, Summary::describe),
    );
    let container_verdict = match &r.container.cold {
        Ok(cold) => format!(
            "Container start: seed says seconds; this runtime here: {} cold, {} warm — {}. The kernel work is milliseconds; the seconds people see are image pulls, layer unpacking and the daemon chain (docker → containerd → shim → runc), not the container.",
            ms(cold.median),
            show(&r.container.warm, |w| ms(w.median)),
            times_under(1000.0, cold.median, "one second")
        ),
        Err(why) => not_measurable(why),
    };
    let process_measured = format!(
        "cold {} (fork+exec+wait of /bin/true); warm {} (a pre-warmed worker's 64-byte request → reply)",
        show(&r.process.cold, Summary::describe),
        show(&r.process.warm, Summary::describe),
    );
    let process_verdict = match (&r.process.cold, &r.process.warm) {
        (Ok(cold), Ok(warm)) => format!(
            "Function start: seed says milliseconds; holds. fork+exec here: {}, and a pre-warmed worker answers in {} ({}× less): warm is a socket round trip between two running processes. A real platform adds its sandbox (a container or micro-VM, the two rows above) to a cold start, which is why platforms keep workers warm.",
            ms(cold.median),
            ms(warm.median),
            number(cold.median / warm.median)
        ),
        (Err(why), _) | (_, Err(why)) => not_measurable(why),
    };
    Row {
        property: "start-up time",
        cells: vec![
            Cell {
                column: "VM",
                claim: "minutes",
                measured: vm_measured,
                verdict: vm_verdict,
            },
            Cell {
                column: "container",
                claim: "seconds",
                measured: container_measured,
                verdict: container_verdict,
            },
            Cell {
                column: "serverless",
                claim: "milliseconds",
                measured: process_measured,
                verdict: process_verdict,
            },
        ],
    }
}

/// Whether restoring beat creating, and why not when it did not.
fn restore_note(cold: &Summary, warm: &Measured<Summary>) -> String {
    match warm {
        Ok(w) if w.median < cold.median => String::new(),
        Ok(_) => " (restore is no faster than creating here: our guest boots in a few thousand instructions, and a restore sets the same registers and maps its memory from a file; a snapshot pays off when the boot it skips is long, as a Linux guest's is)".into(),
        Err(_) => String::new(),
    }
}

fn isolation(r: &Results) -> Row {
    Row {
        property: "isolation",
        cells: vec![
            Cell {
                column: "VM",
                claim: "full (hypervisor)",
                measured: show(&r.vm.isolation, Clone::clone),
                verdict: match &r.vm.isolation {
                    Ok(_) => "Holds: a separate kernel, its own memory map, no host process in sight; the attack surface is the VMM's few emulated devices and KVM.".into(),
                    Err(why) => not_measurable(why),
                },
            },
            Cell {
                column: "container",
                claim: "process level",
                measured: show(&r.container.isolation, Clone::clone),
                verdict: match &r.container.isolation {
                    Ok(_) => "Holds: the container sees only its own processes, but runs on the host's kernel; a kernel bug is shared by every container on the machine.".into(),
                    Err(why) => not_measurable(why),
                },
            },
            Cell {
                column: "serverless",
                claim: "function level",
                measured: show(&r.process.isolation, Clone::clone),
                verdict: match &r.process.isolation {
                    Ok(_) => "A pre-warmed process by itself is not isolated at all: \"function level\" isolation comes from what a platform wraps the function in (a container, or a micro-VM as AWS Lambda does with Firecracker).".into(),
                    Err(why) => not_measurable(why),
                },
            },
        ],
    }
}

fn image_size(r: &Results) -> Row {
    let s = &r.sizes;
    Row {
        property: "image size",
        cells: vec![
            Cell {
                column: "VM",
                claim: "GBs",
                measured: s.vm_text(),
                verdict: format!(
                    "A VM image is whatever you put in it: our guest is {}{}. GBs is a general-purpose distribution's disk image, not something a VM needs.",
                    bytes(s.tiny_guest),
                    match &s.linux {
                        Ok((k, i)) => format!(", a Debian kernel with a busybox initramfs {}", bytes(k + i)),
                        Err(_) => String::new(),
                    }
                ),
            },
            Cell {
                column: "container",
                claim: "MBs to GBs",
                measured: show(&s.layer, |(raw, gz)| {
                    format!("busybox image, one layer: {} as tar, {} gzipped (what a pull downloads)", bytes(*raw), bytes(*gz))
                }),
                verdict: match &s.layer {
                    Ok((_, gz)) => format!("Holds at the small end: {} for a busybox image. ML images reach GBs because of CUDA libraries and frameworks inside them, not because of the container format.", bytes(*gz)),
                    Err(why) => not_measurable(why),
                },
            },
            Cell {
                column: "serverless",
                claim: "MBs or less",
                measured: show(&s.function, |(path, len)| format!("chapter 1's function binary: {} ({path})", bytes(*len))),
                verdict: match &s.function {
                    Ok((_, len)) => format!("Holds: {} for a self-contained binary; a function that needs a runtime (Python, CUDA) ships that too, and is then as large as a container image.", bytes(*len)),
                    Err(why) => not_measurable(why),
                },
            },
        ],
    }
}

fn overhead(r: &Results) -> Row {
    Row {
        property: "overhead",
        cells: vec![
            Cell {
                column: "VM",
                claim: "high (guest OS)",
                measured: show(&r.vm.memory, |m| m.describe()),
                verdict: match &r.vm.memory {
                    Ok(m) => format!(
                        "The VMM itself is small ({} of anonymous memory outside guest RAM; Firecracker promises < 5 MiB). The overhead is the guest OS: ours touches {} of its RAM; a Linux guest needs tens of MiB before the workload starts. \"High\" holds for a full guest OS, not for virtualization as such.",
                        bytes(m.overhead()),
                        bytes(m.after.guest_resident)
                    ),
                    Err(why) => not_measurable(why),
                },
            },
            Cell {
                column: "container",
                claim: "low",
                measured: show(&r.container.memory, |m| m.describe()),
                verdict: match &r.container.memory {
                    Ok(m) => format!(
                        "Holds: {}; and the runtime leaves {} beside it (ch06 has no shim; under containerd, one shim process per container).",
                        if m.within_noise() {
                            "the container's cgroup usage is the bare process's within the kernel's charging granularity (it charges in per-CPU batches of up to 256 KiB): namespaces, mounts and a cgroup cost too little to see".to_string()
                        } else {
                            format!(
                                "the container costs {}{} beyond the same process in a bare cgroup (kernel objects: namespaces, mounts; page cache)",
                                if m.overhead() < 0 { "-" } else { "" },
                                bytes(m.overhead().unsigned_abs())
                            )
                        },
                        match m.runtime_processes {
                            0 => "no process".to_string(),
                            n => format!("{n} process(es)"),
                        }
                    ),
                    Err(why) => not_measurable(why),
                },
            },
            Cell {
                column: "serverless",
                claim: "very low",
                measured: show(&r.process.memory, |m| m.describe()),
                verdict: match &r.process.memory {
                    Ok(m) => format!(
                        "Holds: a pre-warmed worker costs {} proportional ({} private) while idle — the price of keeping it warm.",
                        bytes(m.pss),
                        bytes(m.uss)
                    ),
                    Err(why) => not_measurable(why),
                },
            },
        ],
    }
}

fn gpu(r: &Results) -> Row {
    let host = match &r.gpu {
        Ok(found) => format!("host: {found}"),
        Err(why) => not_measurable(why),
    };
    let verdict = |if_gpu: &str| match &r.gpu {
        Ok(_) => if_gpu.to_string(),
        Err(why) => format!(
            "{}; the check above shows only what this column would be given.",
            not_measurable(why)
        ),
    };
    Row {
        property: "GPU support",
        cells: vec![
            Cell {
                column: "VM",
                claim: "limited (pass-through)",
                measured: format!("{host}; the micro-VM has no PCI bus: its only devices are the serial port and the i8042"),
                verdict: verdict("A GPU reaches a VM only by VFIO pass-through of a whole device (or vGPU), which chapter 7 does not implement: holds."),
            },
            Cell {
                column: "container",
                claim: "native (NVIDIA Container Toolkit)",
                measured: format!("{host}; {}", show(&r.container.gpu_inside, Clone::clone)),
                verdict: verdict("Native: the container uses the host's driver through device nodes and the devices cgroup (chapter 5), no virtualization layer."),
            },
            Cell {
                column: "serverless",
                claim: "limited",
                measured: format!("{host}; a plain process sees the host's /dev as it is"),
                verdict: verdict("A process sees the host's GPU directly; \"limited\" is a platform policy (few serverless offerings attach GPUs), not a technical limit."),
            },
        ],
    }
}

fn good_for(r: &Results) -> Row {
    let startup = |m: &Measured<Summary>| show(m, |s| ms(s.median));
    Row {
        property: "good for",
        cells: vec![
            Cell {
                column: "VM",
                claim: "strong isolation",
                measured: "a judgement, not a measurement".into(),
                verdict: format!("Supported by the isolation row: the only column with its own kernel; and with a micro-VM ({} cold) the start-up cost no longer rules it out for short jobs.", startup(&r.vm.cold)),
            },
            Cell {
                column: "container",
                claim: "micro-services, ML serving",
                measured: "a judgement, not a measurement".into(),
                verdict: format!("Supported: {} to start, native GPU access, little memory; shared kernel as the price.", startup(&r.container.cold)),
            },
            Cell {
                column: "serverless",
                claim: "occasional inference",
                measured: "a judgement, not a measurement".into(),
                verdict: format!("Supported when warm ({} per request); a cold start adds the sandbox's own start (rows above) and loading the model, which for ML dominates.", startup(&r.process.warm)),
            },
        ],
    }
}

/// The terminal version: the seed's table again, row by row.
pub fn print(r: &Results) {
    println!("\n{}\n", r.machine.line());
    println!("The seed's table, measured");
    println!("==========================");
    for row in rows(r) {
        println!("\n## {}", row.property);
        for cell in &row.cells {
            println!("  {:<11} seed says: {}", cell.column, cell.claim);
            println!("  {:<11} measured:  {}", "", cell.measured);
            println!("  {:<11} verdict:   {}", "", cell.verdict);
        }
    }
    println!("\n## peers");
    for line in peer_lines(r) {
        println!("  {line}");
    }
}

/// Peers, one line each (shared by the terminal and the detail page).
fn peer_lines(r: &Results) -> Vec<String> {
    let mut lines = Vec::new();
    match &r.peers.runtimes {
        Ok(rt) => {
            for (name, s) in &rt.times {
                // At or below the floor the method sees only the spawner's own size.
                let rss = match rt.peak_rss.get(name) {
                    Some(k) if *k > rt.floor_kib => format!(", peak RSS {}", bytes(k * 1024)),
                    Some(_) => format!(
                        ", peak RSS at most the floor ({}): too small for this method to see",
                        bytes(rt.floor_kib * 1024)
                    ),
                    None => String::new(),
                };
                lines.push(format!("`run` of /bin/true, {name}: {}{rss}", s.describe()));
            }
            for (pair, s) in &rt.ratios {
                lines.push(format!(
                    "{pair} (paired, per iteration): {} (p10–p90 {}–{})",
                    number(s.median),
                    number(s.p10),
                    number(s.p90)
                ));
            }
            lines.push(format!(
                "peak RSS floor (/bin/true spawned the same way): {}",
                bytes(rt.floor_kib * 1024)
            ));
            for m in &rt.missing {
                lines.push(not_measurable(m));
            }
            for n in &rt.notes {
                lines.push(format!("note: {n}"));
            }
        }
        Err(why) => lines.push(format!("crun, runc: {}", not_measurable(why))),
    }
    lines.push(format!(
        "QEMU -M microvm booting the same kernel: {}",
        show(&r.peers.qemu, Summary::describe)
    ));
    lines
}

/// Escapes what would break a markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// `table.md`: the seed's table with the measured values and verdicts, and the peers.
pub fn markdown(r: &Results) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "<!-- generated by `cargo run -p bench --release`; do not edit -->\n"
    );
    let _ = writeln!(md, "> {}\n", r.machine.line());
    let _ = writeln!(
        md,
        "| property | column | the seed says | measured here | verdict |"
    );
    let _ = writeln!(md, "| --- | --- | --- | --- | --- |");
    for row in rows(r) {
        for c in &row.cells {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                row.property,
                c.column,
                cell(c.claim),
                cell(&c.measured),
                cell(&c.verdict)
            );
        }
    }
    md
}

/// `details.md`: per-row detail — every figure with its spread, and the peers.
pub fn details(r: &Results) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "<!-- generated by `cargo run -p bench --release`; do not edit -->\n"
    );
    let _ = writeln!(md, "### Start-up, every figure\n");
    let _ = writeln!(md, "| what | median | p10 | p90 | runs |");
    let _ = writeln!(md, "| --- | --- | --- | --- | --- |");
    for (what, m) in startup_series(r) {
        match m {
            Ok(s) => {
                let _ = writeln!(
                    md,
                    "| {what} | {} | {} | {} | {} |",
                    ms(s.median),
                    ms(s.p10),
                    ms(s.p90),
                    s.n
                );
            }
            Err(why) => {
                let _ = writeln!(md, "| {what} | {} | | | |", cell(&not_measurable(&why)));
            }
        }
    }
    let _ = writeln!(md, "\n### Memory\n");
    let _ = writeln!(
        md,
        "- **VM**: {}",
        cell(&show(&r.vm.memory, |m| m.describe()))
    );
    let _ = writeln!(
        md,
        "- **container**: {}",
        cell(&show(&r.container.memory, |m| m.describe()))
    );
    let _ = writeln!(
        md,
        "- **serverless**: {}",
        cell(&show(&r.process.memory, |m| m.describe()))
    );
    let _ = writeln!(md, "\n### Peers\n");
    for line in peer_lines(r) {
        let _ = writeln!(md, "- {line}");
    }
    md
}

/// Every start-up series, labelled, for the detail table and the chart.
pub fn startup_series(r: &Results) -> Vec<(String, Measured<Summary>)> {
    let mut series = vec![
        (
            "serverless cold: fork+exec".to_string(),
            r.process.cold.clone(),
        ),
        (
            "serverless warm: request→reply".to_string(),
            r.process.warm.clone(),
        ),
        ("container cold: run".to_string(), r.container.cold.clone()),
        (
            "container warm: start".to_string(),
            r.container.warm.clone(),
        ),
        ("VM cold: tiny guest".to_string(), r.vm.cold.clone()),
        ("VM warm: snapshot restore".to_string(), r.vm.warm.clone()),
        ("VM: stock Linux boot".to_string(), r.vm.linux_boot.clone()),
    ];
    match &r.peers.runtimes {
        Ok(rt) => {
            for (name, s) in &rt.times {
                series.push((format!("CLI run: {name}"), Ok(*s)));
            }
        }
        Err(why) => series.push(("CLI run: crun, runc".into(), Err(why.clone()))),
    }
    series.push(("QEMU microvm: Linux boot".into(), r.peers.qemu.clone()));
    series
}
