//! `pause <id>` / `resume <id>`: the cgroup freezer stops every process of the container at
//! once, and thaws them again.
//!
//! - cgroup v1: `freezer/<path>/freezer.state` ← `FROZEN` / `THAWED` (reads `FREEZING` while
//!   in progress);
//! - cgroup v2: `<path>/cgroup.freeze` ← `1` / `0` (`cgroup.events` says `frozen 1` when done).
//!
//! A hybrid host has both; the v1 freezer is used where it is mounted.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ch03_cgroups::{detect, Cgroup, CgroupPath, V1Controller};
use oci_spec::runtime::ContainerState;

use crate::state::{Container, Store};
use crate::OciError;

/// Where a container's freezer lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freezer {
    /// The v1 cgroup directory in the `freezer` hierarchy.
    V1(PathBuf),
    /// The cgroup2 directory (the cgroup on v2, its twin on hybrid).
    V2(PathBuf),
}

// ANCHOR: freezer
impl Freezer {
    /// The container's freezer, if its cgroup has one.
    pub fn of(container: &Container) -> Option<Freezer> {
        let layout = detect().ok()?;
        let path = CgroupPath::new(&container.record.cgroup).ok()?;
        let cgroup = Cgroup::open(&layout, &path).ok()?;
        let found = match cgroup.v1_dir(V1Controller::Freezer) {
            Some(dir) => Some(Freezer::V1(dir.to_path_buf())),
            None => cgroup
                .unified_dir()
                .filter(|d| d.join("cgroup.freeze").exists())
                .map(|d| Freezer::V2(d.to_path_buf())),
        };
        cgroup.keep(); // only looking
        found
    }

    /// Whether the processes are frozen now (a freeze still in progress counts: they are
    /// not running).
    pub fn is_frozen(&self) -> bool {
        match self {
            Freezer::V1(dir) => std::fs::read_to_string(dir.join("freezer.state"))
                .map(|s| matches!(s.trim(), "FROZEN" | "FREEZING"))
                .unwrap_or(false),
            Freezer::V2(dir) => std::fs::read_to_string(dir.join("cgroup.freeze"))
                .map(|s| s.trim() == "1")
                .unwrap_or(false),
        }
    }

    /// Whether the kernel has finished freezing (or thawing) to `frozen`.
    fn settled(&self, frozen: bool) -> bool {
        match self {
            Freezer::V1(dir) => std::fs::read_to_string(dir.join("freezer.state"))
                .map(|s| s.trim() == if frozen { "FROZEN" } else { "THAWED" })
                .unwrap_or(false),
            Freezer::V2(dir) => std::fs::read_to_string(dir.join("cgroup.events"))
                .map(|s| {
                    s.lines()
                        .any(|l| l == if frozen { "frozen 1" } else { "frozen 0" })
                })
                .unwrap_or(false),
        }
    }

    /// Freezes (`true`) or thaws (`false`), and waits (up to 5 s) for it to take effect.
    pub fn set(&self, frozen: bool) -> Result<(), OciError> {
        let (dir, file, value) = match self {
            Freezer::V1(dir) => (
                dir,
                "freezer.state",
                if frozen { "FROZEN" } else { "THAWED" },
            ),
            Freezer::V2(dir) => (dir, "cgroup.freeze", if frozen { "1" } else { "0" }),
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            // v1 may stay FREEZING if a task is busy in the kernel: writing again retries.
            ch03_cgroups::files::write(dir, file, value)?;
            if self.settled(frozen) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(OciError::Sys {
                    what: format!("{} did not settle to {value}", dir.join(file).display()),
                    errno: nix::errno::Errno::EBUSY,
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
// ANCHOR_END: freezer

/// Freezes container `id` (which must be running).
pub fn pause(store: &Store, id: &str) -> Result<(), OciError> {
    let container = store.load(id)?;
    if container.status() != ContainerState::Running || container.paused() {
        return Err(OciError::WrongState {
            id: id.into(),
            status: container.status_name(),
            hint: "only a running container can be paused",
        });
    }
    freezer(&container)?.set(true)
}

/// Thaws container `id` (which must be paused).
pub fn resume(store: &Store, id: &str) -> Result<(), OciError> {
    let container = store.load(id)?;
    if !container.paused() {
        return Err(OciError::WrongState {
            id: id.into(),
            status: container.status_name(),
            hint: "only a paused container can be resumed",
        });
    }
    freezer(&container)?.set(false)
}

fn freezer(container: &Container) -> Result<Freezer, OciError> {
    Freezer::of(container).ok_or_else(|| OciError::Unsupported {
        what: format!("pausing container '{}'", container.record.id),
        hint: "its cgroup has no freezer (no v1 freezer hierarchy, no cgroup.freeze on v2)",
    })
}
