//! `no_new_privileges`: after this, `execve` can never grant more than the process has — a
//! setuid-root binary (`su`, `ping` on old systems) or a file capability runs without its
//! extra powers. It also lets an unprivileged process install a seccomp filter.

use super::hook;
use ch02_namespaces::ChildHook;

// ANCHOR: nnp
/// Step: `prctl(PR_SET_NO_NEW_PRIVS, 1)`. It cannot be undone, and is inherited by every child.
pub fn step() -> ChildHook {
    hook(|| {
        // SAFETY: prctl with integer arguments only.
        let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        if rc == 0 {
            Ok(())
        } else {
            Err(format!(
                "prctl(PR_SET_NO_NEW_PRIVS, 1) for process.noNewPrivileges: {}",
                std::io::Error::last_os_error()
            ))
        }
    })
}
// ANCHOR_END: nnp
