//! Who is this process, and what does it share with the host? All of it is in `/proc`.
//!
//! - `getpid()` / `getppid()`: its id and its parent's.
//! - `/proc/self/ns/*`: one symbolic link per namespace kind, `net:[4026531833]`. The number is
//!   the namespace's inode: two processes with the same number are in the same namespace, see the
//!   same network devices, the same PIDs, the same mounts. Comparing with PID 1 (init, the host's
//!   first process) tells whether we are in the host's namespaces.
//! - `/proc/self/cgroup`: which control group limits it, one line per hierarchy
//!   (`4:memory:/user.slice` on cgroup v1, `0::/user.slice/…` on v2).
//!
//! A plain process is in *all* of the host's namespaces; chapter 2 changes that.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::unistd::{getpid, getppid, Pid};

/// Why this process's identity could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// A file in `/proc` could not be read (is `/proc` mounted?).
    #[error("reading {path}: {source} (is /proc mounted?)")]
    Read { path: PathBuf, source: io::Error },
}

/// One namespace this process is in, compared with PID 1's and the parent's.
#[derive(Debug, Clone)]
pub struct Namespace {
    /// The kind: `net`, `pid`, `mnt`, …, as named in `/proc/self/ns/`.
    pub kind: String,
    /// Our link, e.g. `net:[4026531833]`.
    pub ours: String,
    /// PID 1's link, or why it could not be read (reading another user's, or without
    /// `CAP_SYS_PTRACE` over PID 1, gives "permission denied").
    pub init: Result<String, String>,
    /// Our parent's link, or why it could not be read.
    pub parent: Result<String, String>,
}

impl Namespace {
    /// `Some(true)` if PID 1 is in the same namespace (shared with the host), `None` if PID 1's
    /// could not be read.
    pub fn shared_with_init(&self) -> Option<bool> {
        self.init.as_ref().ok().map(|init| *init == self.ours)
    }

    /// `Some(true)` if our parent is in the same namespace.
    pub fn shared_with_parent(&self) -> Option<bool> {
        self.parent.as_ref().ok().map(|parent| *parent == self.ours)
    }
}

/// One line of `/proc/self/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupLine {
    /// Hierarchy id: 0 for the cgroup v2 (unified) hierarchy.
    pub hierarchy: u32,
    /// Controllers of this v1 hierarchy (`memory`, `cpu,cpuacct`); empty for v2.
    pub controllers: String,
    /// The cgroup's path, relative to the hierarchy's mount (under `/sys/fs/cgroup`).
    pub path: String,
}

/// What `/proc` says about this process.
#[derive(Debug, Clone)]
pub struct Identity {
    pub pid: Pid,
    pub ppid: Pid,
    /// The parent's command name (`/proc/<ppid>/comm`), if readable.
    pub parent_command: Option<String>,
    pub namespaces: Vec<Namespace>,
    pub cgroups: Vec<CgroupLine>,
}

// ANCHOR: inspect
/// Reads this process's pid, parent, namespaces and cgroups.
pub fn identify() -> Result<Identity, InspectError> {
    let pid = getpid();
    let ppid = getppid();
    let parent_command = fs::read_to_string(format!("/proc/{ppid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_string());

    let ns_dir = Path::new("/proc/self/ns");
    let mut kinds = fs::read_dir(ns_dir)
        .map_err(read_error(ns_dir))?
        .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_error(ns_dir))?;
    kinds.sort();
    let mut namespaces = Vec::with_capacity(kinds.len());
    for kind in kinds {
        let ours = read_link(&ns_dir.join(&kind)).map_err(read_error(&ns_dir.join(&kind)))?;
        let init = read_link(&Path::new("/proc/1/ns").join(&kind)).map_err(|e| describe(&e));
        let parent = read_link(&Path::new(&format!("/proc/{ppid}/ns")).join(&kind))
            .map_err(|e| describe(&e));
        namespaces.push(Namespace {
            kind,
            ours,
            init,
            parent,
        });
    }

    let cgroup_path = Path::new("/proc/self/cgroup");
    let cgroups = parse_cgroups(&fs::read_to_string(cgroup_path).map_err(read_error(cgroup_path))?);
    Ok(Identity {
        pid,
        ppid,
        parent_command,
        namespaces,
        cgroups,
    })
}
// ANCHOR_END: inspect

fn read_error(path: &Path) -> impl FnOnce(io::Error) -> InspectError {
    let path = path.to_path_buf();
    move |source| InspectError::Read { path, source }
}

fn read_link(path: &Path) -> io::Result<String> {
    Ok(fs::read_link(path)?.to_string_lossy().into_owned())
}

fn describe(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::PermissionDenied => {
            "permission denied (needs CAP_SYS_PTRACE over that process)".into()
        }
        io::ErrorKind::NotFound => {
            "not found (that process is gone, or the kernel lacks this namespace)".into()
        }
        _ => error.to_string(),
    }
}

/// Parses `/proc/<pid>/cgroup`: `hierarchy-id:controllers:path` per line. Malformed lines are
/// skipped (the kernel writes none).
pub fn parse_cgroups(text: &str) -> Vec<CgroupLine> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let hierarchy = parts.next()?.parse().ok()?;
            let controllers = parts.next()?.to_string();
            let path = parts.next()?.to_string();
            Some(CgroupLine {
                hierarchy,
                controllers,
                path,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v1_and_v2_lines() {
        let lines = parse_cgroups(
            "4:memory:/user.slice\n2:cpu,cpuacct:/\n0::/user.slice/session-1.scope\nbogus\n",
        );
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0],
            CgroupLine {
                hierarchy: 4,
                controllers: "memory".into(),
                path: "/user.slice".into()
            }
        );
        assert_eq!(lines[1].controllers, "cpu,cpuacct");
        assert_eq!(
            lines[2],
            CgroupLine {
                hierarchy: 0,
                controllers: String::new(),
                path: "/user.slice/session-1.scope".into()
            }
        );
    }

    #[test]
    fn a_plain_process_shares_every_namespace_with_its_parent() {
        let me = identify().unwrap();
        assert_eq!(me.pid, getpid());
        assert!(me
            .namespaces
            .iter()
            .any(|ns| ns.kind == "net" && ns.ours.starts_with("net:[")));
        for ns in &me.namespaces {
            assert_ne!(ns.shared_with_parent(), Some(false), "{ns:?}");
        }
        assert!(!me.cgroups.is_empty());
    }
}
