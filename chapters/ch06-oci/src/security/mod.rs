//! The container's security settings from `config.json`, turned into steps that run inside it.
//!
//! Everything is read and checked in [`security_steps`], in the runtime, at `create` time: a
//! misspelt capability, an rlimit whose soft value is above its hard one, a syscall name with a
//! typo or a sysctl that would change the *host* fails there, with a message, before any process
//! or namespace exists. What is left for the steps is to make the system calls.
//!
//! Where the steps run, and in what order, is the whole art:
//!
//! ```text
//!  init (PID 1), after pivot_root          command process, after the start gate, before exec
//!  ───────────────────────────────         ───────────────────────────────────────────────────
//!  rootfs_steps (none today: see below)    1. sysctl            write /proc/sys/…
//!  chapter 2 mounts /proc                  2. maskedPaths       /dev/null or empty tmpfs on top
//!  fork ─────────────────────────────────▶ 3. readonlyPaths     bind + remount read-only
//!                                          4. rlimits           setrlimit
//!                                          5. umask
//!                                          6. bounding set      prctl(PR_CAPBSET_DROP)   (needs CAP_SETPCAP)
//!                                          7. groups, gid, uid  setgroups, setresgid, setresuid
//!                                                               (PR_SET_KEEPCAPS around them)
//!                                          8. capabilities      capset(eff, perm, inh), ambient
//!                                          9. no_new_privileges prctl(PR_SET_NO_NEW_PRIVS)
//!                                         10. fds and cwd       close_range(3.., CLOEXEC), getcwd
//!                                         11. seccomp           seccomp(SET_MODE_FILTER)
//!                                          exec
//! ```
//!
//! - Steps 1–3 need `/proc`, which chapter 2 mounts *after* init's hooks (so that the new root
//!   is in place first, and a hook that mounted its own `/proc` would be hidden under chapter 2's).
//!   So they run in the command's process, which shares init's mount namespace: a mount made
//!   there is the container's. It still holds every privilege at that point.
//! - The bounding set can only be shrunk with `CAP_SETPCAP`, so before the caps are dropped.
//! - `setuid` away from 0 clears the capabilities unless `PR_SET_KEEPCAPS` is on; then `capset`
//!   picks the final sets from the permitted set that was kept.
//! - seccomp goes last so that the filter cannot block the runtime's own set-up calls. But
//!   installing a filter needs `no_new_privs` *or* `CAP_SYS_ADMIN`. When the spec asks for
//!   neither (no `noNewPrivileges`, and `CAP_SYS_ADMIN` is not among the final effective
//!   capabilities), the filter is installed *before* step 6, while the process still has
//!   `CAP_SYS_ADMIN` — what runc does, and why a profile must allow `capset`, `setresuid`, …
//!   (Docker's does). Steps 10 and 11 then move up together.

pub mod capabilities;
pub mod fds;
pub mod nnp;
pub mod paths;
pub mod rlimits;
pub mod seccomp;
pub mod syscalls;
pub mod sysctl;
pub mod user;

use std::sync::Arc;

use ch02_namespaces::ChildHook;
use oci_spec::runtime::{Process, Spec};

pub use fds::close_extra_fds_and_check_cwd;

