//! OCI hooks: programs from `config.json` that the runtime runs at fixed points of a container's
//! life, each given the container's OCI state (what `state` prints) on its stdin.
//!
//! ```text
//!  create ─▶ namespaces, cgroup, mounts ─▶ prestart, createRuntime   (runtime side, "creating")
//!                                       ─▶ createContainer           (init, inside, "creating")
//!           pivot_root ─▶ … ─▶ waits at the start gate
//!  start  ─▶ gate opens ─▶ startContainer                            (command, inside, "created")
//!                       ─▶ exec ─▶ poststart                         (runtime side, "running")
//!  delete ─▶ kill, cgroup and state removed ─▶ poststop              (runtime side, "stopped")
//! ```
//!
//! The spec asks for two things that pull against each other: createRuntime runs in the
//! *runtime's* namespaces, but only once the container's namespaces and mounts exist, before
//! `pivot_root` — a moment that happens inside init, in another process. So init and the runtime
//! meet on a unix socket in the state directory ([`CreateRuntimeServer`]): init connects (from
//! its mounts, still before the pivot), the runtime learns init's host pid from the socket's peer
//! credentials, runs the hooks with that pid in the state, and answers "ok" and the state, or the
//! error. Init then runs createContainer itself, and keeps the state for startContainer.
//!
//! A failing prestart, createRuntime, createContainer or startContainer hook fails the verb; a
//! failing poststart or poststop hook is a warning, and the verb goes on.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ch01_process::Exit;
use ch02_namespaces::ChildHook;
use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use oci_spec::runtime::{ContainerState, Hook, Hooks, State};

use crate::fifo_watch::{watch_fifo, Heard};
use crate::state::{process_is, Container};
use crate::{log, OciError};

/// The hooks of a container, kept in its state directory for `start` and `delete`.
pub const HOOKS_FILE: &str = "hooks.json";
/// The socket where init meets the runtime for createRuntime (exists only during `create`).
pub const HOOKS_SOCKET: &str = "hooks.sock";
/// The FIFO on which the command reports its startContainer hooks to `start`.
pub const START_REPORT: &str = "start-hooks.fifo";

/// The six kinds of hook, by their names in `config.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Prestart,
        Kind::CreateRuntime,
        Kind::CreateContainer,
        Kind::StartContainer,
        Kind::Poststart,
        Kind::Poststop,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Prestart => "prestart",
            Kind::CreateRuntime => "createRuntime",
            Kind::CreateContainer => "createContainer",
            Kind::StartContainer => "startContainer",
            Kind::Poststart => "poststart",
            Kind::Poststop => "poststop",
        }
    }

    /// The hooks of this kind in `hooks`, in order.
    pub fn of(self, hooks: &Hooks) -> &[Hook] {
        #[allow(deprecated)] // prestart is deprecated in the spec, and still honoured
        let list = match self {
            Kind::Prestart => hooks.prestart(),
            Kind::CreateRuntime => hooks.create_runtime(),
            Kind::CreateContainer => hooks.create_container(),
            Kind::StartContainer => hooks.start_container(),
            Kind::Poststart => hooks.poststart(),
            Kind::Poststop => hooks.poststop(),
        };
        list.as_deref().unwrap_or(&[])
    }
}

/// A hook that failed: which kind, which program, and how.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind} hook {path} failed: {reason}")]
pub struct HookError {
    pub kind: &'static str,
    pub path: PathBuf,
    pub reason: String,
}

/// Checks every hook of the config before anything is made: an absolute path, and a timeout
/// above zero if there is one (the spec's two rules).
pub fn check(hooks: &Hooks) -> Result<(), OciError> {
    for kind in Kind::ALL {
        for (i, hook) in kind.of(hooks).iter().enumerate() {
            let field = format!("hooks.{}[{i}]", kind.name());
            if !hook.path().is_absolute() {
                return Err(OciError::invalid(
                    format!("{field}.path"),
                    hook.path().display(),
                    "a hook's path must be absolute",
                ));
            }
            if let Some(t) = hook.timeout() {
                if t <= 0 {
                    return Err(OciError::invalid(
                        format!("{field}.timeout"),
                        t,
                        "a timeout is a number of seconds above 0 (leave it out for none)",
                    ));
                }
            }
        }
    }
    Ok(())
}

