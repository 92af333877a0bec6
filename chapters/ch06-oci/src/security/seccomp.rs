//! seccomp: a small BPF program the kernel runs on every system call the container makes, which
//! says allow, fail with an errno, kill, trap, trace or log.
//!
//! The OCI profile is a *default action* plus rules: "these syscalls (when these arguments
//! match) get that action". The `seccompiler` crate compiles a different shape: one filter has
//! one default ("mismatch") action and one action for everything its rules match. So a profile
//! with several actions becomes several filters, and we let the kernel combine them: it runs
//! *every* installed filter and keeps the most restrictive answer —
//!
//! ```text
//!   KILL_PROCESS > KILL_THREAD > TRAP > ERRNO > USER_NOTIF > TRACE > LOG > ALLOW
//! ```
//!
//! (between two answers of the same kind, the later-installed filter's errno wins). For a
//! profile with default action D and rule actions A1, A2, …:
//!
//! - a **base** filter: every syscall some rule matches → ALLOW; everything else → D.
//!   (Not needed when D is ALLOW.)
//! - one filter per action Ai (other than ALLOW and D): the rules with action Ai → Ai;
//!   everything else → ALLOW.
//!
//! A call that no rule matches: the base filter says D, the others ALLOW: D. A call that rules of
//! one action A match: base ALLOW, A's filter A: A. Rules of two actions matching the same call
//! (a profile that contradicts itself — libseccomp's answer then depends on rule order): the more
//! restrictive one wins. Rules whose action is the default change nothing and are skipped, as
//! runc does.
//!
//! Arguments: `args` of one rule must all match (AND), except that several conditions on the
//! *same* argument become separate rules (OR) — runc's reading, which Docker's profile relies on.
//! Values are compared as 64-bit (libseccomp does the same on x86_64). `SCMP_CMP_MASKED_EQ`
//! takes `value` as the mask and `valueTwo` as what the masked argument must equal.
//!
//! Only the native x86_64 ABI is filtered: a call through another ABI (32-bit `int 0x80`) is
//! killed by the architecture check every filter starts with, and one through the x32 ABI
//! (x86_64 numbers with bit 30 set) fails with ENOSYS — without that check an x32 `mkdir` would
//! slip past a rule for `mkdir`.

use std::collections::BTreeMap;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator,
};
use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

use super::{hook, syscalls, SecurityError};
use ch02_namespaces::ChildHook;

/// Bit 30 of the syscall number marks the x32 ABI.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// `AUDIT_ARCH_X86_64`, what `seccomp_data.arch` says for a native call.
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// The kernel's limit on one BPF program's length (`BPF_MAXINSNS`).
const BPF_MAXINSNS: usize = 4096;

/// A compiled profile: the filters to install, in order.
#[derive(Debug, Clone)]
pub struct SeccompPlan {
    /// `(what it does, BPF program)`, installed in this order.
    pub filters: Vec<(String, BpfProgram)>,
    /// `seccomp(2)` flags (`SECCOMP_FILTER_FLAG_LOG`, `_SPEC_ALLOW`).
    pub flags: libc::c_ulong,
    /// What the profile asks for that is skipped (unknown syscalls, foreign architectures).
    /// Routine with the profiles docker and podman ship — they list every architecture's
    /// syscalls — so, like runc, we say it only with `--debug`.
    pub skipped: Vec<String>,
    /// How many syscall names were skipped because x86_64 has no such syscall.
    pub unknown_syscalls: usize,
}

/// When a syscall matches: always, or when one of these condition lists all hold.
#[derive(Debug, Clone)]
enum Match {
    Always,
    When(Vec<Vec<SeccompCondition>>),
}

impl Match {
    fn merge(&mut self, other: Match) {
        match (&mut *self, other) {
            (Match::Always, _) => {}
            (_, Match::Always) => *self = Match::Always,
            (Match::When(mine), Match::When(theirs)) => mine.extend(theirs),
        }
    }
}

type Rules = BTreeMap<i64, Match>;

fn merge_into(into: &mut Rules, nr: i64, m: Match) {
    match into.get_mut(&nr) {
        Some(existing) => existing.merge(m),
        None => {
            into.insert(nr, m);
        }
    }
}

