//! `delete <id> [--force]`: remove a stopped (or, forced, a running) container: its processes,
//! its cgroup and its state directory.

use std::fs;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ch03_cgroups::{detect, Cgroup, CgroupPath};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::ContainerState;

use crate::log;
use crate::state::{process_is, Record, Store};
use crate::OciError;

// ANCHOR: delete
/// Deletes container `id`. A running container needs `force` (and is killed); a created one is
/// killed without it, as runc does. With `force`, a container that does not exist is no error,
/// and one whose `create` never finished (killed half way: "creating") is taken apart through
/// its cgroup, which holds whatever processes that `create` had started.
pub fn delete(store: &Store, id: &str, force: bool) -> Result<(), OciError> {
    let container = match store.load(id) {
        Ok(c) => c,
        Err(OciError::NotFound { .. }) if force => {
            // A `create` killed between making the directory and writing the record into it
            // left only the (empty) directory.
            let _ = fs::remove_dir_all(store.dir(id));
            return Ok(());
        }
        Err(OciError::BadState { .. }) if force => {
            let _ = fs::remove_dir_all(store.dir(id));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let record = &container.record;
    match container.status() {
        ContainerState::Running if !force => {
            return Err(OciError::WrongState {
                id: id.into(),
                status: container.status_name(),
                hint: "stop it first (kill), or delete it with --force",
            })
        }
        ContainerState::Creating if !force => {
            return Err(OciError::WrongState {
                id: id.into(),
                status: container.status_name(),
                hint: "its create has not finished (or was killed): delete it with --force",
            })
        }
        _ => {}
    }
    if process_is(record.pid, record.start_time) {
        // SIGKILL to PID 1 of a PID namespace ends every process in it. Init's zombie is for
        // whoever adopted it (the shim, or the host's init) to reap; dead is enough for us.
        let _ = kill(Pid::from_raw(record.pid), Signal::SIGKILL);
        // A frozen process does not die until thawed.
        if let Some(freezer) = crate::verbs::pause::freezer_of(&container) {
            if freezer.is_frozen() {
                let _ = freezer.set(false);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while process_is(record.pid, record.start_time) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let hooks = crate::hooks::load(&container.dir);
    destroy_cgroup(record, None);
    fs::remove_dir_all(&container.dir)
        .map_err(|e| OciError::io("removing the state directory", &container.dir, e))?;
    log::debug(&format!("deleted container {id}"));
    // After the container is gone (the spec's order); a failure is only a warning.
    let stopped = crate::hooks::with_status(&container.oci_state(), ContainerState::Stopped);
    crate::hooks::run_all_warn(crate::hooks::Kind::Poststop, &hooks, &stopped);
    Ok(())
}
// ANCHOR_END: delete

/// Removes the container's cgroup (killing what is left inside): through `handle` if we still
/// hold it, else re-opened by its path. A cgroup that is already gone is fine.
pub(crate) fn destroy_cgroup(record: &Record, handle: Option<Arc<Cgroup>>) {
    let cgroup = match handle.map(Arc::try_unwrap) {
        Some(Ok(cgroup)) => Some(cgroup),
        Some(Err(_)) | None => detect()
            .ok()
            .zip(CgroupPath::new(&record.cgroup).ok())
            .and_then(|(layout, path)| Cgroup::open(&layout, &path).ok()),
    };
    if let Some(cgroup) = cgroup {
        if let Err(e) = cgroup.remove() {
            log::warn(&format!("removing the cgroup of {}: {e}", record.id));
        }
    }
}
