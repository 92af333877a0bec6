//! Can this host make a user namespace without root? And if not, why not.

use std::fs;

use crate::NamespaceError;

// ANCHOR: rootless_check
/// Checks the knobs that distributions use to forbid unprivileged user namespaces, and returns
/// the first one that is closed, in words a student can act on.
pub fn unprivileged_userns_blocker() -> Option<String> {
    let read = |path: &str| fs::read_to_string(path).ok().map(|v| v.trim().to_string());
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return Some(
            "user.max_user_namespaces = 0 (raise it: sysctl -w user.max_user_namespaces=15000)"
                .into(),
        );
    }
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return Some("kernel.unprivileged_userns_clone = 0 (Debian/Ubuntu switch; enable: sysctl -w kernel.unprivileged_userns_clone=1)".into());
    }
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        return Some(
            "kernel.apparmor_restrict_unprivileged_userns = 1 (Ubuntu 23.10+: AppArmor confines unprivileged user namespaces; \
             allow this binary with an AppArmor profile, or for a lab: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0)"
                .into(),
        );
    }
    None
}
// ANCHOR_END: rootless_check

/// Fails early, with the reason, when this host forbids what `--rootless` needs.
pub fn check_rootless_possible() -> Result<(), NamespaceError> {
    match unprivileged_userns_blocker() {
        Some(reason) => Err(NamespaceError::UserNamespacesDisabled { reason }),
        None => Ok(()),
    }
}
