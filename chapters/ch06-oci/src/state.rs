//! The state directory: all a runtime remembers of a container between two invocations.
//!
//! ```text
//!   <root>/<id>/state.json   who the container is: its init's host pid and start time, bundle,
//!                            cgroup, creation time, annotations
//!   <root>/<id>/exec.fifo    the start gate: present while the container is "created"
//! ```
//!
//! The status is never stored: it is read off the system each time (is init alive? is the gate
//! still there?), so it cannot go stale when a container's process ends on its own.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use oci_spec::runtime::{ContainerState, State, StateBuilder};
use serde::{Deserialize, Serialize};

use crate::OciError;

/// The name of the start gate inside the state directory (runc's name).
pub const EXEC_FIFO: &str = "exec.fifo";
/// The name of the record inside the state directory.
pub const STATE_FILE: &str = "state.json";

/// What `create` writes about a container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub oci_version: String,
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// The host pid of the container's init (PID 1 inside).
    pub pid: i32,
    /// Init's start time (`/proc/<pid>/stat` field 22, clock ticks since boot): a pid can be
    /// reused after init ends, the pair cannot.
    pub start_time: u64,
    /// The host pid of chapter 2's waiter (init's parent) while a foreground `run` keeps it;
    /// 0 once `create` has handed init over to its caller's subreaper.
    pub waiter: i32,
    /// The port keeper forwarding the container's published ports (see [`crate::ports`]); 0
    /// when it has none.
    #[serde(default)]
    pub port_keeper: i32,
    /// The cgroup, as given to [`ch03_cgroups::CgroupPath::new`].
    pub cgroup: String,
    /// When `create` ran (RFC 3339).
    pub created: String,
    /// Who created it (user name or uid).
    pub owner: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
}

