//! `kill <id> [SIGNAL] [--all]`: send a signal to the container's init (which passes it on to
//! the command), or with `--all` to every process in its cgroup.

use nix::sys::signal::{kill as send, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::ContainerState;

use crate::state::Store;
use crate::verbs::ps::container_pids;
use crate::OciError;

// ANCHOR: signal
/// `TERM`, `SIGTERM`, `sigterm` or `15`.
pub fn parse_signal(text: &str) -> Result<Signal, OciError> {
    let bad = || OciError::BadSignal {
        signal: text.to_string(),
    };
    if let Ok(number) = text.parse::<i32>() {
        return Signal::try_from(number).map_err(|_| bad());
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse().map_err(|_| bad())
}
// ANCHOR_END: signal

/// Signals container `id`.
pub fn kill(store: &Store, id: &str, signal: Signal, all: bool) -> Result<(), OciError> {
    let container = store.load(id)?;
    // A container still "creating" has no init to signal (its pid is 0, and kill(0) would hit
    // our own process group).
    if matches!(
        container.status(),
        ContainerState::Stopped | ContainerState::Creating
    ) {
        return Err(OciError::NotRunning { id: id.into() });
    }
    if all {
        for pid in container_pids(&container)? {
            let _ = send(pid, signal);
        }
        return Ok(());
    }
    let init = Pid::from_raw(container.record.pid);
    send(init, signal).map_err(|errno| OciError::Sys {
        what: format!("kill({init}, {signal}) for container {id}"),
        errno,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse_signal("TERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("SIGKILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("hup").unwrap(), Signal::SIGHUP);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("999").is_err());
    }
}