// ANCHOR: run_hook
/// Runs one hook and waits for it: `path` with `args` (the first is its `argv[0]`) and exactly
/// `env`, the state JSON on its stdin. With a timeout, a hook still running when it expires is
/// killed — with every process it started (it leads its own process group) — and fails.
pub fn run_hook(kind: Kind, hook: &Hook, state: &str) -> Result<(), HookError> {
    let failed = |reason: String| HookError {
        kind: kind.name(),
        path: hook.path().clone(),
        reason,
    };
    let mut command = Command::new(hook.path());
    if let Some((argv0, rest)) = hook.args().as_deref().and_then(|a| a.split_first()) {
        command.arg0(argv0).args(rest);
    }
    command.env_clear();
    for pair in hook.env().iter().flatten() {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        command.env(key, value);
    }
    command.stdin(Stdio::piped()).process_group(0);
    let mut child = command
        .spawn()
        .map_err(|e| failed(format!("could not be started: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook may exit without reading its stdin (EPIPE): that is its right, not an error.
        let _ = stdin.write_all(state.as_bytes());
    } // dropped: the hook reads end-of-file after the state
    let status = match hook.timeout() {
        None => child.wait(),
        Some(seconds) => {
            let deadline = Instant::now() + Duration::from_secs(seconds as u64);
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => break Ok(status),
                    Ok(None) if Instant::now() >= deadline => {
                        let group = Pid::from_raw(child.id() as i32);
                        let _ = killpg(group, Signal::SIGKILL);
                        let _ = child.wait();
                        return Err(failed(format!("timed out after {seconds}s and was killed")));
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                    Err(e) => break Err(e),
                }
            }
        }
    }
    .map_err(|e| failed(format!("waiting for it: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(failed(describe(status)))
    }
}
// ANCHOR_END: run_hook

/// How a hook ended, in chapter 1's words ("exited with status 3", "was killed by signal
/// SIGKILL"): std's `ExitStatus` as chapter 1's [`Exit`].
fn describe(status: ExitStatus) -> String {
    let exit = match (status.code(), status.signal().map(Signal::try_from)) {
        (Some(code), _) => Some(Exit::Code(code)),
        (None, Some(Ok(signal))) => Some(Exit::Signal(signal)),
        _ => None, // a signal nix has no name for
    };
    exit.map_or_else(|| format!("ended with {status}"), |exit| exit.to_string())
}

/// Runs the hooks of `kind` in order; the first failure stops the rest.
pub fn run_all(kind: Kind, hooks: &Hooks, state: &str) -> Result<(), HookError> {
    for hook in kind.of(hooks) {
        log::debug(&format!(
            "running {} hook {}",
            kind.name(),
            hook.path().display()
        ));
        run_hook(kind, hook, state)?;
    }
    Ok(())
}

/// Runs poststart or poststop hooks: a failure is a warning, and the next hook still runs.
pub fn run_all_warn(kind: Kind, hooks: &Hooks, state: &State) {
    let state = to_json(state);
    for hook in kind.of(hooks) {
        if let Err(e) = run_hook(kind, hook, &state) {
            log::warn(&format!(
                "{e} (the container goes on: a {} hook may fail)",
                kind.name()
            ));
        }
    }
}

/// The state a hook reads: `state`'s JSON with `status` replaced.
pub fn with_status(state: &State, status: ContainerState) -> State {
    let mut state = state.clone();
    state.set_status(status);
    state
}

fn to_json(state: &State) -> String {
    serde_json::to_string(state).unwrap_or_default()
}

/// Whether the config has any hook that runs during `create` or just before `exec`: those need
/// init to meet the runtime ([`CreateRuntimeServer`]).
pub fn needs_server(hooks: &Hooks) -> bool {
    [
        Kind::Prestart,
        Kind::CreateRuntime,
        Kind::CreateContainer,
        Kind::StartContainer,
    ]
    .iter()
    .any(|k| !k.of(hooks).is_empty())
}

/// Keeps the hooks in the state directory (for `start` and `delete`, later processes).
pub fn save(dir: &Path, hooks: &Hooks) -> Result<(), OciError> {
    let file = dir.join(HOOKS_FILE);
    let text = serde_json::to_string(hooks).unwrap_or_default();
    fs::write(&file, text).map_err(|e| OciError::io("writing", &file, e))
}

/// The hooks kept by `create`; none when there is no file.
pub fn load(dir: &Path) -> Hooks {
    fs::read_to_string(dir.join(HOOKS_FILE))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

// ANCHOR: server
/// The runtime's side of createRuntime: a thread that waits for init on `<dir>/hooks.sock`,
/// runs prestart and createRuntime with init's host pid in the state, and answers init.
pub struct CreateRuntimeServer {
    socket: PathBuf,
    stop: Option<OwnedFd>,
    thread: Option<JoinHandle<Result<(), HookError>>>,
}

impl CreateRuntimeServer {
    /// Starts listening. `state` has everything but the pid and the status.
    pub fn start(dir: &Path, hooks: Hooks, state: State) -> Result<Self, OciError> {
        let socket = dir.join(HOOKS_SOCKET);
        let listener =
            UnixListener::bind(&socket).map_err(|e| OciError::io("listening on", &socket, e))?;
        // Init may run as another uid (a user namespace): it must be able to connect.
        let _ = fs::set_permissions(&socket, fs::Permissions::from_mode(0o666));
        let (stop_read, stop_write) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| OciError::Sys {
                what: "pipe2 for the hook server".into(),
                errno: e,
            })?;
        let thread = std::thread::spawn(move || serve(listener, stop_read, &hooks, state));
        Ok(CreateRuntimeServer {
            socket,
            stop: Some(stop_write),
            thread: Some(thread),
        })
    }

    /// Stops waiting (init may never come, when set-up failed before) and returns the hook
    /// error, if a hook failed: the real reason a `create` failed.
    pub fn finish(mut self) -> Option<HookError> {
        self.stop.take(); // the thread's poll sees the pipe's end
        let result = self.thread.take().and_then(|t| t.join().ok());
        let _ = fs::remove_file(&self.socket);
        result.and_then(Result::err)
    }
}

impl Drop for CreateRuntimeServer {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = fs::remove_file(&self.socket);
    }
}

fn serve(
    listener: UnixListener,
    stop: OwnedFd,
    hooks: &Hooks,
    mut state: State,
) -> Result<(), HookError> {
    let mut fds = [
        PollFd::new(listener.as_fd(), PollFlags::POLLIN),
        PollFd::new(stop.as_fd(), PollFlags::POLLIN),
    ];
    loop {
        match poll(&mut fds, PollTimeout::NONE) {
            Err(Errno::EINTR) => continue,
            Err(_) => return Ok(()),
            Ok(_) => break,
        }
    }
    if fds[1].any().unwrap_or(true) || !fds[0].any().unwrap_or(false) {
        return Ok(()); // told to stop: init never came
    }
    let Ok((mut stream, _)) = listener.accept() else {
        return Ok(());
    };
    // The kernel gives the peer's pid as seen from *our* PID namespace: init's host pid.
    if let Ok(cred) = getsockopt(&stream, PeerCredentials) {
        state.set_pid(Some(cred.pid()));
    }
    state.set_status(ContainerState::Creating);
    let json = to_json(&state);
    let result = run_all(Kind::Prestart, hooks, &json)
        .and_then(|()| run_all(Kind::CreateRuntime, hooks, &json));
    let reply = match &result {
        Ok(()) => format!("ok\n{json}"),
        Err(e) => format!("error\n{e}"),
    };
    let _ = stream.write_all(reply.as_bytes());
    result
}
// ANCHOR_END: server

// ANCHOR: init_side
/// Init's steps for the hooks, as chapter 2 hooks:
/// - `before_pivot` (init, after the config's mounts): meet the runtime on its socket (it runs
///   prestart and createRuntime meanwhile), then run createContainer here, in the container's
///   namespaces; hold the start report FIFO open for later;
/// - `pre_exec` (the command's process, after the start gate): run startContainer, in the
///   container, and report the outcome to `start` through that FIFO.
pub fn init_steps(dir: &Path, hooks: &Hooks) -> (ChildHook, Option<ChildHook>) {
    // Filled in init's memory; the command's process, forked from init, inherits it.
    let state: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
    let report: Arc<OnceLock<OwnedFd>> = Arc::new(OnceLock::new());
    let socket = dir.join(HOOKS_SOCKET);
    let fifo = dir.join(START_REPORT);
    let create_container = Kind::CreateContainer.of(hooks).to_vec();
    let start_container = Kind::StartContainer.of(hooks).to_vec();
    let wants_report = !start_container.is_empty();

    let (state_in, report_in) = (Arc::clone(&state), Arc::clone(&report));
    let before_pivot: ChildHook = Arc::new(move || {
        let json = meet_runtime(&socket)?;
        for hook in &create_container {
            run_hook(Kind::CreateContainer, hook, &json).map_err(|e| e.to_string())?;
        }
        let _ = state_in.set(json);
        if wants_report {
            // Like chapter 2's gate: a host path, out of sight after the pivot, so hold it.
            let fd = open(&fifo, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
                .map_err(|e| format!("opening {}: {e}", fifo.display()))?;
            let _ = report_in.set(fd);
        }
        Ok(())
    });
    if !wants_report {
        return (before_pivot, None);
    }
    let pre_exec: ChildHook = Arc::new(move || {
        // startContainer sees "created": the user's program has not run yet.
        let json = state
            .get()
            .and_then(|json| serde_json::from_str::<State>(json).ok())
            .map(|s| to_json(&with_status(&s, ContainerState::Created)))
            .unwrap_or_default();
        let result = start_container
            .iter()
            .try_for_each(|hook| run_hook(Kind::StartContainer, hook, &json))
            .map_err(|e| e.to_string());
        if let Some(fd) = report.get() {
            let message = match &result {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("error\n{e}"),
            };
            let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
            // Blocks until `start` opens its end (it does, right after the gate).
            if let Ok(w) = open(
                path.as_str(),
                OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            ) {
                let _ = nix::unistd::write(&w, message.as_bytes());
            }
        }
        result
    });
    (before_pivot, Some(pre_exec))
}
// ANCHOR_END: init_side

/// Init's half of the meeting: connect, wait for the runtime's hooks, take the state.
fn meet_runtime(socket: &Path) -> Result<String, String> {
    let mut stream = UnixStream::connect(socket)
        .map_err(|e| format!("connecting to the runtime at {}: {e}", socket.display()))?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .map_err(|e| format!("reading the runtime's answer on {}: {e}", socket.display()))?;
    match reply.split_once('\n') {
        Some(("ok", state)) => Ok(state.to_string()),
        Some(("error", reason)) => Err(reason.to_string()),
        _ => Err("the runtime went away while running the createRuntime hooks".into()),
    }
}

// ANCHOR: start_report
/// `start`'s side of startContainer: after the gate, read what the command reports once its
/// hooks ran ("ok", or the error). Nothing to read when the config has no startContainer hook.
pub fn await_start_report(container: &Container) -> Result<(), OciError> {
    let fifo = container.dir.join(START_REPORT);
    if !fifo.exists() {
        return Ok(());
    }
    let failed = |reason: String| OciError::Start {
        id: container.record.id.clone(),
        reason,
    };
    let alive = || process_is(container.record.pid, container.record.start_time);
    let mut message = Vec::new();
    watch_fifo(&fifo, |heard| match heard {
        Heard::Bytes(bytes) => {
            message.extend_from_slice(bytes);
            Ok(None)
        }
        // The writer said it and closed.
        Heard::NoWriter if !message.is_empty() => Ok(Some(())),
        // Init ended: whatever was said is all there is.
        Heard::Nothing | Heard::NoWriter if !alive() => Ok(Some(())),
        Heard::Nothing | Heard::NoWriter => Ok(None),
    })
    .map_err(failed)?;
    let _ = fs::remove_file(&fifo);
    let message = String::from_utf8_lossy(&message).into_owned();
    match message.split_once('\n') {
        _ if message == "ok" => Ok(()),
        Some(("error", reason)) => Err(failed(reason.to_string())),
        _ => Err(failed(
            "the command ended before its startContainer hooks reported".into(),
        )),
    }
}
// ANCHOR_END: start_report

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::HookBuilder;

    fn hook(path: &str, args: &[&str], timeout: Option<i64>) -> Hook {
        let b = HookBuilder::default()
            .path(path)
            .args(args.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        match timeout {
            Some(t) => b.timeout(t).build().unwrap(),
            None => b.build().unwrap(),
        }
    }

    #[test]
    fn the_state_is_on_stdin_and_a_failure_names_kind_path_and_status() {
        let scratch = labkit::ScratchDir::new("ch06-hooks-unit").unwrap();
        let out = scratch.join("out");
        let script = format!("cat > {}; exit 3", out.display());
        let h = hook("/bin/sh", &["sh", "-c", &script], None);
        let err = run_hook(Kind::Poststop, &h, "{\"id\":\"x\"}").unwrap_err();
        assert_eq!(fs::read_to_string(&out).unwrap(), "{\"id\":\"x\"}");
        assert_eq!(
            err.to_string(),
            "poststop hook /bin/sh failed: exited with status 3"
        );
    }

    #[test]
    fn a_timeout_kills_the_hook_and_its_children() {
        let h = hook("/bin/sh", &["sh", "-c", "sleep 30; sleep 30"], Some(1));
        let err = run_hook(Kind::CreateRuntime, &h, "{}").unwrap_err();
        assert!(err.to_string().contains("timed out after 1s"), "{err}");
    }

    #[test]
    fn relative_paths_and_zero_timeouts_are_refused() {
        let mut hooks = Hooks::default();
        hooks.set_poststart(Some(vec![hook("hook.sh", &[], None)]));
        assert!(check(&hooks).unwrap_err().to_string().contains("absolute"));
        hooks.set_poststart(Some(vec![hook("/bin/true", &[], Some(0))]));
        assert!(check(&hooks).unwrap_err().to_string().contains("timeout"));
    }
}
