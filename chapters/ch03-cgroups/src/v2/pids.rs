//! cgroup v2 pids controller: the very same files as v1 (`pids.max`, `pids.current`), so the
//! same code.

pub use crate::v1::pids::{apply, read_usage};