// ANCHOR: id
/// Checks a container id as runc does: letters, digits and `_ + - .`, and not `.` or `..` (the
/// id names a directory under `--root`, so it must never be a path).
pub fn check_id(id: &str) -> Result<(), OciError> {
    let bad = |reason| OciError::BadId {
        id: id.to_string(),
        reason,
    };
    if id.is_empty() {
        return Err(bad("it is empty"));
    }
    if id == "." || id == ".." {
        return Err(bad("'.' and '..' are not names"));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'))
    {
        return Err(bad("use only letters, digits and _ + - ."));
    }
    if id.len() > 1024 {
        return Err(bad("it is longer than 1024 characters"));
    }
    Ok(())
}
// ANCHOR_END: id

/// The directory under which each container has its state directory (`--root`).
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/<id>`.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Makes the state directory of a new container: exclusively, so that a second `create`
    /// with the same id fails instead of sharing it.
    pub fn create_dir(&self, id: &str) -> Result<PathBuf, OciError> {
        check_id(id)?;
        fs::create_dir_all(&self.root)
            .map_err(|e| OciError::io("creating the state root", &self.root, e))?;
        let dir = self.dir(id);
        match fs::create_dir(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(OciError::Exists {
                id: id.to_string(),
                dir,
            }),
            Err(e) => Err(OciError::io("creating the state directory", dir, e)),
        }
    }

    /// Loads an existing container.
    pub fn load(&self, id: &str) -> Result<Container, OciError> {
        check_id(id)?;
        let dir = self.dir(id);
        let file = dir.join(STATE_FILE);
        let text = match fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(OciError::NotFound {
                    id: id.to_string(),
                    root: self.root.clone(),
                })
            }
            Err(e) => return Err(OciError::io("reading", file, e)),
        };
        let record = serde_json::from_str(&text).map_err(|e| OciError::BadState {
            id: id.to_string(),
            path: file.clone(),
            reason: e.to_string(),
        })?;
        Ok(Container { dir, record })
    }

    /// Every container with a readable record, sorted by id.
    pub fn list(&self) -> Vec<Container> {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut found: Vec<Container> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|id| self.load(&id).ok())
            .collect();
        found.sort_by(|a, b| a.record.id.cmp(&b.record.id));
        found
    }
}

/// A container that has a state directory.
#[derive(Debug, Clone)]
pub struct Container {
    pub dir: PathBuf,
    pub record: Record,
}

impl Container {
    /// `<dir>/exec.fifo`.
    pub fn fifo(&self) -> PathBuf {
        self.dir.join(EXEC_FIFO)
    }

    // ANCHOR: status
    /// Creating, created, running or stopped — read off the system now:
    /// - no init recorded yet → creating (`create` has not finished, or was killed before it
    ///   could: only `delete --force` removes such a container);
    /// - init gone (or its pid now belongs to another process) → stopped;
    /// - init alive and the start gate still there → created;
    /// - init alive and the gate gone (`start` removed it) → running (or paused: see
    ///   [`Container::paused`]).
    pub fn status(&self) -> ContainerState {
        if self.record.pid <= 0 {
            return ContainerState::Creating;
        }
        if !process_is(self.record.pid, self.record.start_time) {
            return ContainerState::Stopped;
        }
        if self.fifo().exists() {
            ContainerState::Created
        } else {
            ContainerState::Running
        }
    }
    // ANCHOR_END: status

    /// Running, but its cgroup's freezer says frozen (`pause`). oci-spec's `ContainerState`
    /// has no `Paused`, so [`Container::status_name`] and `state` add it.
    pub fn paused(&self) -> bool {
        self.status() == ContainerState::Running
            && crate::verbs::pause::freezer_of(self).is_some_and(|f| f.is_frozen())
    }

    /// `creating`, `created`, `running`, `paused` or `stopped`, as runc reports it.
    pub fn status_name(&self) -> String {
        if self.paused() {
            "paused".into()
        } else {
            self.status().to_string()
        }
    }

    /// The OCI state, as `runc state` prints it. A stopped container has no pid, nor has one
    /// still being created.
    pub fn oci_state(&self) -> State {
        let status = self.status();
        let mut builder = StateBuilder::default()
            .version(self.record.oci_version.clone())
            .id(self.record.id.clone())
            .status(status)
            .bundle(self.record.bundle.clone())
            .annotations(self.record.annotations.clone());
        if !matches!(status, ContainerState::Stopped | ContainerState::Creating) {
            builder = builder.pid(self.record.pid);
        }
        // Every field has a default: building cannot fail.
        builder.build().unwrap_or_default()
    }

    /// Writes the record (atomically: a reader never sees half a file).
    pub fn save(&self) -> Result<(), OciError> {
        save_record(&self.dir, &self.record)
    }
}

/// Makes a FIFO in a container's state directory (the start gate, the startContainer report):
/// mode `0o622`, so that the container's process can write to it after switching to its user.
/// `mkfifo` applies our umask, hence the mode set again after it.
pub fn make_fifo(path: &Path) -> Result<(), OciError> {
    const MODE: u32 = 0o622;
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(MODE)).map_err(|errno| {
        OciError::Sys {
            what: format!("mkfifo {}", path.display()),
            errno,
        }
    })?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(MODE))
        .map_err(|e| OciError::io("setting the mode (0622) of the FIFO", path, e))
}

/// Writes `record` into `dir/state.json` via a temporary file and a rename.
pub fn save_record(dir: &Path, record: &Record) -> Result<(), OciError> {
    let file = dir.join(STATE_FILE);
    let tmp = dir.join(".state.json.tmp");
    let text = serde_json::to_string_pretty(record).map_err(|e| OciError::BadState {
        id: record.id.clone(),
        path: file.clone(),
        reason: e.to_string(),
    })?;
    fs::write(&tmp, text).map_err(|e| OciError::io("writing", &tmp, e))?;
    fs::rename(&tmp, &file).map_err(|e| OciError::io("writing", &file, e))
}

// ANCHOR: start_time
/// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks since boot. The
/// second field (the command name) may hold spaces and parentheses, so count from the last `)`.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // rest = " S ppid ..." : field 3 is its first word, so field 22 is the 20th.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The process state letter (`R`, `S`, `Z`...), field 3 of `/proc/<pid>/stat`.
fn state_letter(pid: i32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().next()?.chars().next()
}

/// Whether `pid` is alive (not a zombie) and is still the process that started at `started`.
pub fn process_is(pid: i32, started: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    match kill(Pid::from_raw(pid), None) {
        Ok(()) | Err(Errno::EPERM) => {}
        Err(_) => return false,
    }
    start_time(pid) == Some(started) && !matches!(state_letter(pid), Some('Z' | 'X'))
}
// ANCHOR_END: start_time

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_names_not_paths() {
        for good in ["abc", "a-b_c.d+1", "0123456789abcdef"] {
            check_id(good).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "../x", "a b", "é"] {
            assert!(check_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn our_own_start_time_is_read_and_guards_reuse() {
        let me = std::process::id() as i32;
        let started = start_time(me).unwrap();
        assert!(process_is(me, started));
        assert!(!process_is(me, started + 1));
        assert!(!process_is(0, started));
    }

    /// The record of container `c1` with init `pid` started at `start_time`.
    fn record_of(pid: i32, start_time: u64) -> Record {
        Record {
            oci_version: "1.0.2".into(),
            id: "c1".into(),
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            pid,
            start_time,
            waiter: 0,
            port_keeper: 0,
            cgroup: "boxlab/c1".into(),
            created: "now".into(),
            owner: "root".into(),
            annotations: HashMap::new(),
        }
    }

    #[test]
    fn a_stopped_container_has_no_pid_in_its_state() {
        let scratch = labkit::ScratchDir::new("ch06-state").unwrap();
        let store = Store::new(scratch.join("root"));
        let dir = store.create_dir("c1").unwrap();
        let record = record_of(i32::MAX, 1);
        save_record(&dir, &record).unwrap();
        assert!(matches!(
            store.create_dir("c1"),
            Err(OciError::Exists { .. })
        ));
        let c = store.load("c1").unwrap();
        assert_eq!(c.record, record);
        assert_eq!(c.status(), ContainerState::Stopped);
        let json = serde_json::to_value(c.oci_state()).unwrap();
        assert_eq!(json["status"], "stopped");
        assert_eq!(json["ociVersion"], "1.0.2");
        assert!(json.get("pid").is_none());
        assert_eq!(store.list().len(), 1);
        assert!(matches!(store.load("c2"), Err(OciError::NotFound { .. })));
    }

    #[test]
    fn a_record_without_an_init_is_creating_and_has_no_pid() {
        let scratch = labkit::ScratchDir::new("ch06-state-creating").unwrap();
        let store = Store::new(scratch.join("root"));
        let dir = store.create_dir("c1").unwrap();
        let record = record_of(0, 0);
        save_record(&dir, &record).unwrap();
        let c = store.load("c1").unwrap();
        assert_eq!(c.status(), ContainerState::Creating);
        assert_eq!(c.status_name(), "creating");
        let json = serde_json::to_value(c.oci_state()).unwrap();
        assert_eq!(json["status"], "creating");
        assert!(json.get("pid").is_none());
    }
}
