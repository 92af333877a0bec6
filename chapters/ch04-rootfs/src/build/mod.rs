//! A small image builder: a `Boxfile` in, an OCI image in the layout out.
//!
//! ```text
//! Boxfile ──parse──▶ stages ──each step──▶ cache key ──hit──▶ reuse the layer
//!                                              └──miss──▶ COPY: files → tar
//!                                                         RUN:  container → upper dir → tar
//!                                                         ENV/WORKDIR/CMD: config only
//!         last stage ──▶ config + manifest (canonical JSON) ──▶ index.json, tagged
//! ```
//!
//! - [`boxfile`]: the parser. [`context`]: what COPY reads, never outside the context.
//! - [`run`]: RUN in a chapter 2–4 container. [`diff`]: a container's changes (an overlay upper
//!   directory) as a reproducible layer tar.
//! - [`cache`]: one entry per step, keyed by (parent, instruction, inputs).
//! - [`paths`]: which paths the image so far has, from its layers' tar headers.
//!
//! Builds are reproducible: no timestamps (every mtime and `created` is 0, or
//! `SOURCE_DATE_EPOCH`), no owners, sorted entries, uncompressed layers, canonical JSON — the same
//! Boxfile and context give the same manifest digest on any day, in any fresh layout.

pub mod boxfile;
mod busybox;
pub mod cache;
pub mod context;
pub mod diff;
mod error;
pub mod paths;
pub mod run;

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use oci_spec::image::{
    Arch, Descriptor, Digest, HistoryBuilder, ImageConfiguration, ImageManifestBuilder, MediaType,
    Os,
};

use crate::image::{OciLayout, ResolvedImage};
use crate::store::{LayerStore, TempDir};

pub use boxfile::{parse_boxfile, Base, Boxfile, Command, Instruction, InstructionKind, Stage};
pub use busybox::{busybox_image, BUSYBOX_BOXFILE};
pub use error::{BuildError, StepError};

use cache::{step_key, BuildCache, CacheEntry, CachedLayer, ConfigState};
use context::{in_image, plan_copy, SourceRoot};
use diff::{rfc3339, source_date_epoch, LayerWriter};
use error::io_err;
use paths::{layer_entries, FsIndex};
use run::{run_step, RunSpec};

/// What to build, and where.
pub struct BuildOptions<'a> {
    /// The build context: COPY sources are relative to it.
    pub context: PathBuf,
    /// The Boxfile; `context/Boxfile` when `None`.
    pub boxfile: Option<PathBuf>,
    /// The name to give the image in the layout's index (`demo:1`); unnamed when `None`.
    pub tag: Option<String>,
    /// Where base images are found and the result goes.
    pub layout: &'a OciLayout,
    /// Where RUN gets the image's layers unpacked, once each.
    pub store: &'a LayerStore,
    /// The build cache (created if missing), e.g. `<data>/build-cache`.
    pub cache_dir: PathBuf,
    /// Told about every step as it starts and ends.
    pub on_step: Option<&'a mut dyn FnMut(&StepEvent)>,
}

/// What a build made.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// The image: its manifest's digest.
    pub manifest_digest: Digest,
    /// The tag it got, if any.
    pub ref_name: Option<String>,
    /// Every step of every stage, FROM lines included, in order.
    pub steps: Vec<StepReport>,
}

/// A layer a step made: (blob digest, diff_id, size in bytes).
pub type StepLayer = (Digest, Digest, u64);

/// One step of a build.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// The stage (0-based).
    pub stage: usize,
    /// The Boxfile line (1-based).
    pub line: usize,
    /// The instruction as written.
    pub instruction: String,
    /// True when the cache had the result and nothing was done. A FROM line does no work and is
    /// always `true`.
    pub cached: bool,
    /// The layer the step made: (blob digest, diff_id, size in bytes). `None` for FROM, ENV,
    /// CMD, and WORKDIR of a directory that exists.
    pub layer: Option<StepLayer>,
    /// How long the step took.
    pub duration: Duration,
    /// The step's cache key (hex); for FROM, the base's manifest digest or `scratch`.
    pub key: String,
}

/// Progress, for the caller to print.
#[derive(Debug, Clone, Copy)]
pub enum StepEvent<'a> {
    /// A step starts (a RUN's output follows on our stdout and stderr).
    Started {
        /// 1-based, over all stages.
        step: usize,
        /// Steps in all.
        total: usize,
        /// The stage (0-based).
        stage: usize,
        /// The Boxfile line.
        line: usize,
        /// The instruction as written.
        instruction: &'a str,
    },
    /// A step ended.
    Finished {
        /// 1-based, over all stages.
        step: usize,
        /// Steps in all.
        total: usize,
        /// What it did.
        report: &'a StepReport,
    },
}

