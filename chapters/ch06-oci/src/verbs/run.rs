//! `run <id> --bundle DIR [--detach]`: create + start, and (without `--detach`) wait for the
//! command and remove the container, exiting with the command's status.

use nix::unistd::Pid;
use oci_spec::runtime::ContainerState;

use crate::log;
use crate::state::{Container, Store};
use crate::verbs::create::{create, record_init, spawn, CreateOptions, Spawned};
use crate::verbs::delete::{delete, destroy_cgroup};
use crate::verbs::start::{after_gate, open_gate, start};
use crate::verbs::Globals;
use crate::OciError;

// ANCHOR: run
/// Runs container `id`; returns the exit status to exit with (0 at once with `detach`).
pub fn run(
    store: &Store,
    id: &str,
    options: &CreateOptions,
    globals: &Globals,
    detach: bool,
) -> Result<i32, OciError> {
    if detach {
        create(store, id, options, globals)?;
        if let Err(e) = start(store, id) {
            let _ = delete(store, id, true);
            return Err(e);
        }
        return Ok(0);
    }
    // In the foreground we keep chapter 2's handle: it waits for the command and reaps.
    let Spawned {
        child,
        cgroup,
        guard,
        mut record,
        dir,
        console,
    } = spawn(store, id, options, globals, true)?;
    let init = child.pid();
    // Published ports: the keeper ends by itself with init; we reap it below.
    let keeper = record_init(&mut record, &dir, options, init, child.address())?;
    let container = Container {
        dir: dir.clone(),
        record,
    };
    // Init sent the terminal's master before the command reached the gate: it is waiting.
    let master = console.map(|c| c.master()).transpose()?;
    open_gate(&container)?;
    after_gate(&container)?;
    // Ctrl-C and friends reach us: pass them on to the container's init, which passes them on.
    ch02_namespaces::init::forward_signals_to(Pid::from_raw(init.as_raw()));
    if let Some(master) = master {
        crate::console::relay(master)?;
    }
    let exit = child.wait();
    if let Some(keeper) = keeper {
        let _ = nix::sys::wait::waitpid(keeper, None);
    }
    let hooks = crate::hooks::load(&dir);
    destroy_cgroup(&container.record, Some(cgroup));
    drop(guard); // removes the state directory
    let stopped = crate::hooks::with_status(&container.oci_state(), ContainerState::Stopped);
    crate::hooks::run_all_warn(crate::hooks::Kind::Poststop, &hooks, &stopped);
    let exit = exit?;
    log::debug(&format!("container {id} ended: {exit:?}"));
    Ok(exit.shell_code())
}
// ANCHOR_END: run
