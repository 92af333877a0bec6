//! Running a command in new namespaces: the parent's side and the child's side of the dance.
//!
//! ```text
//!  runtime (parent)            waiter (child)                    init (grandchild)    command
//!  ────────────────            ──────────────                    ─────────────────    ───────
//!  fork ─────────────────────▶ unshare(USER)
//!  write uid_map, gid_map ◀─── "user namespace ready"
//!  "go" ─────────────────────▶ unshare(MNT|UTS|IPC|NET|PID|TIME)
//!  veth, hooks (cgroups) ◀──── "namespaces ready"   (lo up)
//!  "go" ─────────────────────▶ unshare(CGROUP); fork ──────────▶ PID 1: make mounts private,
//!                                                                mount /proc, sethostname,
//!  ◀──────────────────────────────────────────────────────────── fork ───────────────▶ exec
//!  wait ◀──────────────────── waitpid(init) ◀──────────────────── reap, forward signals
//! ```
//!
//! Why a waiter in the middle? `unshare(CLONE_NEWPID)` does not move the caller into the new PID
//! namespace; only its *next child* is born there, as PID 1. So somebody has to unshare and then
//! fork. The waiter stays to pass init's exit status up.

use std::fmt;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use ch01_process::child::fork_child;
use ch01_process::exec::{exec_report_pipe, ExecError, ExecReportWriter, Program};
use ch01_process::status::wait_for_end;
use nix::errno::Errno;
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, signal, SigHandler, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{getegid, geteuid, getpid, sethostname, setresgid, setresuid, Gid, Pid, Uid};

use crate::idmap::{read_id_maps, write_id_maps, IdMap};
use crate::init::{
    exec_command, exec_outcome, fail, run_hooks, run_init, CommandSetup, StartGate, SETUP_FAILED,
};
use crate::mounts::{make_mounts_private, mount_fresh_proc};
use crate::network::{loopback_up, Veth};
use crate::port::{PortMapping, PortProxy};
use crate::rootless::check_rootless_possible;
use crate::sync::{channel_pair, Channel, Message};
use crate::{flags_of, Exit, Namespace, NamespaceError};

/// What the parent runs once the child's namespaces exist, given the waiter's host pid: later
/// chapters put the child into a cgroup here.
pub type ParentHook = Arc<dyn Fn(Pid) -> Result<(), String> + Send + Sync>;
/// What the container's init runs inside its namespaces before `/proc` is mounted and the command
/// starts: later chapters switch the root filesystem here.
pub type ChildHook = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Receives the set-up steps as they happen, in words (for demos and `--verbose`).
pub type Observer = Arc<dyn Fn(&str) + Send + Sync>;

/// The network a child with a NET namespace gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// Only `lo`, up: the container can talk to itself and nobody else.
    #[default]
    Loopback,
    /// `lo` plus a veth pair to the host with its own address and a default route.
    Veth,
}

/// How to isolate a command: which namespaces, and what to set up in them.
#[derive(Clone, Default)]
pub struct Isolation {
    namespaces: Vec<Namespace>,
    hostname: Option<String>,
    uid_maps: Vec<IdMap>,
    gid_maps: Vec<IdMap>,
    network: Network,
    publish: Option<PortMapping>,
    parent_hooks: Vec<ParentHook>,
    child_hooks: Vec<ChildHook>,
    before_init_hooks: Vec<ChildHook>,
    join_user: Option<std::path::PathBuf>,
    stdout: Option<Arc<OwnedFd>>,
    stderr: Option<Arc<OwnedFd>>,
    observer: Option<Observer>,
    start_gate: Option<std::ffi::CString>,
    pre_exec_hooks: Vec<ChildHook>,
    command_is_init: bool,
}

impl fmt::Debug for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Isolation")
            .field("namespaces", &self.namespaces)
            .field("hostname", &self.hostname)
            .field("uid_maps", &self.uid_maps)
            .field("gid_maps", &self.gid_maps)
            .field("network", &self.network)
            .field("publish", &self.publish)
            .field("parent_hooks", &self.parent_hooks.len())
            .field("child_hooks", &self.child_hooks.len())
            .field("before_init_hooks", &self.before_init_hooks.len())
            .field("join_user", &self.join_user)
            .field("start_gate", &self.start_gate)
            .field("pre_exec_hooks", &self.pre_exec_hooks.len())
            .field("command_is_init", &self.command_is_init)
            .finish()
    }
}