/// Why a container's security settings cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("{field}: unknown capability {name:?}: names look like CAP_NET_ADMIN (see capabilities(7)); fix the name or remove it")]
    UnknownCapability { field: String, name: String },
    #[error("process.rlimits: unknown rlimit type {name:?}: use one of RLIMIT_CPU, RLIMIT_NOFILE, RLIMIT_NPROC, … (see getrlimit(2))")]
    UnknownRlimit { name: String },
    #[error("process.rlimits: {typ} has soft limit {soft} above its hard limit {hard}: the soft limit must be at most the hard one")]
    RlimitSoftAboveHard { typ: String, soft: u64, hard: u64 },
    #[error("process.rlimits: {typ} asks for hard limit {hard}, above the runtime's own {current}: raising a hard limit needs CAP_SYS_RESOURCE in the host's user namespace, which this runtime does not have; lower 'hard' to at most {current}")]
    RlimitHardAboveCurrent {
        typ: String,
        hard: u64,
        current: u64,
    },
    #[error("linux.seccomp: {field}: {name:?} is not a syscall name (lower-case letters, digits and '_'): fix the profile")]
    BadSyscallName { field: String, name: String },
    #[error("linux.seccomp: {field}: action {action} is not supported by this runtime: {why}")]
    UnsupportedSeccompAction {
        field: String,
        action: String,
        why: String,
    },
    #[error("linux.seccomp: {field}: {what}")]
    BadSeccompValue { field: String, what: String },
    #[error("linux.seccomp: the profile could not be compiled to BPF: {reason}")]
    SeccompCompile { reason: String },
    #[error("linux.sysctl: {key:?} is not namespaced: setting it in a container would change the host for everybody; only kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*, net.* and kernel.hostname/domainname are allowed")]
    SysctlNotNamespaced { key: String },
    #[error("linux.sysctl: {key:?} belongs to the {namespace} namespace, which this container does not get: add {{\"type\": \"{namespace}\"}} to linux.namespaces or drop the sysctl")]
    SysctlNeedsNamespace { key: String, namespace: String },
    #[error("linux.sysctl: {key:?} is not a valid sysctl name (dot-separated words, no '..' or '/' at the ends)")]
    BadSysctlName { key: String },
    #[error("linux.maskedPaths and linux.readonlyPaths need a new mount namespace: without one their mounts would land on the host's /proc; add {{\"type\": \"mount\"}} to linux.namespaces")]
    NeedsMountNamespace,
    #[error("{field}: {path:?} must be an absolute path inside the container")]
    NotAbsolute { field: String, path: String },
}

/// What the runtime runs inside the container to apply its security settings.
#[derive(Clone, Default)]
pub struct SecuritySteps {
    /// Run in the container's init after `pivot_root` (its mount namespace, new root), before
    /// `exec` of the command. Empty in this design: everything that needs `/proc` (sysctls,
    /// maskedPaths, readonlyPaths) runs first in `pre_exec`, after chapter 2 has mounted it; see
    /// the module documentation. Kept so the runtime's wiring does not change if a step moves.
    pub rootfs_steps: Vec<ChildHook>,
    /// Run in the command's own process just before `exec`, in order.
    pub pre_exec: Vec<ChildHook>,
    /// Things the profile asked for that are skipped, as runc skips them (syscalls unknown on
    /// x86_64, other architectures): for the runtime to log.
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for SecuritySteps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecuritySteps")
            .field("rootfs_steps", &self.rootfs_steps.len())
            .field("pre_exec", &self.pre_exec.len())
            .field("warnings", &self.warnings)
            .finish()
    }
}

/// Wraps a closure as a chapter 2 hook.
pub(crate) fn hook(f: impl Fn() -> Result<(), String> + Send + Sync + 'static) -> ChildHook {
    Arc::new(f)
}

// ANCHOR: security_steps
/// Reads and checks every security setting of `spec`, and returns the steps that apply them.
/// Fails on anything that cannot work, so that `create` fails before anything exists.
pub fn security_steps(spec: &Spec) -> Result<SecuritySteps, SecurityError> {
    security_steps_preserving(spec, 0)
}

/// [`security_steps`], keeping descriptors 3 to `2 + preserve_fds` open across `exec`
/// (`runc run --preserve-fds N`, systemd's socket activation).
pub fn security_steps_preserving(
    spec: &Spec,
    preserve_fds: u32,
) -> Result<SecuritySteps, SecurityError> {
    let mut steps = SecuritySteps::default();
    if let Some(linux) = spec.linux() {
        // Container-wide: these change the container's /proc, once.
        if let Some(sysctls) = linux.sysctl() {
            let namespaces = linux.namespaces().as_deref().unwrap_or(&[]);
            steps.pre_exec.extend(sysctl::steps(sysctls, namespaces)?);
        }
        let masked = linux.masked_paths().as_deref().unwrap_or(&[]);
        let readonly = linux.readonly_paths().as_deref().unwrap_or(&[]);
        let has_mount_ns = linux
            .namespaces()
            .iter()
            .flatten()
            .any(|ns| ns.typ() == oci_spec::runtime::LinuxNamespaceType::Mount);
        if (!masked.is_empty() || !readonly.is_empty()) && !has_mount_ns {
            return Err(SecurityError::NeedsMountNamespace);
        }
        steps.pre_exec.extend(paths::steps(masked, readonly)?);
    }
    let process = spec.process().clone().unwrap_or_default();
    let (process_steps, warnings) = process_steps(spec, &process, preserve_fds)?;
    steps.pre_exec.extend(process_steps);
    steps.warnings = warnings;
    Ok(steps)
}