impl fmt::Display for StepEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepEvent::Started {
                step,
                total,
                instruction,
                ..
            } => write!(f, "step {step}/{total} {instruction}"),
            StepEvent::Finished {
                step,
                total,
                report,
            } => {
                write!(f, "step {step}/{total} {}: ", report.instruction)?;
                let what = if report
                    .instruction
                    .split_whitespace()
                    .next()
                    .is_some_and(|w| w.eq_ignore_ascii_case("FROM"))
                {
                    format!("base {}", report.key)
                } else if report.cached {
                    "cached".to_string()
                } else {
                    format!("done in {:.2?}", report.duration)
                };
                match &report.layer {
                    Some((digest, _, size)) => write!(f, "{what}, layer {digest} ({size} bytes)"),
                    None => write!(f, "{what}"),
                }
            }
        }
    }
}

/// Numbers the layer tars written in a build's work directory.
static WORK_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A finished stage.
struct BuiltStage {
    alias: Option<String>,
    image: ResolvedImage,
    /// Its files, once a `COPY --from` needed them.
    files: Option<PathBuf>,
}

/// The state of the stage being built.
struct StageState {
    /// The config the base gave (for what the builder does not change: Entrypoint, User, …).
    base: ImageConfiguration,
    config: ConfigState,
    layers: Vec<(Descriptor, Digest)>,
    history: Vec<oci_spec::image::History>,
    /// The last step's cache key.
    key: String,
    /// The paths of `layers[..indexed]`, read when COPY or WORKDIR first needs them.
    index: FsIndex,
    indexed: usize,
}

impl StageState {
    fn from_image(image: Option<&ResolvedImage>) -> Self {
        let Some(image) = image else {
            return Self {
                base: ImageConfiguration::default(),
                config: ConfigState::default(),
                layers: Vec::new(),
                history: Vec::new(),
                key: "scratch".into(),
                index: FsIndex::default(),
                indexed: 0,
            };
        };
        let run = image.config.config().clone().unwrap_or_default();
        Self {
            base: image.config.clone(),
            config: ConfigState {
                env: run.env().clone().unwrap_or_default(),
                workdir: run.working_dir().clone().unwrap_or_default(),
                cmd: run.cmd().clone(),
            },
            layers: image
                .layers()
                .map(|(d, id)| (d.clone(), id.clone()))
                .collect(),
            history: image.config.history().clone().unwrap_or_default(),
            key: image.manifest_digest.to_string(),
            index: FsIndex::default(),
            indexed: 0,
        }
    }

    /// The paths of the image so far.
    fn index(&mut self, layout: &OciLayout) -> Result<&FsIndex, StepError> {
        while self.indexed < self.layers.len() {
            let entries = layer_entries(layout, &self.layers[self.indexed].0)?;
            self.index.apply(&entries);
            self.indexed += 1;
        }
        Ok(&self.index)
    }

    /// Writes the stage's config and manifest; the image, ready for `COPY --from` or tagging.
    fn write_image(&self, layout: &OciLayout, created: &str) -> Result<ResolvedImage, BuildError> {
        let mut config = self.base.clone();
        let mut run = config.config().clone().unwrap_or_default();
        run.set_env((!self.config.env.is_empty()).then(|| self.config.env.clone()));
        run.set_working_dir((!self.config.workdir.is_empty()).then(|| self.config.workdir.clone()));
        run.set_cmd(self.config.cmd.clone());
        config.set_config(Some(run));
        config.set_created(Some(created.to_string()));
        config.set_architecture(Arch::default());
        config.set_os(Os::default());
        let diff_ids: Vec<Digest> = self.layers.iter().map(|(_, id)| id.clone()).collect();
        let mut rootfs = config.rootfs().clone();
        rootfs.set_typ("layers".to_string());
        rootfs.set_diff_ids(diff_ids.iter().map(|d| d.to_string()).collect());
        config.set_rootfs(rootfs);
        config.set_history((!self.history.is_empty()).then(|| self.history.clone()));

        let config_desc = layout
            .put_json(&config, MediaType::ImageConfig)
            .map_err(BuildError::Image)?;
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config_desc)
            .layers(
                self.layers
                    .iter()
                    .map(|(d, _)| d.clone())
                    .collect::<Vec<_>>(),
            )
            .build()
            .map_err(|e| {
                BuildError::Image(crate::image::ImageError::BadJson {
                    what: "the built manifest".into(),
                    kind: "an image manifest",
                    detail: e.to_string(),
                })
            })?;
        let manifest_desc = layout
            .put_json(&manifest, MediaType::ImageManifest)
            .map_err(BuildError::Image)?;
        Ok(ResolvedImage {
            ref_name: None,
            manifest_digest: manifest_desc.digest().clone(),
            manifest_descriptor: manifest_desc,
            manifest,
            config,
            diff_ids,
        })
    }
}

