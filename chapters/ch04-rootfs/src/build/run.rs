//! RUN: a command in a container on the image so far, whose writes become the next layer.
//!
//! ```text
//!   merged/  the container's /              (overlay, mounted inside its mount namespace)
//!   upper/   what the command wrote         → diffed into a layer (diff.rs)
//!   lowers   the layers so far, unpacked once each in the layer store (an empty dir for scratch)
//! ```
//!
//! Everything the container needs is chapter 2–4's: [`Isolation::container_defaults`] for the
//! namespaces, [`with_layers`] for the overlay root, [`ContainerDir`] for the writable layer under
//! `/run/boxlab/containers`, removed when the step ends, whether it worked or not.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ch01_process::exec::{Program, DEFAULT_PATH};
use ch02_namespaces::Isolation;

use crate::image_run::ContainerDir;
use crate::overlay::overlay_available;
use crate::with_layers;

use super::diff::{diff_upper, LayerWriter};
use super::error::{io_err, StepError};

static RUN_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The mount points a container's init makes in its root if the image lacks them. They are the
/// runtime's, not the command's: an empty one that no lower layer has is left out of the layer.
const RUNTIME_MOUNT_POINTS: [&str; 3] = ["proc", "dev", "sys"];

/// What a RUN step runs.
#[derive(Debug)]
pub struct RunSpec<'a> {
    /// The command.
    pub argv: &'a [String],
    /// The accumulated ENV (`PATH` is added when it is missing, as Docker does).
    pub env: &'a [String],
    /// The accumulated WORKDIR (absolute; empty for `/`), created if missing.
    pub workdir: &'a str,
    /// The image so far, unpacked: layer directories, lowest first.
    pub lowers: Vec<PathBuf>,
}

// ANCHOR: run_step
/// Runs `spec` in a container on an overlay of `spec.lowers` and writes what it changed into
/// `layer`. A command that fails is an error ([`StepError::RunFailed`]); the container's
/// directory goes either way.
pub fn run_step<W: Write>(spec: RunSpec<'_>, layer: &mut LayerWriter<W>) -> Result<(), StepError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(StepError::NeedsRoot);
    }
    if !overlay_available() {
        return Err(StepError::NoOverlay);
    }
    let setup = |e: &dyn std::fmt::Display| StepError::RunSetup(e.to_string());
    let id = format!(
        "build-{}-{}",
        std::process::id(),
        RUN_COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let dir = ContainerDir::create(&id).map_err(|e| setup(&e))?;

    let mut lowers = spec.lowers;
    if lowers.is_empty() {
        // FROM scratch, nothing copied yet: overlayfs needs a lower layer, so an empty one.
        let empty = dir.path().join("empty");
        fs::create_dir(&empty).map_err(io_err("create", &empty))?;
        lowers.push(empty);
    }
    let lower_dirs = lowers.clone();
    let isolation = with_layers(Isolation::container_defaults(), lowers, dir.path(), false)
        .map_err(|e| setup(&e))?;
    let workdir = if spec.workdir.is_empty() {
        "/".to_string()
    } else {
        spec.workdir.to_string()
    };
    // Runs in the container after its root is switched, so the directory lands in `upper`.
    let mkdir = workdir.clone();
    let isolation = isolation.child_hook(Arc::new(move || {
        fs::create_dir_all(&mkdir).map_err(|e| format!("creating WORKDIR {mkdir}: {e}"))
    }));

    let mut env = spec.env.to_vec();
    if !env.iter().any(|kv| kv.starts_with("PATH=")) {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    let program = Program::new(spec.argv)
        .and_then(|p| p.with_env(&env))
        .and_then(|p| p.with_cwd(&workdir))
        .map_err(|e| setup(&e))?;

    let child = isolation.spawn(&program).map_err(|e| setup(&e))?;
    let status = child.wait().map_err(|e| setup(&e))?;
    if !status.success() {
        return Err(StepError::RunFailed { status });
    }

    let upper = dir.path().join("upper");
    drop_runtime_mount_points(&upper, &lower_dirs);
    diff_upper(&upper, layer).map_err(io_err("turn the container's changes into a layer", &upper))
    // `dir` drops here: the container's directory is removed.
}
// ANCHOR_END: run_step

fn drop_runtime_mount_points(upper: &Path, lowers: &[PathBuf]) {
    for name in RUNTIME_MOUNT_POINTS {
        let in_lower = lowers
            .iter()
            .any(|l| fs::symlink_metadata(l.join(name)).is_ok());
        if !in_lower {
            // remove_dir only removes an empty directory: one the command filled stays.
            let _ = fs::remove_dir(upper.join(name));
        }
    }
}
