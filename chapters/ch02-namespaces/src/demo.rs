//! The chapter's demo: the host's view, a child in every namespace, its view, side by side.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::thread::sleep;
use std::time::Duration;

use anyhow::{Context, Result};
use ch01_process::exec::Program;
use ch02_namespaces::view::{capture, View};
use ch02_namespaces::{IdMap, Isolation, Namespace, PortMapping};
use nix::unistd::{geteuid, pipe};

/// The key of the System V message queue the demo makes on the host ("boxl" in ASCII).
const DEMO_QUEUE_KEY: libc::key_t = 0x626f_786c;

pub fn run() -> Result<i32> {
    let root = geteuid().is_root();
    println!("boxlab chapter 2: namespaces\n");
    println!(
        "A namespace gives a process its own copy of one global resource. We will look at the"
    );
    println!(
        "system from this process, make a child in new namespaces, and look again from inside.\n"
    );

    println!("Step 1. The host, as this process sees it");
    let queue = HostQueue::create()?;
    println!(
        "  msgget(0x{DEMO_QUEUE_KEY:08x}, IPC_CREAT): made a System V message queue on the host (ipcs -q lists it)"
    );
    let host = capture();
    print_view("  ", &host);

    println!("\nStep 2. Make the child (each line is one step, as it happens)");
    // The course's six, and the two it does not name.
    let namespaces: Vec<Namespace> = Namespace::ALL
        .into_iter()
        .filter(|ns| ns.supported())
        .collect();
    let mut isolation = Isolation::new(namespaces)
        .hostname("boxlab-demo")
        .observe(Arc::new(|step: &str| println!("  {step}")));
    if root {
        // As root we may map a whole range: root inside is the unprivileged uid 100000 outside.
        isolation = isolation.uid_maps(vec![IdMap {
            inside: 0,
            outside: 100_000,
            count: 65_536,
        }]);
        isolation = isolation.gid_maps(vec![IdMap {
            inside: 0,
            outside: 100_000,
            count: 65_536,
        }]);
    } else {
        println!(
            "  (not root: rootless mode, your uid {} becomes root inside; no veth, loopback only)",
            geteuid()
        );
    }
    let (reader, writer) = pipe().context("pipe for the child's report")?;
    let program = Program::new(&["/proc/self/exe", "__view"])?;
    let child = isolation
        .clone()
        .stdout(writer)
        .spawn(&program)
        .context("starting the demo child")?;
    let mut report = String::new();
    std::fs::File::from(reader)
        .read_to_string(&mut report)
        .context("reading the child's report")?;
    let status = child.wait()?;
    let inside = View::from_lines(&report);
    println!("  the child {status}");

    println!("\nStep 3. Host and child, side by side");
    compare(&host, &inside);

    if root {
        println!("\nStep 4. A network of its own, and one published port");
        published_port_demo(&isolation)?;
    } else {
        println!(
            "\nStep 4 (a veth network and a published port) needs root; run with sudo to see it."
        );
    }

    drop(queue);
    println!("\nDone. Removed the message queue; the namespaces died with their last process, and");
    println!("the veth pair with its network namespace. Try your own command:");
    println!(
        "  sudo cargo run -p ch02-namespaces -- --hostname lab -- sh -c 'hostname; ps ax; ip addr'"
    );
    Ok(0)
}

fn print_view(indent: &str, view: &View) {
    println!(
        "{indent}pid {}, parent {}, hostname {:?}, uid {}",
        view.pid, view.ppid, view.hostname, view.uid
    );
    println!(
        "{indent}interfaces: {}; processes visible in /proc: {}",
        view.interfaces.join(", "),
        view.processes
    );
    println!(
        "{indent}message queues: {}; cgroup: {}",
        list_or_none(&view.ipc_queues),
        view.cgroup
    );
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".into()
    } else {
        items.join(", ")
    }
}

