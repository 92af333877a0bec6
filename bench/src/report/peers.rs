//! Peers side by side: our runtime's command line, crun and runc, `run` of the same bundle,
//! paired in one run (iteration i runs each runtime once, in rotating order, so that whatever
//! else the machine does at that moment falls on all of them); and QEMU's `-M microvm` booting
//! the fetched kernel. Reported as ratios, since absolute times on a shared machine drift.
//!
//! The runtimes are timed from a separate process of this binary (`bench peers-probe`), for two
//! reasons: on a cgroup-hybrid host whose cgroup2 half has controllers, crun refuses to run, and
//! the probe hides that half in a private mount namespace (`unshare(CLONE_NEWNS)` needs a
//! single-threaded process, and the report's own mount view stays as it is); and a child's
//! peak RSS (`ru_maxrss`) counts the memory of the process that spawned it, so a small spawner
//! gives a lower floor, which is printed too.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::measured::{need_root, Measured};
use super::progress::bar;
use super::stats::Summary;
use bench::peers::{find_ours, find_program, force_delete_all, hide_cgroup2_for_crun};

/// Timings and peak RSS of each runtime that could be run, and the ratios.
pub struct Runtimes {
    /// Per runtime: `run` of /bin/true, in ms.
    pub times: BTreeMap<String, Summary>,
    /// ours / peer, per paired iteration.
    pub ratios: BTreeMap<String, Summary>,
    /// Peak RSS of `run` (KiB), median of a few runs; and /bin/true's, the floor.
    pub peak_rss: BTreeMap<String, u64>,
    pub floor_kib: u64,
    /// Runtimes not measured, and why; notes (the hybrid-cgroup work-around).
    pub missing: Vec<String>,
    pub notes: Vec<String>,
}

/// The peers section: runtimes, and QEMU.
pub struct Peers {
    pub runtimes: Measured<Runtimes>,
    pub qemu: Measured<Summary>,
}

pub fn measure(bundle: &Path, scratch: &Path, runs: usize) -> Peers {
    Peers {
        runtimes: measure_runtimes(bundle, scratch, runs),
        qemu: measure_qemu(if runs > 5 { 5 } else { 1 }),
    }
}

fn measure_runtimes(bundle: &Path, scratch: &Path, runs: usize) -> Measured<Runtimes> {
    need_root()?;
    let mut missing = Vec::new();
    let mut args: Vec<String> = Vec::new();
    match find_ours() {
        Ok(bin) => args.push(format!("ours={}", bin.display())),
        Err(why) => missing.push(format!("ours (command line): {why}")),
    }
    for peer in ["crun", "runc"] {
        match find_program(peer) {
            Some(bin) => args.push(format!("{peer}={}", bin.display())),
            None => missing.push(format!("{peer}: not installed (apt install {peer})")),
        }
    }
    if args.is_empty() {
        return Err(missing.join("; "));
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(&exe)
        .arg("peers-probe")
        .arg(bundle)
        .arg(scratch)
        .arg(runs.to_string())
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{} peers-probe: {e}", exe.display()))?;
    // Progress: the probe writes one `tick` line to stderr per runtime run.
    let bar = bar((runs * args.len()) as u64, "peers (ours, crun, runc)");
    let mut errors = Vec::new();
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line == "tick" {
                bar.inc(1);
            } else {
                errors.push(line);
            }
        }
    }
    bar.finish_and_clear();
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "peers-probe {}: {}",
            out.status,
            errors.join(" / ")
        ));
    }
    let mut times: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut peak_rss = BTreeMap::new();
    let (mut floor_kib, mut notes) = (0, Vec::new());
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut words = line.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("time"), Some(name), Some(ms)) => times
                .entry(name.to_string())
                .or_default()
                .push(ms.parse().unwrap_or(f64::NAN)),
            (Some("rss"), Some(name), Some(kib)) => {
                peak_rss.insert(name.to_string(), kib.parse().unwrap_or(0));
            }
            (Some("floor"), Some(kib), None) => floor_kib = kib.parse().unwrap_or(0),
            (Some("note"), Some(first), rest) => {
                notes.push(format!("{first} {}", rest.unwrap_or_default()))
            }
            _ => {}
        }
    }
    let mut ratios = BTreeMap::new();
    if let Some(ours) = times.get("ours") {
        for (peer, theirs) in times.iter().filter(|(name, _)| *name != "ours") {
            let mut r: Vec<f64> = ours.iter().zip(theirs).map(|(a, b)| a / b).collect();
            if let Some(s) = Summary::of_ms(&mut r) {
                ratios.insert(format!("ours/{peer}"), s);
            }
        }
    }
    let times = times
        .into_iter()
        .filter_map(|(name, mut v)| Summary::of_ms(&mut v).map(|s| (name, s)))
        .collect();
    Ok(Runtimes {
        times,
        ratios,
        peak_rss,
        floor_kib,
        missing,
        notes,
    })
}

