//! Chapter 3's lab result: a command left running in a cgroup with limits
//! (`sudo cargo run -p ch03-cgroups -- --cgroup boxlab/lab --memory 64m --pids 20 -- sleep 600`).

use std::fs;
use std::path::{Path, PathBuf};

use ch03_cgroups::{detect, Cgroup, CgroupPath, Layout, V1Controller};

use crate::{procfs, Check};

/// What the lab asked for.
#[derive(Debug, Clone)]
pub struct Expect {
    /// The cgroup's path under each hierarchy (`--cgroup`).
    pub cgroup: String,
    /// The memory limit in bytes (`--memory`).
    pub memory: u64,
    /// The pids limit (`--pids`).
    pub pids: u64,
}

/// v1's "no limit" for memory, as the kernel reports it (page-rounded `i64::MAX`).
const V1_UNLIMITED: u64 = 0x7FFF_FFFF_FFFF_F000;

fn start(expect: &Expect) -> String {
    format!(
        "start it in another terminal: sudo cargo run -p ch03-cgroups -- --cgroup {} --memory {} --pids {} -- sleep 600",
        expect.cgroup,
        bytes(expect.memory),
        expect.pids
    )
}

/// 64 MiB as docker spells it: `64m`.
fn bytes(n: u64) -> String {
    match n {
        n if n % (1 << 30) == 0 => format!("{}g", n >> 30),
        n if n % (1 << 20) == 0 => format!("{}m", n >> 20),
        n if n % (1 << 10) == 0 => format!("{}k", n >> 10),
        n => n.to_string(),
    }
}

/// `67108864 (64 MiB)`, or `unlimited`.
fn show(raw: &str) -> String {
    match raw.trim().parse::<u64>() {
        Ok(n) if n >= V1_UNLIMITED => format!("{} (unlimited)", raw.trim()),
        Ok(n) if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{n} ({} MiB)", n >> 20),
        _ => raw.trim().to_string(),
    }
}

/// The directories the checks read: where the memory and pids files are, and the one whose
/// `cgroup.procs` lists the processes.
struct Dirs {
    memory: Option<PathBuf>,
    pids: Option<PathBuf>,
    all: Vec<PathBuf>,
}

fn dirs(layout: &Layout, path: &CgroupPath) -> Option<Dirs> {
    // Only looking: the student's cgroup stays, whatever happens here.
    let cgroup = Cgroup::observe(layout, path).ok()?;
    let dirs = Dirs {
        memory: cgroup
            .v1_dir(V1Controller::Memory)
            .or(if matches!(layout, Layout::V2 { .. }) {
                cgroup.unified_dir()
            } else {
                None
            })
            .map(Path::to_path_buf),
        pids: cgroup
            .v1_dir(V1Controller::Pids)
            .or(if matches!(layout, Layout::V2 { .. }) {
                cgroup.unified_dir()
            } else {
                None
            })
            .map(Path::to_path_buf),
        all: cgroup.dirs().map(Path::to_path_buf).collect(),
    };
    Some(dirs)
}

fn limit_check(name: &str, dir: Option<&Path>, file: &str, expected: u64, hint: String) -> Check {
    let Some(dir) = dir else {
        return Check::not_checked(name, "the cgroup has no directory for this controller");
    };
    let path = dir.join(file);
    match fs::read_to_string(&path) {
        Ok(raw) => Check::expect(
            name,
            raw.trim() == expected.to_string(),
            show(&expected.to_string()),
            format!("{} in {}", show(&raw), path.display()),
            hint,
        ),
        Err(e) => Check::fail(
            name,
            format!("{expected} in {}", path.display()),
            format!("no readable file ({e})"),
            hint,
        ),
    }
}