impl Isolation {
    /// Isolation in the given namespaces (none is allowed: then it is just a supervised process).
    pub fn new(namespaces: impl IntoIterator<Item = Namespace>) -> Self {
        let mut namespaces: Vec<Namespace> = namespaces.into_iter().collect();
        namespaces.sort();
        namespaces.dedup();
        Isolation {
            namespaces,
            ..Default::default()
        }
    }

    /// What `docker run` isolates by default: MNT, UTS, IPC, NET, PID and CGROUP.
    pub fn container_defaults() -> Self {
        Isolation::new(Namespace::DOCKER_DEFAULTS)
    }

    /// Rootless: the defaults plus a USER namespace in which the caller is root.
    pub fn rootless() -> Self {
        Isolation::container_defaults().with_namespace(Namespace::User)
    }

    /// Adds one namespace.
    pub fn with_namespace(mut self, namespace: Namespace) -> Self {
        if !self.namespaces.contains(&namespace) {
            self.namespaces.push(namespace);
            self.namespaces.sort();
        }
        self
    }

    /// Sets the hostname (needs UTS).
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.hostname = Some(name.into());
        self
    }

    /// Sets the uid maps (needs USER). Default: the caller's uid is root inside.
    pub fn uid_maps(mut self, maps: Vec<IdMap>) -> Self {
        self.uid_maps = maps;
        self
    }

    /// Sets the gid maps (needs USER). Default: the caller's gid is root's group inside.
    pub fn gid_maps(mut self, maps: Vec<IdMap>) -> Self {
        self.gid_maps = maps;
        self
    }

    /// Chooses the network (needs NET).
    pub fn network(mut self, network: Network) -> Self {
        self.network = network;
        self
    }

    /// Publishes one TCP port (needs NET; implies a veth network).
    pub fn publish(mut self, mapping: PortMapping) -> Self {
        self.publish = Some(mapping);
        self.network = Network::Veth;
        self
    }

    /// Adds a step for the parent to run once the child's namespaces exist.
    pub fn parent_hook(mut self, hook: ParentHook) -> Self {
        self.parent_hooks.push(hook);
        self
    }

    /// Adds a step for the container's init to run inside the namespaces.
    pub fn child_hook(mut self, hook: ChildHook) -> Self {
        self.child_hooks.push(hook);
        self
    }

    // ANCHOR: join_user
    /// Joins the existing user namespace at `path` (`/proc/<pid>/ns/user`) instead of making
    /// one: the very first step of the child, so that every namespace it then makes is owned
    /// by that user namespace, and its id mapping is the one already written there.
    pub fn join_user_namespace(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.join_user = Some(path.into());
        self
    }
    // ANCHOR_END: join_user

    // ANCHOR: before_init
    /// Adds a step the waiter runs just before it forks init, after the namespaces are made.
    ///
    /// The place to join an existing PID (or time) namespace with `setns(2)`: like
    /// `unshare(CLONE_NEWPID)`, that changes only the namespace of the caller's *next child*.
    /// Done in init it would be too late: init itself would stay where it was.
    pub fn before_init(mut self, hook: ChildHook) -> Self {
        self.before_init_hooks.push(hook);
        self
    }
    // ANCHOR_END: before_init

    /// Stops the command just before `exec` until somebody opens the FIFO at `gate` for reading
    /// (the OCI runtime's create/start split). `spawn` then returns once the command waits there.
    pub fn start_gate(mut self, gate: &std::path::Path) -> Result<Self, NamespaceError> {
        use std::os::unix::ffi::OsStrExt;
        let gate = std::ffi::CString::new(gate.as_os_str().as_bytes()).map_err(|_| {
            NamespaceError::InvalidOption {
                option: "start gate",
                reason: format!("its path {gate:?} has a NUL byte, which no C string can hold"),
            }
        })?;
        self.start_gate = Some(gate);
        Ok(self)
    }

    /// Adds a step the command's own process runs just before `exec` (after the start gate):
    /// what must apply to the command but not to init — capabilities, seccomp, the user id.
    pub fn pre_exec(mut self, hook: ChildHook) -> Self {
        self.pre_exec_hooks.push(hook);
        self
    }

    // ANCHOR: command_is_init
    /// Makes the command itself the container's init: after the set-up, init `exec`s the
    /// command in place (it becomes PID 1) instead of forking it and staying in front of it.
    ///
    /// This is what runc and crun do: the OCI `process` is PID 1, `kill` reaches it directly,
    /// and no process of the runtime stays inside the container (its `/proc/1/exe` is the
    /// command, not the runtime binary). The price is the one `docker run --init` exists for: a
    /// command that was not written as PID 1 neither reaps orphans nor dies of a `SIGTERM` it
    /// has no handler for.
    pub fn command_is_init(mut self) -> Self {
        self.command_is_init = true;
        self
    }
    // ANCHOR_END: command_is_init

    /// Gives the command this stdout instead of ours.
    ///
    /// The isolation keeps its own copy of `fd`: to read a pipe to its end, drop the isolation
    /// (or spawn from a temporary) once the child is started.
    pub fn stdout(mut self, fd: OwnedFd) -> Self {
        self.stdout = Some(Arc::new(fd));
        self
    }

    /// Gives the command this stderr instead of ours.
    pub fn stderr(mut self, fd: OwnedFd) -> Self {
        self.stderr = Some(Arc::new(fd));
        self
    }

    /// Reports each set-up step, from both sides, to `observer` as it happens.
    pub fn observe(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    fn redirects(&self) -> Vec<(RawFd, RawFd)> {
        let mut pairs = Vec::new();
        if let Some(fd) = &self.stdout {
            pairs.push((fd.as_raw_fd(), 1));
        }
        if let Some(fd) = &self.stderr {
            pairs.push((fd.as_raw_fd(), 2));
        }
        pairs
    }

    fn tell(&self, step: &str) {
        if let Some(observer) = &self.observer {
            observer(step);
        }
    }

    /// The observer, if any: later chapters report their own steps to it.
    pub fn observer(&self) -> Option<Observer> {
        self.observer.clone()
    }

    /// The namespaces this isolation creates.
    pub fn namespaces(&self) -> &[Namespace] {
        &self.namespaces
    }

    fn has(&self, namespace: Namespace) -> bool {
        self.namespaces.contains(&namespace)
    }

    /// Checks the combination before anything is created, so a bad one leaves nothing behind.
    fn validate(&self) -> Result<(), NamespaceError> {
        if let Some(missing) = self.namespaces.iter().find(|ns| !ns.supported()) {
            return Err(NamespaceError::Unsupported(*missing));
        }
        if self.hostname.is_some() && !self.has(Namespace::Uts) {
            return Err(NamespaceError::NeedsNamespace {
                option: "--hostname",
                namespace: Namespace::Uts,
            });
        }
        if let Some(path) = self
            .join_user
            .as_ref()
            .filter(|_| self.has(Namespace::User))
        {
            return Err(NamespaceError::InvalidOption {
                option: "user namespace",
                reason: format!(
                    "asked both to join {} and to make a new one; choose one",
                    path.display()
                ),
            });
        }
        if (!self.uid_maps.is_empty() || !self.gid_maps.is_empty()) && !self.has(Namespace::User) {
            return Err(NamespaceError::NeedsNamespace {
                option: "--uid-map/--gid-map",
                namespace: Namespace::User,
            });
        }
        if (self.network == Network::Veth || self.publish.is_some()) && !self.has(Namespace::Net) {
            let option = if self.publish.is_some() {
                "--publish"
            } else {
                "--net veth"
            };
            return Err(NamespaceError::NeedsNamespace {
                option,
                namespace: Namespace::Net,
            });
        }
        if !geteuid().is_root() {
            if self.network == Network::Veth {
                let what = if self.publish.is_some() {
                    "publishing a port"
                } else {
                    "a veth network"
                };
                return Err(NamespaceError::RootOnly {
                    what: what.into(),
                    why: "creating a device on the host's network needs CAP_NET_ADMIN there; rootless containers get loopback only".into(),
                });
            }
            if self.has(Namespace::User) {
                check_rootless_possible()?;
            } else if !self.namespaces.is_empty() {
                let names: Vec<&str> = self.namespaces.iter().map(|ns| ns.name()).collect();
                return Err(NamespaceError::NeedsRoot {
                    namespaces: names.join(","),
                });
            }
        }
        Ok(())
    }

    // ANCHOR: spawn
    /// Starts `program` isolated as configured, and returns once it is running.
    ///
    /// On any error, everything made so far (processes, veth, port) is gone again.
    pub fn spawn(&self, program: &Program) -> Result<IsolatedChild, NamespaceError> {
        self.validate()?;
        let listener = self.publish.as_ref().map(PortProxy::bind).transpose()?;
        let (parent_end, child_end) = channel_pair()?;

        // The waiter keeps only its end of the channel and the command's stdout/stderr: see
        // chapter 1's `fork_child` for why a child that does not exec must close the rest.
        let mut keep = vec![child_end.as_raw_fd()];
        keep.extend(self.redirects().iter().map(|&(from, _)| from));
        let waiter = fork_child(&keep, || waiter_main(self, program, &child_end))
            .map_err(|e| NamespaceError::sys("fork", e))?;
        drop(child_end);

        self.tell(&format!(
            "runtime: fork() -> child {waiter} will create the namespaces"
        ));

        let mut child = IsolatedChild {
            waiter,
            init: None,
            channel: parent_end,
            veth: None,
            proxy: None,
            status: None,
            observer: self.observer.clone(),
        };
        if self.has(Namespace::User) {
            child.expect(Message::UserNamespaceReady, program)?;
            let (uid_maps, gid_maps, deny_setgroups) = self.effective_id_maps();
            write_id_maps(waiter, &uid_maps, &gid_maps, deny_setgroups)?;
            let show = |maps: &[IdMap]| {
                maps.iter()
                    .map(|m| m.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if deny_setgroups {
                self.tell(&format!(
                    "runtime: wrote /proc/{waiter}/setgroups = deny (required before an unprivileged gid_map)"
                ));
            }
            self.tell(&format!(
                "runtime: wrote /proc/{waiter}/uid_map = '{}' (inside outside count)",
                show(&uid_maps)
            ));
            self.tell(&format!(
                "runtime: wrote /proc/{waiter}/gid_map = '{}'",
                show(&gid_maps)
            ));
            child.send_go()?;
        }
        child.expect(Message::NamespacesReady, program)?;
        if self.has(Namespace::Net) && self.network == Network::Veth {
            let veth = Veth::create(waiter)?;
            self.tell(&format!(
                "runtime: veth pair {} ({}/30, host) <-> eth0 ({}/30, container), default route via {}",
                veth.host_device, veth.host_address, veth.container_address, veth.host_address
            ));
            child.veth = Some(veth);
        }
        for hook in &self.parent_hooks {
            hook(waiter).map_err(NamespaceError::ChildSetup)?;
        }
        child.send_go()?;
        // Init's pid (from the waiter) races with init's "running" — and, for a command that
        // ends at once, with its exit status too: take them in any order. With a start gate,
        // "created" (waiting at the gate) is as far as we wait.
        let mut running = false;
        while child.init.is_none() || !running {
            match child.receive()? {
                Message::InitPid(pid) => child.init = Some(Pid::from_raw(pid)),
                Message::Running => running = true,
                Message::Created if self.start_gate.is_some() => running = true,
                Message::Exited(status) if running => child.status = Some(status),
                other => return Err(unexpected(other, program)),
            }
        }
        if let (Some(listener), Some(mapping), Some(veth)) =
            (listener, self.publish, child.veth.as_ref())
        {
            let target = SocketAddr::new(veth.container_address.into(), mapping.container_port);
            child.proxy = Some(PortProxy::start(listener, target));
            self.tell(&format!(
                "runtime: proxy {} -> {target} (published port)",
                mapping.host
            ));
        }
        Ok(child)
    }
    // ANCHOR_END: spawn

    /// The maps to write: the configured ones, or "me outside is root inside".
    fn effective_id_maps(&self) -> (Vec<IdMap>, Vec<IdMap>, bool) {
        let uid_maps = if self.uid_maps.is_empty() {
            vec![IdMap::root_is(geteuid().as_raw())]
        } else {
            self.uid_maps.clone()
        };
        let gid_maps = if self.gid_maps.is_empty() {
            vec![IdMap::root_is(getegid().as_raw())]
        } else {
            self.gid_maps.clone()
        };
        // Without root, the kernel insists on setgroups=deny before an unprivileged gid_map.
        (uid_maps, gid_maps, !geteuid().is_root())
    }
}

/// A running isolated command.
pub struct IsolatedChild {
    waiter: Pid,
    init: Option<Pid>,
    channel: Channel,
    veth: Option<Veth>,
    proxy: Option<PortProxy>,
    status: Option<Exit>,
    observer: Option<Observer>,
}

impl fmt::Debug for IsolatedChild {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IsolatedChild")
            .field("waiter", &self.waiter)
            .field("init", &self.init)
            .field("veth", &self.veth)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl IsolatedChild {
    /// The host pid of the container's init (PID 1 inside, when there is a PID namespace).
    pub fn pid(&self) -> Pid {
        self.init.unwrap_or(self.waiter)
    }

    /// The host pid of the process that created the namespaces (`/proc/<it>/ns/*` are the
    /// container's, except `pid` whose namespace is its children's).
    pub fn waiter_pid(&self) -> Pid {
        self.waiter
    }

    /// The container's address on its veth, if it has one.
    pub fn address(&self) -> Option<std::net::Ipv4Addr> {
        self.veth.as_ref().map(|v| v.container_address)
    }

    /// The host-side veth device, if any.
    pub fn host_device(&self) -> Option<&str> {
        self.veth.as_ref().map(|v| v.host_device.as_str())
    }

    // ANCHOR: detach
    /// Lets the container live on without this handle (an OCI `create` returns while the
    /// container waits at its start gate), and returns init's pid.
    ///
    /// The waiter is ended and reaped here: its only job was to pass init's exit status up to
    /// us, and we are leaving. Init, orphaned, is adopted by the nearest subreaper among our
    /// ancestors (containerd's shim, podman's conmon) or by the host's init — the process that
    /// must see it exit, just as runc leaves its container's init to the shim. Init is not in
    /// the waiter's PID namespace and has no parent-death signal, so it runs on untouched.
    ///
    /// A veth goes along: the kernel deletes both ends of the pair with the container's network
    /// namespace, when its last process ends. Refused for a published port, whose proxy runs in
    /// this process (a runtime that detaches forwards ports from a process of its own).
    pub fn detach(mut self) -> Result<Pid, NamespaceError> {
        if self.proxy.is_some() {
            return Err(NamespaceError::ChildSetup(
                "a container with a published port cannot be detached: its proxy runs in this process"
                    .into(),
            ));
        }
        self.veth = None; // not removed: it goes with the namespace
        let init = self.pid();
        let _ = kill(self.waiter, Signal::SIGKILL);
        let _ = waitpid(self.waiter, None);
        self.waiter = Pid::from_raw(0); // Drop does nothing now
        Ok(init)
    }
    // ANCHOR_END: detach

    /// Sends a signal to the container's init, which passes it on to the command.
    pub fn signal(&self, signal: Signal) -> Result<(), NamespaceError> {
        kill(self.pid(), signal)
            .map_err(|e| NamespaceError::sys(format!("kill({}, {signal})", self.pid()), e))
    }

    // ANCHOR: wait
    /// Waits for the command to end and cleans up; returns how it ended.
    pub fn wait(mut self) -> Result<Exit, NamespaceError> {
        // Status messages arrive until init and the waiter have both exited and closed the channel.
        while let Ok(Some(message)) = self.channel.recv() {
            match message {
                Message::Exited(status) => {
                    self.status.get_or_insert(status);
                }
                Message::Note(step) => self.tell(&step),
                _ => {}
            }
        }
        let waited = wait_for_end(self.waiter);
        self.cleanup_network();
        let waiter_status = waited.ok();
        let status = self
            .status
            .or(waiter_status)
            .ok_or_else(|| NamespaceError::ChildVanished("no exit status".into()))?;
        self.waiter = Pid::from_raw(0); // reaped: nothing for Drop to do
        Ok(status)
    }
    // ANCHOR_END: wait

    fn cleanup_network(&mut self) {
        if let Some(mut proxy) = self.proxy.take() {
            proxy.stop();
        }
        if let Some(veth) = self.veth.take() {
            veth.remove();
        }
    }

    fn send_go(&self) -> Result<(), NamespaceError> {
        self.channel
            .send(&Message::Go)
            .map_err(|e| NamespaceError::sys("telling the child to go on", e))
    }

    fn tell(&self, step: &str) {
        if let Some(observer) = &self.observer {
            observer(step);
        }
    }

    /// The next message that is not a note (notes go to the observer).
    fn receive(&self) -> Result<Message, NamespaceError> {
        loop {
            match self.channel.recv() {
                Ok(Some(Message::Note(step))) => self.tell(&step),
                Ok(Some(message)) => return Ok(message),
                Ok(None) => {
                    return Err(NamespaceError::ChildVanished(
                        "it closed the set-up channel".into(),
                    ))
                }
                Err(e) => return Err(NamespaceError::sys("reading the set-up channel", e)),
            }
        }
    }

    /// Waits for `wanted`; a failure report from the child becomes the error.
    fn expect(&self, wanted: Message, program: &Program) -> Result<(), NamespaceError> {
        match self.receive()? {
            message if message == wanted => Ok(()),
            other => Err(unexpected(other, program)),
        }
    }
}

fn unexpected(message: Message, program: &Program) -> NamespaceError {
    match message {
        Message::Failed(reason) => NamespaceError::ChildSetup(reason),
        Message::ExecFailed(errno) => NamespaceError::Exec(ExecError::Exec {
            program: program.name(),
            errno: Errno::from_raw(errno),
        }),
        other => NamespaceError::ChildVanished(format!("unexpected message {other:?}")),
    }
}

impl Drop for IsolatedChild {
    /// A child dropped without `wait` (an error, a panicking test) is killed and reaped, and its
    /// network removed: nothing outlives the handle.
    fn drop(&mut self) {
        if self.waiter.as_raw() <= 0 {
            return;
        }
        match self.init {
            // Killing PID 1 of a PID namespace kills every process in it; the waiter then reaps
            // init and exits by itself (killing it too would orphan init's zombie).
            Some(init) => {
                let _ = kill(init, Signal::SIGKILL);
            }
            // Set-up failed. Closing the channel ends a waiter that waits for "go"; one whose
            // init already reported a failure ends by itself. Killing it at once could orphan
            // init, so give it a moment first.
            None => {
                self.channel.shut_down();
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
                while matches!(
                    waitpid(self.waiter, Some(WaitPidFlag::WNOHANG)),
                    Ok(WaitStatus::StillAlive)
                ) {
                    if std::time::Instant::now() > deadline {
                        let _ = kill(self.waiter, Signal::SIGKILL);
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        }
        let _ = waitpid(self.waiter, None);
        self.cleanup_network();
    }
}

// ---------------------------------------------------------------------------------------------
// The child's side.

// ANCHOR: waiter
/// The forked child: creates the namespaces, forks init into them, and waits for it.
fn waiter_main(isolation: &Isolation, program: &Program, channel: &Channel) -> i32 {
    let note = |text: String| {
        if isolation.observer.is_some() {
            let _ = channel.send(&Message::Note(text));
        }
    };
    // Ctrl-C reaches the whole process group; only init decides what the command gets.
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        // SAFETY: SIG_IGN runs no code of ours in signal context.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
    let has = |ns| isolation.has(ns);

    if let Some(path) = &isolation.join_user {
        if let Err(e) = join_user_namespace(path) {
            fail(channel, &e);
        }
        note(format!(
            "child {}: setns({}, CLONE_NEWUSER): now uid {} in that user namespace",
            getpid(),
            path.display(),
            nix::unistd::getuid()
        ));
    }
    if has(Namespace::User) {
        if let Err(e) = unshare(CloneFlags::CLONE_NEWUSER) {
            fail(channel, &format!("unshare(CLONE_NEWUSER): {e}"));
        }
        note(format!(
            "child {}: unshare(CLONE_NEWUSER) -> a new user namespace; waiting for the id maps",
            getpid()
        ));
        await_go(channel, Message::UserNamespaceReady);
        let (uid_maps, gid_maps, _) = isolation.effective_id_maps();
        if let Err(e) = become_root(&uid_maps, &gid_maps, "the new user namespace") {
            fail(channel, &e);
        }
        note(format!(
            "child {}: setresuid(0)/setresgid(0): now uid {} inside the user namespace",
            getpid(),
            nix::unistd::getuid()
        ));
    }

    // Everything but USER (done) and CGROUP (after the parent's hooks have moved us into our
    // cgroup, so that the cgroup namespace's root is the container's own cgroup).
    let rest = flags_of(
        isolation
            .namespaces
            .iter()
            .copied()
            .filter(|ns| !matches!(ns, Namespace::User | Namespace::Cgroup)),
    );
    if let Err(e) = unshare(rest) {
        let names: Vec<&str> = isolation.namespaces.iter().map(|ns| ns.name()).collect();
        fail(
            channel,
            &format!(
                "unshare({}) for namespaces {}: {e}",
                describe_flags(rest),
                names.join(",")
            ),
        );
    }
    if !rest.is_empty() {
        note(format!(
            "child {}: unshare({})",
            getpid(),
            describe_flags(rest)
        ));
    }
    if has(Namespace::Net) {
        if let Err(e) = loopback_up() {
            fail(channel, &e);
        }
        note(format!(
            "child {}: ioctl(SIOCSIFFLAGS, lo, IFF_UP): loopback is up in the new network namespace",
            getpid()
        ));
    }
    await_go(channel, Message::NamespacesReady);
    if has(Namespace::Cgroup) {
        if let Err(e) = unshare(CloneFlags::CLONE_NEWCGROUP) {
            fail(channel, &format!("unshare(CLONE_NEWCGROUP): {e}"));
        }
        note(format!(
            "child {}: unshare(CLONE_NEWCGROUP): its current cgroup is now its '/'",
            getpid()
        ));
    }

    run_hooks(&isolation.before_init_hooks, channel, SETUP_FAILED);
    // When the command is init, init's exec is the command's: we learn how it went from a
    // close-on-exec pipe, as chapter 1's cold start does, and tell the runtime "running".
    let report = if isolation.command_is_init {
        match exec_report_pipe() {
            Ok((reader, writer)) => Some((reader, writer)),
            Err(e) => fail(channel, &e.to_string()),
        }
    } else {
        None
    };
    let mut keep = vec![channel.as_raw_fd()];
    keep.extend(isolation.redirects().iter().map(|&(from, _)| from));
    keep.extend(report.as_ref().map(|(_, writer)| writer.as_raw_fd()));
    let report_writer = report.as_ref().map(|(_, writer)| writer);
    let init = match fork_child(&keep, || {
        init_main(isolation, program, channel, report_writer)
    }) {
        Ok(pid) => pid,
        Err(e) => fail(channel, &format!("fork of init: {e}")),
    };
    let _ = channel.send(&Message::InitPid(init.as_raw()));
    if let Some((reader, writer)) = report {
        drop(writer);
        let _ = channel.send(&exec_outcome(reader.wait_for_exec(program)));
    }
    let inside = if has(Namespace::Pid) {
        "PID 1 in the new PID namespace"
    } else {
        "no PID namespace: same pid inside"
    };
    note(format!(
        "child {}: fork() -> init is pid {init} on the host, {inside}",
        getpid()
    ));
    match wait_for_end(init) {
        Ok(Exit::Code(code)) => code,
        // Init killed from outside (SIGKILL): it could not report; we do.
        Ok(Exit::Signal(sig)) => {
            let _ = channel.send(&Message::Exited(Exit::Signal(sig)));
            128 + sig as i32
        }
        Err(_) => 1,
    }
}
// ANCHOR_END: waiter

// ANCHOR: init_setup
/// The container's init: finishes the set-up that must happen inside, then runs the command.
fn init_main(
    isolation: &Isolation,
    program: &Program,
    channel: &Channel,
    exec_report: Option<&ExecReportWriter>,
) -> ! {
    let has = |ns| isolation.has(ns);
    let note = |text: &str| {
        if isolation.observer.is_some() {
            let _ = channel.send(&Message::Note(format!(
                "init (pid {} inside): {text}",
                getpid()
            )));
        }
    };
    if has(Namespace::Mount) {
        if let Err(e) = make_mounts_private() {
            fail(channel, &e);
        }
        note("mount(\"/\", MS_REC|MS_PRIVATE): mounts made here stay here");
    }
    // The gate is a host path, which a hook may take out of sight (chapter 4's pivot_root):
    // hold it open (O_PATH: no reader is needed for that) so the command can still reach it.
    let gate = isolation.start_gate.as_deref().map(|path| {
        use nix::fcntl::{open, OFlag};
        match open(
            path,
            OFlag::O_PATH | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        ) {
            Ok(held) => (path, held),
            Err(e) => fail(channel, &format!("opening the start gate {path:?}: {e}")),
        }
    });
    run_hooks(&isolation.child_hooks, channel, SETUP_FAILED);
    if has(Namespace::Mount) && has(Namespace::Pid) {
        if let Err(e) = mount_fresh_proc() {
            fail(channel, &e);
        }
        note("mount(\"proc\", \"/proc\"): /proc now lists only this PID namespace");
    }
    if let Some(name) = &isolation.hostname {
        if let Err(e) = sethostname(name) {
            fail(channel, &format!("sethostname({name:?}): {e}"));
        }
        note(&format!("sethostname({name:?})"));
    }
    let redirect = isolation.redirects();
    let setup = CommandSetup {
        redirect: &redirect,
        start_gate: gate.as_ref().map(|(path, held)| StartGate {
            path,
            held: held.as_raw_fd(),
        }),
        pre_exec: &isolation.pre_exec_hooks,
    };
    // Only the waiter of an init that is the command makes the report pipe.
    if let Some(report) = exec_report {
        note(&format!(
            "execvp({:?}) in place: the command itself is PID 1",
            program.display()
        ));
        exec_command(program, channel, &setup, report)
    }
    note(&format!(
        "fork() + execvp({:?}); init stays as PID 1 to reap and forward signals",
        program.display()
    ));
    run_init(program, channel, &setup)
}
// ANCHOR_END: init_setup

/// Waits for the parent's "go" after announcing `announce`.
fn await_go(channel: &Channel, announce: Message) {
    if channel.send(&announce).is_err() {
        fail(channel, "the runtime went away");
    }
    match channel.recv() {
        Ok(Some(Message::Go)) => {}
        // The parent hit an error and will kill us; just go.
        _ => {
            // SAFETY: ending the forked child quietly; the parent reports the error.
            unsafe { libc::_exit(1) }
        }
    }
}

/// `setns` into the user namespace at `path`, then uid/gid 0 there if 0 is mapped (joining
/// gives every capability in it, so the switch is allowed whenever the id exists there).
fn join_user_namespace(path: &std::path::Path) -> Result<(), String> {
    let file = std::fs::File::open(path)
        .map_err(|e| format!("opening the user namespace {}: {e}", path.display()))?;
    nix::sched::setns(&file, CloneFlags::CLONE_NEWUSER)
        .map_err(|e| format!("setns({}, CLONE_NEWUSER): {e}", path.display()))?;
    // Read from inside, the maps' first column is the id in this namespace.
    let read = |map: &str| read_id_maps(std::path::Path::new(map)).map_err(|e| e.to_string());
    become_root(
        &read("/proc/self/uid_map")?,
        &read("/proc/self/gid_map")?,
        &format!("the joined user namespace {}", path.display()),
    )
}

/// Switches to uid/gid 0 in the user namespace this process is in, each if 0 is mapped there
/// (otherwise it stays as mapped); `namespace` names it for messages. The gid goes first: after
/// `setresuid` away from root, `setresgid` would no longer be allowed.
fn become_root(uid_maps: &[IdMap], gid_maps: &[IdMap], namespace: &str) -> Result<(), String> {
    if gid_maps.iter().any(|m| m.inside == 0) {
        setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
            .map_err(|e| format!("setresgid(0) in {namespace}: {e}"))?;
    }
    if uid_maps.iter().any(|m| m.inside == 0) {
        setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
            .map_err(|e| format!("setresuid(0) in {namespace}: {e}"))?;
    }
    Ok(())
}

fn describe_flags(flags: CloneFlags) -> String {
    let names: Vec<&str> = Namespace::ALL
        .iter()
        .filter(|ns| flags.contains(ns.clone_flag()))
        .map(|ns| ns.flag_name())
        .collect();
    names.join("|")
}
