//! Chapter 1's lab result: a pre-forked worker left waiting for requests
//! (`cargo run -p ch01-process -- --serve worker`, left at its prompt).
//!
//! The front process (`ch01-process --serve worker`) forked the worker and never exec'd it: the
//! worker runs the same program with the same command line, shares every namespace with the
//! host, holds one socket (to its parent) and sleeps in `read` until a request comes. The
//! checker sends one request itself, on a copy of the parent's end of that socket
//! (`pidfd_getfd(2)`), and reads the reply.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::{namespaces, procfs, Check};

/// Which kind of pre-started process the lab asked for (`--serve KIND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One process answers every request itself.
    Worker,
    /// One process forks a child per request.
    Zygote,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Worker => "worker",
            Kind::Zygote => "zygote",
        }
    }
}

/// What the lab asked for.
#[derive(Debug, Clone)]
pub struct Expect {
    /// The worker's (or zygote's) pid, as `--serve` printed it; `None`: the newest one.
    pub pid: Option<i32>,
    pub kind: Kind,
}

/// The program whose `--serve` processes count.
pub const PROGRAM: &str = "ch01-process";

/// The request the checker sends: one line, as the student would type it.
pub const REQUEST: &[u8] = b"boxlab check";

/// Header of a message on the worker's socket: payload length and kind, both u32 LE.
const HEADER: usize = 8;
/// Kind of a request, and of its reply.
const DATA: u32 = 0;

fn start(kind: Kind) -> String {
    format!(
        "start it in another terminal and leave it at its prompt: cargo run -p ch01-process -- --serve {}",
        kind.name()
    )
}

/// (device, inode) of the program a process runs.
fn exe_id(pid: i32) -> Option<(u64, u64)> {
    let meta = fs::metadata(format!("/proc/{pid}/exe")).ok()?;
    Some((meta.dev(), meta.ino()))
}

/// The `--serve` front processes of `ch01-process`: not themselves children of one.
fn servers() -> Vec<i32> {
    procfs::all_pids()
        .into_iter()
        .filter(|&pid| procfs::exe_name(pid).as_deref() == Some(PROGRAM))
        .filter(|&pid| procfs::cmdline(pid).iter().any(|a| a == "--serve"))
        .filter(|&pid| {
            procfs::ppid(pid).ok().and_then(procfs::exe_name).as_deref() != Some(PROGRAM)
        })
        .collect()
}

/// The value after `--serve` on a command line (`--serve worker` or `--serve=worker`).
fn served_kind(args: &[String]) -> Option<String> {
    args.iter().enumerate().find_map(|(i, a)| match a.as_str() {
        "--serve" => args.get(i + 1).cloned(),
        _ => a.strip_prefix("--serve=").map(str::to_string),
    })
}

/// The pre-forked children of `server`: same program, same command line, never exec'd.
fn forked_children(server: i32) -> Vec<i32> {
    let exe = exe_id(server);
    let args = procfs::cmdline(server);
    procfs::children(server)
        .into_iter()
        .filter(|&c| exe.is_some() && exe_id(c) == exe && procfs::cmdline(c) == args)
        .collect()
}