// ANCHOR: compare
fn compare(host: &View, inside: &View) {
    let row = |fact, get: fn(&View) -> String, why| (fact, get(host), get(inside), why);
    let rows = [
        row(
            "pid",
            |v| v.pid.to_string(),
            "PID: numbering restarts; our init is 1, the command 2",
        ),
        row(
            "parent pid",
            |v| v.ppid.to_string(),
            "PID: its parent is init, PID 1",
        ),
        row(
            "processes",
            |v| v.processes.to_string(),
            "PID+MNT: a fresh /proc lists only the namespace",
        ),
        row(
            "hostname",
            |v| v.hostname.clone(),
            "UTS: sethostname changed only the child's",
        ),
        row("uid", |v| v.uid.to_string(), "USER: uid 0 inside ..."),
        row(
            "uid_map",
            |v| v.uid_map.clone(),
            "USER: ... is this range outside (inside outside count)",
        ),
        row(
            "interfaces",
            |v| v.interfaces.join(","),
            "NET: a new network namespace has only lo",
        ),
        row(
            "msg queues",
            |v| list_or_none(&v.ipc_queues),
            "IPC: the host's queue is not visible",
        ),
        row(
            "cgroup",
            |v| v.cgroup.clone(),
            "CGROUP: its own cgroup is its root",
        ),
    ];
    println!("  {:<11} {:<24} {:<24} why", "", "host", "child");
    for (fact, outside, within, why) in rows {
        println!(
            "  {fact:<11} {:<24} {:<24} {why}",
            clip(&outside),
            clip(&within)
        );
    }
}
// ANCHOR_END: compare

fn clip(text: &str) -> String {
    if text.chars().count() <= 23 {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(22).collect::<String>())
    }
}

fn published_port_demo(isolation: &Isolation) -> Result<()> {
    let host_port = TcpListener::bind("127.0.0.1:0")
        .context("finding a free loopback port")?
        .local_addr()?
        .port();
    let mapping: PortMapping = format!("127.0.0.1:{host_port}:80").parse()?;
    let program = Program::new(&["/proc/self/exe", "__serve", "80"])?;
    let child = isolation
        .clone()
        .publish(mapping)
        .spawn(&program)
        .context("starting the server child")?;
    println!(
        "  the child serves on port 80 of its own eth0 ({}); the host asks 127.0.0.1:{host_port}",
        child.address().map(|a| a.to_string()).unwrap_or_default()
    );
    let reply = ask(SocketAddr::from((Ipv4Addr::LOCALHOST, host_port)))?;
    println!("  reply: {}", reply.trim());
    let status = child.wait()?;
    println!("  the server {status}; its veth and the proxy are gone");
    Ok(())
}

/// Connects to `addr` and reads the reply, retrying while the server is still starting up.
pub fn ask(addr: SocketAddr) -> Result<String> {
    for _ in 0..100 {
        if let Ok(mut stream) = TcpStream::connect(addr) {
            let mut reply = String::new();
            if stream.read_to_string(&mut reply).is_ok() && !reply.is_empty() {
                return Ok(reply);
            }
        }
        sleep(Duration::from_millis(20));
    }
    anyhow::bail!("no reply from {addr} within 2 s")
}

// ANCHOR: serve
/// The workload of the port demo and tests: answer one TCP connection on `port` with what this
/// process sees, then exit.
pub fn serve_once(port: &str) -> ExitCode {
    let Ok(port) = port.parse::<u16>() else {
        eprintln!("__serve: '{port}' is not a port number");
        return ExitCode::FAILURE;
    };
    let listener = match TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("__serve: bind 0.0.0.0:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Ok((mut conn, peer)) = listener.accept() else {
        return ExitCode::FAILURE;
    };
    let me = capture();
    let _ = writeln!(
        conn,
        "hello {peer} from pid {} on {:?}, interfaces {}",
        me.pid,
        me.hostname,
        me.interfaces.join(",")
    );
    ExitCode::SUCCESS
}
// ANCHOR_END: serve

/// A System V message queue on the host, removed on drop.
struct HostQueue(i32);

impl HostQueue {
    fn create() -> Result<Self> {
        // SAFETY: msgget takes plain integers and returns an id or -1.
        let id = unsafe { libc::msgget(DEMO_QUEUE_KEY, libc::IPC_CREAT | 0o600) };
        if id < 0 {
            return Err(std::io::Error::last_os_error())
                .context("msgget for the demo's message queue");
        }
        Ok(HostQueue(id))
    }
}

impl Drop for HostQueue {
    fn drop(&mut self) {
        // SAFETY: IPC_RMID with a null buffer is the documented way to remove a queue.
        unsafe { libc::msgctl(self.0, libc::IPC_RMID, std::ptr::null_mut()) };
    }
}
