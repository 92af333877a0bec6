//! eBPF instructions, encoded by hand: the few a device program needs.
//!
//! Every eBPF instruction is 8 bytes, the kernel's `struct bpf_insn`:
//!
//! ```text
//! u8  code        operation class | size or source | operation
//! u8  dst_reg:4   destination register (r0..r10)
//!     src_reg:4   source register
//! s16 off         memory offset, or jump distance in instructions after the next one
//! s32 imm         immediate operand
//! ```
//!
//! Registers at entry: `r1` points at the program's context (for a device program,
//! `struct bpf_cgroup_dev_ctx`); the return value goes in `r0`.

use std::fmt;

// Instruction classes (low 3 bits of `code`).
const BPF_LDX: u8 = 0x01;
const BPF_JMP: u8 = 0x05;
const BPF_ALU: u8 = 0x04;
const BPF_ALU64: u8 = 0x07;
// Size and mode of a load.
const BPF_W: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
// Source: the immediate (K) or a register (X).
const BPF_K: u8 = 0x00;
const BPF_X: u8 = 0x08;
// ALU operations.
const BPF_AND: u8 = 0x50;
const BPF_RSH: u8 = 0x70;
const BPF_MOV: u8 = 0xb0;
// Jump operations.
const BPF_JA: u8 = 0x00;
const BPF_JEQ: u8 = 0x10;
const BPF_JNE: u8 = 0x50;
const BPF_EXIT: u8 = 0x90;

/// A register, `r0` to `r10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reg(pub u8);

/// Return value.
pub const R0: Reg = Reg(0);
/// First argument: the context pointer.
pub const R1: Reg = Reg(1);
pub const R2: Reg = Reg(2);
pub const R3: Reg = Reg(3);
pub const R4: Reg = Reg(4);
pub const R5: Reg = Reg(5);

// ANCHOR: insn
/// One instruction, laid out exactly as the kernel's `struct bpf_insn`, so that a slice of them
/// is the program the kernel reads.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// `dst_reg:4, src_reg:4`: C bit-fields, which fill a byte from its low bits on a
    /// little-endian machine and from its high bits on a big-endian one.
    regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    /// Builds an instruction from its fields.
    pub const fn new(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Insn {
        let regs = if cfg!(target_endian = "little") {
            (src.0 << 4) | (dst.0 & 0x0f)
        } else {
            (dst.0 << 4) | (src.0 & 0x0f)
        };
        Insn {
            code,
            regs,
            off,
            imm,
        }
    }

    /// The destination register.
    pub const fn dst(&self) -> Reg {
        if cfg!(target_endian = "little") {
            Reg(self.regs & 0x0f)
        } else {
            Reg(self.regs >> 4)
        }
    }

    /// The source register.
    pub const fn src(&self) -> Reg {
        if cfg!(target_endian = "little") {
            Reg(self.regs >> 4)
        } else {
            Reg(self.regs & 0x0f)
        }
    }

    /// The 8 bytes the kernel reads.
    pub fn to_bytes(self) -> [u8; 8] {
        let mut bytes = [0; 8];
        bytes[0] = self.code;
        bytes[1] = self.regs;
        bytes[2..4].copy_from_slice(&self.off.to_ne_bytes());
        bytes[4..8].copy_from_slice(&self.imm.to_ne_bytes());
        bytes
    }
}

/// `dst = *(u32 *)(src + off)`: load a 32-bit word from memory (zero-extended).
pub const fn ldx_mem_w(dst: Reg, src: Reg, off: i16) -> Insn {
    Insn::new(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0)
}

/// `w(dst) = w(src)`: 32-bit register move (the upper half becomes zero).
pub const fn mov32_reg(dst: Reg, src: Reg) -> Insn {
    Insn::new(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0)
}

/// `dst = imm`: 64-bit move of a (sign-extended) immediate.
pub const fn mov64_imm(dst: Reg, imm: i32) -> Insn {
    Insn::new(BPF_ALU64 | BPF_MOV | BPF_K, dst, Reg(0), 0, imm)
}

/// `w(dst) >>= imm`: 32-bit logical shift right.
pub const fn rsh32_imm(dst: Reg, imm: i32) -> Insn {
    Insn::new(BPF_ALU | BPF_RSH | BPF_K, dst, Reg(0), 0, imm)
}

/// `w(dst) &= imm`: 32-bit and.
pub const fn and32_imm(dst: Reg, imm: i32) -> Insn {
    Insn::new(BPF_ALU | BPF_AND | BPF_K, dst, Reg(0), 0, imm)
}

/// `if dst != imm goto +off`.
pub const fn jmp_jne_imm(dst: Reg, imm: i32, off: i16) -> Insn {
    Insn::new(BPF_JMP | BPF_JNE | BPF_K, dst, Reg(0), off, imm)
}

/// `if dst == imm goto +off`.
pub const fn jmp_jeq_imm(dst: Reg, imm: i32, off: i16) -> Insn {
    Insn::new(BPF_JMP | BPF_JEQ | BPF_K, dst, Reg(0), off, imm)
}

/// `if dst != src goto +off`.
pub const fn jmp_jne_reg(dst: Reg, src: Reg, off: i16) -> Insn {
    Insn::new(BPF_JMP | BPF_JNE | BPF_X, dst, src, off, 0)
}

