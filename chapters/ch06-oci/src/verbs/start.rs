//! `start <id>`: open the start gate, and the waiting command runs.

use std::fs;
use std::path::Path;

use oci_spec::runtime::ContainerState;

use crate::fifo_watch::{watch_fifo, Heard};
use crate::log;
use crate::state::{process_is, Container, Store};
use crate::OciError;

/// Starts a `created` container.
pub fn start(store: &Store, id: &str) -> Result<(), OciError> {
    let container = store.load(id)?;
    match container.status() {
        ContainerState::Created => {}
        ContainerState::Running => {
            return Err(OciError::WrongState {
                id: id.into(),
                status: "running".into(),
                hint: "it has been started already",
            })
        }
        status => {
            return Err(OciError::WrongState {
                id: id.into(),
                status: status.to_string(),
                hint: "only a created container can be started; delete it and create it again",
            })
        }
    }
    open_gate(&container)?;
    after_gate(&container)?;
    log::debug(&format!("started container {id}"));
    Ok(())
}

// ANCHOR: after_gate
/// What `start` does once the gate is open: hear how the startContainer hooks went (a failure
/// fails `start`; the command has ended with it, so the container is stopped), then run the
/// poststart hooks, whose failures are only warnings.
pub fn after_gate(container: &Container) -> Result<(), OciError> {
    crate::hooks::await_start_report(container)?;
    let hooks = crate::hooks::load(&container.dir);
    crate::hooks::run_all_warn(
        crate::hooks::Kind::Poststart,
        &hooks,
        &container.oci_state(),
    );
    Ok(())
}
// ANCHOR_END: after_gate

// ANCHOR: gate
/// Opens `exec.fifo` for reading and takes the one byte the command writes: the command's
/// blocking `open(O_WRONLY)` returns, and it goes on to `exec`. Then removes the FIFO, which is
/// what marks the container `running` from now on. If the container's init dies while we wait
/// (a `kill` of a created container), `start` says so instead of waiting for ever.
pub fn open_gate(container: &Container) -> Result<(), OciError> {
    let fifo = container.fifo();
    let alive = || process_is(container.record.pid, container.record.start_time);
    watch_fifo(&fifo, |heard| match heard {
        Heard::Bytes(_) => Ok(Some(())),
        Heard::Nothing if !alive() => Err("its init exited before the command could start".into()),
        Heard::Nothing if !fifo.exists() => Err("another 'start' opened the gate first".into()),
        // Woken by a writer that went away without a byte: the command died.
        Heard::NoWriter if !alive() => Err("the command exited at the start gate".into()),
        Heard::Nothing | Heard::NoWriter => Ok(None),
    })
    .map_err(|reason| OciError::Start {
        id: container.record.id.clone(),
        reason,
    })?;
    remove_gate(&fifo)
}
// ANCHOR_END: gate

fn remove_gate(fifo: &Path) -> Result<(), OciError> {
    match fs::remove_file(fifo) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(OciError::io("removing the start gate", fifo, e)),
    }
}
