//! A minimal root filesystem built from the host's static busybox.
//!
//! Later chapters (a root filesystem, an OCI bundle) need a rootfs in their tests. None is
//! downloaded: Debian's `busybox-static` (installed by `scripts/setup`) is one self-contained
//! binary, so copying it plus a symlink per applet gives a complete, tiny userland.

use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why the busybox rootfs could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// No statically linked busybox was found on the host.
    #[error("no static busybox found (looked in {searched}); install it with scripts/setup (apt-get install busybox-static)")]
    NoBusybox { searched: String },
    /// Listing busybox's applets failed.
    #[error("running '{busybox} --list' failed: {reason}")]
    ListApplets { busybox: PathBuf, reason: String },
    /// A filesystem operation on the target failed.
    #[error("building the rootfs at {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

const BUSYBOX_CANDIDATES: &[&str] = &[
    "/bin/busybox",
    "/usr/bin/busybox",
    "/usr/bin/busybox-static",
];

/// Finds a *static* busybox: a dynamic one would need the host's libc inside the rootfs.
pub fn find_static_busybox() -> Result<PathBuf, RootfsError> {
    for candidate in BUSYBOX_CANDIDATES {
        let path = Path::new(candidate);
        if path.is_file() && is_static_elf(path) {
            return Ok(path.to_path_buf());
        }
    }
    Err(RootfsError::NoBusybox {
        searched: BUSYBOX_CANDIDATES.join(", "),
    })
}

/// A static ELF has no PT_INTERP program header (no dynamic loader to name).
fn is_static_elf(path: &Path) -> bool {
    let Ok(bytes) = fs::read(path) else {
        return false;
    };
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 {
        return false; // not a 64-bit ELF
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[o..o + 8]);
        u64::from_le_bytes(b) as usize
    };
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    const PT_INTERP: u32 = 3;
    (0..phnum).all(|i| {
        let entry = phoff + i * phentsize;
        bytes
            .get(entry..entry + 4)
            .map(|t| u32::from_le_bytes([t[0], t[1], t[2], t[3]]) != PT_INTERP)
            .unwrap_or(false)
    })
}

/// Builds a busybox rootfs in `target` (which must exist and be empty or a previous rootfs):
/// `bin/busybox`, a symlink per applet in `bin/`, the usual empty mount points, and an
/// `/etc/passwd` and `/etc/group` naming root and nobody. Idempotent.
pub fn busybox_rootfs(target: &Path) -> Result<PathBuf, RootfsError> {
    let busybox = find_static_busybox()?;
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RootfsError::Io { path, source }
    };
    for dir in [
        "bin", "dev", "etc", "proc", "sys", "tmp", "root", "home", "run", "var/tmp", "usr/bin",
    ] {
        let path = target.join(dir);
        fs::create_dir_all(&path).map_err(io_err(&path))?;
    }
    let tmp = target.join("tmp");
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777)).map_err(io_err(&tmp))?;

    let inside = target.join("bin/busybox");
    if !inside.exists() {
        fs::copy(&busybox, &inside).map_err(io_err(&inside))?;
    }
    let listing =
        Command::new(&busybox)
            .arg("--list")
            .output()
            .map_err(|e| RootfsError::ListApplets {
                busybox: busybox.clone(),
                reason: e.to_string(),
            })?;
    if !listing.status.success() {
        return Err(RootfsError::ListApplets {
            busybox,
            reason: format!("exited with {}", listing.status),
        });
    }
    for applet in String::from_utf8_lossy(&listing.stdout)
        .lines()
        .map(str::trim)
    {
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        let link = target.join("bin").join(applet);
        if link.symlink_metadata().is_err() {
            symlink("busybox", &link).map_err(io_err(&link))?;
        }
    }
    let passwd = target.join("etc/passwd");
    fs::write(
        &passwd,
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .map_err(io_err(&passwd))?;
    let group = target.join("etc/group");
    fs::write(&group, "root:x:0:\nnogroup:x:65534:\n").map_err(io_err(&group))?;
    Ok(target.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ScratchDir;

    #[test]
    fn rootfs_has_a_runnable_static_shell() {
        let scratch = ScratchDir::new("rootfs-selftest").unwrap();
        let root = busybox_rootfs(scratch.path()).expect("scripts/setup installs busybox-static");
        assert!(root.join("bin/busybox").is_file());
        assert_eq!(
            fs::read_link(root.join("bin/sh")).unwrap(),
            PathBuf::from("busybox")
        );
        // The copy inside the rootfs runs on its own: it is static.
        let out = Command::new(root.join("bin/sh"))
            .args(["-c", "echo hello from busybox"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from busybox\n");
        // Building twice is fine.
        busybox_rootfs(scratch.path()).unwrap();
    }

    #[test]
    fn a_dynamic_binary_is_not_mistaken_for_static() {
        assert!(!is_static_elf(Path::new("/bin/ls")));
        assert!(!is_static_elf(Path::new("/etc/passwd")));
    }
}