/// The process's open descriptors: (fd, what it points at).
fn fds(pid: i32) -> Vec<(i32, String)> {
    let mut fds: Vec<(i32, String)> = fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| {
            entries
                .filter_map(|e| {
                    let e = e.ok()?;
                    let fd = e.file_name().to_str()?.parse().ok()?;
                    let target = fs::read_link(e.path()).ok()?;
                    Some((fd, target.display().to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    fds.sort();
    fds
}

fn state(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| Some(s.rsplit_once(") ")?.1.chars().next()?.to_string()))
        .unwrap_or_else(|| "?".into())
}

/// Runs every check; always returns the same number of checks.
pub fn check(expect: &Expect) -> Vec<Check> {
    let names = [
        "server",
        "pre-forked",
        "host namespaces",
        "descriptors",
        "waiting",
        "request -> reply",
    ];
    let rest = |from: usize, because: &str| Check::none_of(&names[from..], because);
    let kind = expect.kind.name();

    // The front process: the parent of --pid, or the newest `ch01-process --serve`.
    let server = match expect.pid {
        Some(pid) => match procfs::ppid(pid) {
            Ok(parent) => Ok(parent),
            Err(e) => Err(format!("no process {pid} ({e})")),
        },
        None => servers()
            .pop()
            .ok_or_else(|| format!("no '{PROGRAM} --serve' process")),
    };
    let server = match server {
        Ok(server) => server,
        Err(found) => {
            let mut checks = vec![Check::fail(
                names[0],
                format!("'{PROGRAM} --serve {kind}' running"),
                found,
                start(expect.kind),
            )];
            checks.extend(rest(1, "no server"));
            return checks;
        }
    };
    let args = procfs::cmdline(server);
    let serving = served_kind(&args);
    if expect.pid.is_none() && serving.as_deref() != Some(kind) {
        let mut checks = vec![Check::fail(
            names[0],
            format!("'{PROGRAM} --serve {kind}'"),
            format!("pid {server} running '{}'", procfs::command(server)),
            start(expect.kind),
        )];
        checks.extend(rest(1, format!("not a {kind}").as_str()));
        return checks;
    }
    let parent = procfs::ppid(server).unwrap_or(0);
    let mut checks = vec![Check::ok(
        names[0],
        format!(
            "pid {server} '{}', started by pid {parent} ({})",
            procfs::command(server),
            procfs::command(parent)
        ),
    )];

    // The worker: a fork of the server that never exec'd.
    let children = forked_children(server);
    let worker = match (expect.pid, children.as_slice()) {
        (Some(pid), _) if children.contains(&pid) => pid,
        (None, [only]) => *only,
        (Some(pid), _) => {
            checks.push(Check::fail(
                names[1],
                format!(
                    "pid {pid} to be a fork of pid {server} running the same program, never exec'd"
                ),
                format!(
                    "pid {pid} running '{}' (exe {})",
                    procfs::command(pid),
                    procfs::exe_name(pid).unwrap_or_default()
                ),
                "give --pid the pid that `--serve` printed (\"Worker pid N is ready\")",
            ));
            checks.extend(rest(2, "no worker"));
            return checks;
        }
        (None, other) => {
            checks.push(Check::fail(
                names[1],
                format!("exactly one child of pid {server} running the same program, never exec'd"),
                format!("{} such children", other.len()),
                format!(
                    "the {kind} has ended (after Ctrl-D or kill?): {}",
                    start(expect.kind)
                ),
            ));
            checks.extend(rest(2, "no worker"));
            return checks;
        }
    };
    let exe = exe_id(worker).unwrap_or_default();
    checks.push(Check::ok(
        names[1],
        format!(
            "pid {worker}, ppid {server}: the same executable as its parent (device {}, inode {}) and the same command line, so forked and never exec'd",
            exe.0, exe.1
        ),
    ));

    // A plain process: every namespace is the host's.
    let (reference, whose) = namespaces::host_reference();
    let kinds = ["pid", "mnt", "net", "uts", "ipc", "cgroup"];
    let own: Vec<&str> = kinds
        .iter()
        .copied()
        .filter(|k| {
            procfs::namespace(worker, k).ok().is_none()
                || procfs::namespace(worker, k).ok() != procfs::namespace(reference, k).ok()
        })
        .collect();
    checks.push(Check::expect(
        names[2],
        own.is_empty(),
        format!("the {kind} in {whose} namespaces (a plain process)"),
        if own.is_empty() {
            format!("{} namespaces all the same as {whose}", kinds.join(", "))
        } else {
            format!("its own {}", own.join(", "))
        },
        "chapter 1 runs plain processes: start it with cargo run -p ch01-process, not through a later chapter",
    ));

    // Nothing inherited: 0, 1, 2 and the one socket to its parent.
    let open = fds(worker);
    let extra: Vec<&(i32, String)> = open.iter().filter(|(fd, _)| *fd > 2).collect();
    let sockets = extra
        .iter()
        .filter(|(_, t)| t.starts_with("socket:"))
        .count();
    let shown = extra
        .iter()
        .map(|(fd, t)| format!("{fd} -> {t}"))
        .collect::<Vec<_>>()
        .join(", ");
    checks.push(Check::expect(
        names[3],
        extra.len() == 1 && sockets == 1,
        "0, 1, 2 and exactly one socket (to its parent)",
        format!("0, 1, 2 and {}", if shown.is_empty() { "nothing else".into() } else { shown }),
        "the forked child must close every descriptor it inherited but its own socket (close_all_but in src/child.rs)",
    ));

    // Asleep, waiting for the next request; a zygote has reaped every child.
    let st = state(worker);
    let zombies: Vec<i32> = procfs::children(worker)
        .into_iter()
        .filter(|&c| state(c) == "Z")
        .collect();
    checks.push(Check::expect(
        names[4],
        (st == "S" || st == "R") && zombies.is_empty(),
        "state S (asleep in read, waiting for a request) and no zombie child",
        format!(
            "state {st}{}",
            if zombies.is_empty() {
                ", no zombie child".to_string()
            } else {
                format!(", zombie children {zombies:?}")
            }
        ),
        if st == "T" {
            format!("it is stopped: kill -CONT {worker}")
        } else {
            "a zygote must waitpid() each request's child".to_string()
        },
    ));

    checks.push(match request(server) {
        Ok((reply, took)) => {
            let answered_by = reply
                .rsplit_once("answered by pid ")
                .and_then(|(_, p)| p.trim_end_matches(')').parse::<i32>().ok());
            let right = match (expect.kind, answered_by) {
                (Kind::Worker, Some(p)) => p == worker,
                (Kind::Zygote, Some(p)) => p != worker,
                (_, None) => !reply.is_empty(),
            };
            Check::expect(
                names[5],
                right,
                match expect.kind {
                    Kind::Worker => format!("a reply answered by the worker itself (pid {worker})"),
                    Kind::Zygote => {
                        format!("a reply answered by a child of the zygote (not pid {worker})")
                    }
                },
                format!(
                    "'{}' replied '{reply}' in {took:.1?}",
                    String::from_utf8_lossy(REQUEST)
                ),
                format!("is pid {worker} really a {kind}? {}", start(expect.kind)),
            )
        }
        Err(e) => Check::fail(
            names[5],
            format!("a reply to '{}'", String::from_utf8_lossy(REQUEST)),
            e,
            format!(
                "the {kind} must answer each request on its socket; {}",
                start(expect.kind)
            ),
        ),
    });
    checks
}

/// A copy of `server`'s end of the socket to `worker`, taken with `pidfd_getfd(2)`.
fn server_socket(server: i32) -> Result<UnixStream, String> {
    let sockets: Vec<i32> = fds(server)
        .into_iter()
        .filter(|(_, t)| t.starts_with("socket:"))
        .map(|(fd, _)| fd)
        .collect();
    let [fd] = sockets.as_slice() else {
        return Err(format!(
            "pid {server} holds {} sockets, not one: cannot tell which leads to the worker",
            sockets.len()
        ));
    };
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1; no memory is
    // passed.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, server, 0) };
    if pidfd < 0 {
        return Err(format!(
            "pidfd_open({server}): {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: pidfd_open returned a fresh descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    use std::os::fd::AsRawFd;
    // SAFETY: pidfd_getfd takes a pidfd, a descriptor number in that process and flags, and
    // returns a new descriptor in this one or -1; no memory is passed.
    let copy = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), *fd, 0) };
    if copy < 0 {
        return Err(format!(
            "pidfd_getfd of pid {server}'s fd {fd}: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: pidfd_getfd returned a fresh descriptor for a socket that nothing else in this
    // process owns.
    Ok(unsafe { UnixStream::from_raw_fd(copy as i32) })
}

/// Sends [`REQUEST`] on the server's socket and reads the reply (5 s at most; the socket's
/// own settings are shared with the server, so the wait is a `poll`, not a socket timeout).
fn request(server: i32) -> Result<(String, Duration), String> {
    let mut sock = server_socket(server)?;
    let started = Instant::now();
    let mut message = Vec::with_capacity(HEADER + REQUEST.len());
    message.extend_from_slice(&(REQUEST.len() as u32).to_le_bytes());
    message.extend_from_slice(&DATA.to_le_bytes());
    message.extend_from_slice(REQUEST);
    sock.write_all(&message)
        .map_err(|e| format!("sending the request: {e}"))?;
    let deadline = started + Duration::from_secs(5);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if buf.len() >= HEADER {
            let len = u32::from_le_bytes(buf[..4].try_into().unwrap_or_default()) as usize;
            let kind = u32::from_le_bytes(buf[4..8].try_into().unwrap_or_default());
            if kind != DATA {
                return Err(format!("a message of kind {kind}, not a reply"));
            }
            if buf.len() >= HEADER + len {
                let reply = String::from_utf8_lossy(&buf[HEADER..HEADER + len]).into_owned();
                return Ok((reply, started.elapsed()));
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no reply within 5 s ({} bytes)", buf.len()));
        }
        let ready = {
            use std::os::fd::AsFd;
            let mut polled = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
            poll(
                &mut polled,
                PollTimeout::try_from(left.as_millis().min(5000) as u32)
                    .unwrap_or(PollTimeout::MAX),
            )
            .map_err(|e| format!("poll: {e}"))?
        };
        if ready == 0 {
            continue;
        }
        match sock.read(&mut chunk) {
            Ok(0) => return Err("end of file: the worker closed its socket (it has ended)".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("reading the reply: {e}")),
        }
    }
}
