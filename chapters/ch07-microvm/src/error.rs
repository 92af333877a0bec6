//! Errors of chapter 7, each saying what failed, where (address, file, ioctl) and what to do.

use std::path::PathBuf;
use std::time::Duration;

use vmm_sys_util::errno;

/// An error from the micro-VM library.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("cannot open /dev/kvm: {errno} (load the kvm module, and run as root or as a member of the kvm group)")]
    OpenKvm { errno: errno::Error },

    #[error("KVM refused {ioctl}: {errno} ({hint})")]
    Kvm {
        ioctl: &'static str,
        errno: errno::Error,
        hint: &'static str,
    },

    #[error("{call} failed while {doing}: {errno}")]
    Os {
        call: &'static str,
        doing: &'static str,
        errno: errno::Error,
    },

    #[error("guest memory: {what}: {reason}")]
    Memory { what: String, reason: String },

    #[error("invalid machine configuration: {0}")]
    Config(String),

    #[error("the serial port COM1 (ports 0x3f8..0x3ff): {0}")]
    Serial(String),

    // ANCHOR: guest_errors
    #[error("the guest triple-faulted (KVM_EXIT_SHUTDOWN) at rip {rip:#x}: it took an exception it could not deliver (our IDT is empty){cr2_hint}; output so far: {output:?}")]
    TripleFault {
        rip: u64,
        cr2_hint: String,
        output: String,
    },

    #[error("the guest {access} {size} bytes at guest-physical {addr:#x} (rip {rip:#x}), where there is no memory and no device (KVM_EXIT_MMIO): a wild pointer, or a device this VMM does not emulate; output so far: {output:?}")]
    Unbacked {
        access: &'static str,
        size: usize,
        addr: u64,
        rip: u64,
        output: String,
    },

    #[error("the guest ran for {limit:?} without powering off: a timer signal interrupted KVM_RUN at rip {rip:#x} and stopped it; output so far: {output:?}")]
    Timeout {
        limit: Duration,
        rip: u64,
        output: String,
    },

    #[error("KVM could not run the guest instruction at rip {rip:#x} (KVM_EXIT_INTERNAL_ERROR, {suberror}){bytes}: on a PVM host KVM emulates every instruction, and its emulator has no SSE, x87, cmpxchg16b, popcnt or int n; output so far: {output:?}")]
    Internal {
        suberror: String,
        rip: u64,
        bytes: String,
        output: String,
    },

    #[error("KVM could not enter the guest (KVM_EXIT_FAIL_ENTRY, hardware reason {reason:#x} on cpu {cpu}): the vCPU state set up by the VMM is invalid (segments, control registers, EFER)")]
    FailEntry { reason: u64, cpu: u32 },

    #[error("the guest halted (KVM_EXIT_HLT) at rip {rip:#x} before powering off, with nothing to wake it; output so far: {output:?}")]
    Halted { rip: u64, output: String },

    #[error("the vCPU stopped with {exit}, which this VMM does not handle (rip {rip:#x})")]
    UnhandledExit { exit: String, rip: u64 },
    // ANCHOR_END: guest_errors
    #[error("no kernel fetched: {path} is missing (run scripts/fetch-kernel, which writes to ${var} if set, else to target/boxlab-kernel)", var = crate::linux::KERNEL_DIR_VAR)]
    NoKernelFetched { path: PathBuf },

    #[error("cannot read the kernel {path}: {reason}")]
    KernelRead { path: PathBuf, reason: String },

    #[error("{path} is not a kernel we can boot: {reason}; give a bzImage (vmlinuz, from /boot or scripts/fetch-kernel) or an uncompressed ELF vmlinux for x86-64")]
    KernelFormat { path: PathBuf, reason: String },

    #[error("loading the kernel {path} into guest memory failed: {reason}")]
    KernelLoad { path: PathBuf, reason: String },

    #[error("cannot read the initrd {path}: {reason}")]
    InitrdRead { path: PathBuf, reason: String },

    #[error("the initrd {path} is {size} bytes, but only {room} bytes of guest memory are free above the kernel (guest memory {mem_size} bytes): give the VM more memory (--mem) or use a smaller initrd")]
    InitrdTooLarge {
        path: PathBuf,
        size: u64,
        room: u64,
        mem_size: u64,
    },

    #[error("invalid kernel command line {cmdline:?}: {reason}")]
    Cmdline { cmdline: String, reason: String },

    #[error("this host's KVM cannot run a Linux kernel: {reason}. Boot Linux on a machine with hardware virtualization (vmx or svm in /proc/cpuinfo), or pass --force to try anyway")]
    NoHardwareVirt { reason: String },

    #[error("snapshot {path}: {what}: {reason}")]
    Snapshot {
        path: PathBuf,
        what: String,
        reason: String,
    },

    #[error("building an initramfs at {path}: {reason}")]
    Initramfs { path: PathBuf, reason: String },
}

/// Shorthand for a failed KVM ioctl.
pub(crate) fn kvm(ioctl: &'static str, hint: &'static str) -> impl FnOnce(errno::Error) -> VmError {
    move |errno| VmError::Kvm { ioctl, errno, hint }
}

pub type Result<T, E = VmError> = std::result::Result<T, E>;
