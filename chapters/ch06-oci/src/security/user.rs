//! Who the command runs as: supplementary groups, gid, uid — in that order, because once the uid
//! is not 0 the process may no longer change its groups — and the umask for the files it creates.

use nix::sys::stat::{umask, Mode};
use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::User;

use super::hook;
use ch02_namespaces::ChildHook;

/// Step: `umask(mask)`.
pub fn umask_step(mask: u32) -> ChildHook {
    hook(move || {
        umask(Mode::from_bits_truncate(mask as libc::mode_t));
        Ok(())
    })
}

// ANCHOR: identity
/// Step: `setgroups(additionalGids)`, `setresgid(gid)`, `setresuid(uid)`.
///
/// With `keep_caps` (the spec sets capabilities), `PR_SET_KEEPCAPS` is on across the uid change:
/// leaving uid 0 would otherwise empty the permitted set, and the capability step that follows
/// could only pick from nothing. (The effective set is cleared either way; `capset` sets it.)
pub fn identity_step(user: &User, keep_caps: bool) -> ChildHook {
    let uid = user.uid();
    let gid = user.gid();
    let groups: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|&g| Gid::from_raw(g))
        .collect();
    hook(move || {
        if let Err(e) = setgroups(&groups) {
            // In a user namespace whose setgroups is "deny" (rootless), only an empty list can
            // be right: keep the one we have.
            if !(groups.is_empty() && setgroups_denied()) {
                let list: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
                return Err(format!(
                    "setgroups([{}]) for process.user.additionalGids: {e}{}",
                    list.join(", "),
                    if setgroups_denied() {
                        "; this user namespace has setgroups denied (rootless): remove additionalGids"
                    } else {
                        ""
                    }
                ));
            }
        }
        let gid_ = Gid::from_raw(gid);
        setresgid(gid_, gid_, gid_).map_err(|e| {
            format!("setresgid({gid}) for process.user.gid: {e}; is gid {gid} mapped in the container's user namespace?")
        })?;
        if keep_caps {
            set_keep_caps(true)?;
        }
        let uid_ = Uid::from_raw(uid);
        setresuid(uid_, uid_, uid_).map_err(|e| {
            format!("setresuid({uid}) for process.user.uid: {e}; is uid {uid} mapped in the container's user namespace?")
        })?;
        if keep_caps {
            set_keep_caps(false)?;
        }
        Ok(())
    })
}
// ANCHOR_END: identity

fn set_keep_caps(on: bool) -> Result<(), String> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, libc::c_ulong::from(on), 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "prctl(PR_SET_KEEPCAPS, {}): {}",
            u8::from(on),
            std::io::Error::last_os_error()
        ))
    }
}

fn setgroups_denied() -> bool {
    std::fs::read_to_string("/proc/self/setgroups")
        .map(|s| s.trim() == "deny")
        .unwrap_or(false)
}