/// Only the per-process steps (rlimits, user, capabilities, no_new_privileges, fds, seccomp) for
/// `process` in the container described by `spec`: what `runc exec` applies to a new process in
/// a running container, whose mounts and sysctls are already in place.
pub fn process_steps(
    spec: &Spec,
    process: &Process,
    preserve_fds: u32,
) -> Result<(Vec<ChildHook>, Vec<String>), SecurityError> {
    let mut pre_exec = Vec::new();
    let mut warnings = Vec::new();

    if let Some(rlimits) = process.rlimits() {
        pre_exec.push(rlimits::step(rlimits)?);
    }
    let user = process.user();
    if let Some(umask) = user.umask() {
        pre_exec.push(user::umask_step(umask));
    }
    let mut caps = process
        .capabilities()
        .as_ref()
        .map(capabilities::CapabilityPlan::from_spec)
        .transpose()?;
    if let Some(plan) = &mut caps {
        // runc: capabilities newer than the running kernel are skipped, with a warning.
        if let Some(unknown) = plan.keep_known(capabilities::last_cap()) {
            warnings.push(format!(
                "capabilities unknown to this kernel, skipped: {}",
                capabilities::names(unknown)
            ));
        }
    }
    let nnp = process.no_new_privileges().unwrap_or(false);
    let seccomp = spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .map(seccomp::SeccompPlan::from_spec)
        .transpose()?;
    for skipped in seccomp.iter().flat_map(|plan| &plan.skipped) {
        crate::log::debug(skipped);
    }
    let cwd = if process.cwd().as_os_str().is_empty() {
        None
    } else if process.cwd().is_absolute() {
        Some(process.cwd().clone())
    } else {
        return Err(SecurityError::NotAbsolute {
            field: "process.cwd".into(),
            path: process.cwd().display().to_string(),
        });
    };

    // Can the filter wait until the very end? Installing it needs no_new_privs or
    // CAP_SYS_ADMIN; see the module documentation.
    let keeps_sys_admin = match &caps {
        Some(plan) => plan.effective_has(caps::Capability::CAP_SYS_ADMIN),
        None => user.uid() == 0,
    };
    let seccomp_last = nnp || keeps_sys_admin;
    let fds_step = fds::close_extra_fds_and_check_cwd(preserve_fds, cwd);

    if !seccomp_last {
        pre_exec.push(fds_step.clone());
        if let Some(plan) = &seccomp {
            pre_exec.push(plan.step(false));
        }
    }
    if let Some(plan) = &caps {
        pre_exec.push(plan.bounding_step());
    }
    pre_exec.push(user::identity_step(user, caps.is_some()));
    if let Some(plan) = &caps {
        pre_exec.push(plan.sets_step());
    }
    if nnp {
        pre_exec.push(nnp::step());
    }
    if seccomp_last {
        pre_exec.push(fds_step);
        if let Some(plan) = &seccomp {
            pre_exec.push(plan.step(nnp));
        }
    }
    Ok((pre_exec, warnings))
}
// ANCHOR_END: security_steps

