//! `start <id>`: open the start gate, and the waiting command runs.

use std::fs;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::stat::Mode;
use oci_spec::runtime::ContainerState;

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
/// what marks the container `running` from now on.
///
/// Opened non-blocking, and polled with a timeout: if the container's init dies while we wait
/// (a `kill` of a created container), a blocking open would wait for ever.
pub fn open_gate(container: &Container) -> Result<(), OciError> {
    let id = &container.record.id;
    let fifo = container.fifo();
    let failed = |reason: String| OciError::Start {
        id: id.clone(),
        reason,
    };
    let fd = open(
        &fifo,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| failed(format!("opening {}: {e}", fifo.display())))?;
    loop {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(0) | Err(Errno::EINTR) => {
                if !process_is(container.record.pid, container.record.start_time) {
                    return Err(failed(
                        "its init exited before the command could start".into(),
                    ));
                }
                if !fifo.exists() {
                    return Err(failed("another 'start' opened the gate first".into()));
                }
            }
            Ok(_) => {
                let mut byte = [0u8; 1];
                match nix::unistd::read(&fd, &mut byte) {
                    Ok(1) => break,
                    Ok(_) | Err(Errno::EAGAIN) => {
                        // Woken by a writer that went away without a byte: the command died.
                        if !process_is(container.record.pid, container.record.start_time) {
                            return Err(failed("the command exited at the start gate".into()));
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => return Err(failed(format!("reading {}: {e}", fifo.display()))),
                }
            }
            Err(e) => return Err(failed(format!("waiting on {}: {e}", fifo.display()))),
        }
    }
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
