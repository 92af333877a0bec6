//! The freezer: stops every process of a cgroup at once, and thaws them again (chapter 6's
//! `pause` and `resume`).
//!
//! - cgroup v1: `freezer/<path>/freezer.state` ← `FROZEN` / `THAWED` (reads `FREEZING` while
//!   in progress);
//! - cgroup v2: `<path>/cgroup.freeze` ← `1` / `0` (`cgroup.events` says `frozen 1` when done).
//!
//! A hybrid host has both; the v1 freezer is used where it is mounted.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::files::{read, read_keyed, write};
use crate::{Cgroup, CgroupError, V1Controller};

/// How long [`Freezer::set`] waits for the kernel to finish freezing or thawing.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a cgroup's freezer lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freezer {
    /// The v1 cgroup directory in the `freezer` hierarchy.
    V1(PathBuf),
    /// The cgroup2 directory (the cgroup on v2, its twin on hybrid).
    V2(PathBuf),
}

// ANCHOR: freezer
impl Freezer {
    /// The cgroup's freezer, if it has one: its v1 `freezer` directory, else its cgroup2
    /// directory where the kernel offers `cgroup.freeze` (5.2 and later).
    pub fn of(cgroup: &Cgroup) -> Option<Freezer> {
        match cgroup.v1_dir(V1Controller::Freezer) {
            Some(dir) => Some(Freezer::V1(dir.to_path_buf())),
            None => cgroup
                .unified_dir()
                .filter(|d| d.join("cgroup.freeze").exists())
                .map(|d| Freezer::V2(d.to_path_buf())),
        }
    }

    /// Whether the processes are frozen now (a freeze still in progress counts: they are
    /// not running).
    pub fn is_frozen(&self) -> bool {
        match self {
            Freezer::V1(dir) => read(dir, "freezer.state")
                .is_ok_and(|state| matches!(state.as_str(), "FROZEN" | "FREEZING")),
            Freezer::V2(dir) => read(dir, "cgroup.freeze").is_ok_and(|v| v == "1"),
        }
    }

    /// Whether the kernel has finished freezing (or thawing) to `frozen`.
    fn settled(&self, frozen: bool) -> bool {
        match self {
            Freezer::V1(dir) => {
                read(dir, "freezer.state").is_ok_and(|state| state == v1_state(frozen))
            }
            Freezer::V2(dir) => read_keyed(dir, "cgroup.events", "frozen")
                .is_ok_and(|value| value == Some(u64::from(frozen))),
        }
    }

    /// Freezes (`true`) or thaws (`false`), and waits (up to 5 s) for it to take effect.
    pub fn set(&self, frozen: bool) -> Result<(), CgroupError> {
        let (dir, file, value) = match self {
            Freezer::V1(dir) => (dir, "freezer.state", v1_state(frozen)),
            Freezer::V2(dir) => (dir, "cgroup.freeze", if frozen { "1" } else { "0" }),
        };
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            // v1 may stay FREEZING if a task is busy in the kernel: writing again retries.
            write(dir, file, value)?;
            if self.settled(frozen) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(CgroupError::NotSettled {
                    file: dir.join(file),
                    value,
                    seconds: SETTLE_TIMEOUT.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
// ANCHOR_END: freezer

/// v1's word for the state asked for.
fn v1_state(frozen: bool) -> &'static str {
    if frozen {
        "FROZEN"
    } else {
        "THAWED"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain files standing in for the kernel's: it would change `freezer.state` and
    /// `cgroup.events` itself; here they already say what `set` waits for.
    #[test]
    fn set_writes_the_file_and_waits_for_the_state() {
        let scratch = labkit::ScratchDir::new("freezer").unwrap();
        let dir = scratch.path().to_path_buf();

        let v1 = Freezer::V1(dir.clone());
        v1.set(true).unwrap();
        assert_eq!(read(&dir, "freezer.state").unwrap(), "FROZEN");
        assert!(v1.is_frozen());

        let v2 = Freezer::V2(dir.clone());
        std::fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        v2.set(true).unwrap();
        assert!(v2.is_frozen());
        // The kernel never reports thawed here: `set` gives up and says which file.
        let start = Instant::now();
        let err = v2.set(false).unwrap_err().to_string();
        assert!(err.contains("cgroup.freeze did not settle to 0"), "{err}");
        assert!(start.elapsed() >= SETTLE_TIMEOUT);
    }
}
