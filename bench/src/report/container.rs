//! The container column (chapter 6, through its library): `run` of `/bin/true` on a busybox
//! bundle (cold), `start` of an already-created container (warm: the OCI create/start split is
//! the container's pre-warm), what a container costs in memory, and what it can see.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bench::peers::bundle;
use ch03_cgroups::{Cgroup, CgroupPath, Limits};
use ch06_oci::state::Store;
use ch06_oci::verbs::create::{create, CreateOptions};
use ch06_oci::verbs::delete::delete;
use ch06_oci::verbs::run::run;
use ch06_oci::verbs::start::start;
use ch06_oci::verbs::Globals;
use labkit::ScratchDir;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::measured::{need_root, Measured};
use super::process::{count_pids, kernel_release};
use super::progress::bar;
use super::stats::{bytes, Summary};

/// The column's figures.
pub struct ContainerColumn {
    pub cold: Measured<Summary>,
    pub warm: Measured<Summary>,
    pub memory: Measured<ContainerMemory>,
    pub isolation: Measured<String>,
    pub gpu_inside: Measured<String>,
}

/// One runtime state directory for the whole column, and fresh ids with `boxlab` in them.
struct Runtime {
    store: Store,
    serial: u32,
}

impl Runtime {
    fn id(&mut self) -> String {
        self.serial += 1;
        format!("boxlab-report-{}-{}", std::process::id(), self.serial)
    }

    fn options(bundle: &Path) -> CreateOptions {
        CreateOptions {
            bundle: bundle.to_path_buf(),
            ..CreateOptions::default()
        }
    }

    /// `run`, in the foreground: create, start, wait, remove. Returns the command's status.
    fn run(&mut self, bundle: &Path) -> Result<i32, String> {
        let id = self.id();
        run(
            &self.store,
            &id,
            &Self::options(bundle),
            &Globals::default(),
            false,
        )
        .map_err(|e| format!("run {id}: {e}"))
    }

    /// Forcibly deletes whatever containers are left (after a failure half way).
    fn clean_up(&self) {
        for entry in fs::read_dir(self.store.root()).into_iter().flatten() {
            let id = entry
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .unwrap_or_default();
            let _ = delete(&self.store, &id, true);
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.clean_up();
    }
}

pub fn measure(runs: usize) -> ContainerColumn {
    let all = |why: String| ContainerColumn {
        cold: Err(why.clone()),
        warm: Err(why.clone()),
        memory: Err(why.clone()),
        isolation: Err(why.clone()),
        gpu_inside: Err(why),
    };
    if let Err(why) = need_root() {
        return all(why);
    }
    // Containers' inits are ours to reap after `create` (as they are containerd's shim's).
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        return all(format!("PR_SET_CHILD_SUBREAPER: {e}"));
    }
    let scratch = match ScratchDir::new("report-container") {
        Ok(s) => s,
        Err(e) => return all(format!("a scratch directory: {e}")),
    };
    let mut runtime = Runtime {
        store: Store::new(scratch.join("state")),
        serial: 0,
    };
    let true_bundle = match bundle(&scratch.join("true"), &["/bin/true"], false) {
        Ok(b) => b,
        Err(why) => return all(why),
    };
    let cold = measure_cold(&mut runtime, &true_bundle, runs);
    let warm = measure_warm(&mut runtime, &true_bundle, runs);
    let memory = measure_memory(&mut runtime, &scratch);
    let (isolation, gpu_inside) = match check_isolation(&mut runtime, &scratch) {
        Ok((iso, gpu)) => (Ok(iso), Ok(gpu)),
        Err(why) => (Err(why.clone()), Err(why)),
    };
    runtime.clean_up();
    ContainerColumn {
        cold,
        warm,
        memory,
        isolation,
        gpu_inside,
    }
}