fn describe(action: &SeccompAction) -> String {
    match action {
        SeccompAction::Allow => "ALLOW".into(),
        SeccompAction::Errno(e) => format!("ERRNO({e})"),
        SeccompAction::KillThread => "KILL_THREAD".into(),
        SeccompAction::KillProcess => "KILL_PROCESS".into(),
        SeccompAction::Log => "LOG".into(),
        SeccompAction::Trace(n) => format!("TRACE({n})"),
        SeccompAction::Trap => "TRAP".into(),
    }
}

// ANCHOR: actions
/// The kernel action for an OCI action. `errno_ret` is the errno for ERRNO (default EPERM) and
/// the message number for TRACE, as in runc.
pub fn action_of(
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    field: &str,
) -> Result<SeccompAction, SecurityError> {
    use LinuxSeccompAction as A;
    let data = errno_ret.unwrap_or(libc::EPERM as u32);
    if data > 0xffff {
        return Err(SecurityError::BadSeccompValue {
            field: field.into(),
            what: format!("errnoRet {data} does not fit the 16 bits seccomp returns"),
        });
    }
    Ok(match action {
        // libseccomp's SCMP_ACT_KILL is the original SECCOMP_RET_KILL: the thread.
        A::ScmpActKill | A::ScmpActKillThread => SeccompAction::KillThread,
        A::ScmpActKillProcess => SeccompAction::KillProcess,
        A::ScmpActTrap => SeccompAction::Trap,
        A::ScmpActErrno => SeccompAction::Errno(data),
        A::ScmpActTrace => SeccompAction::Trace(data),
        A::ScmpActLog => SeccompAction::Log,
        A::ScmpActAllow => SeccompAction::Allow,
        A::ScmpActNotify => {
            return Err(SecurityError::UnsupportedSeccompAction {
                field: field.into(),
                action: "SCMP_ACT_NOTIFY".into(),
                why: "it hands syscalls to a listener process (listenerPath), which this runtime does not implement; use SCMP_ACT_ERRNO or SCMP_ACT_TRACE".into(),
            })
        }
    })
}
// ANCHOR_END: actions

