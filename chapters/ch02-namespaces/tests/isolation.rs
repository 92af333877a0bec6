//! The library, driven directly: PID 1's duties, signals, mounts, the published port, clean-up.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use ch01_process::exec::Program;
use ch02_namespaces::network::ifindex_of;
use ch02_namespaces::{Exit, Isolation, Namespace, NamespaceError, PortMapping};
use labkit::{require_root, ScratchDir};
use nix::sys::signal::Signal;
use nix::unistd::pipe;

const BIN: &str = env!("CARGO_BIN_EXE_ch02-namespaces");

fn program(args: &[&str]) -> Program {
    Program::new(args).unwrap()
}

/// Runs `args` isolated with stdout captured; returns (status, stdout).
fn run_captured(isolation: Isolation, args: &[&str]) -> (Exit, String) {
    let (reader, writer) = pipe().unwrap();
    let child = isolation.stdout(writer).spawn(&program(args)).unwrap();
    let mut out = String::new();
    File::from(reader).read_to_string(&mut out).unwrap();
    (child.wait().unwrap(), out)
}

#[test]
fn pid_one_reaps_an_orphaned_grandchild() {
    if !require_root("pid_one_reaps_an_orphaned_grandchild") {
        return;
    }
    // The inner sh starts `sleep` in the background and exits at once: sleep is orphaned and the
    // kernel re-parents it to PID 1. When sleep ends, only PID 1 can reap it; if it did not,
    // /proc/<pid> would stay, in state Z (zombie).
    let script = r#"
        sh -c 'sleep 0.2 & echo $! > /tmp/orphan'
        orphan=$(cat /tmp/orphan)
        grep PPid /proc/$orphan/status | tr -d '\t'
        sleep 0.6
        if [ -e /proc/$orphan ]; then echo "left: $(grep State /proc/$orphan/status)"; else echo reaped; fi
    "#;
    let scratch = ScratchDir::new("orphan").unwrap();
    let script = script.replace("/tmp/orphan", &scratch.join("pid").to_string_lossy());
    let (status, out) = run_captured(
        Isolation::new([Namespace::Pid, Namespace::Mount]),
        &["sh", "-c", &script],
    );
    assert_eq!(status, Exit::Code(0));
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["PPid:1", "reaped"],
        "{out}"
    );
}

#[test]
fn sigterm_to_the_container_reaches_the_command() {
    if !require_root("sigterm_to_the_container_reaches_the_command") {
        return;
    }
    let (reader, writer) = pipe().unwrap();
    let child = Isolation::new([Namespace::Pid, Namespace::Mount])
        .stdout(writer)
        .spawn(&program(&["sh", "-c", "echo ready; exec sleep 30"]))
        .unwrap();
    let mut line = String::new();
    BufReader::new(File::from(reader))
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    child.signal(Signal::SIGTERM).unwrap();
    assert_eq!(
        child.wait().unwrap(),
        Exit::Signal(Signal::SIGTERM),
        "init forwarded SIGTERM to sleep"
    );
}

#[test]
fn mounts_inside_do_not_reach_the_host() {
    if !require_root("mounts_inside_do_not_reach_the_host") {
        return;
    }
    let scratch = ScratchDir::new("mnt-probe").unwrap();
    let target = scratch.join("m");
    fs::create_dir(&target).unwrap();
    let (reader, writer) = pipe().unwrap();
    let script = format!(
        "mount -t tmpfs boxlab-probe {0} && grep -c boxlab-probe /proc/self/mounts && exec sleep 30",
        target.display()
    );
    let child = Isolation::new([Namespace::Mount, Namespace::Pid])
        .stdout(writer)
        .spawn(&program(&["sh", "-c", &script]))
        .unwrap();
    let mut line = String::new();
    BufReader::new(File::from(reader))
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "1", "mounted inside");
    let host_mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    child.signal(Signal::SIGKILL).unwrap();
    let _ = child.wait();
    assert!(
        !host_mounts.contains("boxlab-probe"),
        "the mount leaked to the host"
    );
}

#[test]
fn cgroup_namespace_makes_the_own_cgroup_the_root() {
    if !require_root("cgroup_namespace_makes_the_own_cgroup_the_root") {
        return;
    }
    let host = fs::read_to_string("/proc/self/cgroup").unwrap();
    let (status, out) = run_captured(
        Isolation::new([Namespace::Cgroup]),
        &["cat", "/proc/self/cgroup"],
    );
    assert_eq!(status, Exit::Code(0));
    for line in out.lines() {
        assert!(
            line.ends_with(":/"),
            "every hierarchy shows '/': {line}\n(host: {host})"
        );
    }
}

