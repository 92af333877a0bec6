//! The "serverless" column (chapter 1): a cold fork+exec, a pre-warmed worker's request→reply,
//! and what the worker costs in memory.

use std::fs;
use std::time::{Duration, Instant};

use ch01_process::{cold, Program, Worker};
use nix::unistd::Pid;

use super::measured::Measured;
use super::progress::bar;
use super::stats::{bytes, Summary};

/// The column's figures.
pub struct ProcessColumn {
    pub cold: Measured<Summary>,
    pub warm: Measured<Summary>,
    pub memory: Measured<Smaps>,
    pub isolation: Measured<String>,
}

/// The handler the worker runs: echo the request, so the figure is the mechanism, not the work.
fn echo(request: &[u8]) -> Vec<u8> {
    request.to_vec()
}

pub fn measure(cold_runs: usize, warm_runs: usize) -> ProcessColumn {
    let cold = measure_cold(cold_runs);
    let (warm, memory, isolation) = match Worker::start(echo) {
        Ok(worker) => measure_warm(worker, warm_runs),
        Err(e) => {
            let why = format!("starting the worker failed: {e}");
            (Err(why.clone()), Err(why.clone()), Err(why))
        }
    };
    ProcessColumn {
        cold,
        warm,
        memory,
        isolation,
    }
}

fn measure_cold(runs: usize) -> Measured<Summary> {
    let program = Program::new(&["/bin/true"]).map_err(|e| e.to_string())?;
    let bar = bar(runs as u64, "process cold (fork+exec)");
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let began = Instant::now();
        let run = cold::run(&program).map_err(|e| format!("fork+exec /bin/true: {e}"))?;
        samples.push(began.elapsed());
        if !run.exit.success() {
            return Err(format!("/bin/true ended {}", run.exit));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Summary::of(&samples).ok_or_else(|| "no runs".into())
}

fn measure_warm(
    mut worker: Worker,
    runs: usize,
) -> (Measured<Summary>, Measured<Smaps>, Measured<String>) {
    let request = [b'x'; 64];
    let bar = bar(runs as u64, "process warm (request→reply)");
    let mut samples: Vec<Duration> = Vec::with_capacity(runs);
    let mut failed = None;
    // A few untimed requests first: the first one pays for page faults in both processes.
    for i in 0..runs + 10 {
        let began = Instant::now();
        match worker.request(&request) {
            Ok(reply) if reply == request => {}
            Ok(_) => failed = Some("the worker's reply differs from the request".to_string()),
            Err(e) => failed = Some(format!("request to the worker: {e}")),
        }
        if failed.is_some() {
            break;
        }
        if i >= 10 {
            samples.push(began.elapsed());
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let pid = worker.pid();
    let memory = Smaps::of(pid);
    let isolation = isolation_of(pid);
    let _ = worker.stop();
    let warm = match failed {
        Some(why) => Err(why),
        None => Summary::of(&samples).ok_or_else(|| "no requests".into()),
    };
    (warm, memory, isolation)
}

/// A process's memory from `/proc/<pid>/smaps_rollup`, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Smaps {
    /// Resident set: every page mapped and present, shared ones counted in full.
    pub rss: u64,
    /// Proportional set: shared pages divided among the processes sharing them.
    pub pss: u64,
    /// Unique set: pages only this process has (Private_Clean + Private_Dirty) — what killing
    /// it would give back.
    pub uss: u64,
}

impl Smaps {
    pub fn of(pid: Pid) -> Measured<Smaps> {
        let path = format!("/proc/{pid}/smaps_rollup");
        let text = fs::read_to_string(&path).map_err(|e| format!("reading {path}: {e}"))?;
        let kib = |key: &str| -> u64 {
            text.lines()
                .filter_map(|l| l.strip_prefix(key))
                .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
                .sum::<u64>()
                * 1024
        };
        Ok(Smaps {
            rss: kib("Rss:"),
            pss: kib("Pss:"),
            uss: kib("Private_Clean:") + kib("Private_Dirty:"),
        })
    }

    pub fn describe(&self) -> String {
        format!(
            "worker PSS {} (RSS {}, private {})",
            bytes(self.pss),
            bytes(self.rss),
            bytes(self.uss)
        )
    }
}

/// What the worker shares with the host: its PID and mount namespaces, compared with the
/// report's own (which runs on the host side: PID 1's may be unreadable in a sandbox), and how
/// many processes it can see in `/proc`.
fn isolation_of(pid: Pid) -> Measured<String> {
    let link = |p: &str, ns: &str| {
        fs::read_link(format!("/proc/{p}/ns/{ns}"))
            .map(|l| l.to_string_lossy().into_owned())
            .map_err(|e| format!("reading /proc/{p}/ns/{ns}: {e}"))
    };
    let worker = pid.to_string();
    let same_pid = link(&worker, "pid")? == link("self", "pid")?;
    let same_mnt = link(&worker, "mnt")? == link("self", "mnt")?;
    let visible = count_pids("/proc");
    let kernel = kernel_release();
    Ok(format!(
        "none: the worker runs on the host kernel ({kernel}), in {} PID namespace and {} mount namespace, and sees all {visible} processes of the host",
        if same_pid { "the host's" } else { "its own" },
        if same_mnt { "the host's" } else { "its own" },
    ))
}

/// Numeric entries of a `/proc` listing: the processes visible there.
pub fn count_pids(proc_dir: &str) -> usize {
    fs::read_dir(proc_dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .count()
        })
        .unwrap_or(0)
}

/// `uname -r` of this host.
pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}