/// One OCI argument condition as a seccompiler condition.
fn condition_of(arg: &LinuxSeccompArg, field: &str) -> Result<SeccompCondition, SecurityError> {
    use LinuxSeccompOperator as Op;
    let index = arg.index();
    if index > 5 {
        return Err(SecurityError::BadSeccompValue {
            field: field.into(),
            what: format!("argument index {index}: a syscall has arguments 0 to 5"),
        });
    }
    let (op, value) = match arg.op() {
        Op::ScmpCmpNe => (SeccompCmpOp::Ne, arg.value()),
        Op::ScmpCmpLt => (SeccompCmpOp::Lt, arg.value()),
        Op::ScmpCmpLe => (SeccompCmpOp::Le, arg.value()),
        Op::ScmpCmpEq => (SeccompCmpOp::Eq, arg.value()),
        Op::ScmpCmpGe => (SeccompCmpOp::Ge, arg.value()),
        Op::ScmpCmpGt => (SeccompCmpOp::Gt, arg.value()),
        // (arg & value) == valueTwo
        Op::ScmpCmpMaskedEq => (
            SeccompCmpOp::MaskedEq(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
    };
    SeccompCondition::new(index as u8, SeccompCmpArgLen::Qword, op, value).map_err(|e| {
        SecurityError::BadSeccompValue {
            field: field.into(),
            what: e.to_string(),
        }
    })
}

/// A rule's `args` as alternatives of conjunctions (see the module documentation).
fn match_of(args: &[LinuxSeccompArg], field: &str) -> Result<Match, SecurityError> {
    if args.is_empty() {
        return Ok(Match::Always);
    }
    let conditions: Vec<SeccompCondition> = args
        .iter()
        .enumerate()
        .map(|(j, a)| condition_of(a, &format!("{field}.args[{j}]")))
        .collect::<Result<_, _>>()?;
    let mut seen = [0usize; 6];
    for a in args {
        seen[a.index()] += 1;
    }
    if seen.iter().any(|&n| n > 1) {
        Ok(Match::When(
            conditions.into_iter().map(|c| vec![c]).collect(),
        ))
    } else {
        Ok(Match::When(vec![conditions]))
    }
}

impl SeccompPlan {
    // ANCHOR: translate
    /// Checks and compiles `spec.linux.seccomp`.
    pub fn from_spec(spec: &LinuxSeccomp) -> Result<Self, SecurityError> {
        if std::env::consts::ARCH != "x86_64" {
            return Err(SecurityError::SeccompCompile {
                reason: format!(
                    "this runtime filters only the x86_64 syscall table, and runs on {}",
                    std::env::consts::ARCH
                ),
            });
        }
        if spec.listener_path().is_some() {
            return Err(SecurityError::UnsupportedSeccompAction {
                field: "listenerPath".into(),
                action: "SCMP_ACT_NOTIFY".into(),
                why: "a seccomp notify listener is not implemented; remove listenerPath".into(),
            });
        }
        let mut skipped = Vec::new();
        let foreign: Vec<String> = spec
            .architectures()
            .iter()
            .flatten()
            .filter(|a| !matches!(a, Arch::ScmpArchX86_64 | Arch::ScmpArchNative))
            .map(|a| a.to_string())
            .collect();
        if !foreign.is_empty() {
            skipped.push(format!(
                "seccomp: architectures {} ignored: only native x86_64 calls are filtered; calls through other ABIs are refused",
                foreign.join(", ")
            ));
        }
        let mut flags: libc::c_ulong = 0;
        for flag in spec.flags().iter().flatten() {
            match flag {
                LinuxSeccompFilterFlag::SeccompFilterFlagLog => {
                    flags |= libc::SECCOMP_FILTER_FLAG_LOG
                }
                LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                    flags |= libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
                }
                // One thread at this point: nothing to synchronise.
                LinuxSeccompFilterFlag::SeccompFilterFlagTsync => {}
                other => skipped.push(format!(
                    "seccomp: flag {other} ignored (it only matters for a notify listener)"
                )),
            }
        }

        let default = action_of(
            spec.default_action(),
            spec.default_errno_ret(),
            "defaultAction",
        )?;
        // Rules grouped by action, in the order the actions first appear.
        let mut groups: Vec<(SeccompAction, Rules)> = Vec::new();
        let mut unknown: Vec<String> = Vec::new();
        for (i, rule) in spec.syscalls().iter().flatten().enumerate() {
            let field = format!("syscalls[{i}]");
            let action = action_of(rule.action(), rule.errno_ret(), &format!("{field}.action"))?;
            let matches = match_of(rule.args().as_deref().unwrap_or(&[]), &field)?;
            let mut numbers = Vec::new();
            for name in rule.names() {
                if !syscalls::is_plausible_name(name) {
                    return Err(SecurityError::BadSyscallName {
                        field: format!("{field}.names"),
                        name: name.clone(),
                    });
                }
                match syscalls::number(name) {
                    Some(nr) => numbers.push(nr),
                    // runc: a name the kernel or libseccomp does not know is skipped, so that
                    // one profile serves many kernels.
                    None => unknown.push(name.clone()),
                }
            }
            if action == default {
                continue;
            }
            let group = match groups.iter().position(|(a, _)| *a == action) {
                Some(at) => &mut groups[at].1,
                None => {
                    groups.push((action, Rules::new()));
                    &mut groups.last_mut().expect("just pushed").1
                }
            };
            for nr in numbers {
                merge_into(group, nr, matches.clone());
            }
        }
        unknown.sort();
        unknown.dedup();
        if !unknown.is_empty() {
            skipped.push(format!(
                "seccomp: {} syscall name(s) unknown on x86_64, skipped: {}",
                unknown.len(),
                unknown.join(", ")
            ));
        }

        let mut filters = Vec::new();
        if default != SeccompAction::Allow {
            let mut base = Rules::new();
            for (_, rules) in &groups {
                for (nr, m) in rules {
                    merge_into(&mut base, *nr, m.clone());
                }
            }
            filters.push((
                format!(
                    "base: {} listed syscall(s) pass, the rest {}",
                    base.len(),
                    describe(&default)
                ),
                compile(base, default.clone(), SeccompAction::Allow)?,
            ));
        }
        for (action, rules) in groups {
            if action == SeccompAction::Allow {
                continue; // the base filter lets them through
            }
            filters.push((
                format!("{} syscall(s) → {}", rules.len(), describe(&action)),
                compile(rules, SeccompAction::Allow, action)?,
            ));
        }
        Ok(SeccompPlan {
            filters,
            flags,
            skipped,
            unknown_syscalls: unknown.len(),
        })
    }
    // ANCHOR_END: translate

    // ANCHOR: install
    /// Step: installs the filters, in order. `nnp` says whether no_new_privs is set (else this
    /// relies on CAP_SYS_ADMIN), only for the message.
    pub fn step(&self, nnp: bool) -> ChildHook {
        let filters = self.filters.clone();
        let flags = self.flags;
        hook(move || {
            for (k, (what, program)) in filters.iter().enumerate() {
                install(program, flags).map_err(|err| {
                    let why = match err.raw_os_error() {
                        Some(libc::EACCES) if !nnp => "; installing a filter needs no_new_privileges or CAP_SYS_ADMIN: set process.noNewPrivileges",
                        Some(libc::EINVAL) if flags != 0 => "; this kernel may not know one of linux.seccomp.flags",
                        _ => "",
                    };
                    format!(
                        "installing seccomp filter {} of {} ({what}): {err}{why}",
                        k + 1,
                        filters.len()
                    )
                })?;
            }
            Ok(())
        })
    }
    // ANCHOR_END: install
}

/// One seccompiler filter, compiled, with the x32 check added after the architecture check.
fn compile(
    rules: Rules,
    mismatch: SeccompAction,
    on_match: SeccompAction,
) -> Result<BpfProgram, SecurityError> {
    let rules: BTreeMap<i64, Vec<SeccompRule>> = rules
        .into_iter()
        .map(|(nr, m)| {
            let chain = match m {
                Match::Always => Vec::new(), // an empty chain matches the syscall outright
                Match::When(alternatives) => alternatives
                    .into_iter()
                    .map(SeccompRule::new)
                    .collect::<Result<_, _>>()?,
            };
            Ok((nr, chain))
        })
        .collect::<Result<_, seccompiler::BackendError>>()
        .map_err(|e| SecurityError::SeccompCompile {
            reason: e.to_string(),
        })?;
    let filter =
        SeccompFilter::new(rules, mismatch, on_match, TargetArch::x86_64).map_err(|e| {
            SecurityError::SeccompCompile {
                reason: e.to_string(),
            }
        })?;
    let mut program: BpfProgram = filter.try_into().map_err(|e: seccompiler::BackendError| {
        SecurityError::SeccompCompile {
            reason: e.to_string(),
        }
    })?;
    add_x32_check(&mut program)?;
    Ok(program)
}

/// A BPF instruction that does not jump (a load, a return).
fn stmt(code: u32, k: u32) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

/// A conditional BPF jump on the constant `k`: skips `jt` instructions if the test holds,
/// `jf` if not.
fn jump(test: u32, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter {
        code: (libc::BPF_JMP | test | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    }
}

/// seccompiler's programs start `load arch; if arch == x86_64 skip 1; return KILL_PROCESS`.
/// Right after, we add `load nr; if nr >= X32 bit: return ERRNO(ENOSYS)`. Every jump in the
/// program is relative and forward, and none crosses this point, so inserting here is safe;
/// if the prologue ever looks different, we refuse rather than guess.
fn add_x32_check(program: &mut BpfProgram) -> Result<(), SecurityError> {
    let expected = [
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 4),
        jump(libc::BPF_JEQ, AUDIT_ARCH_X86_64, 1, 0),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_KILL_PROCESS),
    ];
    if program.len() < 3 || program[..3] != expected {
        return Err(SecurityError::SeccompCompile {
            reason: "seccompiler's program does not start with the architecture check this runtime expects (was the crate upgraded?)".into(),
        });
    }
    let x32 = [
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
        jump(libc::BPF_JGE, X32_SYSCALL_BIT, 0, 1),
        stmt(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        ),
    ];
    program.splice(3..3, x32);
    if program.len() > BPF_MAXINSNS {
        return Err(SecurityError::SeccompCompile {
            reason: format!(
                "a filter has {} BPF instructions, over the kernel's {BPF_MAXINSNS}: the profile is too large",
                program.len()
            ),
        });
    }
    Ok(())
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, program)`. Not `seccompiler::apply_filter`: that one
/// always sets no_new_privs first, which the spec may not want (it breaks setuid programs).
fn install(program: &[sock_filter], flags: libc::c_ulong) -> std::io::Result<()> {
    let fprog = libc::sock_fprog {
        len: program.len() as libc::c_ushort,
        // seccompiler's sock_filter is #[repr(C)] with the kernel's layout, as libc's is.
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: fprog points at `program`, alive for the call; the kernel copies it and does not
    // write through the pointer.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &fprog as *const libc::sock_fprog,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny classic-BPF interpreter (the instructions seccompiler emits), to check what the
    /// compiled filters answer without installing them.
    fn run(program: &[sock_filter], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let (mut acc, mut pc) = (0u32, 0usize);
        loop {
            let ins = &program[pc];
            let (k, jt, jf) = (ins.k, ins.jt as usize, ins.jf as usize);
            let code = u32::from(ins.code);
            let jump = |cond: bool| if cond { jt } else { jf };
            match code {
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                    let at = k as usize;
                    acc = u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
                }
                c if c == libc::BPF_ALU | libc::BPF_AND | libc::BPF_K => acc &= k,
                c if c == libc::BPF_JMP | libc::BPF_JA => pc += k as usize,
                c if c == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K => pc += jump(acc == k),
                c if c == libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K => pc += jump(acc > k),
                c if c == libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K => pc += jump(acc >= k),
                c if c == libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K => pc += jump(acc & k != 0),
                c if c == libc::BPF_RET | libc::BPF_K => return k,
                other => panic!("instruction {other:#x} not interpreted"),
            }
            pc += 1;
        }
    }

    /// What the kernel answers with all of `plan`'s filters installed: walking from the newest
    /// filter, a strictly more restrictive action replaces the answer.
    fn answer(plan: &SeccompPlan, nr: i64, args: [u64; 6]) -> u32 {
        answer_arch(plan, nr as u32, AUDIT_ARCH_X86_64, args)
    }

    fn answer_arch(plan: &SeccompPlan, nr: u32, arch: u32, args: [u64; 6]) -> u32 {
        let mut best = libc::SECCOMP_RET_ALLOW;
        for (_, program) in plan.filters.iter().rev() {
            let ret = run(program, nr, arch, args);
            let rank = |r: u32| (r & libc::SECCOMP_RET_ACTION_FULL) as i32;
            if rank(ret) < rank(best) {
                best = ret;
            }
        }
        best
    }

    fn plan(json: &str) -> Result<SeccompPlan, SecurityError> {
        SeccompPlan::from_spec(&serde_json::from_str(json).unwrap())
    }

    const ERRNO: u32 = libc::SECCOMP_RET_ERRNO;
    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;

    #[test]
    fn deny_list_errno_with_allow_default() {
        let p = plan(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
        )
        .unwrap();
        assert_eq!(p.filters.len(), 1);
        let none = [0; 6];
        assert_eq!(
            answer(&p, libc::SYS_mkdir, none),
            ERRNO | libc::EPERM as u32
        );
        assert_eq!(
            answer(&p, libc::SYS_mkdirat, none),
            ERRNO | libc::EPERM as u32
        );
        assert_eq!(answer(&p, libc::SYS_getdents64, none), ALLOW);
    }

    #[test]
    fn allow_list_with_errno_default_and_a_different_errno() {
        // Docker's shape: default ERRNO(EPERM), most syscalls allowed, clone3 → ENOSYS.
        let p = plan(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]}"#,
        )
        .unwrap();
        let none = [0; 6];
        assert_eq!(answer(&p, libc::SYS_read, none), ALLOW);
        assert_eq!(answer(&p, libc::SYS_open, none), ERRNO | 1);
        assert_eq!(answer(&p, libc::SYS_clone3, none), ERRNO | 38);
        assert_eq!(answer(&p, libc::SYS_personality, none), ALLOW);
        assert_eq!(answer(&p, libc::SYS_personality, [8, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(
            answer(&p, libc::SYS_personality, [0xffff_ffff, 0, 0, 0, 0, 0]),
            ERRNO | 1
        );
    }

    #[test]
    fn argument_operators() {
        let p = plan(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                 "args": [{"index": 1, "value": 63, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["kill"], "action": "SCMP_ACT_KILL_PROCESS",
                 "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_NE"},
                          {"index": 0, "value": 100, "op": "SCMP_CMP_GT"}]},
                {"names": ["dup2"], "action": "SCMP_ACT_TRAP",
                 "args": [{"index": 1, "value": 3, "op": "SCMP_CMP_LT"},
                          {"index": 1, "value": 1000, "op": "SCMP_CMP_GE"}]}]}"#,
        )
        .unwrap();
        assert_eq!(p.filters.len(), 3, "one filter per action");
        let mkdir = |mode| answer(&p, libc::SYS_mkdir, [0, mode, 0, 0, 0, 0]);
        assert_eq!(mkdir(0o700), ERRNO | 13, "group and other bits clear");
        assert_eq!(mkdir(0o755), ALLOW);
        let kill = |pid, sig| answer(&p, libc::SYS_kill, [pid, sig, 0, 0, 0, 0]);
        assert_eq!(kill(200, 15), libc::SECCOMP_RET_KILL_PROCESS, "both hold");
        assert_eq!(kill(200, 9), ALLOW);
        assert_eq!(kill(50, 15), ALLOW);
        // Two conditions on one argument: either (runc's reading).
        let dup2 = |fd| answer(&p, libc::SYS_dup2, [0, fd, 0, 0, 0, 0]);
        assert_eq!(dup2(1), libc::SECCOMP_RET_TRAP);
        assert_eq!(dup2(2000), libc::SECCOMP_RET_TRAP);
        assert_eq!(dup2(10), ALLOW);
        // 64-bit comparison: a value above 4 GiB is not 0.
        assert_eq!(kill(1 << 40, 15), libc::SECCOMP_RET_KILL_PROCESS);
    }

    #[test]
    fn the_more_restrictive_rule_wins_and_other_abis_are_refused() {
        let p = plan(
            r#"{"defaultAction": "SCMP_ACT_LOG", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                "syscalls": [
                {"names": ["uname"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["uname", "getpid"], "action": "SCMP_ACT_KILL"},
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}"#,
        )
        .unwrap();
        assert_eq!(p.skipped.len(), 1, "{:?}", p.skipped);
        assert!(p.skipped[0].contains("SCMP_ARCH_X86"), "{:?}", p.skipped);
        let none = [0; 6];
        assert_eq!(
            answer(&p, libc::SYS_uname, none),
            libc::SECCOMP_RET_KILL_THREAD
        );
        assert_eq!(answer(&p, libc::SYS_read, none), ALLOW);
        assert_eq!(answer(&p, libc::SYS_write, none), libc::SECCOMP_RET_LOG);
        // x32 mkdir and an i386 call.
        let x32 = X32_SYSCALL_BIT | libc::SYS_read as u32;
        assert_eq!(
            answer_arch(&p, x32, AUDIT_ARCH_X86_64, none),
            ERRNO | libc::ENOSYS as u32
        );
        assert_eq!(
            answer_arch(&p, 3, 0x4000_0003, none),
            libc::SECCOMP_RET_KILL_PROCESS
        );
    }

    #[test]
    fn unknown_names_are_counted_and_typos_refused() {
        let p = plan(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["socketcall", "no_such_call", "mkdir"], "action": "SCMP_ACT_ERRNO"}]}"#,
        )
        .unwrap();
        assert_eq!(p.unknown_syscalls, 2);
        let err = plan(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["mkdir "], "action": "SCMP_ACT_ERRNO"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("\"mkdir \"") && err.contains("syscalls[0]"),
            "{err}"
        );
    }

    #[test]
    fn notify_and_bad_arguments_are_refused() {
        let err = plan(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("SCMP_ACT_NOTIFY"), "{err}");
        let err = plan(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("index 6"), "{err}");
    }
}
