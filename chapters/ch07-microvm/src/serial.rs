//! The serial console: an emulated 8250 UART from `vm-superio`, on COM1.
//!
//! The guest sees eight I/O ports at 0x3f8..0x3ff. Each access leaves the guest (KVM_EXIT_IO)
//! and lands here; `vm-superio` does the register logic (divisor latch, line status, FIFO), and
//! what the guest writes to the data register comes out of its `Write` end: ours records it,
//! with the time of the first byte, and optionally echoes it to our stdout. Input goes the other
//! way: bytes for the guest wait in a queue of ours until the UART's 64-byte receive FIFO has
//! room, and each batch moved into the FIFO raises the "received data" interrupt (if the guest
//! enabled it), as a real 8250 does when a character arrives on the line.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use vm_superio::serial::{NoEvents, SerialState};
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

use crate::error::{Result, VmError};
use crate::layout::COM1_IRQ;

// ANCHOR: trigger
/// How the UART raises its interrupt line.
///
/// With an in-kernel interrupt controller, an `EventFd` registered as an *irqfd*: writing to it
/// asserts the GSI inside KVM without another ioctl. Without one (stages 1-3: the guest polls),
/// nothing.
pub enum IrqLine {
    None,
    Irqfd(EventFd),
}

impl Trigger for IrqLine {
    type E = io::Error;

    fn trigger(&self) -> io::Result<()> {
        match self {
            IrqLine::None => Ok(()),
            IrqLine::Irqfd(fd) => fd.write(1),
        }
    }
}
// ANCHOR_END: trigger

/// Set while echoed guest output ends in the middle of a line.
static ECHO_MID_LINE: AtomicBool = AtomicBool::new(false);

/// True if the guest's echoed output stopped in the middle of a line (so that a message after
/// it should start on a new line).
pub fn echo_mid_line() -> bool {
    ECHO_MID_LINE.load(Ordering::Relaxed)
}

/// Where the guest's bytes go.
#[derive(Default)]
pub struct Output {
    pub bytes: Vec<u8>,
    pub first_byte_at: Option<Instant>,
    pub echo: bool,
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.first_byte_at.is_none() && !buf.is_empty() {
            self.first_byte_at = Some(Instant::now());
        }
        self.bytes.extend_from_slice(buf);
        if self.echo {
            let mut out = io::stdout().lock();
            out.write_all(buf)?;
            out.flush()?;
            if let Some(last) = buf.last() {
                ECHO_MID_LINE.store(*last != b'\n', Ordering::Relaxed);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// COM1.
pub struct Console {
    uart: Serial<IrqLine, NoEvents, Output>,
    /// Input the FIFO had no room for yet.
    pending: VecDeque<u8>,
}

impl Console {
    pub fn new(irq: IrqLine, echo: bool) -> Console {
        let output = Output {
            echo,
            ..Output::default()
        };
        Console {
            uart: Serial::new(irq, output),
            pending: VecDeque::new(),
        }
    }

    /// Rebuilds the UART from a snapshot's registers.
    pub fn from_state(state: &SerialState, irq: IrqLine, echo: bool) -> Result<Console> {
        let output = Output {
            echo,
            ..Output::default()
        };
        let uart = Serial::from_state(state, irq, NoEvents, output).map_err(|e| {
            serial_error(format!("restoring its registers from the snapshot: {e:?}"))
        })?;
        Ok(Console {
            uart,
            pending: VecDeque::new(),
        })
    }

    /// The guest wrote `value` to port COM1 + `offset`.
    pub fn write(&mut self, offset: u8, value: u8) -> Result<()> {
        self.uart.write(offset, value).map_err(|e| {
            serial_error(format!(
                "the guest's write of {value:#04x} to register {offset} failed: {e:?}"
            ))
        })
    }

    /// The guest reads port COM1 + `offset`. A read of the data register frees a FIFO slot,
    /// which the next pending input byte takes.
    pub fn read(&mut self, offset: u8) -> Result<u8> {
        let value = self.uart.read(offset);
        self.pump()?;
        Ok(value)
    }

    // ANCHOR: enqueue
    /// Bytes from the host for the guest to read: queued, and moved into the UART's FIFO as far
    /// as it has room.
    pub fn enqueue_input(&mut self, bytes: &[u8]) -> Result<()> {
        self.pending.extend(bytes);
        self.pump()
    }

    /// Moves pending input into the receive FIFO. `enqueue_raw_bytes` sets "data ready" in the
    /// line status register and, if the guest enabled it in IER, triggers the interrupt line.
    fn pump(&mut self) -> Result<()> {
        while !self.pending.is_empty() && self.uart.fifo_capacity() > 0 {
            let (front, _) = self.pending.as_slices();
            let n = self.uart.enqueue_raw_bytes(front).map_err(|e| {
                serial_error(format!("raising IRQ {COM1_IRQ} for input failed: {e:?}"))
            })?;
            if n == 0 {
                break; // loopback mode: the UART takes no input from the line
            }
            self.pending.drain(..n);
        }
        Ok(())
    }
    // ANCHOR_END: enqueue

    /// Input bytes still waiting for room in the FIFO.
    pub fn pending_input(&self) -> usize {
        self.pending.len()
    }

    pub fn output(&self) -> &Output {
        self.uart.writer()
    }

    pub fn output_mut(&mut self) -> &mut Output {
        self.uart.writer_mut()
    }

    pub fn state(&self) -> SerialState {
        self.uart.state()
    }
}

impl Console {
    /// Puts a snapshot's registers (and receive FIFO) into this UART, keeping its interrupt line
    /// (the irqfd KVM knows) and dropping what it had.
    pub fn restore(&mut self, state: &SerialState, echo: bool) -> Result<()> {
        let irq = match self.uart.interrupt_evt() {
            IrqLine::None => IrqLine::None,
            // vm-superio cannot hand its trigger back; a duplicate of the eventfd is the same
            // irqfd to KVM.
            IrqLine::Irqfd(fd) => IrqLine::Irqfd(fd.try_clone().map_err(|e| {
                serial_error(format!("duplicating the irqfd of IRQ {COM1_IRQ}: {e}"))
            })?),
        };
        *self = Console::from_state(state, irq, echo)?;
        Ok(())
    }
}

fn serial_error(reason: String) -> VmError {
    VmError::Serial(reason)
}
