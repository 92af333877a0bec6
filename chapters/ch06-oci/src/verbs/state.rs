//! `state <id>`: the OCI state as JSON.

use oci_spec::runtime::State;

use crate::state::Store;
use crate::OciError;

/// The state of container `id`, with its status read off the system now.
pub fn state(store: &Store, id: &str) -> Result<State, OciError> {
    Ok(store.load(id)?.oci_state())
}

/// As `runc state` prints it: indented JSON.
pub fn state_json(store: &Store, id: &str) -> Result<String, OciError> {
    let container = store.load(id)?;
    let mut state =
        serde_json::to_value(container.oci_state()).map_err(|e| OciError::BadState {
            id: id.into(),
            path: store.dir(id),
            reason: e.to_string(),
        })?;
    if container.paused() {
        // oci-spec's ContainerState has no Paused: runc's word, written in.
        state["status"] = "paused".into();
    }
    serde_json::to_string_pretty(&state).map_err(|e| OciError::BadState {
        id: id.into(),
        path: store.dir(id),
        reason: e.to_string(),
    })
}
