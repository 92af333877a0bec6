//! The seed's Docker SDK call, in Rust, on top of this runtime:
//!
//! ```python
//! container = client.containers.run("my-inference-server:v2", detach=True,
//!     device_requests=[DeviceRequest(count=1, capabilities=[["gpu"]])],
//!     mem_limit="16g", cpus=4.0, environment={"BATCH_SIZE": "32"})
//! ```
//!
//! ```no_run
//! # use ch06_oci::builder::{Container, Run};
//! let run = Container::builder("my-inference-server:v2")
//!     .gpus("1")
//!     .mem_limit("16g")
//!     .cpus(4.0)
//!     .env("BATCH_SIZE", "32")
//!     .detach(true)
//!     .run()?;
//! if let Run::Detached(container) = run {
//!     println!("container id: {}", container.id());
//! }
//! # Ok::<(), ch06_oci::OciError>(())
//! ```
//!
//! What an engine (dockerd, podman) does before it calls a runtime, in small: make a bundle
//! from an image (chapter 4's store, flattened into a root filesystem), write `config.json`
//! from the options, then `run` it — the same verb the CLI has.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use ch01_process::exec::put_env;
use ch03_cgroups::limits::quota_for;
use ch04_rootfs::image::OciLayout;
use ch04_rootfs::store::{default_layout_dir, LayerStore};
use ch05_gpu::discover::{discover, HostRoots};
use ch05_gpu::expose::{build_plan, GpuPlan, PlanOptions};
use ch05_gpu::libraries::host_driver_files;
use ch05_gpu::select::parse_gpus_flag;
use serde_json::{json, Value};

use crate::state::Store;
use crate::verbs::create::CreateOptions;
use crate::verbs::{self, Globals};
use crate::OciError;

/// Where the builder writes the bundles it makes: `<dir>/<id>/{config.json,rootfs}`.
pub const BUNDLES_DIR: &str = "/run/boxlab/bundles";

/// What the container is made from.
#[derive(Debug, Clone)]
pub enum Source {
    /// An image in chapter 4's store (`ch04-rootfs pull/build/import` put it there).
    Image(String),
    /// A ready bundle: its `config.json` is the starting point, its rootfs is used in place.
    Bundle(PathBuf),
}

impl From<&str> for Source {
    fn from(reference: &str) -> Self {
        Source::Image(reference.to_string())
    }
}

impl From<&Path> for Source {
    fn from(bundle: &Path) -> Self {
        Source::Bundle(bundle.to_path_buf())
    }
}

/// How `run` ended: the command's exit status (foreground), or a running container.
#[derive(Debug)]
pub enum Run {
    Exited(i32),
    Detached(Container),
}

/// A container started by [`ContainerBuilder::run`] with `detach(true)`.
#[derive(Debug)]
pub struct Container {
    id: String,
    store: Store,
    bundle: PathBuf,
}

/// The options, as docker's `containers.run` names them.
#[derive(Debug, Clone)]
pub struct ContainerBuilder {
    source: Source,
    name: Option<String>,
    command: Vec<String>,
    env: Vec<(String, String)>,
    mem_limit: Option<String>,
    cpus: Option<f64>,
    gpus: Option<String>,
    gpu_host: HostRoots,
    ports: Vec<String>,
    detach: bool,
    root: PathBuf,
    images: PathBuf,
}

