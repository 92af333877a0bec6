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
/// Forks a child that keeps only `keep` (and fds 0–2) open, runs `body` and exits with its
/// status (101 if it panicked). Returns the child's pid in the parent.
pub(crate) fn fork_child(keep: RawFd, body: impl FnOnce() -> i32) -> Result<Pid, Errno> {
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

/// Closes every descriptor from 3 up except `keep`.
fn close_all_but(keep: RawFd) {
    let keep = keep as libc::c_uint;
    let ranges = [(3, keep.saturating_sub(1)), (keep + 1, libc::c_uint::MAX)];
    for (first, last) in ranges {
        if first > last {
            continue;
        }
        // SAFETY: close_range(2) only closes descriptors; none in these ranges is used by this
        // child again (Rust objects still holding them are never dropped: the child `_exit`s).
        let done = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
        if done != 0 {
            // Kernels before 5.9 have no close_range: close one by one, up to a common limit.
            for fd in first..=last.min(4095) {
                // SAFETY: as above; closing a descriptor that is not open only returns EBADF.
                unsafe { libc::close(fd as RawFd) };
            }
        }
    }
}
