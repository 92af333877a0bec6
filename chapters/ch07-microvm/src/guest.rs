//! The guests, built by `build.rs` from `guest/`, and what our tiny guest is asked to do.

use crate::boot::initrd_address;
use crate::layout::{EBDA_START, HIMEM_START, TINY_MEM_SIZE};

/// Stage 1: real-mode code (`guest/real_mode.S`), raw bytes.
pub const REAL_MODE_CODE_BYTES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/real_mode.bin"));
/// Stage 2: 64-bit code (`guest/long_mode.S`), raw bytes.
pub const LONG_MODE_CODE_BYTES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/long_mode.bin"));
/// Stage 3: the tiny guest (`guest/entry.S` + `guest/guest.c`), flat, to copy at HIMEM_START.
pub const TINY_GUEST_BIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/guest.bin"));
/// The same guest as an ELF executable: a "kernel" that `linux-loader` can load (stage 4's path
/// is tested with it on hosts that cannot run Linux).
pub const TINY_GUEST_ELF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/guest.elf"));

/// What stage 1 prints: "Hi " and 2 + 3.
pub const REAL_MODE_OUTPUT: &str = "Hi 5\n";
/// What stage 2 prints.
pub const LONG_MODE_OUTPUT: &str = "Hello from 64-bit long mode\n";

/// The tiny guest's default input: a small "request".
pub const DEFAULT_INPUT: &[u8] = b"hello from the VMM: checksum me!";

/// A tiny-guest machine: its command line, its input (passed as the initrd), its RAM.
#[derive(Debug, Clone)]
pub struct GuestConfig {
    /// e.g. `task=crc32`, `task=upper`, `task=echo` (read the serial port), `ready` (stop at
    /// the snapshot point), `fault=mmio`, `fault=triple`, `fault=spin`.
    pub cmdline: String,
    pub input: Vec<u8>,
    pub mem_size: u64,
    /// Give the VM an in-kernel interrupt controller (PIC + IOAPIC + local APIC) and PIT, as
    /// the Linux machine has: costs a little at creation, and makes a snapshot carry them.
    pub irqchip: bool,
    /// "Try breaking it": take this guest-physical page out of the page tables.
    pub unmap: Option<u64>,
    /// Copy the guest's serial output to our stdout as it comes.
    pub echo: bool,
    /// Bytes waiting on the serial line before the first instruction (what `task=echo` reads;
    /// more can come during the run through [`crate::MicroVm::input`]).
    pub console_input: Vec<u8>,
}

impl Default for GuestConfig {
    fn default() -> Self {
        GuestConfig {
            cmdline: "task=crc32".into(),
            input: DEFAULT_INPUT.to_vec(),
            mem_size: TINY_MEM_SIZE,
            irqchip: false,
            unmap: None,
            echo: false,
            console_input: Vec::new(),
        }
    }
}

/// The command-line word that makes the guest write to [`crate::layout::READY_PORT`] (its
/// snapshot point) before its task.
pub const READY_WORD: &str = "ready";

impl GuestConfig {
    /// The same guest with [`READY_WORD`] on its command line, added once: it stops at its
    /// snapshot point. What `--stage snapshot` runs, and what a snapshot checker must expect.
    pub fn with_ready(&self) -> GuestConfig {
        let mut guest = self.clone();
        if !guest.cmdline.split(' ').any(|w| w == READY_WORD) {
            if !guest.cmdline.is_empty() {
                guest.cmdline.push(' ');
            }
            guest.cmdline.push_str(READY_WORD);
        }
        guest
    }

    /// Where the VMM puts the input: at the top of RAM, as a boot loader places an initrd.
    pub fn input_address(&self) -> Option<u64> {
        if self.input.is_empty() {
            return None;
        }
        initrd_address(
            self.mem_size,
            HIMEM_START + TINY_GUEST_BIN.len() as u64,
            self.input.len() as u64,
        )
    }

    /// Exactly what a well-behaved run of the guest prints (for tests and the demo's check).
    pub fn expected_output(&self) -> String {
        let ram_kib = (EBDA_START + (self.mem_size - HIMEM_START)) >> 10;
        let (addr, len) = match self.input_address() {
            Some(addr) => (addr, self.input.len()),
            None => (0, 0),
        };
        let task = self
            .cmdline
            .split(' ')
            .find_map(|w| w.strip_prefix("task="))
            .unwrap_or("crc32");
        let result = match task {
            "crc32" => format!("crc32: {:#010x}\n", crc32(&self.input)),
            "upper" => format!(
                "upper: {}\n",
                String::from_utf8_lossy(&self.input.to_ascii_uppercase())
            ),
            "echo" => echo_reply(&self.console_input),
            _ => UNKNOWN_TASK.into(),
        };
        format!(
            "boxlab guest: up in 64-bit mode\ncmdline: '{}'\nram: {ram_kib} KiB in 3 e820 entries\ninput: {len} bytes at {addr:#08x}\n{result}bye: powering off via the i8042\n",
            self.cmdline
        )
    }
}

/// What the guest prints for an unknown `task=`.
pub const UNKNOWN_TASK: &str = "unknown task (try task=crc32, task=upper or task=echo)\n";

/// The byte that ends `task=echo`: Ctrl-D (EOT), as a terminal in raw mode sends it.
pub const ECHO_END: u8 = 0x04;

// ANCHOR: echo_reply
/// What `task=echo` prints for `typed`, the bytes it reads from the serial port: its prompt,
/// each byte as it arrives (a-z upper-cased, Enter as a new line), up to Ctrl-D, and a count.
/// Bytes after Ctrl-D are never read.
pub fn echo_reply(typed: &[u8]) -> String {
    let mut out = String::from("echo: type, Ctrl-D to end\n");
    let mut count = 0;
    for &byte in typed.iter().take_while(|&&b| b != ECHO_END) {
        count += 1;
        out.push(match byte {
            b'\r' | b'\n' => '\n',
            b => char::from(b.to_ascii_uppercase()),
        });
    }
    out.push_str(&format!("\necho: {count} bytes\n"));
    out
}
// ANCHOR_END: echo_reply

/// CRC-32 (IEEE), bit by bit: the reference the guest's table-driven version must match.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn ready_is_added_once() {
        let once = GuestConfig::default().with_ready();
        assert_eq!(once.cmdline, "task=crc32 ready");
        assert_eq!(once.with_ready().cmdline, "task=crc32 ready");
        let empty = GuestConfig {
            cmdline: String::new(),
            ..GuestConfig::default()
        };
        assert_eq!(empty.with_ready().cmdline, "ready");
    }

    #[test]
    fn the_guest_images_were_built() {
        assert!(
            REAL_MODE_CODE_BYTES.ends_with(&[0xf4]),
            "real-mode code ends in hlt"
        );
        assert_eq!(&TINY_GUEST_ELF[..4], b"\x7fELF");
        assert!(TINY_GUEST_BIN.len() < 16 * 1024);
    }
}
