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
    fs::read(path).is_ok_and(|bytes| check_static_elf(&bytes).is_ok())
}

/// Why `binary` is not a static 64-bit little-endian ELF executable, if it is not: a
/// dynamically linked one has a PT_INTERP program header naming its loader, and cannot run
/// where there is no libc (a busybox rootfs, an initramfs).
pub fn check_static_elf(binary: &[u8]) -> Result<(), String> {
    if !binary.starts_with(b"\x7fELF") {
        return Err("not an ELF executable".into());
    }
    // e_ident[EI_CLASS] = 2 (64-bit), [EI_DATA] = 1 (little-endian).
    if binary.get(4..6) != Some(&[2, 1][..]) {
        return Err("not a 64-bit little-endian ELF executable".into());
    }
    // Offsets come from the file: checked, so that a corrupt one is an error, not a panic.
    let bytes = |at: usize, n: usize| {
        let end = at.saturating_add(n);
        binary.get(at..end).ok_or_else(|| {
            format!(
                "truncated: the ELF headers run past its {} bytes",
                binary.len()
            )
        })
    };
    let num = |at: usize, n: usize| -> Result<usize, String> {
        let mut le = [0u8; 8];
        le[..n].copy_from_slice(bytes(at, n)?);
        Ok(u64::from_le_bytes(le) as usize)
    };
    // e_phoff, e_phentsize, e_phnum; in each program header p_type, p_offset, p_filesz.
    let (phoff, phentsize, phnum) = (num(0x20, 8)?, num(0x36, 2)?, num(0x38, 2)?);
    const PT_INTERP: usize = 3;
    for i in 0..phnum {
        let header = phoff.saturating_add(i.saturating_mul(phentsize));
        if num(header, 4)? == PT_INTERP {
            let loader = bytes(num(header + 0x08, 8)?, num(header + 0x20, 8)?)?;
            let loader = String::from_utf8_lossy(loader);
            return Err(format!(
                "dynamically linked (it needs the loader {}, and there is no libc where it goes)",
                loader.trim_end_matches('\0')
            ));
        }
    }
    Ok(())
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