/// `bench peers-probe BUNDLE SCRATCH RUNS NAME=PATH…`: see the top of this file. Prints
/// `time NAME MS` per run, `rss NAME KIB`, `floor KIB`, `note TEXT` on stdout.
pub fn probe(args: &[String]) -> anyhow::Result<()> {
    let [bundle, scratch, runs, runtimes @ ..] = args else {
        anyhow::bail!("usage: bench peers-probe BUNDLE SCRATCH RUNS NAME=PATH...");
    };
    let runs: usize = runs.parse()?;
    let runtimes: Vec<(String, PathBuf, PathBuf)> = runtimes
        .iter()
        .filter_map(|a| a.split_once('='))
        .map(|(name, bin)| {
            let root = Path::new(scratch).join(format!("root-{name}"));
            (name.to_string(), PathBuf::from(bin), root)
        })
        .collect();
    for (_, _, root) in &runtimes {
        fs::create_dir_all(root)?;
    }
    if runtimes.iter().any(|(name, _, _)| name == "crun") {
        if let Some(note) = hide_cgroup2_for_crun().map_err(anyhow::Error::msg)? {
            println!("note {note}");
        }
    }
    let result = probe_runs(bundle, runs, &runtimes);
    for (_, bin, root) in &runtimes {
        force_delete_all(bin, root);
    }
    result
}

fn quiet(command: &mut Command) -> &mut Command {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
}

fn probe_runs(
    bundle: &str,
    runs: usize,
    runtimes: &[(String, PathBuf, PathBuf)],
) -> anyhow::Result<()> {
    let mut serial = 0;
    let mut id = |name: &str| {
        serial += 1;
        format!("boxlab-report-{name}-{}-{serial}", std::process::id())
    };
    let run_args = |root: &Path, id: &str| -> Vec<String> {
        vec![
            "--root".into(),
            root.display().to_string(),
            "run".into(),
            "--bundle".into(),
            bundle.into(),
            id.into(),
        ]
    };
    // One untimed run each: page cache, first-use costs.
    for (name, bin, root) in runtimes {
        let status = quiet(&mut Command::new(bin))
            .args(run_args(root, &id(name)))
            .status()?;
        anyhow::ensure!(status.success(), "{name} run of /bin/true: {status}");
    }
    for i in 0..runs {
        for k in 0..runtimes.len() {
            let (name, bin, root) = &runtimes[(i + k) % runtimes.len()];
            let args = run_args(root, &id(name));
            let began = Instant::now();
            let status = quiet(&mut Command::new(bin)).args(&args).status()?;
            let elapsed = began.elapsed();
            anyhow::ensure!(status.success(), "{name} run of /bin/true: {status}");
            println!("time {name} {}", elapsed.as_secs_f64() * 1e3);
            eprintln!("tick");
        }
    }
    println!(
        "floor {}",
        peak_rss_ok(Path::new("/bin/true"), &[] as &[&str])?
    );
    for (name, bin, root) in runtimes {
        let mut peaks = Vec::new();
        for _ in 0..3 {
            peaks.push(peak_rss_ok(bin, &run_args(root, &id(name)))?);
        }
        peaks.sort();
        println!("rss {name} {}", peaks[1]);
    }
    Ok(())
}

/// The peak RSS (KiB) of a run that must succeed.
fn peak_rss_ok<S: AsRef<std::ffi::OsStr>>(program: &Path, args: &[S]) -> anyhow::Result<u64> {
    let (kib, status) = bench::peers::peak_rss_kib(program, args)?;
    anyhow::ensure!(
        status.success(),
        "{} ended with {status}",
        program.display()
    );
    Ok(kib)
}

