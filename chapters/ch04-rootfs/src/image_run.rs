//! Running a container from an image: resolve it, get its layers from the store (unpacked once),
//! stack them with overlayfs under a fresh writable layer, and start the image's command.

use std::fs;
use std::path::{Path, PathBuf};

use ch01_process::exec::Program;
use ch02_namespaces::Isolation;

use crate::image::{ImageError, OciLayout, ResolvedImage};
use crate::store::{LayerStore, StoreError};
use crate::{with_layers, RootfsError};

/// Where running containers keep their writable layer: under `/run`, so a reboot clears it.
pub const CONTAINERS_DIR: &str = "/run/boxlab/containers";

/// Errors of `run <image>`.
#[derive(Debug, thiserror::Error)]
pub enum ImageRunError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error(
        "the image has no command (neither Entrypoint nor Cmd in its config): give one after `--`"
    )]
    NoCommand,
    #[error(transparent)]
    Exec(#[from] ch01_process::exec::ExecError),
    #[error("making the container directory {dir}: {source}")]
    ContainerDir {
        dir: PathBuf,
        source: std::io::Error,
    },
}

// ANCHOR: image_command
/// What an image's config says to run, as strings: Entrypoint + (our command, or Cmd), its Env
/// and WorkingDir — what `docker run IMAGE [CMD]` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageProcess {
    pub args: Vec<String>,
    /// `None`: the image says nothing about the environment.
    pub env: Option<Vec<String>>,
    pub cwd: Option<String>,
}

/// The [`ImageProcess`] of `image` with `command` (empty: the image's Cmd).
pub fn image_process(
    image: &ResolvedImage,
    command: &[String],
) -> Result<ImageProcess, ImageRunError> {
    let config = image.config.config().clone().unwrap_or_default();
    let mut args: Vec<String> = config.entrypoint().clone().unwrap_or_default();
    if command.is_empty() {
        args.extend(config.cmd().clone().unwrap_or_default());
    } else {
        args.extend(command.iter().cloned());
    }
    if args.is_empty() {
        return Err(ImageRunError::NoCommand);
    }
    Ok(ImageProcess {
        args,
        env: config.env().clone(),
        cwd: config.working_dir().clone().filter(|d| !d.is_empty()),
    })
}

/// The program an image's config says to run (see [`image_process`]).
pub fn image_program(image: &ResolvedImage, command: &[String]) -> Result<Program, ImageRunError> {
    let process = image_process(image, command)?;
    let mut program = Program::new(&process.args)?;
    if let Some(env) = &process.env {
        program = program.with_env(env)?;
    }
    if let Some(dir) = &process.cwd {
        program = program.with_cwd(dir)?;
    }
    Ok(program)
}
// ANCHOR_END: image_command

/// A container's own directory (upper, work, merged); removed on drop, with its empty parents.
#[derive(Debug)]
pub struct ContainerDir(PathBuf);

impl ContainerDir {
    /// Makes `<CONTAINERS_DIR>/<id>`.
    pub fn create(id: &str) -> Result<Self, ImageRunError> {
        let dir = Path::new(CONTAINERS_DIR).join(id);
        fs::create_dir_all(&dir).map_err(|source| ImageRunError::ContainerDir {
            dir: dir.clone(),
            source,
        })?;
        Ok(ContainerDir(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ContainerDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
        // /run/boxlab/containers and /run/boxlab go too once empty (another container may still
        // be using them: then remove_dir fails and they stay).
        for parent in self.0.ancestors().skip(1).take(2) {
            if fs::remove_dir(parent).is_err() {
                break;
            }
        }
    }
}

// ANCHOR: prepare_image
/// Resolves `reference` in `layout`, makes sure its layers are in `store`, and returns the
/// isolation with the overlay root added, the program to run and the container directory.
pub fn prepare_image_container(
    layout: &OciLayout,
    store: &LayerStore,
    reference: &str,
    command: &[String],
    isolation: Isolation,
    readonly: bool,
    mut on_layer: impl FnMut(&str, bool),
) -> Result<(Isolation, Program, ContainerDir), ImageRunError> {
    let image = layout.resolve(reference)?;
    let mut lowers = Vec::new();
    for (descriptor, diff_id) in image.layers() {
        let (path, cached) = store.unpacked(layout, descriptor, diff_id)?;
        on_layer(diff_id.as_ref(), cached);
        lowers.push(path);
    }
    let program = image_program(&image, command)?;
    let id = format!(
        "{}-{}",
        &image.manifest_digest.digest()[..12],
        std::process::id()
    );
    let dir = ContainerDir::create(&id)?;
    let isolation = with_layers(isolation, lowers, dir.path(), readonly)?;
    Ok((isolation, program, dir))
}
// ANCHOR_END: prepare_image
