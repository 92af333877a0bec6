//! The VMM's main loop: enter the guest (KVM_RUN), and when the CPU leaves it, find out why and
//! answer.
//!
//! This loop *is* the device model. The guest never talks to hardware: each `out` to a port,
//! each access to an address with no RAM behind it, each `hlt` ends KVM_RUN with an exit
//! reason, and the VMM decides what the guest sees. Anything we do not expect ends the run with
//! an error that says what the guest did and where.

use std::fmt;
use std::time::{Duration, Instant};

use kvm_ioctls::VcpuExit;

use crate::error::{Result, VmError};
use crate::input::Running;
use crate::layout::*;
use crate::vm::MicroVm;
use crate::watchdog::Watchdog;

/// One exit the VMM handled, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitEvent {
    /// The guest wrote a byte to one of the UART's registers (offset 0: the data register).
    SerialOut {
        offset: u8,
        value: u8,
    },
    /// The guest read a UART register.
    SerialIn {
        offset: u8,
        value: u8,
    },
    /// The guest wrote to [`READY_PORT`]: a good point for a snapshot.
    Ready,
    /// The guest wrote 0xfe to the i8042: reset, which this VMM takes as power-off.
    Reset,
    /// The guest read the i8042's status or data port: nothing pending, answered 0.
    I8042In {
        port: u16,
    },
    /// A port nobody emulates: writes are dropped, reads answer all ones, as on a PC bus.
    OtherOut {
        port: u16,
        size: usize,
    },
    OtherIn {
        port: u16,
        size: usize,
    },
    /// `hlt` (only seen without an in-kernel interrupt controller).
    Halt,
    /// KVM_EXIT_SYSTEM_EVENT: KVM itself says the guest asked for shutdown or reset.
    SystemEvent(u32),
}

impl fmt::Display for ExitEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitEvent::SerialOut { offset: 0, value } => write!(
                f,
                "KVM_EXIT_IO: guest wrote {:?} to port {COM1_PORT:#x} (COM1 data)",
                char::from(*value)
            ),
            ExitEvent::SerialOut { offset, value } => write!(
                f,
                "KVM_EXIT_IO: guest wrote {value:#04x} to port {:#x} (COM1 register {offset})",
                COM1_PORT + u16::from(*offset)
            ),
            ExitEvent::SerialIn { offset, value } => write!(
                f,
                "KVM_EXIT_IO: guest read port {:#x} (COM1 register {offset}): {value:#04x}",
                COM1_PORT + u16::from(*offset)
            ),
            ExitEvent::Ready => write!(
                f,
                "KVM_EXIT_IO: guest wrote to port {READY_PORT:#x}: ready for a snapshot"
            ),
            ExitEvent::Reset => write!(
                f,
                "KVM_EXIT_IO: guest wrote {I8042_RESET_CMD:#x} to port {I8042_COMMAND_PORT:#x} (i8042 reset): power off"
            ),
            ExitEvent::OtherOut { port, size } => write!(
                f,
                "KVM_EXIT_IO: guest wrote {size} byte(s) to port {port:#x}: no device there, ignored"
            ),
            ExitEvent::OtherIn { port, size } => write!(
                f,
                "KVM_EXIT_IO: guest read {size} byte(s) from port {port:#x}: no device there, all ones"
            ),
            ExitEvent::I8042In { port } => write!(
                f,
                "KVM_EXIT_IO: guest read port {port:#x} (i8042): nothing pending, 0"
            ),
            ExitEvent::Halt => write!(f, "KVM_EXIT_HLT: guest executed hlt"),
            ExitEvent::SystemEvent(kind) => write!(
                f,
                "KVM_EXIT_SYSTEM_EVENT type {kind}: KVM reports a shutdown or reset"
            ),
        }
    }
}

/// Why a run ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The guest powered off (i8042 reset, or a KVM system event).
    PowerOff,
    /// The guest halted and [`RunOptions::halt_ends_run`] was set (stages 1 and 2).
    Halted,
    /// The guest reached its snapshot point and [`RunOptions::stop_at_ready`] was set.
    Ready,
    /// The host asked the VM to stop ([`crate::InputHandle::quit`]; Ctrl-A x on the console).
    Quit,
}

