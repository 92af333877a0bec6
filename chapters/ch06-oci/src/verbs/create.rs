//! `create <id> --bundle DIR [--pid-file F]`: build the container and leave its command waiting
//! at the start gate.

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ch02_namespaces::{ChildHook, IsolatedChild, Isolation, Namespace};
use ch03_cgroups::{confine, detect, Cgroup};
use ch04_rootfs::pivot::RootfsSpec;
use ch04_rootfs::with_rootfs_spec;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::config::{load_bundle, plan_for, Bundle, Plan};
use crate::console::RunConsole;
use crate::hooks::CreateRuntimeServer;
use crate::log;
use crate::mounts::mount_all;
use crate::state::{check_id, make_fifo, save_record, start_time, Record, Store, EXEC_FIFO};
use crate::verbs::Globals;
use crate::OciError;

/// `create`'s options.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    /// Host ports to forward to the container (the builder's `.port()`; the CLI has none, as
    /// runc's has none): a veth for the container and a port keeper (see [`crate::ports`]).
    pub ports: Vec<ch02_namespaces::PortMapping>,
}

/// Removes a half-made state directory unless disarmed: a failed `create` leaves nothing.
pub(crate) struct DirGuard(Option<PathBuf>);

impl DirGuard {
    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// A container spawned and waiting at its gate, not yet recorded.
pub(crate) struct Spawned {
    pub child: IsolatedChild,
    pub cgroup: Arc<Cgroup>,
    pub guard: DirGuard,
    pub record: Record,
    pub dir: PathBuf,
    /// A foreground `run`'s own console socket (process.terminal without --console-socket).
    pub console: Option<RunConsole>,
}

// ANCHOR: create
/// Creates container `id` from the bundle and returns its record; the command waits at
/// `<root>/<id>/exec.fifo` until [`start`](crate::verbs::start::start).
pub fn create(
    store: &Store,
    id: &str,
    options: &CreateOptions,
    globals: &Globals,
) -> Result<Record, OciError> {
    let Spawned {
        child,
        cgroup,
        guard,
        mut record,
        dir,
        console: _,
    } = spawn(store, id, options, globals, false)?;
    // From here the container lives on without us: init is adopted by our caller's subreaper
    // (containerd's shim, podman's conmon) or the host's init, which sees it exit and reaps it.
    let address = child.address();
    let init = child.detach()?;
    record.pid = init.as_raw();
    record.waiter = 0;
    // On failure the cgroup and the state directory go with `cgroup` and `guard`.
    record_init(&mut record, &dir, options, init, address)?;
    keep(cgroup);
    guard.disarm();
    log::debug(&format!(
        "created container {id}: init is pid {init}, waiting at {}",
        dir.join(EXEC_FIFO).display()
    ));
    Ok(record)
}
// ANCHOR_END: create

/// The bookkeeping once `init` (with chapter 2's veth `address`, if any) waits at its gate, for
/// `create` and a foreground `run` alike: the port keeper for published ports, init's start
/// time (so that a recycled pid is never taken for it), the state record, the pid file. On
/// failure init is killed; the caller's handles remove the cgroup and the state directory.
/// Returns the keeper's pid (it ends by itself with init).
pub(crate) fn record_init(
    record: &mut Record,
    dir: &Path,
    options: &CreateOptions,
    init: Pid,
    address: Option<Ipv4Addr>,
) -> Result<Option<Pid>, OciError> {
    let mut keeper = None;
    let mut steps = || -> Result<(), OciError> {
        if let Some(address) = address.filter(|_| !options.ports.is_empty()) {
            keeper = Some(crate::ports::start_keeper(&options.ports, address, init)?);
        }
        record.port_keeper = keeper.map_or(0, Pid::as_raw);
        record.start_time = start_time(init.as_raw()).unwrap_or(0);
        save_record(dir, record)?;
        write_pid_file(options, init)
    };
    if let Err(e) = steps() {
        let _ = kill(init, Signal::SIGKILL);
        return Err(e);
    }
    Ok(keeper)
}

/// Lets the cgroup outlive this process (`delete` removes it).
pub(crate) fn keep(cgroup: Arc<Cgroup>) {
    match Arc::try_unwrap(cgroup) {
        Ok(cgroup) => cgroup.keep(),
        // Another handle still exists (cannot happen once the isolation is gone): keep it too.
        Err(shared) => std::mem::forget(shared),
    }
}

pub(crate) fn write_pid_file(options: &CreateOptions, init: Pid) -> Result<(), OciError> {
    let Some(file) = &options.pid_file else {
        return Ok(());
    };
    let tmp = file.with_extension("boxlab-tmp");
    fs::write(&tmp, init.to_string())
        .and_then(|()| fs::rename(&tmp, file))
        .map_err(|e| OciError::io("writing the pid file", file, e))
}

// ANCHOR: spawn
/// Everything of `create` up to a command waiting at the gate: check the config, then make
/// the state directory, the gate, the cgroup (with its device rules), and the isolated child.
/// On any error, what was made is removed again (guard, cgroup handle, child handle).
/// `foreground`: a `run` that stays, and takes the console itself when there is no socket.
pub(crate) fn spawn(
    store: &Store,
    id: &str,
    options: &CreateOptions,
    globals: &Globals,
    foreground: bool,
) -> Result<Spawned, OciError> {
    check_id(id)?;
    if globals.systemd_cgroup {
        return Err(OciError::Unsupported {
            what: "the systemd cgroup driver (--systemd-cgroup)".into(),
            hint: "use cgroupfs (SystemdCgroup = false in containerd's runc options)",
        });
    }
    if store.dir(id).exists() {
        return Err(OciError::Exists {
            id: id.to_string(),
            dir: store.dir(id),
        });
    }
    let bundle = load_bundle(&options.bundle)?;
    let plan = plan_for(&bundle, id)?;
    if !options.ports.is_empty() {
        if !plan.namespaces.contains(&Namespace::Net) {
            return Err(OciError::Ports(
                "the config has no new network namespace to publish from: add {\"type\": \"network\"} to linux.namespaces".into(),
            ));
        }
        crate::ports::check_free(&options.ports)?;
    }
    let security = security_steps(&bundle)?;
    let process = bundle.spec.process().clone().unwrap_or_default();
    let terminal = process.terminal().unwrap_or(false);
    crate::console::check(terminal, options.console_socket.as_deref(), foreground)?;
    let hooks = bundle.spec.hooks().clone().unwrap_or_default();
    crate::hooks::check(&hooks)?;

    let dir = store.create_dir(id)?;
    let guard = DirGuard(Some(dir.clone()));
    // The record goes down before anything else exists, with no pid yet ("creating"): a
    // `create` killed half way (SIGKILL runs no guard) then still leaves a record that says
    // which cgroup to empty and remove, so `delete --force` can take away what it made.
    let mut record = Record {
        oci_version: bundle.spec.version().clone(),
        id: id.to_string(),
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        pid: 0,
        start_time: 0,
        waiter: 0,
        port_keeper: 0,
        cgroup: plan.cgroup.to_string(),
        created: log::rfc3339(std::time::SystemTime::now()),
        owner: owner(),
        annotations: bundle.spec.annotations().clone().unwrap_or_default(),
    };
    save_record(&dir, &record)?;
    let fifo = dir.join(EXEC_FIFO);
    make_fifo(&fifo)?;

    let layout = detect()?;
    let (cgroup, written) = Cgroup::create(&layout, &plan.cgroup, &plan.limits)?;
    for w in &written {
        log::debug(&format!("cgroup: wrote {} = {}", w.file.display(), w.value));
    }
    let applied = ch05_gpu::devices::apply(&cgroup, &plan.device_rules)?;
    log::debug(&format!(
        "devices cgroup: {} v1 lines, eBPF program: {}",
        applied.v1.len(),
        applied.ebpf.is_some()
    ));
    let cgroup = Arc::new(cgroup);

    // ANCHOR: wiring
    let mut steps = InitSteps::default();
    let mut server = None;
    if hooks != Default::default() {
        crate::hooks::save(&dir, &hooks)?;
    }
    if crate::hooks::needs_server(&hooks) {
        if !crate::hooks::Kind::StartContainer.of(&hooks).is_empty() {
            make_fifo(&dir.join(crate::hooks::START_REPORT))?;
        }
        let state = oci_spec::runtime::StateBuilder::default()
            .version(bundle.spec.version().clone())
            .id(id)
            .bundle(bundle.dir.clone())
            .annotations(bundle.spec.annotations().clone().unwrap_or_default())
            .build()
            .unwrap_or_default();
        server = Some(CreateRuntimeServer::start(&dir, hooks.clone(), state)?);
        let (before_pivot, pre_exec) = crate::hooks::init_steps(&dir, &hooks);
        steps.before_pivot.push(before_pivot);
        steps.pre_exec.extend(pre_exec);
    }
    let mut console = None;
    if terminal {
        let socket = match &options.console_socket {
            Some(socket) => socket.clone(),
            None => {
                let own = RunConsole::listen(&dir)?;
                let path = own.path().to_path_buf();
                console = Some(own);
                path
            }
        };
        let size = process.console_size().map(|b| {
            (
                b.height().min(u16::MAX as u64) as u16,
                b.width().min(u16::MAX as u64) as u16,
            )
        });
        let owner = (process.user().uid(), process.user().gid());
        let (before_pivot, after_pivot, pre_exec) = crate::console::init_steps(socket, size, owner);
        // The terminal first: a startContainer hook already prints on it.
        steps.before_pivot.insert(0, before_pivot);
        steps.after_pivot.push(after_pivot);
        steps.pre_exec.insert(0, pre_exec);
    }
    let mut isolation = isolation(&bundle, &plan, security, steps, &fifo, Arc::clone(&cgroup))?;
    if !options.ports.is_empty() {
        // Chapter 2's veth: the container's own address, which the port keeper connects to.
        isolation = isolation.network(ch02_namespaces::Network::Veth);
    }
    let spawned = isolation.spawn(&plan.program);
    // Its copy of the cgroup handle goes with it.
    drop(isolation);
    // A failed hook is the reason the set-up failed: report it, not chapter 2's wrapping.
    if let Some(failed) = server.and_then(CreateRuntimeServer::finish) {
        return Err(failed.into());
    }
    let child = spawned?;
    // ANCHOR_END: wiring

    record.pid = child.pid().as_raw();
    record.waiter = child.waiter_pid().as_raw();
    Ok(Spawned {
        child,
        cgroup,
        guard,
        record,
        dir,
        console,
    })
}
// ANCHOR_END: spawn

/// Steps of hooks and console that go around chapter 4's pivot and before `exec`.
#[derive(Default)]
pub(crate) struct InitSteps {
    pub before_pivot: Vec<ChildHook>,
    pub after_pivot: Vec<ChildHook>,
    pub pre_exec: Vec<ChildHook>,
}

// ANCHOR: isolation
/// Chapters 2–5 put together from the plan, in the order init runs them:
/// join namespaces → the config's mounts → (createRuntime, createContainer; console connect) →
/// chapter 4's pivot → the security steps on the root → (console pty) → (chapter 2: /proc,
/// hostname) → the gate → (console as controlling terminal; startContainer) → the security
/// steps of the command's own process (sysctl, masked paths, rlimits, user, capabilities,
/// seccomp last) → exec.
fn isolation(
    bundle: &Bundle,
    plan: &Plan,
    security: Security,
    steps: InitSteps,
    gate: &Path,
    cgroup: Arc<Cgroup>,
) -> Result<Isolation, OciError> {
    // runc's way: the config's process is the container's PID 1, not a child of ours.
    let mut isolation = Isolation::new(plan.namespaces.iter().copied()).command_is_init();
    if plan.namespaces.contains(&Namespace::User) {
        isolation = isolation
            .uid_maps(plan.uid_maps.clone())
            .gid_maps(plan.gid_maps.clone());
    }
    if let Some(name) = &plan.hostname {
        isolation = isolation.hostname(name);
    }
    if log::debug_enabled() {
        isolation = isolation.observe(Arc::new(|step: &str| log::debug(step)));
    }
    for (kind, path) in &plan.joins {
        isolation = match kind {
            // These change only the namespace of the caller's children: the waiter joins
            // them before it forks init.
            Namespace::Pid | Namespace::Time => {
                isolation.before_init(join_hook(*kind, path.clone()))
            }
            // First of all, so that the namespaces made after it belong to it.
            Namespace::User => isolation.join_user_namespace(path.clone()),
            _ => isolation.child_hook(join_hook(*kind, path.clone())),
        };
    }
    let (root, mounts, devices) = (
        bundle.rootfs.clone(),
        plan.mounts.clone(),
        plan.devices.clone(),
    );
    isolation = isolation.child_hook(Arc::new(move || mount_all(&root, &mounts, &devices)));
    for step in steps.before_pivot {
        isolation = isolation.child_hook(step);
    }
    let rootfs = RootfsSpec {
        path: bundle.rootfs.clone(),
        readonly: plan.readonly,
        own_dev: plan.own_dev,
        own_sys: plan.own_sys,
        ..RootfsSpec::default()
    };
    isolation = with_rootfs_spec(isolation, rootfs)?;
    // Hooks run in order: these come after chapter 4's pivot.
    for step in security.rootfs_steps {
        isolation = isolation.child_hook(step);
    }
    for step in steps.after_pivot {
        isolation = isolation.child_hook(step);
    }
    // The terminal and startContainer before the security steps: a hook runs with the
    // runtime's privileges, and only the user's program gets the config's restrictions.
    for step in steps.pre_exec {
        isolation = isolation.pre_exec(step);
    }
    for step in security.pre_exec {
        isolation = isolation.pre_exec(step);
    }
    isolation = confine(isolation, cgroup);
    Ok(isolation.start_gate(gate)?)
}
// ANCHOR_END: isolation

// ANCHOR: join
/// A step for init: `setns(2)` into the namespace file at `path` (a `/proc/<pid>/ns/net` or a
/// bind-mounted `/var/run/netns/<name>`), before the root changes and the path disappears.
fn join_hook(kind: Namespace, path: PathBuf) -> ChildHook {
    Arc::new(move || {
        let file = fs::File::open(&path)
            .map_err(|e| format!("opening the {kind} namespace {}: {e}", path.display()))?;
        nix::sched::setns(&file, kind.clone_flag())
            .map_err(|e| format!("setns({}, {}): {e}", path.display(), kind.flag_name()))
    })
}
// ANCHOR_END: join

/// What the security settings add to the set-up (see `crate::security`).
#[derive(Default)]
struct Security {
    rootfs_steps: Vec<ChildHook>,
    pre_exec: Vec<ChildHook>,
}

// ANCHOR: security
/// INTEGRATION POINT with `crate::security`: capabilities, no_new_privileges, rlimits, seccomp,
/// sysctl, masked/readonly paths, user/groups. Computed (and checked) before anything is made.
fn security_steps(bundle: &Bundle) -> Result<Security, OciError> {
    let steps = crate::security::security_steps(&bundle.spec)
        .map_err(|e| OciError::Security(e.to_string()))?;
    for warning in &steps.warnings {
        log::warn(warning);
    }
    Ok(Security {
        rootfs_steps: steps.rootfs_steps,
        pre_exec: steps.pre_exec,
    })
}
// ANCHOR_END: security

fn owner() -> String {
    let uid = nix::unistd::geteuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}
