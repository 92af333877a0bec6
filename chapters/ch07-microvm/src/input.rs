//! Input for the guest's serial console, from any thread, while the vCPU runs.
//!
//! The vCPU thread spends its life inside KVM_RUN. A Linux guest waiting for a key sits in `hlt`,
//! which the in-kernel interrupt controller handles without ever leaving KVM_RUN: no exit, so no
//! chance for the VMM to hand it a byte. Whoever has a byte for the guest (our stdin thread, a
//! test) therefore does two things: put the byte in a queue, and *kick* the vCPU thread with a
//! signal. The signal handler sets `kvm_run.immediate_exit`, so KVM_RUN returns EINTR whether the
//! signal lands while the thread is in the guest or just before it enters again (a kick can
//! never be lost). The run loop then moves the queued bytes into the UART's receive FIFO, which
//! raises its interrupt (the irqfd, IRQ 4), and re-enters the guest. Firecracker kicks its vCPU
//! threads the same way.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};

use kvm_bindings::kvm_run;
use vmm_sys_util::signal::{register_signal_handler, SIGRTMIN};

use crate::error::{Result, VmError};

thread_local! {
    /// The `kvm_run` page of the vCPU this thread is running now (null when none).
    static KVM_RUN: Cell<*mut kvm_run> = const { Cell::new(std::ptr::null_mut()) };
}

fn kick_signal() -> libc::c_int {
    SIGRTMIN() + 2
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let run = KVM_RUN.with(Cell::get);
    if !run.is_null() {
        // SAFETY: the pointer is set by `Running::enter` on this very thread to the vCPU's mmap'd
        // `kvm_run` page and cleared before that page can go away; a volatile byte store is all
        // the handler does (async-signal-safe), and KVM reads the flag on the next KVM_RUN.
        unsafe { std::ptr::addr_of_mut!((*run).immediate_exit).write_volatile(1) };
    }
}

#[derive(Default)]
struct Shared {
    queue: Mutex<VecDeque<u8>>,
    quit: AtomicBool,
    /// The thread inside [`crate::MicroVm::run`] now, if any.
    vcpu_thread: Mutex<Option<libc::pthread_t>>,
}

// ANCHOR: handle
/// A handle that sends bytes to the guest's serial port (COM1) from any thread. Get one with
/// [`crate::MicroVm::input`]; it stays valid for the VM's life.
#[derive(Clone, Default)]
pub struct InputHandle {
    shared: Arc<Shared>,
}

impl InputHandle {
    /// Queues `bytes` for the guest and wakes the vCPU, which moves them into the UART.
    pub fn send(&self, bytes: &[u8]) {
        self.lock_queue().extend(bytes);
        self.kick();
    }

    /// Asks the running VM to stop: [`crate::MicroVm::run`] returns [`crate::Stop::Quit`].
    pub fn quit(&self) {
        self.shared.quit.store(true, Ordering::SeqCst);
        self.kick();
    }

    fn kick(&self) {
        let thread = self
            .shared
            .vcpu_thread
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(thread) = *thread {
            // SAFETY: `thread` is registered by `Running::enter` and removed (under this same
            // lock) before that thread leaves `run`, so it is alive; the signal's handler was
            // installed before it was registered.
            unsafe { libc::pthread_kill(thread, kick_signal()) };
        }
    }
    // ANCHOR_END: handle

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, VecDeque<u8>> {
        self.shared.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes everything queued so far.
    pub(crate) fn take(&self) -> Vec<u8> {
        self.lock_queue().drain(..).collect()
    }

    /// Takes the quit request, if there is one.
    pub(crate) fn take_quit(&self) -> bool {
        self.shared.quit.swap(false, Ordering::SeqCst)
    }
}

/// While a vCPU runs on this thread: kicks reach it. Dropped when `run` returns, on every path.
pub(crate) struct Running<'a> {
    handle: &'a InputHandle,
}

impl<'a> Running<'a> {
    pub(crate) fn enter(handle: &'a InputHandle, run: *mut kvm_run) -> Result<Running<'a>> {
        static HANDLER: Once = Once::new();
        let mut registered = Ok(());
        HANDLER.call_once(|| registered = register_signal_handler(kick_signal(), on_kick));
        registered.map_err(|errno| VmError::Os {
            call: "sigaction",
            doing: "installing the handler of the input kick's real-time signal",
            errno,
        })?;
        KVM_RUN.with(|c| c.set(run));
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        *handle
            .shared
            .vcpu_thread
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(me);
        Ok(Running { handle })
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        *self
            .handle
            .shared
            .vcpu_thread
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
        KVM_RUN.with(|c| c.set(std::ptr::null_mut()));
    }
}