/// How to run.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Stop the vCPU after this long (a signal interrupts KVM_RUN). `None`: no limit.
    pub time_limit: Option<Duration>,
    /// A `hlt` is the expected end (stages 1 and 2), not an error.
    pub halt_ends_run: bool,
    /// Return at the guest's snapshot point instead of carrying on.
    pub stop_at_ready: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            time_limit: Some(Duration::from_secs(10)),
            halt_ends_run: false,
            stop_at_ready: false,
        }
    }
}

/// What a run produced, and when.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub stop: Stop,
    /// What the guest wrote to the serial port during this run.
    pub output: Vec<u8>,
    /// From the VM's creation (or restore) to the first byte of output.
    pub first_output: Option<Duration>,
    /// From the VM's creation (or restore) to the end of this run.
    pub elapsed: Duration,
    /// How many times the vCPU left the guest.
    pub exits: u64,
}

impl RunReport {
    pub fn output_text(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }
}

/// The outcome of one exit, once the borrow of the vCPU's `kvm_run` page is over.
enum Step {
    Continue,
    Stop(Stop),
    Unbacked { write: bool, addr: u64, size: usize },
    Shutdown,
    Internal,
    FailEntry(u64, u32),
    Halt,
    Unhandled(String),
}

impl MicroVm {
    // ANCHOR: run_loop
    /// Runs the vCPU until the guest powers off (or halts, or is ready), reporting each exit to
    /// `observer` as it happens.
    pub fn run(
        &mut self,
        opts: &RunOptions,
        observer: &mut dyn FnMut(&ExitEvent),
    ) -> Result<RunReport> {
        let output_before = self.console.output().bytes.len();
        let watchdog = Watchdog::arm(opts.time_limit)?;
        let input = self.input.clone();
        let kvm_run: *mut kvm_bindings::kvm_run = self.vcpu.get_kvm_run();
        let _running = Running::enter(&input, kvm_run)?;
        let mut exits = 0u64;
        let stop = loop {
            // Input from other threads (they kicked us out of KVM_RUN for it): into the UART.
            self.console.enqueue_input(&input.take())?;
            if input.take_quit() {
                break Stop::Quit;
            }
            if watchdog.expired() {
                return Err(VmError::Timeout {
                    limit: opts.time_limit.unwrap_or_default(),
                    rip: self.rip(),
                    output: self.output_text(),
                });
            }
            let step = match self.vcpu.run() {
                Ok(exit) => {
                    exits += 1;
                    match exit {
                        VcpuExit::IoOut(port, data) => {
                            let event = match port {
                                p if (COM1_PORT..COM1_PORT + COM1_PORT_COUNT).contains(&p) => {
                                    let offset = (p - COM1_PORT) as u8;
                                    self.console.write(offset, data[0])?;
                                    ExitEvent::SerialOut {
                                        offset,
                                        value: data[0],
                                    }
                                }
                                READY_PORT => ExitEvent::Ready,
                                I8042_COMMAND_PORT if data[0] == I8042_RESET_CMD => {
                                    ExitEvent::Reset
                                }
                                port => ExitEvent::OtherOut {
                                    port,
                                    size: data.len(),
                                },
                            };
                            observer(&event);
                            match event {
                                ExitEvent::Reset => Step::Stop(Stop::PowerOff),
                                ExitEvent::Ready if opts.stop_at_ready => Step::Stop(Stop::Ready),
                                _ => Step::Continue,
                            }
                        }
                        VcpuExit::IoIn(port, data) => {
                            let event = match port {
                                p if (COM1_PORT..COM1_PORT + COM1_PORT_COUNT).contains(&p) => {
                                    let offset = (p - COM1_PORT) as u8;
                                    data[0] = self.console.read(offset)?;
                                    ExitEvent::SerialIn {
                                        offset,
                                        value: data[0],
                                    }
                                }
                                I8042_COMMAND_PORT | I8042_DATA_PORT => {
                                    data.fill(0);
                                    ExitEvent::I8042In { port }
                                }
                                port => {
                                    data.fill(0xff);
                                    ExitEvent::OtherIn {
                                        port,
                                        size: data.len(),
                                    }
                                }
                            };
                            observer(&event);
                            Step::Continue
                        }
                        VcpuExit::MmioRead(addr, data) => Step::Unbacked {
                            write: false,
                            addr,
                            size: data.len(),
                        },
                        VcpuExit::MmioWrite(addr, data) => Step::Unbacked {
                            write: true,
                            addr,
                            size: data.len(),
                        },
                        VcpuExit::Hlt => {
                            observer(&ExitEvent::Halt);
                            Step::Halt
                        }
                        VcpuExit::Shutdown => Step::Shutdown,
                        VcpuExit::SystemEvent(kind, _) => {
                            observer(&ExitEvent::SystemEvent(kind));
                            Step::Stop(Stop::PowerOff)
                        }
                        VcpuExit::InternalError => Step::Internal,
                        VcpuExit::FailEntry(reason, cpu) => Step::FailEntry(reason, cpu),
                        VcpuExit::Intr => Step::Continue,
                        other => Step::Unhandled(format!("{other:?}")),
                    }
                }
                // A signal (our time limit, or an input kick that set `immediate_exit`)
                // interrupted KVM_RUN: clear the flag, go round (the top of the loop looks at
                // the input queue and the time limit).
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                    self.vcpu.set_kvm_immediate_exit(0);
                    Step::Continue
                }
                Err(errno) => {
                    return Err(VmError::Kvm {
                        ioctl: "KVM_RUN",
                        errno,
                        hint: "the vCPU could not be entered",
                    })
                }
            };
            match step {
                Step::Continue => {}
                Step::Stop(stop) => break stop,
                Step::Halt if opts.halt_ends_run => break Stop::Halted,
                Step::Halt => {
                    return Err(VmError::Halted {
                        rip: self.rip(),
                        output: self.output_text(),
                    })
                }
                Step::Unbacked { write, addr, size } => {
                    return Err(VmError::Unbacked {
                        access: if write { "wrote" } else { "read" },
                        size,
                        addr,
                        rip: self.rip(),
                        output: self.output_text(),
                    })
                }
                Step::Shutdown => return Err(self.triple_fault()),
                Step::Internal => return Err(self.internal_error()),
                Step::FailEntry(reason, cpu) => return Err(VmError::FailEntry { reason, cpu }),
                Step::Unhandled(exit) => {
                    return Err(VmError::UnhandledExit {
                        exit,
                        rip: self.rip(),
                    })
                }
            }
        };
        drop(watchdog);
        let out = self.console.output();
        let origin = self.started;
        Ok(RunReport {
            stop,
            output: out.bytes[output_before..].to_vec(),
            first_output: out.first_byte_at.map(|t| t.duration_since(origin)),
            elapsed: Instant::now().duration_since(origin),
            exits,
        })
    }
    // ANCHOR_END: run_loop

    /// The guest's instruction pointer (as a linear address: CS base + RIP).
    pub fn rip(&self) -> u64 {
        let base = self.vcpu.get_sregs().map(|s| s.cs.base).unwrap_or(0);
        self.vcpu.get_regs().map(|r| base + r.rip).unwrap_or(0)
    }

    fn output_text(&self) -> String {
        String::from_utf8_lossy(&self.console.output().bytes).into_owned()
    }

    fn triple_fault(&self) -> VmError {
        let cr2 = self.vcpu.get_sregs().map(|s| s.cr2).unwrap_or(0);
        VmError::TripleFault {
            rip: self.rip(),
            cr2_hint: if cr2 != 0 {
                format!("; the last page fault was at {cr2:#x} (CR2): is that address mapped?")
            } else {
                String::new()
            },
            output: self.output_text(),
        }
    }

    // ANCHOR: internal_error
    /// KVM_EXIT_INTERNAL_ERROR: KVM itself gave up. On a PVM host the usual reason is suberror
    /// 1, "emulation failure": the instruction emulator met an instruction it cannot do. We
    /// show the instruction's bytes, which KVM puts in `kvm_run.internal.data` or we read from
    /// guest memory (our guests are identity-mapped).
    fn internal_error(&mut self) -> VmError {
        let rip = self.rip();
        let run = self.vcpu.get_kvm_run();
        // SAFETY: the exit reason was KVM_EXIT_INTERNAL_ERROR, so `internal` is the union
        // member the kernel filled in.
        let internal = unsafe { run.__bindgen_anon_1.internal };
        let suberror = match internal.suberror {
            1 => "suberror 1: emulation failure".to_string(),
            2 => "suberror 2: simultaneous exception".to_string(),
            3 => "suberror 3: delivery event".to_string(),
            n => format!("suberror {n}"),
        };
        let bytes = self
            .ram
            .read(rip, 8)
            .map(|b| {
                let hex: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
                format!(", instruction bytes {}", hex.join(" "))
            })
            .unwrap_or_default();
        VmError::Internal {
            suberror,
            rip,
            bytes,
            output: self.output_text(),
        }
    }
    // ANCHOR_END: internal_error
}