#[test]
fn a_published_port_answers_from_the_host() {
    if !require_root("a_published_port_answers_from_the_host") {
        return;
    }
    let port = labkit::free_port();
    let mapping: PortMapping = format!("{port}:8000").parse().unwrap();
    // Another test thread may fork (to exec `ip`, say) while our probe socket is open: its child
    // then holds a copy of the port for the few milliseconds until its exec. Retry briefly.
    let spawn = || {
        Isolation::container_defaults()
            .hostname("boxlab-web")
            .publish(mapping)
            .spawn(&program(&[BIN, "__serve", "8000"]))
    };
    let child = (0..50)
        .find_map(|_| match spawn() {
            Err(NamespaceError::PortUnavailable { .. }) => {
                std::thread::sleep(Duration::from_millis(10));
                None
            }
            other => Some(other.unwrap()),
        })
        .expect("the port stays taken");
    let device = child.host_device().unwrap().to_string();
    let ifindex = ifindex_of(&device);
    assert!(
        ifindex.is_some(),
        "{device} exists while the container runs"
    );
    let reply = ask(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    assert!(
        reply.contains("\"boxlab-web\"") && reply.contains("eth0"),
        "{reply}"
    );
    assert_eq!(child.wait().unwrap(), Exit::Code(0));
    assert_ne!(
        ifindex_of(&device),
        ifindex,
        "{device} removed after the container ended"
    );
    assert!(
        TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "the host port is released"
    );
}

fn ask(addr: SocketAddr) -> String {
    for _ in 0..150 {
        if let Ok(mut stream) = TcpStream::connect(addr) {
            let mut reply = String::new();
            if stream.read_to_string(&mut reply).is_ok() && !reply.is_empty() {
                return reply;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no reply on {addr}");
}

#[test]
fn dropping_a_running_child_kills_and_cleans_it_up() {
    if !require_root("dropping_a_running_child_kills_and_cleans_it_up") {
        return;
    }
    let child = Isolation::container_defaults()
        .network(ch02_namespaces::Network::Veth)
        .spawn(&program(&["sleep", "30"]))
        .unwrap();
    let (init, waiter) = (child.pid(), child.waiter_pid());
    let device = child.host_device().unwrap().to_string();
    let ifindex = ifindex_of(&device);
    assert!(ifindex.is_some());
    drop(child);
    assert!(
        !Path::new(&format!("/proc/{init}")).exists(),
        "init is gone"
    );
    assert!(
        !Path::new(&format!("/proc/{waiter}")).exists(),
        "the waiter is reaped"
    );
    // A parallel test may already have a new device by the same name; ours had this index.
    assert_ne!(ifindex_of(&device), ifindex, "{device} is gone");
}

#[test]
fn a_start_gate_holds_the_command_until_opened() {
    if !require_root("a_start_gate_holds_the_command_until_opened") {
        return;
    }
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let scratch = ScratchDir::new("gate").unwrap();
    let gate = scratch.join("exec.fifo");
    nix::unistd::mkfifo(&gate, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (reader, writer) = pipe().unwrap();
    let child = Isolation::new([Namespace::Pid, Namespace::Mount])
        .stdout(writer)
        .start_gate(&gate)
        .unwrap()
        .spawn(&program(&["sh", "-c", "echo started"]))
        .unwrap();
    // Created: the command waits at the gate and has printed nothing.
    let mut fds = [PollFd::new(reader.as_fd(), PollFlags::POLLIN)];
    assert_eq!(
        poll(&mut fds, PollTimeout::from(300u16)).unwrap(),
        0,
        "the command ran before start"
    );
    // start: open the gate for reading; the command writes one byte there and goes on.
    let mut byte = [0u8; 1];
    File::open(&gate).unwrap().read_exact(&mut byte).unwrap();
    let mut out = String::new();
    File::from(reader).read_to_string(&mut out).unwrap();
    assert_eq!(out, "started\n");
    assert_eq!(child.wait().unwrap(), Exit::Code(0));
}

#[test]
fn the_start_gate_still_works_when_a_hook_hides_its_path() {
    if !require_root("the_start_gate_still_works_when_a_hook_hides_its_path") {
        return;
    }
    let scratch = ScratchDir::new("gate-hidden").unwrap();
    let gate = scratch.join("exec.fifo");
    nix::unistd::mkfifo(&gate, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (reader, writer) = pipe().unwrap();
    // Like chapter 4's pivot_root: after this hook, the gate's path leads nowhere inside.
    let dir = scratch.path().to_path_buf();
    let hide = std::sync::Arc::new(move || {
        nix::mount::mount(
            Some("tmpfs"),
            &dir,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|e| e.to_string())
    });
    let child = Isolation::new([Namespace::Pid, Namespace::Mount])
        .stdout(writer)
        .child_hook(hide)
        .start_gate(&gate)
        .unwrap()
        .spawn(&program(&["sh", "-c", "echo started"]))
        .unwrap();
    let mut byte = [0u8; 1];
    File::open(&gate).unwrap().read_exact(&mut byte).unwrap();
    let mut out = String::new();
    File::from(reader).read_to_string(&mut out).unwrap();
    assert_eq!(out, "started\n");
    assert_eq!(child.wait().unwrap(), Exit::Code(0));
}

#[test]
fn a_detached_container_outlives_its_handle() {
    if !require_root("a_detached_container_outlives_its_handle") {
        return;
    }
    let child = Isolation::new([Namespace::Pid, Namespace::Mount])
        .spawn(&program(&["sleep", "30"]))
        .unwrap();
    // Like containerd's shim: the orphaned init is adopted by us, and we reap it. Being a
    // subreaper is a property of the whole test process, whose other tests run alongside: it is
    // switched off again when this test ends, however it ends.
    struct Subreaper;
    impl Drop for Subreaper {
        fn drop(&mut self) {
            let _ = nix::sys::prctl::set_child_subreaper(false);
        }
    }
    nix::sys::prctl::set_child_subreaper(true).unwrap();
    let _subreaper = Subreaper;
    let init = child.detach().unwrap();
    assert!(
        Path::new(&format!("/proc/{init}")).exists(),
        "still running after the handle is gone"
    );
    assert_eq!(
        labkit::ppid(init.as_raw()).unwrap_or_else(|e| panic!("{e}")),
        std::process::id() as i32,
        "init is adopted by the subreaper"
    );
    nix::sys::signal::kill(init, Signal::SIGKILL).unwrap();
    let status = nix::sys::wait::waitpid(init, None).unwrap();
    assert!(
        matches!(
            status,
            nix::sys::wait::WaitStatus::Signaled(_, Signal::SIGKILL, _)
        ),
        "{status:?}"
    );
}

#[test]
fn a_failing_pre_exec_step_fails_the_spawn_with_its_reason() {
    if !require_root("a_failing_pre_exec_step_fails_the_spawn_with_its_reason") {
        return;
    }
    let err = Isolation::new([Namespace::Pid, Namespace::Mount])
        .pre_exec(std::sync::Arc::new(|| {
            Err("dropping capabilities: EPERM".to_string())
        }))
        .spawn(&program(&["true"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("dropping capabilities: EPERM"), "{err}");
}

#[test]
fn with_command_is_init_the_command_itself_is_pid_1() {
    if !require_root("with_command_is_init_the_command_itself_is_pid_1") {
        return;
    }
    let script = "echo $$; readlink /proc/1/exe; exit 3";
    // Default: chapter 2's init (a fork of this very binary) is PID 1, the command its child.
    let (status, out) = run_captured(
        Isolation::new([Namespace::Pid, Namespace::Mount]),
        &["sh", "-c", script],
    );
    assert_eq!(status, Exit::Code(3));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "2", "{out}");
    assert_eq!(
        lines[1],
        fs::read_link("/proc/self/exe").unwrap().to_str().unwrap()
    );
    // runc's way: init execs the command in place.
    let (status, out) = run_captured(
        Isolation::new([Namespace::Pid, Namespace::Mount]).command_is_init(),
        &["sh", "-c", script],
    );
    assert_eq!(status, Exit::Code(3), "the exit status still comes through");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1", "{out}");
    let shell = fs::canonicalize(Path::new("/bin/sh")).unwrap();
    assert_eq!(Path::new(lines[1]), shell, "{out}");
}

#[test]
fn with_command_is_init_a_missing_command_is_still_reported() {
    if !require_root("with_command_is_init_a_missing_command_is_still_reported") {
        return;
    }
    let err = Isolation::new([Namespace::Pid, Namespace::Mount])
        .command_is_init()
        .spawn(&program(&["/no/such/command"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/no/such/command"), "{err}");
}

#[test]
fn joining_a_user_namespace_makes_the_command_root_there() {
    if !require_root("joining_a_user_namespace_makes_the_command_root_there") {
        return;
    }
    // Host root is not mapped in this namespace: a joiner that did not switch to the mapped
    // root would show up as the overflow uid (65534), not 0.
    let maps = || ch02_namespaces::IdMap::parse_list("uid", "0:100000:65536").unwrap();
    let owner = Isolation::new([Namespace::User, Namespace::Pid, Namespace::Mount])
        .uid_maps(maps())
        .gid_maps(maps())
        .spawn(&program(&["sleep", "30"]))
        .unwrap();
    let path = format!("/proc/{}/ns/user", owner.waiter_pid());
    let (status, out) = run_captured(
        Isolation::new([Namespace::Uts]).join_user_namespace(&path),
        &["sh", "-c", "echo $(id -u) $(id -g)"],
    );
    assert_eq!(status, Exit::Code(0), "{out}");
    assert_eq!(out, "0 0\n", "joined {path}");
}

#[test]
fn contradictory_options_are_refused_naming_what_was_given() {
    use std::os::unix::ffi::OsStrExt;
    let err = Isolation::new([Namespace::User])
        .join_user_namespace("/proc/1/ns/user")
        .spawn(&program(&["true"]))
        .unwrap_err();
    assert!(
        matches!(err, NamespaceError::InvalidOption { .. })
            && err.to_string().contains("/proc/1/ns/user"),
        "{err}"
    );
    let gate = Path::new(std::ffi::OsStr::from_bytes(b"/run/gate\0x"));
    let err = Isolation::new([]).start_gate(gate).unwrap_err();
    assert!(
        matches!(
            err,
            NamespaceError::InvalidOption {
                option: "start gate",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("NUL byte"), "{err}");
}
