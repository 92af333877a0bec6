//! The time limit: how a VMM stops a guest that never stops itself.
//!
//! A vCPU thread sits inside the KVM_RUN ioctl for as long as the guest computes without an
//! exit: a `for (;;);` in the guest never comes back. The way out is a signal. KVM checks for
//! pending signals and returns from KVM_RUN with EINTR. We arm a POSIX timer that sends a
//! real-time signal to *this thread* when the limit is reached, and then every 5 ms, because a
//! signal that lands just before the thread re-enters KVM_RUN would be missed; the run loop
//! checks the flag before each entry.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;
use std::time::Duration;

use vmm_sys_util::signal::{register_signal_handler, SIGRTMIN};

use crate::error::{Result, VmError};

thread_local! {
    /// Set by the signal handler on the vCPU's own thread: the limit was reached. Per thread,
    /// so that VMs running side by side (tests) do not stop each other.
    static EXPIRED: AtomicBool = const { AtomicBool::new(false) };
}

extern "C" fn on_timer(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // Only an atomic store: all that is safe in a signal handler, and all we need. The signal's
    // real work is done by the kernel: interrupting KVM_RUN.
    EXPIRED.with(|e| e.store(true, Ordering::SeqCst));
}

fn timer_signal() -> libc::c_int {
    SIGRTMIN() + 1
}

// ANCHOR: watchdog
/// An armed time limit for the calling thread; disarmed when dropped.
pub struct Watchdog {
    timer: Option<libc::timer_t>,
}

impl Watchdog {
    /// Arms a limit of `limit` (none: never fires) for the calling thread, which must be the
    /// thread that runs the vCPU.
    pub fn arm(limit: Option<Duration>) -> Result<Watchdog> {
        EXPIRED.with(|e| e.store(false, Ordering::SeqCst));
        let Some(limit) = limit else {
            return Ok(Watchdog { timer: None });
        };
        static HANDLER: Once = Once::new();
        let mut registered = Ok(());
        HANDLER.call_once(|| registered = register_signal_handler(timer_signal(), on_timer));
        registered.map_err(|errno| VmError::Os {
            call: "sigaction",
            doing: "installing the handler of the time limit's real-time signal",
            errno,
        })?;

        // SAFETY: sigevent is a plain C struct; all-zero is a valid starting value.
        let mut event: libc::sigevent = unsafe { std::mem::zeroed() };
        event.sigev_notify = libc::SIGEV_THREAD_ID;
        event.sigev_signo = timer_signal();
        // SAFETY: gettid has no preconditions.
        event.sigev_notify_thread_id = unsafe { libc::syscall(libc::SYS_gettid) } as libc::c_int;
        let mut timer: libc::timer_t = std::ptr::null_mut();
        // SAFETY: `event` and `timer` are valid for the call; the kernel fills `timer`.
        if unsafe { libc::timer_create(libc::CLOCK_MONOTONIC, &mut event, &mut timer) } != 0 {
            return Err(os_error("timer_create"));
        }
        let spec = libc::itimerspec {
            it_value: timespec(limit),
            it_interval: timespec(Duration::from_millis(5)),
        };
        // SAFETY: `timer` was just created by timer_create; `spec` is a valid itimerspec.
        if unsafe { libc::timer_settime(timer, 0, &spec, std::ptr::null_mut()) } != 0 {
            let err = os_error("timer_settime");
            // SAFETY: `timer` is ours and not used after this.
            unsafe { libc::timer_delete(timer) };
            return Err(err);
        }
        Ok(Watchdog { timer: Some(timer) })
    }

    /// Has the limit been reached?
    pub fn expired(&self) -> bool {
        self.timer.is_some() && EXPIRED.with(|e| e.load(Ordering::SeqCst))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(timer) = self.timer.take() {
            // SAFETY: `timer` was created by timer_create and is deleted exactly once.
            unsafe { libc::timer_delete(timer) };
        }
    }
}
// ANCHOR_END: watchdog

fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    }
}

/// The failure of an OS call of this module, from errno.
fn os_error(call: &'static str) -> VmError {
    VmError::Os {
        call,
        doing: "arming the guest's time limit",
        errno: vmm_sys_util::errno::Error::last(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_os_call_is_named_as_such_not_as_kvm() {
        // SAFETY: setting errno has no preconditions; os_error reads it back at once.
        unsafe { *libc::__errno_location() = libc::EAGAIN };
        let text = os_error("timer_create").to_string();
        assert!(
            text.starts_with("timer_create failed while arming the guest's time limit: "),
            "{text}"
        );
        assert!(!text.contains("KVM"), "{text}");
    }

    #[test]
    fn a_limit_is_armed_and_fires() {
        let watchdog = Watchdog::arm(Some(Duration::from_millis(1))).unwrap();
        let began = std::time::Instant::now();
        while !watchdog.expired() {
            assert!(began.elapsed() < Duration::from_secs(5), "never fired");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!Watchdog::arm(None).unwrap().expired());
    }
}
