//! The device program: a `BPF_PROG_TYPE_CGROUP_DEVICE` eBPF program generated from the rules.
//!
//! On each `open(2)` or `mknod(2)` of a device node by a process in the cgroup, the kernel runs
//! the program with `r1` pointing at
//!
//! ```c
//! struct bpf_cgroup_dev_ctx {
//!     __u32 access_type; /* (access << 16) | type */
//!     __u32 major;
//!     __u32 minor;
//! };
//! ```
//!
//! where type is `BPF_DEVCG_DEV_BLOCK` (1) or `BPF_DEVCG_DEV_CHAR` (2) and access a set of
//! `BPF_DEVCG_ACC_MKNOD` (1), `_READ` (2), `_WRITE` (4) — several at once for an open with
//! `O_RDWR`. It returns 1 to allow, 0 to deny (the caller then gets `EPERM`).
//!
//! The program is a prologue that loads the three fields into registers, then one block per
//! rule that tests it and returns its verdict on a match, then a final "return 0". The blocks
//! go **last rule first**: the first block that matches returns, so the last matching rule
//! wins, exactly as when the same rules are written one after another into the v1 files after
//! `a` to `devices.deny`; an access no rule matches is denied. One access can ask for several
//! things (`open(O_RDWR)` is `rw`): an allow rule matches if it grants all of them, a deny rule
//! if it denies any ([`DeviceRule::matches`]). (runc does the same, after
//! first normalising the rules with a v1 emulator; see [`crate::devices::v1`] for where v1
//! differs with overlapping deny rules.)

use std::fmt;

use crate::devices::ebpf::{
    and32_imm, exit, jmp_jeq_imm, jmp_jne_imm, jmp_jne_reg, ldx_mem_w, mov32_reg, mov64_imm,
    rsh32_imm, Insn, R0, R1, R2, R3, R4, R5,
};
use crate::devices::{Access, DeviceKind, DeviceRule};

/// `BPF_DEVCG_DEV_BLOCK`.
pub const DEV_BLOCK: i32 = 1;
/// `BPF_DEVCG_DEV_CHAR`.
pub const DEV_CHAR: i32 = 2;

/// A generated program: instructions ready for `BPF_PROG_LOAD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    insns: Vec<Insn>,
}

impl Program {
    // ANCHOR: prologue
    /// Builds the program for `rules` (last match wins; nothing matching denies).
    pub fn build(rules: &[DeviceRule]) -> Program {
        let mut insns = vec![
            ldx_mem_w(R2, R1, 0),  // r2 = ctx->access_type
            and32_imm(R2, 0xffff), // w2 &= 0xffff: the device type
            ldx_mem_w(R3, R1, 0),  // r3 = ctx->access_type
            rsh32_imm(R3, 16),     // w3 >>= 16: the access asked for
            ldx_mem_w(R4, R1, 4),  // r4 = ctx->major
            ldx_mem_w(R5, R1, 8),  // r5 = ctx->minor
        ];
        for rule in rules.iter().rev() {
            insns.extend(rule_block(rule));
            // `a *:* rwm` matches every access: the rules before it (and the final deny)
            // could never be reached, and the verifier refuses unreachable instructions.
            if rule.kind == DeviceKind::All
                && rule.major.is_none()
                && rule.minor.is_none()
                && rule.access == Access::ALL
            {
                return Program { insns };
            }
        }
        insns.push(mov64_imm(R0, 0)); // no rule matched: deny
        insns.push(exit());
        Program { insns }
    }
    // ANCHOR_END: prologue

    /// A program made of any instructions (for tests that need one the verifier refuses).
    pub fn from_insns(insns: Vec<Insn>) -> Program {
        Program { insns }
    }

    /// The instructions.
    pub fn insns(&self) -> &[Insn] {
        &self.insns
    }

    /// Numbered assembly, one instruction per line.
    pub fn listing(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, insn) in self.insns.iter().enumerate() {
            writeln!(f, "{i:4}: {insn}")?;
        }
        Ok(())
    }
}