/// Runs every check; always returns the same number of checks.
pub fn check(expect: &Expect) -> Vec<Check> {
    let names = [
        "cgroup layout",
        "cgroup exists",
        "memory limit",
        "pids limit",
        "processes inside",
        "seen from the process",
    ];
    let rest = |from: usize, because: &str| Check::none_of(&names[from..], because);
    let layout = match detect() {
        Ok(layout) => layout,
        Err(e) => {
            let mut checks = vec![Check::fail(
                names[0],
                "cgroup v1, v2 or hybrid at /sys/fs/cgroup",
                e,
                "mount cgroupfs (a systemd host does it at boot)",
            )];
            checks.extend(rest(1, "no cgroup filesystem"));
            return checks;
        }
    };
    let mut checks = vec![Check::ok(
        names[0],
        match &layout {
            Layout::V1 { root } => {
                format!("v1: one hierarchy per controller under {}", root.display())
            }
            Layout::V2 { root } => format!("v2: one unified tree at {}", root.display()),
            Layout::Hybrid { root, unified } => format!(
                "hybrid: v1 controllers under {}, a cgroup2 tree at {}",
                root.display(),
                unified.display()
            ),
        },
    )];
    let path = match CgroupPath::new(&expect.cgroup) {
        Ok(path) => path,
        Err(e) => {
            checks.push(Check::fail(
                names[1],
                "a valid cgroup path",
                e,
                "give --cgroup boxlab/NAME",
            ));
            checks.extend(rest(2, "no cgroup"));
            return checks;
        }
    };
    let Some(dirs) = dirs(&layout, &path) else {
        checks.push(Check::fail(
            names[1],
            format!("cgroup {path} under {}", layout.root().display()),
            "no such directory in any hierarchy",
            start(expect),
        ));
        checks.extend(rest(2, format!("no cgroup {path}").as_str()));
        return checks;
    };
    checks.push(Check::ok(
        names[1],
        dirs.all
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    ));
    let (memory_file, pids_file) = match layout {
        Layout::V2 { .. } => ("memory.max", "pids.max"),
        _ => ("memory.limit_in_bytes", "pids.max"),
    };
    checks.push(limit_check(
        names[2],
        dirs.memory.as_deref(),
        memory_file,
        expect.memory,
        format!("start it with --memory {}", bytes(expect.memory)),
    ));
    checks.push(limit_check(
        names[3],
        dirs.pids.as_deref(),
        pids_file,
        expect.pids,
        format!("start it with --pids {}", expect.pids),
    ));

    let procs_dir = dirs.memory.clone().or_else(|| dirs.all.first().cloned());
    let pids: Vec<i32> = procs_dir
        .and_then(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    if pids.is_empty() {
        checks.push(Check::fail(
            names[4],
            format!("at least one process in {path}"),
            "an empty cgroup.procs",
            format!("the command has ended; {}", start(expect)),
        ));
        checks.extend(rest(5, "no process inside"));
        return checks;
    }
    checks.push(Check::ok(
        names[4],
        pids.iter()
            .take(6)
            .map(|&p| format!("{p} ({})", procfs::command(p)))
            .collect::<Vec<_>>()
            .join(", "),
    ));

    // The newest process inside is the command (init and the waiter come first).
    let pid = *pids.iter().max().unwrap_or(&pids[0]);
    let want = format!("/{}", path.as_path().display());
    checks.push(match procfs::cgroups(pid) {
        Ok(lines) => {
            let memory = lines
                .iter()
                .find(|(controllers, _)| match layout {
                    Layout::V2 { .. } => controllers.is_empty(),
                    _ => controllers.split(',').any(|c| c == "memory"),
                })
                .map(|(_, p)| p.clone())
                .unwrap_or_default();
            Check::expect(
                names[5],
                memory == want,
                format!("/proc/{pid}/cgroup to name {want}"),
                format!("/proc/{pid}/cgroup names {memory}"),
                "the process was moved out of the cgroup: start it again",
            )
        }
        Err(e) => Check::not_checked(names[5], e),
    });
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_spelled_like_docker_and_shown_in_mib() {
        assert_eq!(bytes(64 << 20), "64m");
        assert_eq!(bytes(2 << 30), "2g");
        assert_eq!(bytes(1000), "1000");
        assert_eq!(show("67108864\n"), "67108864 (64 MiB)");
        assert_eq!(
            show("9223372036854771712"),
            "9223372036854771712 (unlimited)"
        );
        assert_eq!(show("max"), "max");
    }
}
