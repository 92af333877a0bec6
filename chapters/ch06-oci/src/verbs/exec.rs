//! `exec <id> [--process FILE] [--detach] [--pid-file F] [--env K=V]... [--cwd DIR] [-- CMD...]`:
//! run one more process inside a running container.
//!
//! ```text
//!  runtime ── fork ──▶ helper: join the cgroup, setns user → ipc, uts, net, pid, cgroup → mnt
//!                        │     (+ the container's root)
//!                        └─ fork ──▶ command (now PID n of the container's PID namespace):
//!                                    the per-process security steps, chapter 1's exec
//! ```
//!
//! `setns` into a PID namespace only changes where the caller's *children* go, hence the second
//! fork. The helper reports the command's host pid (and any error before `execve`) over a
//! close-on-exec pipe; without `--detach` it waits for the command and exits with its status.
//! Both forks go through chapter 1's `fork_child`: each child keeps only the descriptors it
//! uses, and a panic in it ends it instead of unwinding into the runtime's `main`.

use std::fs::{self, File};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use ch01_process::child::fork_child;
use ch01_process::exec::{put_env, ExecError, Program};
use ch01_process::status::wait_for_end;
use ch01_process::Exit;
use ch02_namespaces::Namespace;
use ch03_cgroups::{detect, Cgroup, CgroupPath};
use oci_spec::runtime::{ContainerState, Process};

use crate::config::load_bundle;
use crate::state::Store;
use crate::OciError;

/// What `exec` runs, and how.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// `--process FILE`: a JSON OCI `Process` (what containerd passes); replaces the rest.
    pub process: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    /// `--env K=V`, added to (or replacing in) the config's environment.
    pub env: Vec<String>,
    pub cwd: Option<PathBuf>,
    pub args: Vec<String>,
    /// `--tty`: the process gets a terminal (with `--process`, its `terminal` field decides).
    pub tty: bool,
    /// `--console-socket`: where the terminal's master goes (needed with `--detach`).
    pub console_socket: Option<PathBuf>,
}

/// The namespaces `exec` joins, in order: the user namespace first (it grants the privileges
/// the other joins need), the mount namespace last (after it, `/proc/<pid>/ns` of the host is
/// out of reach).
const ORDER: [Namespace; 7] = [
    Namespace::User,
    Namespace::Ipc,
    Namespace::Uts,
    Namespace::Net,
    Namespace::Pid,
    Namespace::Cgroup,
    Namespace::Mount,
];

/// Builds the process to run from the options and the container's config.
pub fn build_process(template: &Process, opts: &ExecOptions) -> Result<Process, OciError> {
    if let Some(file) = &opts.process {
        let text = fs::read_to_string(file).map_err(|e| OciError::io("reading", file, e))?;
        let process: Process = serde_json::from_str(&text).map_err(|e| OciError::Config {
            path: file.clone(),
            reason: format!("not a valid OCI process: {e}"),
        })?;
        if process.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(OciError::Missing {
                field: "args (in --process)",
                hint: "give the command to run in the process's \"args\"",
            });
        }
        if let Some((field, value)) = nul_byte(&process) {
            return Err(OciError::Config {
                path: file.clone(),
                reason: format!("{field} = {value:?} contains a NUL byte, {NUL_REASON}"),
            });
        }
        return Ok(process);
    }
    if opts.args.is_empty() {
        return Err(OciError::Missing {
            field: "a command",
            hint: "give it after the id: exec ID -- CMD [ARG...], or pass --process FILE",
        });
    }
    let mut process = template.clone();
    process.set_args(Some(opts.args.clone()));
    process.set_terminal(Some(opts.tty));
    let mut env = process.env().clone().unwrap_or_default();
    for pair in &opts.env {
        put_env(&mut env, pair.as_str());
    }
    process.set_env(Some(env));
    if let Some(cwd) = &opts.cwd {
        process.set_cwd(cwd.clone());
    }
    // A command line cannot hold a NUL byte: one here came from config.json.
    if let Some((field, value)) = nul_byte(&process) {
        return Err(OciError::invalid(
            field,
            value,
            format!("contains a NUL byte, {NUL_REASON}"),
        ));
    }
    Ok(process)
}

const NUL_REASON: &str = "which no C string (and so no execve) can hold";

