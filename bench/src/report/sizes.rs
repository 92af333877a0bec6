//! Image sizes: what each column ships before it can run.
//!
//! - VM: our tiny guest (its whole "OS"), and the fetched Linux kernel + initramfs if present;
//! - container: the busybox image's layer — the rootfs as a tar stream (what an OCI layer is),
//!   raw and gzip-compressed (what a registry stores and a pull downloads);
//! - function: chapter 1's binary (the "serverless" demo: a process with its handler).

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;

use super::measured::Measured;
use super::stats::bytes;
use bench::peers::find_workspace_binary;

pub struct Sizes {
    pub tiny_guest: u64,
    pub linux: Measured<(u64, u64)>,
    /// (tar, tar.gz) of the busybox rootfs.
    pub layer: Measured<(u64, u64)>,
    pub function: Measured<(String, u64)>,
}

impl Sizes {
    pub fn vm_text(&self) -> String {
        let linux = match &self.linux {
            Ok((k, i)) => format!("; Linux kernel {} + initramfs {}", bytes(*k), bytes(*i)),
            Err(why) => format!("; a Linux kernel + initramfs: not measured ({why})"),
        };
        format!("tiny guest {}{linux}", bytes(self.tiny_guest))
    }
}

/// Counts what is written through it.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes `rootfs` as a tar stream (symlinks as symlinks) into `out`.
fn tar_into<W: Write>(rootfs: &Path, out: W) -> io::Result<W> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    builder.append_dir_all(".", rootfs)?;
    builder.into_inner()
}

/// The layer's size, raw and gzipped.
pub fn layer(rootfs: &Path) -> Measured<(u64, u64)> {
    let err = |e: io::Error| format!("tar of {}: {e}", rootfs.display());
    let raw = tar_into(rootfs, Counter(0)).map_err(err)?.0;
    let gz = tar_into(rootfs, GzEncoder::new(Counter(0), Compression::default()))
        .and_then(|enc| enc.finish())
        .map_err(err)?
        .0;
    Ok((raw, gz))
}

/// A path as the report prints it: relative to the workspace when it is inside it, so that the
/// committed copy does not name the machine's checkout.
fn shown_path(path: &Path) -> String {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    match (fs::canonicalize(path), fs::canonicalize(workspace)) {
        (Ok(real), Ok(root)) => match real.strip_prefix(&root) {
            Ok(inside) => inside.display().to_string(),
            Err(_) => real.display().to_string(),
        },
        _ => path.display().to_string(),
    }
}

pub fn measure(busybox_rootfs: Measured<&Path>) -> Sizes {
    let linux = ch07_microvm::linux::fetched_kernel()
        .map_err(|e| e.to_string())
        .and_then(|(k, i)| {
            let len = |p: &Path| {
                fs::metadata(p)
                    .map(|m| m.len())
                    .map_err(|e| format!("{}: {e}", p.display()))
            };
            Ok((len(&k)?, len(&i)?))
        });
    let function = find_workspace_binary("ch01-process").and_then(|bin| {
        fs::metadata(&bin)
            .map(|m| (shown_path(&bin), m.len()))
            .map_err(|e| format!("{}: {e}", bin.display()))
    });
    Sizes {
        tiny_guest: ch07_microvm::guest::TINY_GUEST_BIN.len() as u64,
        linux,
        layer: busybox_rootfs.and_then(layer),
        function,
    }
}
