//! What can go wrong in a build, each error naming the Boxfile, the line and the instruction.

use std::io;
use std::path::PathBuf;

use ch02_namespaces::Exit;

use crate::image::ImageError;
use crate::store::StoreError;

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Boxfile does not parse.
    #[error("{file} line {line}: {problem}")]
    Parse {
        /// The Boxfile (`Boxfile` when parsed from text).
        file: String,
        /// The line the instruction starts on (1-based).
        line: usize,
        /// The instruction keyword as written (empty when the line has none).
        instruction: String,
        /// What is wrong and what to do.
        problem: String,
    },

    /// The Boxfile could not be read.
    #[error("could not read the Boxfile {path}: {source}; give the right context directory, or the Boxfile with --file")]
    ReadBoxfile {
        /// Where we looked.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },

    /// A step failed.
    #[error("{file} line {line}, `{instruction}`: {source}")]
    Step {
        /// The Boxfile.
        file: String,
        /// The step's line (1-based).
        line: usize,
        /// The instruction as written.
        instruction: String,
        /// What went wrong (boxed: some causes are large).
        #[source]
        source: Box<StepError>,
    },

    /// Setting up the build (the cache directory) or writing the final image failed.
    #[error("build: could not {action} {path}: {source}")]
    Io {
        /// What we tried.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },

    /// Writing the image (manifest, config, index) failed.
    #[error("build: writing the image into the layout failed: {0}")]
    Image(#[source] ImageError),

    /// The layer store could not be opened.
    #[error("build: {0}")]
    Store(#[source] StoreError),

    /// The host has no static busybox to build [`busybox_image`](super::busybox_image) from.
    #[error("build: {0}")]
    Busybox(#[from] labkit::RootfsError),
}

impl BuildError {
    /// A [`BuildError::Io`] for `action` on `path`, to hand to `map_err`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| BuildError::Io {
            action,
            path,
            source,
        }
    }

    /// The step's error, when a step failed.
    pub fn step_error(&self) -> Option<&StepError> {
        match self {
            BuildError::Step { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The line of the Boxfile the error is about, if it is about one.
    pub fn line(&self) -> Option<usize> {
        match self {
            BuildError::Parse { line, .. } | BuildError::Step { line, .. } => Some(*line),
            _ => None,
        }
    }

    /// Names the Boxfile in a parse error (parse_boxfile only knows the text).
    pub(crate) fn in_file(self, name: &str) -> Self {
        match self {
            BuildError::Parse {
                line,
                instruction,
                problem,
                ..
            } => BuildError::Parse {
                file: name.to_string(),
                line,
                instruction,
                problem,
            },
            other => other,
        }
    }
}

/// Why one step failed (wrapped in [`BuildError::Step`], which names the line).
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// `FROM name`: the image is not in the layout.
    #[error("base image not found: {0}; pull or import it first, build it with a tag, or use `FROM scratch`")]
    BaseImage(#[source] ImageError),

    /// `COPY --from=NAME`: no earlier stage has that name or number.
    #[error("no earlier stage is called {name:?} (stages so far: {known}); name a stage with `FROM … AS {name}` above this line")]
    NoSuchStage {
        /// The name given.
        name: String,
        /// The stages defined before this line.
        known: String,
    },

    /// A COPY source climbs out of the build context (or the stage it copies from).
    #[error("source {source_path:?} is outside the {root_kind} ({root}); COPY can only read files inside it: move the file into the context")]
    OutsideContext {
        /// The source as written.
        source_path: String,
        /// "build context" or "stage …".
        root_kind: String,
        /// The directory it must stay in.
        root: PathBuf,
    },

    /// A COPY source does not exist.
    #[error("source {source_path:?} not found at {path}; COPY sources are relative to the {root_kind}: check the name")]
    SourceMissing {
        /// The source as written.
        source_path: String,
        /// Where we looked.
        path: PathBuf,
        /// "build context" or "stage …".
        root_kind: String,
    },

    /// A COPY destination that cannot work with its sources.
    #[error("{0}")]
    Destination(String),

    /// `RUN` without root: overlayfs and namespaces need it.
    #[error("RUN needs root (it mounts an overlay and creates namespaces); run the build as root, or replace RUN with COPY of files built elsewhere")]
    NeedsRoot,

    /// `RUN` on a kernel without overlayfs.
    #[error(
        "RUN needs overlayfs, which this kernel does not have; load it with `modprobe overlay`"
    )]
    NoOverlay,

    /// The RUN container could not be set up or started.
    #[error("could not start the RUN container: {0}")]
    RunSetup(String),

    /// The RUN command failed.
    #[error("the command {status}; fix the command (its output is above) and build again")]
    RunFailed {
        /// How it ended.
        status: Exit,
    },

    /// Getting the layers of the image so far into the layer store failed.
    #[error(transparent)]
    Store(#[from] StoreError),

    /// Reading or writing a blob of the layout failed.
    #[error(transparent)]
    Image(#[from] ImageError),

    /// A file operation of the step failed.
    #[error("could not {action} {path}: {source}")]
    Io {
        /// What we tried.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

/// `map_err` helper: a file operation that failed.
pub(crate) fn io_err(
    action: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> StepError {
    let path = path.into();
    move |source| StepError::Io {
        action,
        path,
        source,
    }
}
