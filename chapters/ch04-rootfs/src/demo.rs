//! The chapter's demo, and the `unpack` verb's output.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use ch01_process::exec::Program;
use ch02_namespaces::Isolation;
use ch04_rootfs::unpack::{unpack_layer, UnpackOptions};
use ch04_rootfs::with_rootfs;
use labkit::{busybox_rootfs, ScratchDir};

pub fn run() -> Result<i32> {
    println!("boxlab chapter 4: a root filesystem of its own\n");
    println!("Chapters 2 and 3 isolated and limited a process, but it still saw the host's files.");
    println!(
        "Now it gets its own '/': a directory prepared beforehand, switched to with pivot_root.\n"
    );
    if !nix::unistd::geteuid().is_root() {
        println!("This demo mounts filesystems and needs root: run it with sudo.");
        return Ok(0);
    }

    println!("Step 1. Build a root filesystem from the host's static busybox (no download)");
    let scratch = ScratchDir::new("ch04-demo").context("making a scratch directory")?;
    let root = busybox_rootfs(&scratch.join("rootfs"))?;
    let applets = std::fs::read_dir(root.join("bin"))?.count();
    println!(
        "  {}: bin/busybox plus {applets} applet links, /etc/passwd, empty mount points",
        root.display()
    );

    println!("\nStep 2. Run a shell in it (inside chapter 2's namespaces)");
    println!("  init will: bind-mount the directory onto itself, mount a fresh /dev (tmpfs with");
    println!("  null, zero, full, random, urandom, tty, pts, shm) and a read-only /sys, then");
    println!("  pivot_root(\".\", \".\") and unmount the old root, and finally mount /proc.");
    let script = "echo \"  inside: I am $(hostname), PID $$; / holds: $(ls / | tr '\\n' ' ')\"; \
                  echo \"  inside: $(ls /proc | grep -c '^[0-9]') processes visible, $(wc -l < /proc/mounts) mounts\"; \
                  test -e /etc/os-release && echo '  inside: I can see the host!' || echo '  inside: no trace of the host (/etc/os-release is not here)'";
    let status = run_in(&root, false, &["sh", "-c", script])?;
    println!("  the shell {status}");

    println!("\nStep 3. The same root, read-only (docker run --read-only)");
    let status = run_in(
        &root,
        true,
        &[
            "sh",
            "-c",
            "touch /new-file 2>&1 | sed 's/^/  inside: /'; exit 0",
        ],
    )?;
    println!(
        "  the shell {status}; nothing was written to {}",
        root.display()
    );

    println!("\nDone. The scratch root and everything mounted for it are gone. Try your own:");
    println!("  sudo cargo run -p ch04-rootfs -- --rootfs DIR --hostname lab --memory 64m -- sh");
    Ok(0)
}

fn run_in(root: &Path, readonly: bool, args: &[&str]) -> Result<ch02_namespaces::Exit> {
    let isolation = Isolation::container_defaults()
        .hostname("boxlab-ch04")
        .observe(Arc::new(|step: &str| {
            if step.starts_with("init") && !step.contains("execvp") {
                println!("  {step}");
            }
        }));
    let isolation = with_rootfs(isolation, root, readonly)?;
    let child = isolation.spawn(&Program::new(args)?)?;
    Ok(child.wait()?)
}

/// `ch04-rootfs unpack LAYER DIR`: applies one layer and says what it did.
pub fn unpack_verb(layer: &Path, dir: &Path, digest: Option<String>, devices: bool) -> Result<i32> {
    let root = nix::unistd::geteuid().is_root();
    let options = UnpackOptions {
        allow_devices: devices && root,
        preserve_ownership: root,
        expected_digest: digest,
    };
    let report = unpack_layer(layer, dir, &options)?;
    println!(
        "unpacked {} ({:?}, {} bytes) onto {}",
        layer.display(),
        report.compression,
        report.size,
        dir.display()
    );
    println!(
        "  digest   {}  (the blob, as a registry names it)",
        report.digest
    );
    println!(
        "  diff_id  {}  (the uncompressed tar, as the image config lists it)",
        report.diff_id
    );
    println!(
        "  {} entries, {} bytes of file content, {} whiteouts, {} opaque directories",
        report.entries, report.bytes, report.whiteouts, report.opaque_dirs
    );
    for (path, why) in &report.skipped {
        println!("  skipped {}: {why}", path.display());
    }
    Ok(0)
}
