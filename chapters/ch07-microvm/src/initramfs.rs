//! A tiny initramfs for stage 4: a `cpio` archive ("newc" format) with a static busybox and an
//! `/init` script that prints a marker, optionally gives you a shell, and reboots (which, with
//! `reboot=k`, is our power-off).
//!
//! The kernel unpacks the initramfs into a RAM filesystem and runs `/init` as PID 1. The
//! format is the simplest archive there is: per file a 110-byte ASCII header, the name, the
//! data, each padded to 4 bytes. Writing it ourselves takes 40 lines and no `cpio` binary.

use std::fs;
use std::path::Path;

use crate::error::{Result, VmError};

/// What `/init` prints when Linux has booted into our initramfs.
pub const INIT_MARKER: &str = "BOXLAB-INIT-OK";

/// One archive member.
pub enum Entry<'a> {
    Dir(&'a str),
    File {
        path: &'a str,
        mode: u32,
        data: &'a [u8],
    },
    Symlink {
        path: &'a str,
        target: &'a str,
    },
    CharDev {
        path: &'a str,
        major: u32,
        minor: u32,
    },
}

// ANCHOR: newc
/// Writes a newc cpio archive of `entries`.
pub fn newc(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut push = |ino: u32, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)| {
        let fields = [
            ino,
            mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        out.extend_from_slice(b"070701");
        for field in fields {
            out.extend_from_slice(format!("{field:08x}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out.extend_from_slice(data);
        while out.len() % 4 != 0 {
            out.push(0);
        }
    };
    for (i, entry) in entries.iter().enumerate() {
        let ino = i as u32 + 1;
        match entry {
            Entry::Dir(path) => push(ino, path, 0o040755, &[], (0, 0)),
            Entry::File { path, mode, data } => push(ino, path, 0o100000 | mode, data, (0, 0)),
            Entry::Symlink { path, target } => push(ino, path, 0o120777, target.as_bytes(), (0, 0)),
            Entry::CharDev { path, major, minor } => {
                push(ino, path, 0o020600, &[], (*major, *minor))
            }
        }
    }
    push(0, "TRAILER!!!", 0, &[], (0, 0));
    out
}
// ANCHOR_END: newc

/// The kernel command-line word that makes `/init` start a shell on the console.
pub const SHELL_WORD: &str = "boxlab.shell";

// ANCHOR: init
/// The `/init` script: the marker, then (with `boxlab.shell` on the kernel command line) a shell
/// on the serial console with its job control terminal, and a reboot (our power-off) when the
/// shell exits.
pub fn init_script() -> String {
    format!(
        "#!/bin/busybox sh\n\
         /bin/busybox --install -s /bin\n\
         export PATH=/bin\n\
         mount -t proc proc /proc\n\
         echo \"{INIT_MARKER}: Linux $(uname -r) is up in the boxlab micro-VM\"\n\
         if grep -qw {SHELL_WORD} /proc/cmdline; then\n\
         \x20   mount -t devtmpfs dev /dev 2>/dev/null\n\
         \x20   echo 'boxlab: a shell on ttyS0; exit powers the VM off'\n\
         \x20   setsid cttyhack sh || sh\n\
         fi\n\
         reboot -f\n"
    )
}
// ANCHOR_END: init

/// Builds the initramfs at `out` from a static `busybox` binary; a dynamic one is refused.
pub fn build(busybox: &Path, out: &Path) -> Result<u64> {
    let err = |reason: String| VmError::Initramfs {
        path: out.into(),
        reason,
    };
    let binary = fs::read(busybox).map_err(|e| {
        err(format!(
            "reading {}: {e} (apt-get install busybox-static)",
            busybox.display()
        ))
    })?;
    // The initramfs has no libc and no dynamic loader: a dynamically linked busybox would fail
    // to start, and the kernel would panic with no init.
    labkit::check_static_elf(&binary).map_err(|why| {
        err(format!(
            "{} is {why}: give a static busybox (apt-get install busybox-static)",
            busybox.display()
        ))
    })?;
    let init = init_script();
    let archive = newc(&[
        Entry::Dir("bin"),
        Entry::Dir("dev"),
        Entry::Dir("proc"),
        Entry::Dir("tmp"),
        Entry::CharDev {
            path: "dev/console",
            major: 5,
            minor: 1,
        },
        Entry::File {
            path: "bin/busybox",
            mode: 0o755,
            data: &binary,
        },
        Entry::Symlink {
            path: "bin/sh",
            target: "busybox",
        },
        Entry::File {
            path: "init",
            mode: 0o755,
            data: init.as_bytes(),
        },
    ]);
    // Written aside and renamed: `out` is either the old archive or the complete new one.
    let mut tmp = out.as_os_str().to_owned();
    tmp.push(".tmp");
    fs::write(&tmp, &archive)
        .map_err(|e| err(format!("writing {}: {e}", Path::new(&tmp).display())))?;
    fs::rename(&tmp, out).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        err(format!(
            "renaming {} into place: {e}",
            Path::new(&tmp).display()
        ))
    })?;
    Ok(archive.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newc_archive_has_headers_names_and_a_trailer() {
        let archive = newc(&[Entry::File {
            path: "init",
            mode: 0o755,
            data: b"#!/bin/sh\n",
        }]);
        assert!(archive.starts_with(b"070701"));
        assert_eq!(archive.len() % 4, 0);
        // mode of the first entry: regular file, 0755
        assert_eq!(&archive[14..22], b"000081ed");
        let text = String::from_utf8_lossy(&archive);
        assert!(text.contains("init\0"));
        assert!(text.contains("#!/bin/sh\n"));
        assert!(text.contains("TRAILER!!!"));
    }

    #[test]
    fn a_dynamic_busybox_is_refused_in_one_line_and_nothing_is_written() {
        let dir = labkit::ScratchDir::new("ch07-initramfs").unwrap();
        let out = dir.join("initramfs.cpio");
        // /bin/ls: dynamically linked on every distribution this project runs on.
        let err = build(Path::new("/bin/ls"), &out).unwrap_err().to_string();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("/bin/ls is dynamically linked (it needs the loader /lib"),
            "{err}"
        );
        assert!(err.contains("apt-get install busybox-static"), "{err}");
        assert!(!out.exists());
        let err = build(Path::new("/etc/passwd"), &out)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/etc/passwd is not an ELF executable"),
            "{err}"
        );
    }

    #[test]
    fn a_static_busybox_makes_an_initramfs() {
        let dir = labkit::ScratchDir::new("ch07-initramfs").unwrap();
        let out = dir.join("initramfs.cpio");
        let busybox = labkit::find_static_busybox().expect("scripts/setup installs busybox-static");
        let size = build(&busybox, &out).unwrap();
        assert_eq!(fs::metadata(&out).unwrap().len(), size);
        let truncated = &fs::read(&busybox).unwrap()[..0x40];
        assert!(labkit::check_static_elf(truncated)
            .unwrap_err()
            .starts_with("truncated"));
    }

    /// The shell is keyed on the command-line word, and the VM powers off after it either way.
    #[test]
    fn init_starts_a_shell_only_with_boxlab_shell() {
        let script = init_script();
        assert!(script.starts_with("#!/bin/busybox sh\n"));
        let shell_line = script.lines().find(|l| l.starts_with("if grep")).unwrap();
        assert_eq!(shell_line, "if grep -qw boxlab.shell /proc/cmdline; then");
        assert!(script.contains("\n    setsid cttyhack sh || sh\n"));
        assert!(script.trim_end().ends_with("reboot -f"));
    }
}