// ANCHOR: rule_block
/// The instructions for one rule: up to four tests, each jumping past the block when it fails,
/// then `r0 = verdict; exit`. A wildcard skips its test; so does `rwm`, which covers any access.
fn rule_block(rule: &DeviceRule) -> Vec<Insn> {
    // The tests, each with whether it is a jump: jumps are built with offset 0 and pointed at
    // the end of the block once its length is known.
    let mut tests: Vec<(Insn, bool)> = Vec::new();
    match rule.kind {
        DeviceKind::Char => tests.push((jmp_jne_imm(R2, DEV_CHAR, 0), true)),
        DeviceKind::Block => tests.push((jmp_jne_imm(R2, DEV_BLOCK, 0), true)),
        DeviceKind::All => {}
    }
    if rule.access != Access::ALL {
        // r1 (the context pointer) is free by now and serves as scratch: r1 = r3 & access.
        tests.push((mov32_reg(R1, R3), false));
        tests.push((and32_imm(R1, i32::from(rule.access.bits())), false));
        if rule.allow {
            // An allow rule must grant everything asked for: skip unless (r3 & access) == r3.
            tests.push((jmp_jne_reg(R1, R3, 0), true));
        } else {
            // A deny rule denies if it covers any part of it: skip if (r3 & access) == 0.
            tests.push((jmp_jeq_imm(R1, 0, 0), true));
        }
    }
    if let Some(major) = rule.major {
        tests.push((jmp_jne_imm(R4, major as i32, 0), true));
    }
    if let Some(minor) = rule.minor {
        tests.push((jmp_jne_imm(R5, minor as i32, 0), true));
    }
    let verdict = [mov64_imm(R0, i32::from(rule.allow)), exit()];
    // A jump's offset counts instructions after the next one: from test i to the first
    // instruction after the block it is (tests.len() - i - 1) + 2.
    let n = tests.len();
    let mut block: Vec<Insn> = tests
        .into_iter()
        .enumerate()
        .map(|(i, (mut insn, jumps))| {
            if jumps {
                insn.off = (n - i - 1 + verdict.len()) as i16;
            }
            insn
        })
        .collect();
    block.extend(verdict);
    block
}
// ANCHOR_END: rule_block

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::ebpf::jmp_ja;
    use crate::devices::rule::decide;

    #[test]
    fn program_is_exactly_the_expected_instructions() {
        // Written into the v1 files these would be: a to deny, then these two in order.
        let rules = [
            DeviceRule::parse("c 195:* rwm", true).unwrap(),
            DeviceRule::parse("b 8:0 r", true).unwrap(),
        ];
        let expected = vec![
            // prologue
            ldx_mem_w(R2, R1, 0),  //  0: r2 = access_type
            and32_imm(R2, 0xffff), //  1: r2 = type
            ldx_mem_w(R3, R1, 0),  //  2: r3 = access_type
            rsh32_imm(R3, 16),     //  3: r3 = access
            ldx_mem_w(R4, R1, 4),  //  4: r4 = major
            ldx_mem_w(R5, R1, 8),  //  5: r5 = minor
            // last rule first: b 8:0 r
            jmp_jne_imm(R2, DEV_BLOCK, 7), //  6: not a block device → 14
            mov32_reg(R1, R3),             //  7
            and32_imm(R1, 2),              //  8: r1 = access & r
            jmp_jne_reg(R1, R3, 4),        //  9: asks for more than r → 14
            jmp_jne_imm(R4, 8, 3),         // 10: major != 8 → 14
            jmp_jne_imm(R5, 0, 2),         // 11: minor != 0 → 14
            mov64_imm(R0, 1),              // 12: allow
            exit(),                        // 13
            // c 195:* rwm: no access test (rwm), no minor test (*)
            jmp_jne_imm(R2, DEV_CHAR, 3), // 14: not a char device → 18
            jmp_jne_imm(R4, 195, 2),      // 15: major != 195 → 18
            mov64_imm(R0, 1),             // 16: allow
            exit(),                       // 17
            // nothing matched
            mov64_imm(R0, 0), // 18: deny
            exit(),           // 19
        ];
        assert_eq!(Program::build(&rules).insns(), expected.as_slice());
    }

    #[test]
    fn a_deny_rule_and_a_match_all_rule() {
        let rules = [
            DeviceRule::all(true),
            DeviceRule::parse("c 1:5 w", false).unwrap(),
        ];
        let p = Program::build(&rules);
        assert_eq!(
            p.insns()[6..],
            [
                // c 1:5 w, denied (the last rule comes first)
                jmp_jne_imm(R2, DEV_CHAR, 7), //  6: not a char device → 14
                mov32_reg(R1, R3),            //  7
                and32_imm(R1, 4),             //  8: r1 = access & w
                jmp_jeq_imm(R1, 0, 4),        //  9: asks for no w → 14
                jmp_jne_imm(R4, 1, 3),        // 10: major != 1 → 14
                jmp_jne_imm(R5, 5, 2),        // 11: minor != 5 → 14
                mov64_imm(R0, 0),             // 12: deny
                exit(),                       // 13
                // a *:* rwm: no test at all, and nothing after it (it would be unreachable,
                // which the verifier refuses)
                mov64_imm(R0, 1), // 14
                exit(),
            ]
        );
    }

    #[test]
    fn rules_before_a_match_all_rule_are_left_out() {
        // An OCI config's usual list: deny everything, then the allowed devices.
        let mut rules = vec![
            DeviceRule::parse("c 1:3 rwm", true).unwrap(),
            DeviceRule::all(false),
        ];
        rules.extend(crate::devices::standard_rules());
        let p = Program::build(&rules);
        let tail = &p.insns()[p.insns().len() - 2..];
        assert_eq!(tail, [mov64_imm(R0, 0), exit()]);
        let c13 = p
            .insns()
            .iter()
            .filter(|i| **i == jmp_jne_imm(R5, 3, 2))
            .count();
        assert_eq!(c13, 1, "only the standard c 1:3 rule tests minor 3:\n{p}");
    }

    #[test]
    fn no_rules_denies_everything() {
        assert_eq!(Program::build(&[]).insns()[6..], [mov64_imm(R0, 0), exit()]);
    }

    /// Runs the program in a tiny interpreter of the instructions it uses, for every
    /// combination of device and access, and checks it decides as the rule list does.
    #[test]
    fn program_decides_as_the_rules_do() {
        let mut rules = crate::devices::standard_rules();
        rules.push(DeviceRule::parse("c 195:0 rw", true).unwrap());
        rules.push(DeviceRule::parse("c 1:9 w", false).unwrap());
        rules.push(DeviceRule::parse("b 7:* r", true).unwrap());
        let program = Program::build(&rules);
        for (kind, ty) in [(DeviceKind::Char, DEV_CHAR), (DeviceKind::Block, DEV_BLOCK)] {
            for major in [1, 5, 7, 8, 136, 195] {
                for minor in [0, 1, 2, 3, 5, 7, 8, 9, 255] {
                    for bits in 1..=7u8 {
                        let access = Access::from_bits(bits).unwrap();
                        let want = decide(&rules, kind, major, minor, access);
                        let ctx = [((access.bits() as u32) << 16) | ty as u32, major, minor];
                        assert_eq!(
                            run(program.insns(), ctx),
                            u64::from(want),
                            "{kind} {major}:{minor} {access}\n{program}"
                        );
                    }
                }
            }
        }
    }

    fn run(insns: &[Insn], ctx: [u32; 3]) -> u64 {
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = insns[pc];
            let (d, s) = (i.dst().0 as usize, i.src().0 as usize);
            pc += 1;
            match i.code {
                0x61 => {
                    assert_eq!(s, 1, "loads only from the context");
                    r[d] = u64::from(ctx[i.off as usize / 4]);
                }
                0xbc => r[d] = r[s] & 0xffff_ffff,
                0xb7 => r[d] = i.imm as i64 as u64,
                0x74 => r[d] = (r[d] as u32 >> i.imm) as u64,
                0x54 => r[d] = (r[d] as u32 & i.imm as u32) as u64,
                0x55 if r[d] != i.imm as i64 as u64 => pc = (pc as isize + i.off as isize) as usize,
                0x5d if r[d] != r[s] => pc = (pc as isize + i.off as isize) as usize,
                0x15 if r[d] == i.imm as i64 as u64 => pc = (pc as isize + i.off as isize) as usize,
                0x55 | 0x5d | 0x15 => {}
                0x05 => pc = (pc as isize + i.off as isize) as usize,
                0x95 => return r[0],
                code => panic!("unexpected code {code:#x}"),
            }
        }
    }

    #[test]
    fn listing_numbers_each_instruction() {
        let p = Program::from_insns(vec![jmp_ja(100), exit()]);
        assert_eq!(p.listing(), "   0: goto pc+100\n   1: exit\n");
    }
}