/// Everything a step needs besides its stage's state.
struct Builder<'a> {
    context: PathBuf,
    layout: &'a OciLayout,
    store: &'a LayerStore,
    file: String,
    cache: BuildCache,
    /// The build's scratch space (under `<cache_dir>/tmp`): layer tars being written, earlier
    /// stages' files for `COPY --from`. Removed when the build ends, however it ends.
    work: TempDir,
    mtime: u64,
    created: String,
    built: Vec<BuiltStage>,
    /// Images named by `COPY --from=<image>`, unpacked.
    image_files: HashMap<String, PathBuf>,
}

// ANCHOR: build
/// Builds the image the Boxfile describes and adds it to the layout's index (tagged
/// `options.tag`). Each step is looked up in the cache first; see [`cache::step_key`].
pub fn build(mut options: BuildOptions) -> Result<BuildReport, BuildError> {
    let boxfile_path = options
        .boxfile
        .clone()
        .unwrap_or_else(|| options.context.join("Boxfile"));
    let file = boxfile_path.display().to_string();
    let text = fs::read_to_string(&boxfile_path).map_err(|source| BuildError::ReadBoxfile {
        path: boxfile_path.clone(),
        source,
    })?;
    let boxfile = parse_boxfile(&text).map_err(|e| e.in_file(&file))?;
    fs::create_dir_all(&options.cache_dir)
        .map_err(BuildError::io("create the build cache", &options.cache_dir))?;
    let work_parent = options.cache_dir.join("tmp");
    fs::create_dir_all(&work_parent).map_err(BuildError::io(
        "create the build's temporary directory",
        &work_parent,
    ))?;
    let mut on_step = options.on_step.take();
    let mtime = source_date_epoch();
    let mut builder = Builder {
        context: options.context.clone(),
        layout: options.layout,
        store: options.store,
        file,
        cache: BuildCache::new(&options.cache_dir),
        work: TempDir::create(&work_parent, "build").map_err(BuildError::io(
            "create the build's work directory in",
            &work_parent,
        ))?,
        mtime,
        created: rfc3339(mtime),
        built: Vec::new(),
        image_files: HashMap::new(),
    };

    let total: usize = boxfile
        .stages
        .iter()
        .map(|s| 1 + s.instructions.len())
        .sum();
    let mut steps = Vec::with_capacity(total);
    let mut tell = |event: StepEvent| {
        if let Some(callback) = on_step.as_mut() {
            callback(&event);
        }
    };
    for (index, stage) in boxfile.stages.iter().enumerate() {
        tell(StepEvent::Started {
            step: steps.len() + 1,
            total,
            stage: index,
            line: stage.line,
            instruction: &stage.text,
        });
        let started = Instant::now();
        let mut state = builder.from(stage)?;
        steps.push(StepReport {
            stage: index,
            line: stage.line,
            instruction: stage.text.clone(),
            cached: true,
            layer: None,
            duration: started.elapsed(),
            key: state.key.clone(),
        });
        tell(StepEvent::Finished {
            step: steps.len(),
            total,
            report: &steps[steps.len() - 1],
        });

        // ANCHOR: step_loop
        for instruction in &stage.instructions {
            tell(StepEvent::Started {
                step: steps.len() + 1,
                total,
                stage: index,
                line: instruction.line,
                instruction: &instruction.text,
            });
            let started = Instant::now();
            let (cached, layer) =
                builder
                    .step(&mut state, instruction)
                    .map_err(|source| BuildError::Step {
                        file: builder.file.clone(),
                        line: instruction.line,
                        instruction: instruction.text.clone(),
                        source: Box::new(source),
                    })?;
            steps.push(StepReport {
                stage: index,
                line: instruction.line,
                instruction: instruction.text.clone(),
                cached,
                layer,
                duration: started.elapsed(),
                key: state.key.clone(),
            });
            tell(StepEvent::Finished {
                step: steps.len(),
                total,
                report: &steps[steps.len() - 1],
            });
        }
        // ANCHOR_END: step_loop

        let image = state.write_image(options.layout, &builder.created)?;
        builder.built.push(BuiltStage {
            alias: stage.alias.clone(),
            image,
            files: None,
        });
    }

    let Some(last) = builder.built.last() else {
        unreachable!("parse_boxfile returns at least one stage")
    };
    let manifest = &last.image.manifest_descriptor;
    options
        .layout
        .add_to_index(manifest, options.tag.as_deref())
        .map_err(BuildError::Image)?;
    Ok(BuildReport {
        manifest_digest: manifest.digest().clone(),
        ref_name: options.tag.clone(),
        steps,
    })
}
// ANCHOR_END: build

