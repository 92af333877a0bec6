//! Chapter 7: a micro-VM on KVM, built with the rust-vmm crates.
//!
//! Five stages, each a constructor of [`MicroVm`]: [`MicroVm::real_mode`] (a few 16-bit
//! instructions), [`MicroVm::long_mode`] (the VMM enters 64-bit mode for the guest),
//! [`MicroVm::tiny_guest`] (our own little OS, booted like Linux), [`MicroVm::linux`] (a real
//! kernel with an initramfs, on hosts with hardware virtualization) and [`Snapshot`] (save a
//! running VM to files and restore it into a fresh one). [`MicroVm::run`] is the exit loop
//! shared by all of them.

pub mod boot;
pub mod cpu;
pub mod error;
pub mod exits;
pub mod gdt;
pub mod guest;
pub mod host;
pub mod initramfs;
pub mod input;
/// Every guest-physical address and magic number of the micro-VM, in one place.
///
/// A VMM and its guest agree on a memory map before the first instruction runs. Linux's x86
/// boot protocol fixes most of it (the zero page, the command line pointer, the kernel at
/// 1 MiB); the rest is ours. `build.rs` reads this file too, so the guest gets the same numbers.
pub mod layout;
pub mod linux;
pub mod memory;
pub mod overhead;
pub mod paging;
pub mod serial;
pub mod snapshot;
pub mod vm;
mod watchdog;

pub use error::VmError;
pub use exits::{ExitEvent, RunOptions, RunReport, Stop};
pub use guest::GuestConfig;
pub use input::InputHandle;
pub use linux::LinuxConfig;
pub use snapshot::{Snapshot, Taken};
pub use vm::MicroVm;