/// `goto +off`.
pub const fn jmp_ja(off: i16) -> Insn {
    Insn::new(BPF_JMP | BPF_JA, Reg(0), Reg(0), off, 0)
}

/// `exit`: return `r0`.
pub const fn exit() -> Insn {
    Insn::new(BPF_JMP | BPF_EXIT, Reg(0), Reg(0), 0, 0)
}
// ANCHOR_END: insn

/// Readable assembly, in the kernel verifier's own notation (`r2 = *(u32 *)(r1 +0)`), so the
/// demo and the book can show the program and a reader can match it against the verifier log.
impl fmt::Display for Insn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (dst, src, off, imm) = (self.dst().0, self.src().0, self.off, self.imm);
        const LDX_W: u8 = BPF_LDX | BPF_MEM | BPF_W;
        const MOV32_X: u8 = BPF_ALU | BPF_MOV | BPF_X;
        const MOV32_K: u8 = BPF_ALU | BPF_MOV | BPF_K;
        const MOV64_K: u8 = BPF_ALU64 | BPF_MOV | BPF_K;
        const RSH32_K: u8 = BPF_ALU | BPF_RSH | BPF_K;
        const AND32_K: u8 = BPF_ALU | BPF_AND | BPF_K;
        const JNE_K: u8 = BPF_JMP | BPF_JNE | BPF_K;
        const JNE_X: u8 = BPF_JMP | BPF_JNE | BPF_X;
        const JEQ_K: u8 = BPF_JMP | BPF_JEQ | BPF_K;
        const JA: u8 = BPF_JMP | BPF_JA;
        const EXIT: u8 = BPF_JMP | BPF_EXIT;
        match self.code {
            LDX_W => write!(f, "r{dst} = *(u32 *)(r{src} {off:+})"),
            MOV32_X => write!(f, "w{dst} = w{src}"),
            MOV32_K => write!(f, "w{dst} = {imm}"),
            MOV64_K => write!(f, "r{dst} = {imm}"),
            RSH32_K => write!(f, "w{dst} >>= {imm}"),
            AND32_K => write!(f, "w{dst} &= {imm:#x}"),
            JNE_K => write!(f, "if r{dst} != {imm:#x} goto pc{off:+}"),
            JNE_X => write!(f, "if r{dst} != r{src} goto pc{off:+}"),
            JEQ_K => write!(f, "if r{dst} == {imm:#x} goto pc{off:+}"),
            JA => write!(f, "goto pc{off:+}"),
            EXIT => write!(f, "exit"),
            code => write!(
                f,
                "(code {code:#04x}) dst r{dst} src r{src} off {off} imm {imm}"
            ),
        }
    }
}

impl fmt::Debug for Insn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x?} ; {self}", self.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_endian = "little")]
    fn encodings_match_the_kernel_opcodes() {
        // Opcodes from include/uapi/linux/bpf.h and bpf_common.h, as `llvm-objdump -d` prints
        // them for the same instructions (little-endian).
        assert_eq!(
            ldx_mem_w(R2, R1, 4).to_bytes(),
            [0x61, 0x12, 4, 0, 0, 0, 0, 0]
        );
        assert_eq!(mov32_reg(R1, R3).to_bytes(), [0xbc, 0x31, 0, 0, 0, 0, 0, 0]);
        assert_eq!(mov64_imm(R0, 1).to_bytes(), [0xb7, 0x00, 0, 0, 1, 0, 0, 0]);
        assert_eq!(
            rsh32_imm(R3, 16).to_bytes(),
            [0x74, 0x03, 0, 0, 16, 0, 0, 0]
        );
        assert_eq!(
            and32_imm(R2, 0xffff).to_bytes(),
            [0x54, 0x02, 0, 0, 0xff, 0xff, 0, 0]
        );
        assert_eq!(
            jmp_jne_imm(R4, 195, 3).to_bytes(),
            [0x55, 0x04, 3, 0, 195, 0, 0, 0]
        );
        assert_eq!(
            jmp_jne_reg(R1, R3, 2).to_bytes(),
            [0x5d, 0x31, 2, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            jmp_jeq_imm(R1, 0, 5).to_bytes(),
            [0x15, 0x01, 5, 0, 0, 0, 0, 0]
        );
        assert_eq!(jmp_ja(-1).to_bytes(), [0x05, 0, 0xff, 0xff, 0, 0, 0, 0]);
        assert_eq!(exit().to_bytes(), [0x95, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(std::mem::size_of::<Insn>(), 8);
    }

    #[test]
    fn assembly_reads_like_the_verifier_log() {
        assert_eq!(ldx_mem_w(R2, R1, 0).to_string(), "r2 = *(u32 *)(r1 +0)");
        assert_eq!(and32_imm(R2, 0xffff).to_string(), "w2 &= 0xffff");
        assert_eq!(
            jmp_jne_imm(R4, 195, 3).to_string(),
            "if r4 != 0xc3 goto pc+3"
        );
        assert_eq!(mov64_imm(R0, 0).to_string(), "r0 = 0");
        assert_eq!(exit().to_string(), "exit");
    }
}