/// How long one QEMU boot may take before it counts as hung (it takes about 2 s here under TCG).
const QEMU_LIMIT_S: u64 = 60;

/// The kernel command line for QEMU's boot. Under TCG (software emulation, no KVM) the kernel
/// calibrates its TSC and delay loop against the emulated PIT, which runs on the host's clock:
/// on a busy host that was seen to fail ("tsc: Unable to calibrate against PIT") and the boot
/// to hang. `lpj=` hands the delay loop its value and `tsc=unstable` stops the kernel waiting
/// on a TSC reference it cannot have; with KVM neither is needed.
fn qemu_command_line(accel: &str) -> &'static str {
    if accel == "tcg" {
        "console=ttyS0 reboot=t panic=-1 lpj=1000000 tsc=unstable"
    } else {
        "console=ttyS0 reboot=t panic=-1"
    }
}

/// QEMU `-M microvm` booting the fetched kernel + initramfs to power-off.
fn measure_qemu(runs: usize) -> Measured<Summary> {
    let qemu = find_program("qemu-system-x86_64")
        .ok_or("qemu-system-x86_64 is not installed (apt install qemu-system-x86)")?;
    let (kernel, initrd) = ch07_microvm::linux::fetched_kernel().map_err(|e| e.to_string())?;
    let accel = if ch07_microvm::host::detect().can_boot_linux() {
        "kvm"
    } else {
        "tcg"
    };
    let bar = bar(runs as u64, &format!("QEMU microvm ({accel})"));
    let mut samples = Vec::new();
    for _ in 0..runs {
        // Under TCG on a busy host a boot was seen to hang in the kernel's early set-up (timer
        // calibration, "Mountpoint-cache") while the same boot takes 1-2 s on a quiet one: a
        // hung boot is killed and tried once more; only a second hang is an error.
        let elapsed = match boot_qemu(&qemu, accel, &kernel, &initrd)? {
            QemuBoot::PoweredOff(elapsed) => elapsed,
            QemuBoot::Hung(_) => match boot_qemu(&qemu, accel, &kernel, &initrd)? {
                QemuBoot::PoweredOff(elapsed) => elapsed,
                QemuBoot::Hung(last_line) => {
                    return Err(format!(
                        "QEMU did not power off within {QEMU_LIMIT_S} s, twice; the kernel's last line: {last_line:?}"
                    ))
                }
            },
        };
        samples.push(elapsed);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Summary::of(&samples).ok_or_else(|| "no runs".into())
}

/// How one QEMU boot ended.
enum QemuBoot {
    /// Init ran and the guest powered off after this long.
    PoweredOff(Duration),
    /// Still running at [`QEMU_LIMIT_S`], killed; the last line of its console.
    Hung(String),
}

/// One boot of `kernel` + `initrd` in QEMU's `-M microvm`, creation to power-off.
fn boot_qemu(qemu: &Path, accel: &str, kernel: &Path, initrd: &Path) -> Result<QemuBoot, String> {
    let log = std::env::temp_dir().join(format!("boxlab-report-qemu-{}.log", std::process::id()));
    // A file, not a pipe: nobody reads while it boots, and a kernel's log fills a pipe.
    let log_file = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let began = Instant::now();
    let mut child = Command::new(qemu)
        .args(["-M", "microvm", "-accel", accel, "-m", "256", "-nodefaults"])
        .args([
            "-no-user-config",
            "-nographic",
            "-no-reboot",
            "-serial",
            "stdio",
        ])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .arg("-append")
        .arg(qemu_command_line(accel))
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", qemu.display()))?;
    let deadline = began + Duration::from_secs(QEMU_LIMIT_S);
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = began.elapsed();
    let output = fs::read_to_string(&log).unwrap_or_default();
    let _ = fs::remove_file(&log);
    let Some(status) = status else {
        let last = output.lines().rev().find(|l| !l.trim().is_empty());
        return Ok(QemuBoot::Hung(
            last.unwrap_or("(no output)").trim().to_string(),
        ));
    };
    if !output.contains(ch07_microvm::initramfs::INIT_MARKER) {
        return Err(format!(
            "QEMU ended ({status}) before the initramfs's init ran"
        ));
    }
    Ok(QemuBoot::PoweredOff(elapsed))
}
