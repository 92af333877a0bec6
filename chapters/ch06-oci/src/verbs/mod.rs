//! One file per runc verb. Each takes the [`Store`](crate::state::Store) (`--root`) and its own
//! arguments, and returns what `main` prints or an [`OciError`](crate::OciError).

pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod features;
pub mod kill;
pub mod list;
pub mod pause;
pub mod ps;
pub mod run;
pub mod spec;
pub mod start;
pub mod state;

/// The global flags that matter to more than one verb.
#[derive(Debug, Clone, Default)]
pub struct Globals {
    /// `--systemd-cgroup`: `linux.cgroupsPath` is `slice:prefix:name`, to be made through systemd.
    pub systemd_cgroup: bool,
}
