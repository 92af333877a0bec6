//! `process.terminal: true`: the pty master arrives on the console socket as containerd's shim
//! receives it, and the program inside sees a terminal on stdin.

mod common;

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use common::{cgroup_dirs, Lab};
use labkit::require_root;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde_json::json;

/// What the program prints: its terminal, the terminal's size, whether stdin is a terminal.
const SCRIPT: &str = "tty; stty size; [ -t 0 ] && echo stdin-is-a-tty";

/// Receives the descriptor (and the message naming it) sent over `listener`, as the shim does.
fn receive_master(listener: &UnixListener) -> (OwnedFd, String) {
    let (stream, _) = listener.accept().unwrap();
    ch06_oci::console::receive_fd(stream.as_fd()).expect("no descriptor in the message")
}

/// Reads the master until the container's side is gone (EIO), for at most 20 s.
fn read_all(master: &OwnedFd) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(200u16)).unwrap_or(0) == 0 {
            continue;
        }
        match nix::unistd::read(master, &mut buf) {
            Ok(0) | Err(Errno::EIO) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(e) => panic!("reading the master: {e}"),
        }
    }
    String::from_utf8_lossy(&text).replace('\r', "")
}

fn terminal_bundle(lab: &Lab, name: &str) -> std::path::PathBuf {
    lab.bundle(name, &["sh", "-c", SCRIPT], |c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["consoleSize"] = json!({ "height": 30, "width": 100 });
    })
}

#[test]
fn create_sends_the_pty_master_over_the_console_socket() {
    if !require_root("create_sends_the_pty_master_over_the_console_socket") {
        return;
    }
    let lab = Lab::new("ch06-console");
    let bundle = terminal_bundle(&lab, "bundle");
    let socket = lab.scratch.join("console.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let id = lab.id("console");
    let out = lab.oci(&[
        "create",
        "--bundle",
        bundle.to_str().unwrap(),
        "--console-socket",
        socket.to_str().unwrap(),
        &id,
    ]);
    assert!(out.ok(), "create: {out:?}");
    // Sent before `create` returned: the connection and the descriptor wait for us already.
    listener.set_nonblocking(true).unwrap();
    let (master, name) = receive_master(&listener);
    assert_eq!(name, "/dev/pts/0", "the message names the terminal");
    assert_eq!(lab.state(&id)["status"], "created");

    let out = lab.oci(&["start", &id]);
    assert!(out.ok(), "start: {out:?}");
    let text = read_all(&master);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        ["/dev/pts/0", "30 100", "stdin-is-a-tty"],
        "{text:?}"
    );
    lab.wait_status(&id, "stopped");
    assert!(lab.oci(&["delete", &id]).ok());
    assert!(!lab.state_dir(&id).exists());
    assert!(cgroup_dirs(&id).is_empty());
}

#[test]
fn run_in_the_foreground_relays_its_terminal() {
    if !require_root("run_in_the_foreground_relays_its_terminal") {
        return;
    }
    let lab = Lab::new("ch06-console-run");
    let bundle = terminal_bundle(&lab, "bundle");
    let id = lab.id("console-run");
    let out = lab.oci(&["run", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(out.ok(), "run: {out:?}");
    let text = out.stdout.replace('\r', "");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, ["/dev/pts/0", "30 100", "stdin-is-a-tty"], "{out:?}");
    assert!(!lab.state_dir(&id).exists());
    assert!(cgroup_dirs(&id).is_empty());
}

#[test]
fn a_terminal_without_a_console_socket_is_refused() {
    if !require_root("a_terminal_without_a_console_socket_is_refused") {
        return;
    }
    let lab = Lab::new("ch06-console-none");
    let bundle = terminal_bundle(&lab, "bundle");
    for verb in [&["create"][..], &["run", "--detach"][..]] {
        let id = lab.id(&format!("noconsole-{}", verb.len()));
        let mut args = verb.to_vec();
        args.extend(["--bundle", bundle.to_str().unwrap(), &id]);
        let out = lab.oci(&args);
        assert!(!out.ok(), "{verb:?} succeeded: {out:?}");
        assert!(
            out.stderr
                .contains("process.terminal is true but no --console-socket was given"),
            "{}",
            out.stderr
        );
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        assert!(!lab.state_dir(&id).exists());
        assert!(cgroup_dirs(&id).is_empty());
    }
    // And a socket for a process without a terminal.
    let plain = lab.bundle("plain", &["true"], |_| {});
    let id = lab.id("nosocket");
    let out = lab.oci(&[
        "create",
        "--bundle",
        plain.to_str().unwrap(),
        "--console-socket",
        lab.scratch.join("x.sock").to_str().unwrap(),
        &id,
    ]);
    assert!(
        !out.ok() && out.stderr.contains("process.terminal is false"),
        "{out:?}"
    );
    assert!(!lab.state_dir(&id).exists());
}

#[test]
fn exec_gets_a_terminal_in_the_foreground_and_through_a_console_socket() {
    if !require_root("exec_gets_a_terminal_in_the_foreground_and_through_a_console_socket") {
        return;
    }
    let lab = Lab::new("ch06-exec-tty");
    let bundle = lab.bundle("bundle", &["sleep", "1000"], |_| {});
    let id = lab.id("exec-tty");
    let out = lab.oci(&["run", "--detach", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(out.ok(), "run: {out:?}");

    // Foreground: the runtime relays the terminal to its own stdout.
    let out = lab.oci(&[
        "exec",
        "--tty",
        &id,
        "--",
        "sh",
        "-c",
        "tty; [ -t 0 ] && echo stdin-is-a-tty; exit 4",
    ]);
    assert_eq!(out.code, Some(4), "{out:?}");
    let lines: Vec<String> = out
        .stdout
        .replace('\r', "")
        .lines()
        .map(str::to_string)
        .collect();
    assert!(lines[0].starts_with("/dev/pts/"), "{out:?}");
    assert_eq!(lines[1], "stdin-is-a-tty", "{out:?}");

    // Detached: the master goes to the console socket, as containerd's `task exec -t` wants.
    let socket = lab.scratch.join("exec-console.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let receiver = std::thread::spawn(move || {
        let (master, name) = receive_master(&listener);
        (read_all(&master), name)
    });
    let pid_file = lab.scratch.join("exec.pid");
    let out = lab.oci(&[
        "exec",
        "--tty",
        "--detach",
        "--console-socket",
        socket.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
        "--",
        "sh",
        "-c",
        "tty; echo from-exec",
    ]);
    assert!(out.ok(), "exec --detach --tty: {out:?}");
    let (text, name) = receiver.join().unwrap();
    // We adopted the detached process (the subreaper, as the shim is): reap it, or its zombie
    // holds the container's PID namespace, and so its init, after `kill`.
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
    assert!(name.starts_with("/dev/pts/"), "{name}");
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [name.as_str(), "from-exec"],
        "{text:?}"
    );

    // --tty --detach without a socket: refused, nothing run.
    let out = lab.oci(&["exec", "--tty", "--detach", &id, "--", "true"]);
    assert!(
        !out.ok() && out.stderr.contains("--console-socket"),
        "{out:?}"
    );
    assert_eq!(lab.state(&id)["status"], "running");
}