fn measure_cold(runtime: &mut Runtime, bundle: &Path, runs: usize) -> Measured<Summary> {
    let bar = bar(runs as u64, "container cold (run)");
    let mut samples = Vec::with_capacity(runs);
    // One untimed run: the first pays for loading the rootfs's pages into the page cache.
    runtime.run(bundle)?;
    for _ in 0..runs {
        let began = Instant::now();
        let status = runtime.run(bundle)?;
        samples.push(began.elapsed());
        if status != 0 {
            return Err(format!("/bin/true in the container exited {status}"));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Summary::of(&samples).ok_or_else(|| "no runs".into())
}

/// `create` untimed; then `start` and the command's exit, timed; then `delete`, untimed.
fn measure_warm(runtime: &mut Runtime, bundle: &Path, runs: usize) -> Measured<Summary> {
    let bar = bar(runs as u64, "container warm (start)");
    let mut samples = Vec::with_capacity(runs);
    let options = Runtime::options(bundle);
    for _ in 0..runs {
        let id = runtime.id();
        let record = create(&runtime.store, &id, &options, &Globals::default())
            .map_err(|e| format!("create {id}: {e}"))?;
        let init = Pid::from_raw(record.pid);
        let began = Instant::now();
        start(&runtime.store, &id).map_err(|e| format!("start {id}: {e}"))?;
        let ended = waitpid(init, None);
        samples.push(began.elapsed());
        delete(&runtime.store, &id, false).map_err(|e| format!("delete {id}: {e}"))?;
        match ended {
            Ok(WaitStatus::Exited(_, 0)) => {}
            other => return Err(format!("/bin/true in container {id} ended as {other:?}")),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Summary::of(&samples).ok_or_else(|| "no runs".into())
}

/// Memory charged to a cgroup: total (page cache included) and anonymous.
#[derive(Debug, Clone, Copy)]
pub struct CgroupMemory {
    pub usage: u64,
    pub anon: u64,
}

/// A container running `sleep` against the same `sleep` in a bare cgroup (no namespaces, no
/// rootfs): the difference is what the container itself costs. Medians over [`ROUNDS`] pairs
/// after one discarded pair: the first process to touch busybox's pages gets them charged to
/// its cgroup as page cache, and only the first.
#[derive(Debug, Clone, Copy)]
pub struct ContainerMemory {
    pub container: CgroupMemory,
    pub bare: CgroupMemory,
    /// The runtime's own processes left running beside the container: ch06 leaves none.
    pub runtime_processes: usize,
    pub rounds: usize,
}

impl ContainerMemory {
    /// Container minus bare, in bytes (can be negative: the kernel charges memory to a cgroup
    /// in per-CPU batches, so a difference below a few hundred KiB is within its granularity).
    pub fn overhead(&self) -> i64 {
        self.container.usage as i64 - self.bare.usage as i64
    }

    /// Whether the difference is within the kernel's charging granularity (a per-CPU stock of
    /// 64 pages: 256 KiB).
    pub fn within_noise(&self) -> bool {
        self.overhead().unsigned_abs() <= 256 * 1024
    }

    pub fn describe(&self) -> String {
        let sign = if self.overhead() < 0 { "-" } else { "+" };
        format!(
            "cgroup usage of `sleep` in a container {} (anon {}) vs the same `sleep` in a bare cgroup {} (anon {}): {sign}{} (medians of {} pairs); runtime processes left beside it: {}",
            bytes(self.container.usage),
            bytes(self.container.anon),
            bytes(self.bare.usage),
            bytes(self.bare.anon),
            bytes(self.overhead().unsigned_abs()),
            self.rounds,
            self.runtime_processes
        )
    }
}

/// How long a `sleep` is left to settle before its cgroup is read.
const SETTLE: Duration = Duration::from_millis(300);
/// Measured pairs (after one discarded pair).
const ROUNDS: usize = 3;

fn measure_memory(runtime: &mut Runtime, scratch: &ScratchDir) -> Measured<ContainerMemory> {
    let sleep_bundle = bundle(&scratch.join("sleep"), &["/bin/sleep", "30"], false)?;
    let busybox = sleep_bundle.join("rootfs/bin/busybox");
    let bar = bar(ROUNDS as u64 + 1, "container memory (pairs)");
    let (mut bare, mut container, mut runtime_processes) = (Vec::new(), Vec::new(), 0);
    for round in 0..=ROUNDS {
        // Each execs the same busybox file.
        let b = bare_sleep(&busybox)?;
        let (c, left) = container_sleep(runtime, &sleep_bundle)?;
        if round > 0 {
            bare.push(b);
            container.push(c);
            runtime_processes = runtime_processes.max(left);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let median = |v: &mut Vec<CgroupMemory>| {
        v.sort_by_key(|m| m.usage);
        let usage = v[v.len() / 2].usage;
        v.sort_by_key(|m| m.anon);
        CgroupMemory {
            usage,
            anon: v[v.len() / 2].anon,
        }
    };
    Ok(ContainerMemory {
        container: median(&mut container),
        bare: median(&mut bare),
        runtime_processes,
        rounds: ROUNDS,
    })
}

/// A container running `sleep`, its cgroup read once it has settled; then deleted.
fn container_sleep(runtime: &mut Runtime, bundle: &Path) -> Measured<(CgroupMemory, usize)> {
    let id = runtime.id();
    let record = create(
        &runtime.store,
        &id,
        &Runtime::options(bundle),
        &Globals::default(),
    )
    .map_err(|e| format!("create {id}: {e}"))?;
    let init = Pid::from_raw(record.pid);
    let measured = (|| {
        start(&runtime.store, &id).map_err(|e| format!("start {id}: {e}"))?;
        std::thread::sleep(SETTLE);
        let layout = ch03_cgroups::detect().map_err(|e| e.to_string())?;
        let path = CgroupPath::new(&record.cgroup).map_err(|e| e.to_string())?;
        // Only looking: `delete` removes it below.
        let cgroup = Cgroup::observe(&layout, &path).map_err(|e| e.to_string())?;
        Ok::<_, String>((read_memory(&cgroup)?, runtime_processes_beside(init)))
    })();
    let _ = delete(&runtime.store, &id, true);
    let _ = waitpid(init, None);
    measured
}

/// `busybox sleep` in a fresh cgroup, joined before `exec` (cgroup v1 does not move charges
/// already made); returns its usage.
fn bare_sleep(busybox: &Path) -> Measured<CgroupMemory> {
    let layout = ch03_cgroups::detect().map_err(|e| e.to_string())?;
    let (cgroup, _) = Cgroup::create(
        &layout,
        &CgroupPath::unique("report-bare"),
        &Limits::default(),
    )
    .map_err(|e| e.to_string())?;
    let procs: Vec<PathBuf> = cgroup.dirs().map(|d| d.join("cgroup.procs")).collect();
    let mut child = Command::new(busybox)
        .args([
            "sh",
            "-c",
            r#"for f; do echo $$ > "$f"; done; exec "$0" sleep 30"#,
        ])
        .arg(busybox)
        .args(&procs)
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawning {}: {e}", busybox.display()))?;
    std::thread::sleep(SETTLE);
    let memory = read_memory(&cgroup);
    // Kills the sleep, then removes the directories.
    let removed = cgroup.remove().map_err(|e| e.to_string());
    let _ = child.kill();
    let _ = child.wait();
    removed?;
    memory
}

/// Usage and anonymous memory from the memory controller's files (v1 or v2).
fn read_memory(cgroup: &Cgroup) -> Measured<CgroupMemory> {
    let usage = cgroup
        .usage()
        .map_err(|e| e.to_string())?
        .memory
        .ok_or("this host's cgroups report no memory usage (no memory controller)")?;
    let (dir, key) = match cgroup.v1_dir(ch03_cgroups::V1Controller::Memory) {
        Some(dir) => (dir.to_path_buf(), "rss "),
        None => (
            cgroup
                .unified_dir()
                .ok_or("no memory controller directory")?
                .to_path_buf(),
            "anon ",
        ),
    };
    let stat_path = dir.join("memory.stat");
    let stat =
        fs::read_to_string(&stat_path).map_err(|e| format!("{}: {e}", stat_path.display()))?;
    let anon = stat
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Ok(CgroupMemory { usage, anon })
}

/// Processes beside the container's init that a runtime would leave (a shim, a monitor): the
/// init's parent, if it is neither this report (the subreaper) nor the host's init.
fn runtime_processes_beside(init: Pid) -> usize {
    let stat = fs::read_to_string(format!("/proc/{init}/stat")).unwrap_or_default();
    // Field 4, after the command name in parentheses (which may contain spaces).
    let ppid: i32 = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    usize::from(ppid != std::process::id() as i32 && ppid > 1)
}

/// Runs a container that writes what it sees into files of its rootfs, and reads them.
fn check_isolation(runtime: &mut Runtime, scratch: &ScratchDir) -> Measured<(String, String)> {
    let script = "ls /proc > /seen-proc; uname -r > /seen-kernel; ls /dev > /seen-dev";
    let look = bundle(&scratch.join("look"), &["/bin/sh", "-c", script], true)?;
    let status = runtime.run(&look)?;
    if status != 0 {
        return Err(format!("the looking container exited {status}"));
    }
    let read = |name: &str| {
        fs::read_to_string(look.join("rootfs").join(name))
            .map_err(|e| format!("reading what the container wrote to /{name}: {e}"))
    };
    let pids = read("seen-proc")?
        .lines()
        .filter(|l| l.parse::<u32>().is_ok())
        .count();
    let kernel = read("seen-kernel")?.trim().to_string();
    let devices: Vec<String> = read("seen-dev")?.lines().map(str::to_string).collect();
    let host_kernel = kernel_release();
    let same = if kernel == host_kernel {
        "the host's kernel"
    } else {
        "a different kernel"
    };
    let isolation = format!(
        "namespaces: inside, `uname -r` says {kernel} ({same}, shared); `ls /proc` shows {pids} process(es) of its own PID namespace, not the host's {}",
        count_pids("/proc")
    );
    let gpus: Vec<&String> = devices.iter().filter(|d| d.starts_with("nvidia")).collect();
    let mut gpu = format!(
        "its /dev has {} entries ({}), {} GPU node{}: devices are granted one by one (chapter 5's --gpus adds /dev/nvidia*)",
        devices.len(),
        devices.join(" "),
        gpus.len(),
        if gpus.len() == 1 { "" } else { "s" }
    );
    if super::gpu::host_gpus().is_ok() {
        gpu.push_str("; ");
        gpu.push_str(&check_gpus_given(runtime, &look).unwrap_or_else(|why| {
            format!("a container given --gpus all could not be checked: {why}")
        }));
    }
    Ok((isolation, gpu))
}

/// On a GPU host: the same busybox root, given every GPU by chapter 5's plan through chapter
/// 6's builder (`--gpus all`). Which NVIDIA nodes does it see, and may it open the control
/// device? Opening is what the devices cgroup decides; the driver answers only after that.
fn check_gpus_given(runtime: &Runtime, look: &Path) -> Result<String, String> {
    // Ends with `true`: a refused open is a finding to report, not a failed check.
    let script = "ls /dev | grep nvidia > /seen-gpu-dev; (: </dev/nvidiactl) 2>/seen-gpu-open && echo opened >/seen-gpu-open; true";
    let ran = ch06_oci::builder::Container::builder(look)
        .gpus("all")
        .command(["/bin/sh", "-c", script])
        .root(runtime.store.root())
        .run()
        .map_err(|e| e.to_string())?;
    match ran {
        ch06_oci::builder::Run::Exited(0) => {}
        other => return Err(format!("the container ended as {other:?}")),
    }
    let read = |name: &str| {
        fs::read_to_string(look.join("rootfs").join(name))
            .map_err(|e| format!("reading what the container wrote to /{name}: {e}"))
    };
    let nodes: Vec<String> = read("seen-gpu-dev")?.lines().map(str::to_string).collect();
    let opened = read("seen-gpu-open")?;
    let gpu_nodes = nodes
        .iter()
        .filter(|n| {
            n.strip_prefix("nvidia")
                .is_some_and(|i| i.parse::<u32>().is_ok())
        })
        .count();
    Ok(format!(
        "given --gpus all (chapter 5's plan through chapter 6's builder), it sees {} ({gpu_nodes} GPU node{}) and opening /dev/nvidiactl {}",
        nodes.join(" "),
        if gpu_nodes == 1 { "" } else { "s" },
        if opened.trim() == "opened" {
            "succeeds: native access to the host's driver".to_string()
        } else {
            format!("fails ({})", opened.trim())
        }
    ))
}
