//! The serial console: an emulated 8250 UART from `vm-superio`, on COM1.
//!
//! The guest sees eight I/O ports at 0x3f8..0x3ff. Each access leaves the guest (KVM_EXIT_IO)
//! and lands here; `vm-superio` does the register logic (divisor latch, line status, FIFO), and
//! what the guest writes to the data register comes out of its `Write` end: ours records it,
//! with the time of the first byte, and optionally echoes it to our stdout.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use vm_superio::serial::{NoEvents, SerialState};
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

use crate::error::{Result, VmError};

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
}

impl Console {
    pub fn new(irq: IrqLine, echo: bool) -> Console {
        let output = Output {
            echo,
            ..Output::default()
        };
        Console {
            uart: Serial::new(irq, output),
        }
    }

    /// Rebuilds the UART from a snapshot's registers.
    pub fn from_state(state: &SerialState, irq: IrqLine, echo: bool) -> Result<Console> {
        let output = Output {
            echo,
            ..Output::default()
        };
        let uart = Serial::from_state(state, irq, NoEvents, output).map_err(|e| {
            VmError::Config(format!("restoring the serial port's registers: {e:?}"))
        })?;
        Ok(Console { uart })
    }

    /// The guest wrote `value` to port COM1 + `offset`.
    pub fn write(&mut self, offset: u8, value: u8) -> Result<()> {
        self.uart.write(offset, value).map_err(|e| {
            VmError::Config(format!(
                "the serial port could not take a byte (offset {offset}): {e:?}"
            ))
        })
    }

    /// The guest reads port COM1 + `offset`.
    pub fn read(&mut self, offset: u8) -> u8 {
        self.uart.read(offset)
    }

    /// Bytes typed at the host, for the guest to read (raises the interrupt if enabled).
    pub fn enqueue_input(&mut self, bytes: &[u8]) -> usize {
        self.uart.enqueue_raw_bytes(bytes).unwrap_or(0)
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
    /// Takes the interrupt line back out (to rebuild the UART around it after a restore).
    pub fn into_irq(self) -> IrqLine {
        let (irq, _events, _output) = (self.uart.interrupt_evt(), (), ());
        // vm-superio has no way to move the trigger out; an eventfd can be duplicated.
        match irq {
            IrqLine::None => IrqLine::None,
            IrqLine::Irqfd(fd) => fd.try_clone().map(IrqLine::Irqfd).unwrap_or(IrqLine::None),
        }
    }
}
