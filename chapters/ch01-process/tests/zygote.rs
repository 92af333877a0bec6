//! A zygote loads once and forks a fresh child per request: each request runs in its own
//! process, starts from the loaded state, and a crash takes only that request down.

use std::path::Path;

use ch01_process::{Exit, WarmError, Worker, Zygote};
use nix::unistd::{getpid, Pid};

fn is_gone(pid: Pid) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

fn my_pid(_: &[u8]) -> Vec<u8> {
    getpid().to_string().into_bytes()
}

#[test]
fn each_request_runs_in_a_new_child_of_the_same_zygote() {
    let mut zygote = Zygote::start(my_pid).unwrap();
    let zygote_pid = zygote.pid();
    let pids: Vec<i32> = (0..5)
        .map(|_| {
            String::from_utf8(zygote.request(b"").unwrap())
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    let mut distinct = pids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), pids.len(), "children reused: {pids:?}");
    assert!(!pids.contains(&zygote_pid.as_raw()));
    assert_eq!(zygote.pid(), zygote_pid);
    // The zygote reaps each child before it takes the next request: no zombies pile up.
    for &child in &pids[..4] {
        assert!(
            is_gone(Pid::from_raw(child)),
            "child {child} of the zygote was not reaped"
        );
    }
}

#[test]
fn load_runs_once_in_the_zygote_and_every_child_inherits_it() {
    let mut zygote =
        Zygote::start_with(getpid, |loaded_in, _| loaded_in.to_string().into_bytes()).unwrap();
    let zygote_pid = zygote.pid().to_string().into_bytes();
    for _ in 0..3 {
        assert_eq!(zygote.request(b"").unwrap(), zygote_pid);
    }
}

#[test]
fn each_child_starts_from_the_loaded_state_unlike_a_worker() {
    fn count(counter: &mut u32, _: &[u8]) -> Vec<u8> {
        *counter += 1;
        counter.to_string().into_bytes()
    }
    let mut zygote = Zygote::start_with(|| 0u32, count).unwrap();
    let mut worker = Worker::start_with(|| 0u32, count).unwrap();
    let from_zygote: Vec<_> = (0..3).map(|_| zygote.request(b"").unwrap()).collect();
    let from_worker: Vec<_> = (0..3).map(|_| worker.request(b"").unwrap()).collect();
    assert_eq!(from_zygote, [b"1", b"1", b"1"]);
    assert_eq!(from_worker, [b"1", b"2", b"3"]);
}

#[test]
fn a_crashing_request_fails_alone_and_the_zygote_serves_the_next() {
    let mut zygote = Zygote::start(|request| {
        if request == b"boom" {
            panic!("handler got boom");
        }
        request.to_ascii_uppercase()
    })
    .unwrap();
    let zygote_pid = zygote.pid();
    let err = zygote.request(b"boom").unwrap_err();
    let WarmError::RequestDied {
        zygote: z,
        child,
        exit,
    } = err
    else {
        panic!("{err:?}")
    };
    assert_eq!(z, zygote_pid);
    assert_ne!(child, zygote_pid);
    assert_eq!(exit, Exit::Code(101));
    let message = WarmError::RequestDied {
        zygote: z,
        child,
        exit,
    }
    .to_string();
    assert!(
        message.contains(&format!("(pid {child}) exited with status 101")),
        "{message}"
    );
    assert!(message.contains("still serves"), "{message}");

    assert_eq!(zygote.request(b"fine").unwrap(), b"FINE");
    assert_eq!(zygote.pid(), zygote_pid);
}

#[test]
fn a_child_killed_by_a_signal_is_reported() {
    let mut zygote = Zygote::start(|_| {
        // SAFETY: raise(3) only sends a signal to this process (the request's child).
        unsafe { libc::raise(libc::SIGKILL) };
        Vec::new()
    })
    .unwrap();
    let err = zygote.request(b"").unwrap_err();
    assert!(
        err.to_string().contains("was killed by signal SIGKILL"),
        "{err}"
    );
}

#[test]
fn answers_large_requests() {
    let mut zygote = Zygote::start(|request| request.to_vec()).unwrap();
    let big = vec![7u8; 1_000_000];
    assert_eq!(zygote.request(&big).unwrap(), big);
}

#[test]
fn is_stopped_and_reaped_when_dropped() {
    let zygote = Zygote::start(my_pid).unwrap();
    let pid = zygote.pid();
    drop(zygote);
    assert!(is_gone(pid), "zygote {pid} still exists after drop");
}

#[test]
fn a_request_child_dies_with_its_zygote() {
    use std::time::{Duration, Instant};
    // Orphans are normally adopted (and reaped) by init. Adopt them ourselves instead, so this test
    // can reap the request's child and see how it ended, and leaves no zombie behind on a host
    // whose PID 1 does not reap.
    nix::sys::prctl::set_child_subreaper(true).unwrap();
    let scratch = labkit::ScratchDir::new("ch01-zygote").unwrap();
    let pid_file = scratch.join("child.pid");
    let handler_file = pid_file.clone();
    let mut zygote = Zygote::start(move |_| {
        // The request's child says who it is, then hangs.
        std::fs::write(&handler_file, getpid().to_string()).unwrap();
        std::thread::sleep(Duration::from_secs(60));
        Vec::new()
    })
    .unwrap();
    let zygote_pid = zygote.pid();
    let killer = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let child = loop {
            if let Some(pid) = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.parse::<i32>().ok())
            {
                break Pid::from_raw(pid);
            }
            assert!(
                Instant::now() < deadline,
                "the request's child never started"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        nix::sys::signal::kill(zygote_pid, nix::sys::signal::Signal::SIGKILL).unwrap();
        child
    });
    // Blocks until the zygote and its child are both gone and the socket reads end-of-file.
    let err = zygote.request(b"hang").unwrap_err();
    let child = killer.join().unwrap();
    assert!(
        err.to_string().contains(&format!(
            "the zygote (pid {zygote_pid}) was killed by signal SIGKILL"
        )),
        "{err}"
    );
    // The orphaned child got SIGKILL too (its parent-death signal), and was adopted by us.
    let status = nix::sys::wait::waitpid(child, None).unwrap();
    assert_eq!(
        Exit::from_wait(status),
        Some(Exit::Signal(nix::sys::signal::Signal::SIGKILL)),
        "the request's child {child} did not die with its zygote"
    );
}