/// The first of the process's strings with a NUL byte, named as in the OCI process
/// (`process.env[2]`), with its value.
fn nul_byte(process: &Process) -> Option<(String, String)> {
    let first = |field: &str, list: &Option<Vec<String>>| {
        list.iter()
            .flatten()
            .enumerate()
            .find(|(_, value)| value.contains('\0'))
            .map(|(i, value)| (format!("process.{field}[{i}]"), value.clone()))
    };
    let cwd = process.cwd().to_string_lossy();
    first("args", process.args())
        .or_else(|| first("env", process.env()))
        .or_else(|| {
            cwd.contains('\0')
                .then(|| ("process.cwd".into(), cwd.into_owned()))
        })
}

/// Runs the process in container `id`. Returns its exit status (0 with `--detach`).
pub fn exec(store: &Store, id: &str, opts: &ExecOptions) -> Result<i32, OciError> {
    let container = store.load(id)?;
    if container.status() != ContainerState::Running || container.paused() {
        return Err(OciError::WrongState {
            id: id.into(),
            status: container.status_name(),
            hint: "exec needs a running container (start it first)",
        });
    }
    let bundle = load_bundle(&container.record.bundle)?;
    let template = bundle.spec.process().clone().unwrap_or_default();
    let process = build_process(&template, opts)?;
    let (steps, warnings) = crate::security::process_steps(&bundle.spec, &process, 0)
        .map_err(|e| OciError::Security(e.to_string()))?;
    for w in &warnings {
        crate::log::warn(w);
    }
    let init = container.record.pid;

    // A terminal: the master goes to the caller's console socket, or, in the foreground, to
    // us over a socket pair, and we relay it.
    let terminal = process.terminal().unwrap_or(false);
    crate::console::check(terminal, opts.console_socket.as_deref(), !opts.detach)?;
    let (console_channel, our_console_end) = match (terminal, &opts.console_socket) {
        (false, _) => (None, None),
        (true, Some(socket)) => {
            let stream = UnixStream::connect(socket)
                .map_err(|e| OciError::io("connecting to the console socket", socket, e))?;
            (Some(stream), None)
        }
        (true, None) => {
            let (theirs, ours) = UnixStream::pair().map_err(|e| {
                OciError::Console(format!("making a socket pair for the terminal: {e}"))
            })?;
            (Some(theirs), Some(ours))
        }
    };
    let console = console_channel.as_ref().map(|stream| ExecConsole {
        channel: stream.as_fd(),
        size: process
            .console_size()
            .as_ref()
            .map(|b| (b.height() as u16, b.width() as u16)),
        owner: (process.user().uid(), process.user().gid()),
    });

    // Everything the helper needs is opened here, in the runtime, before forking.
    let namespaces = open_namespaces(init)?;
    let root = File::open(format!("/proc/{init}/root")).map_err(|e| {
        OciError::io(
            "opening the container's root",
            format!("/proc/{init}/root"),
            e,
        )
    })?;
    let program = Program::new(&process.args().clone().unwrap_or_default())?
        .with_env(&process.env().clone().unwrap_or_default())?
        .with_cwd(if process.cwd().as_os_str().is_empty() {
            Path::new("/")
        } else {
            process.cwd()
        })?;

    let (reader, writer) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|errno| OciError::Sys {
            what: "pipe2".into(),
            errno,
        })?;
    // Only to join: dropping this handle leaves the container's cgroup alone.
    let cgroup = Cgroup::observe(&detect()?, &CgroupPath::new(&container.record.cgroup)?)?;
    // The helper keeps only what it uses: the report pipe, the namespaces, the root and the
    // terminal's channel. Anything else of the runtime's stays out of the container.
    let mut keep: Vec<RawFd> = namespaces.iter().map(|(_, fd)| fd.as_raw_fd()).collect();
    keep.extend([writer.as_raw_fd(), root.as_raw_fd()]);
    keep.extend(console.map(|c| c.channel.as_raw_fd()));
    let (cgroup_ref, namespaces_ref, root_ref) = (&cgroup, &namespaces, &root);
    // `writer` moves into the helper's body: the parent's copy closes when `fork_child`
    // returns, so that reading the report below ends when the helper and the command are done
    // with theirs.
    let helper = fork_child(&keep, move || {
        helper_main(
            cgroup_ref,
            namespaces_ref,
            root_ref,
            writer,
            opts.detach,
            console,
            || command_main(&program, &steps, console),
        )
    })
    .map_err(|errno| OciError::Sys {
        what: "forking the exec helper".into(),
        errno,
    })?;
    // The command's copy of the terminal channel is the one that matters now.
    drop(console_channel);
    // The command sends the master before it execs; a command that fails first sends nothing,
    // and its end closes: then the report below says why.
    let master = our_console_end.and_then(|ours| {
        crate::console::receive_fd(ours.as_fd())
            .map(|(master, _name)| master)
            .ok()
    });
    let mut text = String::new();
    let _ = File::from(reader).read_to_string(&mut text);
    let mut command_pid = None;
    let mut error = None;
    for line in text.lines() {
        if let Some(pid) = line.strip_prefix("pid:") {
            command_pid = pid.parse::<i32>().ok();
        } else if let Some(msg) = line.strip_prefix("err:") {
            error = Some(msg.to_string());
        }
    }
    if let Some(msg) = error {
        let _ = wait_for_end(helper);
        return Err(OciError::Start {
            id: id.into(),
            reason: format!("exec: {msg}"),
        });
    }
    if let (Some(file), Some(pid)) = (&opts.pid_file, command_pid) {
        fs::write(file, pid.to_string()).map_err(|e| OciError::io("writing", file, e))?;
    }
    // With a terminal in the foreground, relay it while the command runs: the helper waits for
    // the command, and the command may be waiting for our input.
    if let Some(master) = master.filter(|_| !opts.detach) {
        crate::console::relay(master)?;
    }
    // The helper exits with the command's status, as a shell reports it (128 + signal).
    let helper_end = wait_for_end(helper).map_err(|errno| OciError::Sys {
        what: format!("waiting for the exec helper (pid {helper})"),
        errno,
    })?;
    Ok(if opts.detach {
        0
    } else {
        helper_end.shell_code()
    })
}

