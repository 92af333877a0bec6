//! `pause <id>` / `resume <id>`: chapter 3's cgroup freezer stops every process of the
//! container at once, and thaws them again (v1's `freezer.state`, or v2's `cgroup.freeze`).

use ch03_cgroups::{detect, Cgroup, CgroupPath, Freezer};
use oci_spec::runtime::ContainerState;

use crate::state::{Container, Store};
use crate::OciError;

/// The container's freezer (chapter 3's), if its cgroup has one; none once the cgroup is gone.
pub fn freezer_of(container: &Container) -> Option<Freezer> {
    let layout = detect().ok()?;
    let path = CgroupPath::new(&container.record.cgroup).ok()?;
    Freezer::of(&Cgroup::observe(&layout, &path).ok()?)
}

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
    Ok(freezer(&container)?.set(true)?)
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
    Ok(freezer(&container)?.set(false)?)
}

fn freezer(container: &Container) -> Result<Freezer, OciError> {
    freezer_of(container).ok_or_else(|| OciError::Unsupported {
        what: format!("pausing container '{}'", container.record.id),
        hint: "its cgroup has no freezer (no v1 freezer hierarchy, no cgroup.freeze on v2)",
    })
}