/// Checks the names in a raw `config.json` before it is parsed into a [`Spec`], for a clearer
/// message than the parser's "unknown variant": which field, which name, what to do. The
/// runtime calls this on the JSON it read, then parses it.
pub fn check_names(config: &serde_json::Value) -> Result<(), SecurityError> {
    use oci_spec::runtime::{
        Arch, Capability, LinuxSeccompAction, LinuxSeccompOperator, PosixRlimitType,
    };
    fn parses<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> bool {
        serde_json::from_value::<T>(v.clone()).is_ok()
    }
    fn show(v: &serde_json::Value) -> String {
        v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string())
    }
    let process = &config["process"];
    for set in [
        "bounding",
        "effective",
        "permitted",
        "inheritable",
        "ambient",
    ] {
        for name in process["capabilities"][set]
            .as_array()
            .into_iter()
            .flatten()
        {
            if !parses::<Capability>(name) {
                return Err(SecurityError::UnknownCapability {
                    field: format!("process.capabilities.{set}"),
                    name: show(name),
                });
            }
        }
    }
    for rlimit in process["rlimits"].as_array().into_iter().flatten() {
        if !parses::<PosixRlimitType>(&rlimit["type"]) {
            return Err(SecurityError::UnknownRlimit {
                name: show(&rlimit["type"]),
            });
        }
    }
    let seccomp = &config["linux"]["seccomp"];
    if seccomp.is_null() {
        return Ok(());
    }
    let bad_action = |field: String, v: &serde_json::Value| {
        SecurityError::BadSeccompValue {
        field,
        what: format!(
            "unknown action {}: use SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL, SCMP_ACT_KILL_PROCESS, SCMP_ACT_KILL_THREAD, SCMP_ACT_TRAP, SCMP_ACT_TRACE or SCMP_ACT_LOG",
            show(v)
        ),
    }
    };
    if !parses::<LinuxSeccompAction>(&seccomp["defaultAction"]) {
        return Err(bad_action(
            "defaultAction".into(),
            &seccomp["defaultAction"],
        ));
    }
    for arch in seccomp["architectures"].as_array().into_iter().flatten() {
        if !parses::<Arch>(arch) {
            return Err(SecurityError::BadSeccompValue {
                field: "architectures".into(),
                what: format!(
                    "unknown architecture {}: names look like SCMP_ARCH_X86_64",
                    show(arch)
                ),
            });
        }
    }
    for (i, rule) in seccomp["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if !parses::<LinuxSeccompAction>(&rule["action"]) {
            return Err(bad_action(format!("syscalls[{i}].action"), &rule["action"]));
        }
        for (j, arg) in rule["args"].as_array().into_iter().flatten().enumerate() {
            if !parses::<LinuxSeccompOperator>(&arg["op"]) {
                return Err(SecurityError::BadSeccompValue {
                    field: format!("syscalls[{i}].args[{j}].op"),
                    what: format!(
                        "unknown operator {}: use SCMP_CMP_EQ, _NE, _LT, _LE, _GT, _GE or _MASKED_EQ",
                        show(&arg["op"])
                    ),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> Result<(), SecurityError> {
        check_names(&serde_json::from_str(json).unwrap())
    }

    #[test]
    fn misspelt_names_are_named_with_their_field() {
        let err =
            check(r#"{"process": {"capabilities": {"bounding": ["CAP_CHOWN", "CAP_NET_ADMN"]}}}"#)
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("process.capabilities.bounding") && err.contains("CAP_NET_ADMN"),
            "{err}"
        );
        let err =
            check(r#"{"process": {"rlimits": [{"type": "RLIMIT_FILES", "soft": 1, "hard": 1}]}}"#)
                .unwrap_err()
                .to_string();
        assert!(err.contains("RLIMIT_FILES"), "{err}");
        let err = check(r#"{"linux": {"seccomp": {"defaultAction": "SCMP_ACT_DENY"}}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("defaultAction") && err.contains("SCMP_ACT_DENY"),
            "{err}"
        );
        let err = check(
            r#"{"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQUAL"}]}]}}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("syscalls[0].args[0].op") && err.contains("SCMP_CMP_EQUAL"),
            "{err}"
        );
        assert!(check(r#"{"process": {"capabilities": {"bounding": ["CAP_CHOWN"]}}}"#).is_ok());
    }

    #[test]
    fn a_spec_without_security_settings_gives_the_identity_and_fd_steps() {
        let spec: Spec = serde_json::from_str(
            r#"{"ociVersion": "1.0.2", "process": {"user": {"uid": 0, "gid": 0}, "cwd": "/"}}"#,
        )
        .unwrap();
        let steps = security_steps(&spec).unwrap();
        assert!(steps.rootfs_steps.is_empty());
        assert_eq!(steps.pre_exec.len(), 2, "identity and fds/cwd");
    }

    #[test]
    fn masked_paths_without_a_mount_namespace_are_refused() {
        let spec: Spec = serde_json::from_str(
            r#"{"ociVersion": "1.0.2", "linux": {"namespaces": [{"type": "pid"}],
                "maskedPaths": ["/proc/kcore"]}}"#,
        )
        .unwrap();
        let err = security_steps(&spec).unwrap_err().to_string();
        assert!(err.contains("mount namespace"), "{err}");
    }

    #[test]
    fn a_relative_cwd_is_refused() {
        let spec: Spec = serde_json::from_str(
            r#"{"ociVersion": "1.0.2", "process": {"user": {"uid": 0, "gid": 0}, "cwd": "work"}}"#,
        )
        .unwrap();
        let err = security_steps(&spec).unwrap_err().to_string();
        assert!(err.contains("process.cwd") && err.contains("work"), "{err}");
    }
}