impl Builder<'_> {
    /// The state a stage starts with: its base image (from the layout, or an earlier stage).
    fn from(&self, stage: &Stage) -> Result<StageState, BuildError> {
        let name = match &stage.base {
            Base::Scratch => return Ok(StageState::from_image(None)),
            Base::Image(name) => name,
        };
        if let Some(i) = self.stage_index(name) {
            return Ok(StageState::from_image(Some(&self.built[i].image)));
        }
        let image = self.layout.resolve(name).map_err(|e| BuildError::Step {
            file: self.file.clone(),
            line: stage.line,
            instruction: stage.text.clone(),
            source: Box::new(StepError::BaseImage(e)),
        })?;
        Ok(StageState::from_image(Some(&image)))
    }

    /// The earlier stage `name` names: by its alias (`AS build`, case-insensitive) or its
    /// number. `None` for an image name.
    fn stage_index(&self, name: &str) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        self.built
            .iter()
            .position(|s| s.alias.as_deref() == Some(lower.as_str()))
            .or_else(|| name.parse::<usize>().ok().filter(|i| *i < self.built.len()))
    }

    /// Runs one step (or takes it from the cache); returns (cached, layer).
    fn step(
        &mut self,
        state: &mut StageState,
        instruction: &Instruction,
    ) -> Result<(bool, Option<StepLayer>), StepError> {
        let layout = self.layout;
        // What the step reads besides its text, for the key; COPY's plan is needed for that.
        let mut copy_plan = None;
        let inputs = match &instruction.kind {
            InstructionKind::Copy {
                from,
                sources,
                dest,
            } => {
                let (root, kind) = match from {
                    None => (self.context.clone(), "build context".to_string()),
                    Some(name) => (self.files_of(name)?, format!("stage {name}")),
                };
                let root_kind = SourceRoot {
                    dir: &root,
                    kind: &kind,
                };
                let workdir = state.config.workdir.clone();
                let plan = plan_copy(root_kind, sources, dest, &workdir, state.index(layout)?)?;
                let hash = plan.content_hash()?;
                copy_plan = Some(plan);
                serde_json::json!({ "sources": hash, "workdir": state.config.workdir })
            }
            InstructionKind::Run(_) => {
                serde_json::json!({ "env": state.config.env, "workdir": state.config.workdir })
            }
            InstructionKind::Workdir(_) | InstructionKind::Env(_) | InstructionKind::Cmd(_) => {
                serde_json::json!({})
            }
        };
        let key = step_key(&state.key, &instruction.kind, inputs);

        let (cached, entry) = match self.cache.lookup(&key, layout) {
            Some(entry) => (true, entry),
            None => {
                let entry = self.do_step(state, instruction, copy_plan, &key)?;
                // A cache that cannot be written costs the next build time, not this one.
                let _ = self.cache.store(&entry);
                (false, entry)
            }
        };

        state.key = key.clone();
        state.config = entry.config;
        let mut history = HistoryBuilder::default()
            .created(self.created.clone())
            .created_by(instruction.text.clone());
        let layer = match entry.layer {
            Some(layer) => {
                state
                    .layers
                    .push((layer.descriptor(), layer.diff_id.clone()));
                Some((layer.digest, layer.diff_id, layer.size))
            }
            None => {
                history = history.empty_layer(true);
                None
            }
        };
        if let Ok(item) = history.build() {
            state.history.push(item);
        }
        Ok((cached, layer))
    }

    /// The work of a step the cache did not have.
    fn do_step(
        &mut self,
        state: &mut StageState,
        instruction: &Instruction,
        copy_plan: Option<context::CopyPlan>,
        key: &str,
    ) -> Result<CacheEntry, StepError> {
        let mut config = state.config.clone();
        let layer = match &instruction.kind {
            InstructionKind::Env(pairs) => {
                for (k, v) in pairs {
                    config.set_env(k, v);
                }
                None
            }
            InstructionKind::Cmd(command) => {
                config.cmd = Some(command.argv());
                None
            }
            InstructionKind::Workdir(dir) => {
                let rel = in_image(&config.workdir, dir).ok_or_else(|| {
                    StepError::Destination(format!(
                        "WORKDIR {dir:?} climbs above / (too many `..`)"
                    ))
                })?;
                config.workdir = Path::new("/").join(&rel).display().to_string();
                // Created if missing: a layer with the missing directories.
                let index = state.index(self.layout)?;
                if index.exists(&rel) {
                    None
                } else {
                    let mut missing: Vec<&Path> = rel
                        .ancestors()
                        .filter(|p| !p.as_os_str().is_empty() && !index.exists(p))
                        .collect();
                    missing.reverse();
                    Some(self.write_layer(|layer| {
                        for dir in &missing {
                            layer
                                .dir(dir, 0o755)
                                .map_err(io_err("write the layer entry", dir))?;
                        }
                        Ok(())
                    })?)
                }
            }
            InstructionKind::Copy { .. } => {
                let plan = copy_plan.unwrap_or_default();
                Some(self.write_layer(|layer| plan.write(layer))?)
            }
            InstructionKind::Run(command) => {
                // Without root, say so before the store trips over whiteout markers.
                if !nix::unistd::geteuid().is_root() {
                    return Err(StepError::NeedsRoot);
                }
                let lowers = state
                    .layers
                    .iter()
                    .map(|(desc, diff_id)| Ok(self.store.unpacked(self.layout, desc, diff_id)?.0))
                    .collect::<Result<Vec<_>, StepError>>()?;
                let argv = command.argv();
                let spec = RunSpec {
                    argv: &argv,
                    env: &config.env,
                    workdir: &config.workdir,
                    lowers,
                };
                Some(self.write_layer(|layer| run_step(spec, layer))?)
            }
        };
        Ok(CacheEntry {
            key: key.to_string(),
            instruction: instruction.text.clone(),
            layer,
            config,
        })
    }

    // ANCHOR: write_layer
    /// Writes a layer with `fill` into a temporary file, then stores it as a blob. Layers are
    /// plain tars, so the blob's digest is also the diff_id.
    fn write_layer(
        &self,
        fill: impl FnOnce(&mut LayerWriter<BufWriter<File>>) -> Result<(), StepError>,
    ) -> Result<CachedLayer, StepError> {
        let n = WORK_COUNTER.fetch_add(1, Ordering::Relaxed);
        let temp = self.work.path().join(format!("layer-{n}.tar"));
        let file = File::create(&temp).map_err(io_err("create", &temp))?;
        let mut layer = LayerWriter::new(BufWriter::new(file), self.mtime);
        let result = fill(&mut layer).and_then(|()| {
            let (out, _) = layer.finish().map_err(io_err("write", &temp))?;
            out.into_inner()
                .map_err(|e| io_err("write", &temp)(e.into_error()))?
                .sync_all()
                .map_err(io_err("write", &temp))
        });
        let stored = result.and_then(|()| {
            let tar = File::open(&temp).map_err(io_err("open", &temp))?;
            Ok(self.layout.put_blob(tar, MediaType::ImageLayer)?)
        });
        let _ = fs::remove_file(&temp);
        let desc = stored?;
        Ok(CachedLayer {
            digest: desc.digest().clone(),
            size: desc.size(),
            diff_id: desc.digest().clone(),
        })
    }
    // ANCHOR_END: write_layer

    /// The files of an earlier stage (or an image), for `COPY --from`: its layers unpacked on top
    /// of each other into the work directory, once.
    fn files_of(&mut self, name: &str) -> Result<PathBuf, StepError> {
        if let Some(i) = self.stage_index(name) {
            if let Some(files) = &self.built[i].files {
                return Ok(files.clone());
            }
            let target = self.work.path().join(format!("stage-{i}"));
            LayerStore::flatten(self.layout, &self.built[i].image, &target)?;
            self.built[i].files = Some(target.clone());
            return Ok(target);
        }
        if let Some(files) = self.image_files.get(name) {
            return Ok(files.clone());
        }
        let image = self.layout.resolve(name).map_err(|_| {
            let known: Vec<String> = self
                .built
                .iter()
                .enumerate()
                .map(|(i, s)| match &s.alias {
                    Some(a) => format!("{i} ({a})"),
                    None => i.to_string(),
                })
                .collect();
            StepError::NoSuchStage {
                name: name.to_string(),
                known: if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                },
            }
        })?;
        let target = self
            .work
            .path()
            .join(format!("image-{}", self.image_files.len()));
        LayerStore::flatten(self.layout, &image, &target)?;
        self.image_files.insert(name.to_string(), target.clone());
        Ok(target)
    }
}
