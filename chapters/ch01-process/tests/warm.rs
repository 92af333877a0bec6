//! A pre-warmed worker answers many requests, keeps its state between them, reports its own
//! death clearly, and never outlives its handle.

use std::path::Path;

use ch01_process::{Exit, Role, WarmError, Worker};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn is_gone(pid: Pid) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

fn reverse(request: &[u8]) -> Vec<u8> {
    request.iter().rev().copied().collect()
}

#[test]
fn answers_many_requests_of_every_size() {
    let mut worker = Worker::start(reverse).unwrap();
    for i in 0..2000u32 {
        let request = format!("request number {i}");
        assert_eq!(
            worker.request(request.as_bytes()).unwrap(),
            reverse(request.as_bytes())
        );
    }
    assert_eq!(worker.request(b"").unwrap(), b"");
    // Larger than a socket buffer: sent and received in several pieces.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(worker.request(&big).unwrap(), reverse(&big));
    assert_eq!(worker.request(b"after").unwrap(), b"retfa");
}

#[test]
fn keeps_its_state_between_requests() {
    let mut worker = Worker::start_with(
        || 0u32,
        |count, _| {
            *count += 1;
            count.to_string().into_bytes()
        },
    )
    .unwrap();
    let replies: Vec<_> = (0..3).map(|_| worker.request(b"").unwrap()).collect();
    assert_eq!(replies, [b"1", b"2", b"3"]);
}

#[test]
fn runs_in_its_own_process_and_loads_there_once() {
    let mut worker = Worker::start_with(std::process::id, |loaded_in, _| {
        loaded_in.to_string().into_bytes()
    })
    .unwrap();
    let pid = worker.pid();
    assert_ne!(pid.as_raw() as u32, std::process::id());
    assert_eq!(worker.request(b"").unwrap(), pid.to_string().into_bytes());
}

#[test]
fn is_stopped_and_reaped_when_dropped() {
    let mut worker = Worker::start(reverse).unwrap();
    let pid = worker.pid();
    worker.request(b"x").unwrap();
    assert!(!is_gone(pid));
    drop(worker);
    assert!(is_gone(pid), "worker {pid} still exists after drop");
}

#[test]
fn stop_says_the_worker_exited_cleanly() {
    let worker = Worker::start(reverse).unwrap();
    let pid = worker.pid();
    assert_eq!(worker.stop().unwrap(), Exit::Code(0));
    assert!(is_gone(pid));
}

#[test]
fn is_reaped_when_the_test_using_it_panics() {
    // A test is a thread; a failing test is a thread that panics.
    let (tx, rx) = std::sync::mpsc::channel();
    let test = std::thread::spawn(move || {
        let worker = Worker::start(reverse).unwrap();
        tx.send(worker.pid()).unwrap();
        panic!("a failing test");
    });
    assert!(test.join().is_err());
    let pid = rx.recv().unwrap();
    assert!(is_gone(pid), "worker {pid} outlived a panicking test");
}

#[test]
fn a_panicking_handler_kills_the_worker_and_the_next_request_says_so() {
    let mut worker = Worker::start(|request| {
        if request == b"boom" {
            panic!("handler got boom");
        }
        reverse(request)
    })
    .unwrap();
    let pid = worker.pid();
    assert_eq!(worker.request(b"ab").unwrap(), b"ba");
    let err = worker.request(b"boom").unwrap_err();
    assert!(
        matches!(
            err,
            WarmError::Died {
                role: Role::Worker,
                exit: Exit::Code(101),
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&format!("worker (pid {pid}) exited with status 101")),
        "{message}"
    );
    assert!(message.contains("panicked"), "{message}");
    // The worker is gone for good: every later request gets the same clear error.
    let again = worker.request(b"ab").unwrap_err();
    assert_eq!(again.to_string(), message);
    assert!(is_gone(pid));
}

#[test]
fn a_killed_worker_is_reported_with_its_pid_and_signal() {
    let mut worker = Worker::start(reverse).unwrap();
    let pid = worker.pid();
    kill(pid, Signal::SIGKILL).unwrap();
    let err = worker.request(b"hello").unwrap_err();
    assert!(
        matches!(err, WarmError::Died { pid: p, exit: Exit::Signal(Signal::SIGKILL), .. } if p == pid),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains(&format!("worker (pid {pid}) was killed by signal SIGKILL")),
        "{err}"
    );
    assert_eq!(worker.stop().unwrap(), Exit::Signal(Signal::SIGKILL));
}

#[test]
fn a_panicking_load_step_fails_start() {
    let err = Worker::start_with(
        || -> u32 { panic!("model file missing") },
        |_, r| r.to_vec(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            WarmError::Died {
                exit: Exit::Code(101),
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn workers_do_not_hold_each_others_sockets() {
    // Each worker closes every descriptor it inherited but its own socket. If the second held a
    // copy of the first one's socket, the first would never see end-of-file and would have to be
    // killed (Exit::Signal) instead of exiting on its own.
    let first = Worker::start(reverse).unwrap();
    let mut second = Worker::start(reverse).unwrap();
    assert_eq!(first.stop().unwrap(), Exit::Code(0));
    assert_eq!(
        second.request(b"still here").unwrap(),
        reverse(b"still here")
    );
}

#[test]
fn workers_in_many_threads() {
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let mut worker = Worker::start(reverse).unwrap();
                for i in 0..200 {
                    let request = format!("thread {t} request {i}");
                    assert_eq!(
                        worker.request(request.as_bytes()).unwrap(),
                        reverse(request.as_bytes())
                    );
                }
                worker.stop().unwrap()
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap(), Exit::Code(0));
    }
}