/// Where the command's terminal goes, and how it is set up.
#[derive(Clone, Copy)]
struct ExecConsole<'a> {
    channel: std::os::fd::BorrowedFd<'a>,
    size: Option<(u16, u16)>,
    owner: (u32, u32),
}

/// One line to the runtime, in one `write(2)`: the helper and the command share the pipe, and
/// `writeln!` on a `File` writes each piece of its format separately — two processes' pieces
/// would interleave ("err:pid:42\n…") and neither line would parse. A single write of less than
/// `PIPE_BUF` bytes is atomic.
fn report_line(report: &OwnedFd, line: &str) {
    let _ = nix::unistd::write(report, format!("{line}\n").as_bytes());
}

/// Opens `/proc/<init>/ns/*` for every namespace the container does not share with us.
fn open_namespaces(init: i32) -> Result<Vec<(Namespace, OwnedFd)>, OciError> {
    let mut found = Vec::new();
    for namespace in ORDER {
        let name = namespace.name();
        let theirs = format!("/proc/{init}/ns/{name}");
        let Ok(their_meta) = fs::metadata(&theirs) else {
            continue; // the kernel lacks this kind
        };
        let ours = fs::metadata(format!("/proc/self/ns/{name}")).ok();
        if ours.is_some_and(|m| m.ino() == their_meta.ino() && m.dev() == their_meta.dev()) {
            continue; // shared with the host: nothing to join
        }
        let file = File::open(&theirs).map_err(|e| OciError::io("opening", &theirs, e))?;
        found.push((namespace, OwnedFd::from(file)));
    }
    Ok(found)
}

// ANCHOR: setns
/// The helper: into the cgroup, through the namespaces in order, then fork the command. Reports
/// the command's pid (or why it got no further) on `report`, and returns the command's status
/// as a shell reports it (0 at once with `detach`).
fn helper_main(
    cgroup: &Cgroup,
    namespaces: &[(Namespace, OwnedFd)],
    root: &File,
    report: OwnedFd,
    detach: bool,
    console: Option<ExecConsole>,
    command: impl FnOnce() -> String,
) -> i32 {
    let entered = enter(cgroup, namespaces, root);
    // 4. A PID namespace is entered by the children of whoever joined it. The command keeps
    //    only the report pipe and its terminal's channel.
    let mut keep = vec![report.as_raw_fd()];
    keep.extend(console.map(|c| c.channel.as_raw_fd()));
    let forked = entered.and_then(|()| {
        fork_child(&keep, || {
            let msg = command(); // returns only if the command could not be exec'd
            report_line(&report, &format!("err:{msg}"));
            127
        })
        .map_err(|e| format!("fork: {e}"))
    });
    let child = match forked {
        Ok(child) => child,
        Err(msg) => {
            report_line(&report, &format!("err:{msg}"));
            return 126;
        }
    };
    report_line(&report, &format!("pid:{child}"));
    if detach {
        return 0;
    }
    // Close our end so the runtime sees EOF once the command has exec'd.
    drop(report);
    wait_for_end(child).map_or(1, Exit::shell_code)
}