impl Container {
    /// Starts describing a container made from `source`: an image reference or a bundle path.
    pub fn builder(source: impl Into<Source>) -> ContainerBuilder {
        ContainerBuilder {
            source: source.into(),
            name: None,
            command: Vec::new(),
            env: Vec::new(),
            mem_limit: None,
            cpus: None,
            gpus: None,
            gpu_host: HostRoots::default(),
            ports: Vec::new(),
            detach: false,
            root: crate::DEFAULT_ROOT.into(),
            images: ch04_rootfs::store::default_root(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The OCI state, as `state` prints it.
    pub fn state(&self) -> Result<String, OciError> {
        verbs::state::state_json(&self.store, &self.id)
    }

    /// Sends `signal` to the container's PID 1 (`kill`).
    pub fn kill(&self, signal: nix::sys::signal::Signal) -> Result<(), OciError> {
        verbs::kill::kill(&self.store, &self.id, signal, false)
    }

    /// `delete --force`, and the bundle the builder made.
    pub fn remove(self) -> Result<(), OciError> {
        let deleted = verbs::delete::delete(&self.store, &self.id, true);
        remove_bundle(&self.bundle);
        deleted
    }
}

impl ContainerBuilder {
    /// The container id (default: `boxlab-<pid>-<n>`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The command, instead of the image's (or the bundle's) own.
    pub fn command<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.command = args.into_iter().map(Into::into).collect();
        self
    }

    /// One more environment variable (docker's `environment={...}`).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Memory limit, docker's notation: `16g`, `512m` (chapter 3 parses it).
    pub fn mem_limit(mut self, limit: impl Into<String>) -> Self {
        self.mem_limit = Some(limit.into());
        self
    }

    /// CPU limit in CPUs: `4.0` is four CPUs' worth of time per period (a CFS quota).
    pub fn cpus(mut self, cpus: f64) -> Self {
        self.cpus = Some(cpus);
        self
    }

    /// GPUs, docker's `--gpus` forms: `all`, `2`, `device=0,1`, `device=GPU-<uuid>` (chapter 5).
    pub fn gpus(mut self, request: impl Into<String>) -> Self {
        self.gpus = Some(request.into());
        self
    }

    /// Where chapter 5 looks for the GPUs (default: the host's `/dev` and `/proc`); a fake
    /// host tree in tests and labs without a GPU.
    pub fn gpu_host(mut self, roots: HostRoots) -> Self {
        self.gpu_host = roots;
        self
    }

    /// A published port, `[HOST_IP:]HOST_PORT:CONTAINER_PORT` (docker's `ports={'80/tcp': 8080}`):
    /// the container gets a veth, and a port keeper forwards (see [`crate::ports`]).
    pub fn port(mut self, mapping: impl Into<String>) -> Self {
        self.ports.push(mapping.into());
        self
    }

    /// Return at once with the container running, instead of waiting for it.
    pub fn detach(mut self, detach: bool) -> Self {
        self.detach = detach;
        self
    }

    /// The runtime's state directory (`--root`).
    pub fn root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = root.into();
        self
    }

    /// Chapter 4's data directory, where images are (`--data`; default `/var/lib/boxlab`).
    pub fn images(mut self, data: impl Into<PathBuf>) -> Self {
        self.images = data.into();
        self
    }

    // ANCHOR: builder_run
    /// Makes the bundle, then `run`s it: the exit status, or (with `detach`) the container.
    /// On any error, the bundle it made is removed again.
    pub fn run(self) -> Result<Run, OciError> {
        let ports = self
            .ports
            .iter()
            .map(|spec| spec.parse::<ch02_namespaces::PortMapping>())
            .collect::<Result<Vec<_>, _>>()?;
        let id = self.name.clone().unwrap_or_else(next_id);
        crate::state::check_id(&id)?;
        let bundle = Path::new(BUNDLES_DIR).join(&id);
        if bundle.exists() {
            return Err(OciError::Exists { id, dir: bundle });
        }
        let made = self.make_bundle(&bundle);
        let store = Store::new(&self.root);
        let options = CreateOptions {
            bundle: bundle.clone(),
            ports,
            ..CreateOptions::default()
        };
        let ran = made.and_then(|()| {
            verbs::run::run(&store, &id, &options, &Globals::default(), self.detach)
        });
        match ran {
            Ok(_) if self.detach => Ok(Run::Detached(Container { id, store, bundle })),
            Ok(code) => {
                remove_bundle(&bundle);
                Ok(Run::Exited(code))
            }
            Err(e) => {
                remove_bundle(&bundle);
                Err(e)
            }
        }
    }
    // ANCHOR_END: builder_run

    /// `<bundle>/config.json` (and `<bundle>/rootfs` for an image).
    fn make_bundle(&self, bundle: &Path) -> Result<(), OciError> {
        fs::create_dir_all(bundle).map_err(|e| OciError::io("making the bundle", bundle, e))?;
        let mut config = match &self.source {
            Source::Bundle(dir) => {
                let loaded = crate::config::load_bundle(dir)?;
                let mut config = serde_json::to_value(&loaded.spec).map_err(json_error)?;
                // The rootfs stays where it is: an absolute root.path.
                config["root"]["path"] = json!(loaded.rootfs);
                config
            }
            Source::Image(reference) => self.unpack_image(reference, bundle)?,
        };
        self.apply_options(&mut config, bundle)?;
        let text = serde_json::to_string_pretty(&config).map_err(json_error)?;
        let path = bundle.join("config.json");
        fs::write(&path, text).map_err(|e| OciError::io("writing config.json", &path, e))
    }

    // ANCHOR: builder_image
    /// Chapter 4: the image's layers flattened into `<bundle>/rootfs`; its config's
    /// Entrypoint/Cmd, Env and WorkingDir become the process.
    fn unpack_image(&self, reference: &str, bundle: &Path) -> Result<Value, OciError> {
        let image_error = |e: &dyn std::fmt::Display| OciError::Image {
            reference: reference.to_string(),
            reason: e.to_string(),
        };
        let layout_dir = if self.images == ch04_rootfs::store::default_root() {
            default_layout_dir()
        } else {
            self.images.join("oci")
        };
        let layout = OciLayout::open(&layout_dir).map_err(|e| image_error(&e))?;
        let image = layout.resolve(reference).map_err(|e| image_error(&e))?;
        let rootfs = bundle.join("rootfs");
        LayerStore::flatten(&layout, &image, &rootfs).map_err(|e| image_error(&e))?;
        let parts =
            ch04_rootfs::image_run::image_process(&image, &[]).map_err(|e| image_error(&e))?;
        let mut config =
            serde_json::to_value(verbs::spec::default_spec(false)).map_err(json_error)?;
        config["root"] = json!({"path": "rootfs", "readonly": false});
        config["process"]["args"] = json!(parts.args);
        if let Some(env) = parts.env {
            config["process"]["env"] = json!(env);
        }
        if let Some(cwd) = parts.cwd {
            config["process"]["cwd"] = json!(cwd);
        }
        Ok(config)
    }
    // ANCHOR_END: builder_image

    // ANCHOR: builder_options
    /// The options, as config.json fields: what docker's engine writes for the same call.
    fn apply_options(&self, config: &mut Value, bundle: &Path) -> Result<(), OciError> {
        if !self.command.is_empty() {
            config["process"]["args"] = json!(self.command);
        }
        let mut env: Vec<String> = config["process"]["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|pair| pair.as_str().map(str::to_string))
            .collect();
        for (key, value) in &self.env {
            put_env(&mut env, format!("{key}={value}"));
        }
        let resources = &mut config["linux"]["resources"];
        if let Some(limit) = &self.mem_limit {
            let bytes = ch03_cgroups::quantity::parse_docker_bytes(limit)?;
            resources["memory"]["limit"] = json!(bytes);
        }
        if let Some(cpus) = self.cpus {
            // Chapter 3 counts thousandths of a CPU (`--cpus 0.5` is 500).
            let millis = (cpus * 1000.0).round();
            if !(millis >= 1.0 && millis.is_finite()) {
                return Err(OciError::BadOption {
                    option: "cpus".into(),
                    value: cpus.to_string(),
                    hint: "a positive number of CPUs, at least 0.001, e.g. 0.5 or 4",
                });
            }
            // docker: --cpus=N is a quota of N × the 100 ms period, as chapter 3 computes it.
            let quota = quota_for(millis as u64);
            resources["cpu"]["period"] = json!(quota.period_us);
            resources["cpu"]["quota"] = json!(quota.quota_us);
        }
        if let Some(request) = &self.gpus {
            let plan = self.gpu_plan(request)?;
            add_gpus(config, &mut env, &plan, bundle)?;
        }
        config["process"]["env"] = json!(env);
        Ok(())
    }
    // ANCHOR_END: builder_options

    /// Chapter 5's plan for `--gpus request` on the host (or the fake host) given.
    fn gpu_plan(&self, request: &str) -> Result<GpuPlan, OciError> {
        let gpu_error = |e: &dyn std::fmt::Display| OciError::BadOption {
            option: "gpus".into(),
            value: format!("{request}: {e}"),
            hint: "see `ch05-gpu --help` for the forms docker's --gpus takes",
        };
        let selection = parse_gpus_flag(request).map_err(|e| gpu_error(&e))?;
        let discovery = discover(&self.gpu_host).map_err(|e| gpu_error(&e))?;
        let driver = host_driver_files(&selection.effective_capabilities());
        build_plan(&discovery, &selection, &driver, &PlanOptions::default())
            .map_err(|e| gpu_error(&e))
    }
}

// ANCHOR: builder_gpus
/// A GPU plan as config.json: each node a `linux.devices` entry with the numbers and mode
/// chapter 5 found (the same as the host's), which the runtime also allows in the devices
/// cgroup (as runc does: see `config::device_rules`); the driver files bound read-only; the
/// plan's environment.
fn add_gpus(
    config: &mut Value,
    env: &mut Vec<String>,
    plan: &GpuPlan,
    bundle: &Path,
) -> Result<(), OciError> {
    for node in &plan.devices {
        push(
            config,
            &["linux", "devices"],
            json!({
                "path": Path::new("/dev").join(&node.name),
                "type": "c", "major": node.major, "minor": node.minor,
                "fileMode": node.mode & 0o777, "uid": 0, "gid": 0,
            }),
        );
    }
    for bind in &plan.binds {
        let mode = if bind.readonly { "ro" } else { "rw" };
        push(
            config,
            &["mounts"],
            json!({
                "destination": bind.target, "type": "bind", "source": bind.source,
                "options": ["rbind", mode],
            }),
        );
    }
    for file in &plan.files {
        let name = file.target.to_string_lossy().replace('/', "_");
        let host = bundle.join(name);
        fs::write(&host, &file.contents)
            .map_err(|e| OciError::io("writing a GPU driver file", &host, e))?;
        push(
            config,
            &["mounts"],
            json!({
                "destination": file.target, "type": "bind", "source": host,
                "options": ["rbind", "ro"],
            }),
        );
    }
    // Over the image's environment, as chapter 5 does: a PATH or LD_LIBRARY_PATH the image
    // has keeps its directories after the driver's; no key appears twice.
    *env = plan.env_over(env);
    Ok(())
}
// ANCHOR_END: builder_gpus

/// Appends `value` to the array at `path`, making the objects and the array as needed.
fn push(config: &mut Value, path: &[&str], value: Value) {
    let mut at = config;
    for key in path {
        if !at.is_object() {
            *at = json!({});
        }
        at = &mut at[*key];
    }
    if !at.is_array() {
        *at = json!([]);
    }
    if let Some(list) = at.as_array_mut() {
        list.push(value);
    }
}

fn next_id() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "boxlab-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes a bundle the builder made, and `/run/boxlab/bundles` once empty.
fn remove_bundle(bundle: &Path) {
    let _ = fs::remove_dir_all(bundle);
    let _ = fs::remove_dir(BUNDLES_DIR);
}

fn json_error(e: serde_json::Error) -> OciError {
    OciError::Config {
        path: PathBuf::from("config.json"),
        reason: e.to_string(),
    }
}
