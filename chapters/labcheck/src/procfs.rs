//! What `/proc` says about a process: its namespaces, its pid in each PID namespace, its root,
//! its cgroups, and what it sees from inside.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::ProbeError;

fn read(path: impl Into<PathBuf>) -> Result<String, ProbeError> {
    let path = path.into();
    fs::read_to_string(&path).map_err(|source| ProbeError::Read { path, source })
}

/// `readlink /proc/<pid>/ns/<kind>`, e.g. `pid:[4026531836]`: equal strings, same namespace.
pub fn namespace(pid: i32, kind: &str) -> Result<String, ProbeError> {
    let path = PathBuf::from(format!("/proc/{pid}/ns/{kind}"));
    fs::read_link(&path)
        .map(|target| target.display().to_string())
        .map_err(|source| ProbeError::Read { path, source })
}

/// The `NSpid:` line of `/proc/<pid>/status`: its pid in each PID namespace, outermost first.
pub fn nspid(pid: i32) -> Result<Vec<i32>, ProbeError> {
    status_field(pid, "NSpid:")?
        .split_whitespace()
        .map(|n| n.parse().ok())
        .collect::<Option<Vec<i32>>>()
        .ok_or(ProbeError::Parse {
            path: format!("/proc/{pid}/status").into(),
            what: "an NSpid line of numbers",
        })
}

/// The parent's pid (`PPid:`).
pub fn ppid(pid: i32) -> Result<i32, ProbeError> {
    status_field(pid, "PPid:")?
        .trim()
        .parse()
        .map_err(|_| ProbeError::Parse {
            path: format!("/proc/{pid}/status").into(),
            what: "a PPid number",
        })
}

fn status_field(pid: i32, key: &str) -> Result<String, ProbeError> {
    let path = PathBuf::from(format!("/proc/{pid}/status"));
    let text = read(&path)?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::to_string)
        .ok_or(ProbeError::Parse {
            path,
            what: "the expected field",
        })
}

/// The command line, one string per argument (empty for a kernel thread or a zombie).
pub fn cmdline(pid: i32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// The command line as one shell-like string, for messages.
pub fn command(pid: i32) -> String {
    let args = cmdline(pid);
    if args.is_empty() {
        fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| format!("[{}]", c.trim()))
            .unwrap_or_else(|_| "?".into())
    } else {
        args.join(" ")
    }
}

/// The file name of the program it runs (`readlink /proc/<pid>/exe`, last component).
pub fn exe_name(pid: i32) -> Option<String> {
    let target = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let name = target.file_name()?.to_string_lossy().into_owned();
    Some(name.trim_end_matches(" (deleted)").to_string())
}

/// Every process on the host (the pids this `/proc` lists).
pub fn all_pids() -> Vec<i32> {
    pids_in(Path::new("/proc"))
}

/// The numeric entries of a procfs directory: the processes that `/proc` shows.
pub fn pids_in(proc_dir: &Path) -> Vec<i32> {
    let mut pids: Vec<i32> = fs::read_dir(proc_dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    pids.sort_unstable();
    pids
}

/// The direct children of `pid`.
pub fn children(pid: i32) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&p| ppid(p).ok() == Some(pid))
        .collect()
}

/// The pids, as numbered *inside* the PID namespace `ns`, of every process in it.
pub fn inner_pids(ns: &str) -> BTreeSet<i32> {
    all_pids()
        .into_iter()
        .filter(|&p| namespace(p, "pid").ok().as_deref() == Some(ns))
        .filter_map(|p| nspid(p).ok()?.last().copied())
        .collect()
}

/// What the process sees in its `/proc`: `/proc/<pid>/root/proc` is walked through the
/// process's own root and mount namespace, so it is the procfs the process itself reads.
pub fn pids_seen_by(pid: i32) -> Result<BTreeSet<i32>, ProbeError> {
    // (Not `self`: that link exists only for a reader inside the procfs's PID namespace.)
    let dir = PathBuf::from(format!("/proc/{pid}/root/proc"));
    fs::read_dir(&dir).map_err(|source| ProbeError::Read {
        path: dir.clone(),
        source,
    })?;
    Ok(pids_in(&dir).into_iter().collect())
}

/// (device, inode) of the process's root directory: the host's `/` has the same pair as
/// `/proc/1/root`; a container that called `pivot_root` has another.
pub fn root_id(pid: i32) -> Result<(u64, u64), ProbeError> {
    let path = PathBuf::from(format!("/proc/{pid}/root/"));
    let meta = fs::metadata(&path).map_err(|source| ProbeError::Read { path, source })?;
    Ok((meta.dev(), meta.ino()))
}

/// The filesystem type mounted at the process's `/`, from its own `/proc/<pid>/mountinfo`.
pub fn root_fs_type(pid: i32) -> Result<String, ProbeError> {
    let path = PathBuf::from(format!("/proc/{pid}/mountinfo"));
    let text = read(&path)?;
    // 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
    text.lines()
        .filter(|l| l.split_whitespace().nth(4) == Some("/"))
        .filter_map(|l| l.split(" - ").nth(1)?.split_whitespace().next())
        .next_back()
        .map(str::to_string)
        .ok_or(ProbeError::Parse {
            path,
            what: "a mount on /",
        })
}

/// `/proc/<pid>/cgroup` as (hierarchy controllers, path) pairs; `""` names the v2 hierarchy.
pub fn cgroups(pid: i32) -> Result<Vec<(String, String)>, ProbeError> {
    Ok(read(format!("/proc/{pid}/cgroup"))?
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let _id = parts.next()?;
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect())
}

/// The network interfaces in the process's network namespace (`/proc/<pid>/net/dev`).
pub fn interfaces(pid: i32) -> Result<Vec<String>, ProbeError> {
    let mut names: Vec<String> = read(format!("/proc/{pid}/net/dev"))?
        .lines()
        .skip(2)
        .filter_map(|l| Some(l.split(':').next()?.trim().to_string()))
        .collect();
    names.sort();
    Ok(names)
}

/// The hostname in the process's UTS namespace: a helper thread enters that namespace with
/// `setns(2)` (UTS is per thread) and calls `gethostname(2)`; this thread is not moved.
pub fn hostname_of(pid: i32) -> Result<String, ProbeError> {
    let path = PathBuf::from(format!("/proc/{pid}/ns/uts"));
    let file = fs::File::open(&path).map_err(|source| ProbeError::Read {
        path: path.clone(),
        source,
    })?;
    std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWUTS)
            .map_err(|errno| ProbeError::Enter { path, errno })?;
        Ok(nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default())
    })
    .join()
    .unwrap_or_else(|_| Ok(String::new()))
}

/// True when `pid` is alive (a zombie counts as gone).
pub fn alive(pid: i32) -> bool {
    status_field(pid, "State:")
        .map(|s| !s.trim_start().starts_with('Z'))
        .unwrap_or(false)
}