/// Steps 1–3 of the helper: the container's cgroup, its namespaces, its root.
fn enter(cgroup: &Cgroup, namespaces: &[(Namespace, OwnedFd)], root: &File) -> Result<(), String> {
    // 1. The cgroup, from the host side (its files are out of sight once in the mount ns).
    cgroup
        .add_process(nix::unistd::getpid())
        .map_err(|e| format!("joining the container's cgroup: {e}"))?;
    // 2. user first, ..., mnt last.
    for (namespace, fd) in namespaces {
        nix::sched::setns(fd.as_fd(), namespace.clone_flag())
            .map_err(|e| format!("setns({namespace}): {e}"))?;
    }
    // 3. The container's root: setns(mnt) puts us at the namespace's root mount; make it the
    //    root the container's init pivoted to.
    nix::unistd::fchdir(root).map_err(|e| format!("fchdir to the container's root: {e}"))?;
    nix::unistd::chroot(".").map_err(|e| format!("chroot into the container's root: {e}"))
}
// ANCHOR_END: setns

/// In the command's process, inside every namespace: terminal, security steps, then chapter 1's
/// exec (cwd, and `argv[0]` looked up in the process's own `PATH`). Returns only on failure,
/// with why.
fn command_main(
    program: &Program,
    steps: &[ch02_namespaces::ChildHook],
    console: Option<ExecConsole>,
) -> String {
    // Before the security steps: the user switch would take away the right to chown the pty.
    if let Some(console) = console {
        if let Err(e) = crate::console::exec_console(console.channel, console.size, console.owner) {
            return e;
        }
    }
    for step in steps {
        if let Err(e) = step() {
            return e;
        }
    }
    let errno = program.exec(None);
    ExecError::Exec {
        program: program.name(),
        errno,
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_needed_and_env_overrides() {
        let mut template = Process::default();
        template.set_env(Some(vec!["PATH=/bin".into(), "A=1".into()]));
        let none = build_process(&template, &ExecOptions::default());
        assert!(matches!(none, Err(OciError::Missing { .. })));
        let opts = ExecOptions {
            args: vec!["true".into()],
            env: vec!["A=2".into()],
            cwd: Some("/tmp".into()),
            ..Default::default()
        };
        let p = build_process(&template, &opts).unwrap();
        assert_eq!(p.args().clone().unwrap(), vec!["true".to_string()]);
        assert_eq!(
            p.env().clone().unwrap(),
            vec!["PATH=/bin".to_string(), "A=2".to_string()]
        );
        assert_eq!(p.cwd(), Path::new("/tmp"));
    }

    #[test]
    fn a_nul_byte_is_named_by_its_field_and_source() {
        let mut template = Process::default();
        template.set_env(Some(vec!["A=1".into(), "B=x\0y".into()]));
        let opts = ExecOptions {
            args: vec!["true".into()],
            ..Default::default()
        };
        let err = build_process(&template, &opts).unwrap_err().to_string();
        assert!(
            err.contains("process.env[1]") && err.contains(r#""B=x\0y""#),
            "{err}"
        );

        let scratch = labkit::ScratchDir::new("exec-nul").unwrap();
        let file = scratch.join("process.json");
        fs::write(
            &file,
            r#"{"cwd": "/", "user": {"uid": 0, "gid": 0}, "args": ["sh", "a\u0000b"]}"#,
        )
        .unwrap();
        let opts = ExecOptions {
            process: Some(file.clone()),
            ..Default::default()
        };
        let err = build_process(&Process::default(), &opts)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&file.display().to_string())
                && err.contains("process.args[1]")
                && err.contains(r#""a\0b""#),
            "{err}"
        );
    }
}
