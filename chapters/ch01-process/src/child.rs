//! Forking a child that does *not* exec: a worker, a zygote, a zygote's per-request child.
//!
//! Such a child keeps running this program's code, so two things matter that an exec'd child
//! never worries about:
//!
//! - **File descriptors.** It inherits every descriptor the parent had, including other workers'
//!   sockets and other threads' exec-report pipes. Holding them would keep those sockets from
//!   ever reporting end-of-file, so a worker would never see its parent leave. It closes all but
//!   the one socket it serves (and stdin, stdout, stderr).
//! - **Returning.** After `fork` the child is on the caller's stack. If its work returned or
//!   panicked up the stack, the child would go on running the *caller's* code (a test, `main`)
//!   as a second copy. It catches panics and always ends with `_exit`.

use std::os::fd::RawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};

use nix::errno::Errno;
use nix::unistd::{fork, ForkResult, Pid};

/// The exit status of a child whose work panicked, as Rust's own test harness uses.
pub const PANIC_STATUS: i32 = 101;

// ANCHOR: fork_child
/// Forks a child that keeps only the descriptors in `keep` (and fds 0–2) open, runs `body` and
/// exits with its status (101 if it panicked). Returns the child's pid in the parent.
///
/// Later chapters fork their non-exec'ing helpers (a container's set-up process, its init)
/// through this too.
pub fn fork_child(keep: &[RawFd], body: impl FnOnce() -> i32) -> Result<Pid, Errno> {
    // SAFETY: after the fork the child has only this thread; any lock another thread held stays
    // held. The child uses the allocator (made safe by glibc's `fork`, which re-initialises
    // malloc's locks in the child) and the caller's `body`, which must not wait on locks shared
    // with other threads. It never returns into the caller's code: see `_exit` below.
    match unsafe { fork() }? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            close_all_but(keep);
            let status = catch_unwind(AssertUnwindSafe(body)).unwrap_or(PANIC_STATUS);
            // SAFETY: `_exit` ends this process at once, without running the parent's atexit
            // handlers or flushing stdio buffers copied from it. Always safe to call.
            unsafe { libc::_exit(status) }
        }
    }
}
// ANCHOR_END: fork_child

/// Closes every descriptor from 3 up except those in `keep`.
fn close_all_but(keep: &[RawFd]) {
    let mut kept: Vec<libc::c_uint> = keep
        .iter()
        .filter(|&&fd| fd > 2)
        .map(|&fd| fd as libc::c_uint)
        .collect();
    kept.sort_unstable();
    kept.dedup();
    // Close the gaps around the kept descriptors: [3, k1-1], [k1+1, k2-1], …, [kn+1, MAX].
    let mut first: libc::c_uint = 3;
    for k in kept {
        if k > first {
            close_range(first, k - 1);
        }
        first = k + 1;
    }
    close_range(first, libc::c_uint::MAX);
}

fn close_range(first: libc::c_uint, last: libc::c_uint) {
    // SAFETY: close_range(2) only closes descriptors; none in this range is used by this child
    // again (Rust objects still holding them are never dropped: the child `_exit`s).
    let done = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
    if done != 0 {
        // Kernels before 5.9 have no close_range: close one by one, up to a common limit.
        for fd in first..=last.min(4095) {
            // SAFETY: as above; closing a descriptor that is not open only returns EBADF.
            unsafe { libc::close(fd as RawFd) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::OFlag;
    use nix::unistd::pipe2;
    use std::os::fd::AsRawFd;

    #[test]
    fn the_child_keeps_exactly_the_descriptors_asked_for() {
        let pipes: Vec<_> = (0..3).map(|_| pipe2(OFlag::O_CLOEXEC).unwrap()).collect();
        let (kept_a, kept_b, closed) = (
            pipes[0].1.as_raw_fd(),
            pipes[2].1.as_raw_fd(),
            pipes[1].1.as_raw_fd(),
        );
        let child = fork_child(&[kept_b, kept_a], || {
            // SAFETY: F_GETFD only asks whether the descriptor number is open.
            let open = |fd: RawFd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0;
            i32::from(!open(kept_a)) + 2 * i32::from(!open(kept_b)) + 4 * i32::from(open(closed))
        })
        .unwrap();
        let status = crate::status::wait_for_end(child).unwrap();
        assert_eq!(
            status,
            crate::Exit::Code(0),
            "bit 1: a closed, 2: b closed, 4: other left open"
        );
    }
}
