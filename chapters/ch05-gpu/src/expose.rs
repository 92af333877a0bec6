//! From "these GPUs" to "what the container gets": a [`GpuPlan`] — the device nodes for its
//! `/dev`, the driver files to bind, the environment, and the device numbers the devices cgroup
//! must allow. The plan is plain data (tests check it without a GPU); [`GpuPlan::extend_spec`]
//! hands it to chapter 4's root filesystem.
//!
//! ## `CUDA_VISIBLE_DEVICES` and `NVIDIA_VISIBLE_DEVICES`
//!
//! Inside the container only the chosen `/dev/nvidiaN` nodes exist (and the devices cgroup
//! refuses the others), so CUDA enumerates just those GPUs and numbers them from 0. The plan
//! therefore sets:
//!
//! - `NVIDIA_VISIBLE_DEVICES` to the chosen GPUs' UUIDs (host indexes where the driver gave no
//!   UUID), as docker does: the *host's* names, which stay meaningful to tools such as
//!   `nvidia-smi` and to anyone reading the container's environment;
//! - `CUDA_VISIBLE_DEVICES` to `0,…,n-1`: CUDA's *own* numbering of what it can open. The
//!   toolkit leaves it unset and relies on the nodes alone; setting it explicitly costs nothing,
//!   documents the renumbering, and keeps a program from reaching a GPU whose node leaked in by
//!   some other way (a privileged container, a bind of the host's `/dev`).
//! - `CUDA_DEVICE_ORDER=PCI_BUS_ID`, so that CUDA numbers the visible GPUs in bus order — the
//!   order of the index list, and of `NVIDIA_VISIBLE_DEVICES` — instead of "fastest first".
//!
//! ## The dynamic linker
//!
//! The bound libraries are not in the image's `/etc/ld.so.cache`. Two ways to fix that:
//! run the image's `ldconfig` in the container before the command (what the toolkit's hook
//! does), or point `LD_LIBRARY_PATH` at the library directories. A chapter 4 child hook runs
//! inside the container's root but cannot easily run a program there, a busybox image has no
//! `ldconfig`, and a read-only root cannot take a new cache — so [`LdCache::LdLibraryPath`] is
//! the default. The plan always binds `/etc/ld.so.conf.d/boxlab-nvidia.conf` listing the
//! directories, so an image that does run `ldconfig` (or [`LdCache::Ldconfig`], which wraps the
//! command in `ldconfig && exec …`) picks them up the ordinary way.

use std::fs;
use std::path::{Path, PathBuf};

use ch01_process::exec::{env_key, put_env};
use ch04_rootfs::pivot::{BindMount, DeviceNode, RootfsSpec};

use crate::discover::{DeviceInfo, Discovery};
use crate::libraries::DriverFiles;
use crate::mps::{MpsError, MpsOptions};
use crate::select::{resolve, GpuRequest, GpuSelection, SelectError};

/// The directories of a container's default `PATH`; driver programs elsewhere get theirs added.
pub const DEFAULT_PATH_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// The drop-in file that lists the driver's library directories for the container's `ldconfig`.
pub const LD_SO_CONF: &str = "/etc/ld.so.conf.d/boxlab-nvidia.conf";

/// How the container's dynamic linker finds the bound libraries (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LdCache {
    /// `LD_LIBRARY_PATH` lists the library directories. Works in any image, read-only too.
    #[default]
    LdLibraryPath,
    /// The command runs after the image's `ldconfig` ([`GpuPlan::wrap_argv`]).
    Ldconfig,
}

impl LdCache {
    /// Refuses [`LdCache::Ldconfig`] for a container whose root filesystem is the host's own
    /// `/`: `ldconfig` there would rewrite the host's `/etc/ld.so.cache`.
    /// [`GpuPlan::extend_spec`] checks this for every caller; a command line can check it too
    /// before discovery, which fails first on a host without a GPU.
    pub fn check_rootfs(self, rootfs: &Path) -> Result<(), ExposeError> {
        if self == LdCache::Ldconfig && is_host_root(rootfs) {
            return Err(ExposeError::LdconfigOnHostRoot {
                rootfs: rootfs.to_path_buf(),
            });
        }
        Ok(())
    }
}

/// Whether `rootfs` is the host's own `/` (by another name too: `/./`, a link to it).
fn is_host_root(rootfs: &Path) -> bool {
    fs::canonicalize(rootfs).is_ok_and(|p| p == Path::new("/"))
}

/// Options beyond the selection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanOptions {
    pub mps: MpsOptions,
    pub ld_cache: LdCache,
}

/// A file the plan generates and binds read-only at `target` (written by
/// [`GpuPlan::extend_spec`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    pub target: PathBuf,
    pub contents: String,
}

/// Everything the container needs for its GPUs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpuPlan {
    /// Host nodes to appear as `/dev/<name>` inside (same major, minor and mode: they are
    /// bind-mounted, so they *are* the host's nodes), with the numbers and mode discovery read
    /// (or a CDI spec gave), so that a runtime writing them elsewhere need not look again.
    pub devices: Vec<DeviceInfo>,
    /// Driver libraries and programs (read-only), the MPS pipe directory (read-write).
    pub binds: Vec<BindMount>,
    /// `KEY=value` pairs for the container's environment.
    pub env: Vec<String>,
    /// `(major, minor)` of every character device above: what the devices cgroup must allow.
    pub allow: Vec<(u32, u32)>,
    /// Files to generate and bind (the `ld.so.conf.d` entry).
    pub files: Vec<GeneratedFile>,
    /// Whether the command must run after `ldconfig` in the container ([`LdCache::Ldconfig`]).
    pub run_ldconfig: bool,
    /// What the plan could not do or the user should know, one sentence each.
    pub notes: Vec<String>,
}

/// Building or applying a plan failed.
#[derive(Debug, thiserror::Error)]
pub enum ExposeError {
    #[error(transparent)]
    Select(#[from] SelectError),
    #[error(transparent)]
    Mps(#[from] MpsError),
    #[error("{path} is missing: every GPU needs the control device {name}; load the driver (`nvidia-smi` creates the nodes) or check the --dev root")]
    MissingControl { name: &'static str, path: PathBuf },
    #[error("MPS options were given, but no GPU was selected; add --gpus")]
    MpsWithoutGpu,
    #[error("writing the generated file for {target} at {path}: {source}; is the state directory writable?")]
    WriteFile {
        target: PathBuf,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--ldconfig with --rootfs / ({rootfs} is the host's own root) would run ldconfig on the host's own files and rewrite its /etc/ld.so.cache; leave --ldconfig out (LD_LIBRARY_PATH is set instead)")]
    LdconfigOnHostRoot { rootfs: PathBuf },
}

// ANCHOR: plan
/// The plan for `selection` on a host described by `discovery`, with the driver files found by
/// [`crate::libraries::driver_files`].
pub fn build_plan(
    discovery: &Discovery,
    selection: &GpuSelection,
    driver: &DriverFiles,
    options: &PlanOptions,
) -> Result<GpuPlan, ExposeError> {
    let mut plan = GpuPlan::default();
    let mps_asked = options.mps != MpsOptions::default();
    if selection.request == GpuRequest::Nothing {
        // `void`: not even the driver.
        return if mps_asked {
            Err(ExposeError::MpsWithoutGpu)
        } else {
            Ok(plan)
        };
    }
    let gpus = resolve(selection, discovery)?;
    options.mps.validate()?;
    if mps_asked && gpus.is_empty() {
        return Err(ExposeError::MpsWithoutGpu);
    }

    // The chosen GPUs, then the control devices every CUDA process opens.
    for gpu in &gpus {
        plan.add_device(&gpu.node);
    }
    let ctl = discovery
        .control_device("nvidiactl")
        .ok_or_else(|| ExposeError::MissingControl {
            name: "nvidiactl",
            path: discovery.roots.dev.join("nvidiactl"),
        })?;
    plan.add_device(ctl);
    for name in ["nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset"] {
        match discovery.control_device(name) {
            Some(device) => plan.add_device(device),
            None if name == "nvidia-uvm" => plan.notes.push(
                "the host has no /dev/nvidia-uvm, without which CUDA programs fail; create it with `nvidia-modprobe -u -c=0` on the host".into(),
            ),
            None => {}
        }
    }

    // The driver's userspace, read-only at the same paths.
    for file in driver.libraries.iter().chain(&driver.binaries) {
        plan.binds.push(BindMount {
            source: file.clone(),
            target: file.clone(),
            readonly: true,
        });
    }
    // A program outside the usual PATH (a driver under /usr/local/nvidia/bin) is bound there,
    // so the container's PATH must lead to it.
    let program_dirs = driver.program_dirs_outside(DEFAULT_PATH_DIRS);
    if !program_dirs.is_empty() {
        plan.env
            .push(format!("PATH={}", search_path(&program_dirs)));
    }
    let dirs = driver.library_dirs();
    if !dirs.is_empty() {
        let mut contents =
            String::from("# Written by boxlab: the host's NVIDIA driver libraries\n");
        for dir in &dirs {
            contents.push_str(&format!("{}\n", dir.display()));
        }
        plan.files.push(GeneratedFile {
            target: LD_SO_CONF.into(),
            contents,
        });
        match options.ld_cache {
            LdCache::LdLibraryPath => plan
                .env
                .push(format!("LD_LIBRARY_PATH={}", search_path(&dirs))),
            LdCache::Ldconfig => plan.run_ldconfig = true,
        }
    } else {
        plan.notes.push("no NVIDIA driver library was found in the host's ldconfig cache or LD_LIBRARY_PATH (sudo drops LD_LIBRARY_PATH unless told to keep it); CUDA programs in the container will not find libcuda.so.1".into());
    }

    // The environment: host names in NVIDIA_VISIBLE_DEVICES, CUDA's own renumbering in
    // CUDA_VISIBLE_DEVICES (see the module docs for why both).
    let visible = match selection.request {
        GpuRequest::DriverOnly => "none".to_string(),
        _ => join(gpus.iter().map(|g| g.id())),
    };
    plan.env.push(format!("NVIDIA_VISIBLE_DEVICES={visible}"));
    plan.env.push(format!(
        "NVIDIA_DRIVER_CAPABILITIES={}",
        selection.effective_capabilities().join(",")
    ));
    if !gpus.is_empty() {
        plan.env.push(format!(
            "CUDA_VISIBLE_DEVICES={}",
            join((0..gpus.len()).map(|i| i.to_string()))
        ));
        plan.env.push("CUDA_DEVICE_ORDER=PCI_BUS_ID".into());
    }

    // MPS: the server's pipes at the same path, and the client's settings.
    if let Some(dir) = options.mps.bind() {
        plan.binds.push(BindMount {
            source: dir.to_path_buf(),
            target: dir.to_path_buf(),
            readonly: false,
        });
        plan.notes.push("MPS clients share memory with the server through /dev/shm: run the container in the host's IPC namespace (docker's --ipc=host)".into());
    }
    plan.env.extend(options.mps.env());
    Ok(plan)
}
// ANCHOR_END: plan

fn join(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(",")
}

/// Directories as `PATH` and `LD_LIBRARY_PATH` list them: colon-separated.
fn search_path(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

// ANCHOR: apply
impl GpuPlan {
    /// Adds one host character device: its node for `/dev`, its numbers for the cgroup.
    pub fn add_device(&mut self, device: &DeviceInfo) {
        if !self.has_node(device) {
            self.devices.push(device.clone());
        }
        if !self.allow.contains(&(device.major, device.minor)) {
            self.allow.push((device.major, device.minor));
        }
    }

    /// Whether the plan already has this node (the same host node under the same name).
    fn has_node(&self, device: &DeviceInfo) -> bool {
        self.devices
            .iter()
            .any(|d| d.host == device.host && d.name == device.name)
    }

    /// Adds the plan to chapter 4's root filesystem: device nodes, binds, and the generated
    /// files, written under `state_dir` (which must outlive the container's start) and bound
    /// read-only — except into the host's own `/`, which needs none of them, and where
    /// running `ldconfig` is refused.
    pub fn extend_spec(&self, spec: &mut RootfsSpec, state_dir: &Path) -> Result<(), ExposeError> {
        let ld_cache = if self.run_ldconfig {
            LdCache::Ldconfig
        } else {
            LdCache::LdLibraryPath
        };
        ld_cache.check_rootfs(&spec.path)?;
        for device in &self.devices {
            let node = DeviceNode {
                host: device.host.clone(),
                name: device.name.clone(),
            };
            if !spec.devices.contains(&node) {
                spec.devices.push(node);
            }
        }
        for bind in &self.binds {
            if !spec.binds.contains(bind) {
                spec.binds.push(bind.clone());
            }
        }
        // Into the host's own root, binding a generated file would first create its mount
        // point, an empty file left on the host; LD_LIBRARY_PATH carries the directories
        // instead (--ldconfig, which would rewrite the host's cache, was refused above).
        let host_root = is_host_root(&spec.path);
        for file in self.files.iter().filter(|_| !host_root) {
            let name = format!(
                "boxlab-{}",
                file.target
                    .to_string_lossy()
                    .trim_start_matches('/')
                    .replace('/', "_")
            );
            let path = state_dir.join(name);
            fs::write(&path, &file.contents).map_err(|source| ExposeError::WriteFile {
                target: file.target.clone(),
                path: path.clone(),
                source,
            })?;
            spec.binds.push(BindMount {
                source: path,
                target: file.target.clone(),
                readonly: true,
            });
        }
        Ok(())
    }

    /// `base` (the container's own environment) with the plan's pairs over it; a
    /// `LD_LIBRARY_PATH` or `PATH` already in `base` is kept after the driver's directories.
    pub fn env_over(&self, base: &[String]) -> Vec<String> {
        let mut env: Vec<String> = base.to_vec();
        for pair in &self.env {
            let key = env_key(pair);
            match env.iter_mut().find(|p| env_key(p) == key) {
                Some(old) if key == "LD_LIBRARY_PATH" || key == "PATH" => {
                    let rest = old.split_once('=').map_or("", |(_, v)| v).to_string();
                    *old = if rest.is_empty() {
                        pair.clone()
                    } else {
                        format!("{pair}:{rest}")
                    };
                }
                Some(old) => *old = pair.clone(),
                None => env.push(pair.clone()),
            }
        }
        env
    }

    /// The command to run: `argv` itself, or, with [`GpuPlan::run_ldconfig`], `argv` after the
    /// image's `ldconfig` (through `/bin/sh`, which then execs it: same PID, same status).
    pub fn wrap_argv(&self, argv: &[String]) -> Vec<String> {
        if !self.run_ldconfig {
            return argv.to_vec();
        }
        let mut wrapped = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            "ldconfig && exec \"$@\"".to_string(),
            "sh".to_string(),
        ];
        wrapped.extend(argv.iter().cloned());
        wrapped
    }

    /// Joins another plan (a CDI device's edits next to `--gpus`): entries already present are
    /// not repeated, and `other`'s environment wins on the same key.
    pub fn merge(&mut self, other: GpuPlan) {
        for device in other.devices {
            if !self.has_node(&device) {
                self.devices.push(device);
            }
        }
        for bind in other.binds {
            if !self.binds.contains(&bind) {
                self.binds.push(bind);
            }
        }
        for numbers in other.allow {
            if !self.allow.contains(&numbers) {
                self.allow.push(numbers);
            }
        }
        for pair in other.env {
            put_env(&mut self.env, pair);
        }
        for file in other.files {
            if !self.files.iter().any(|f| f.target == file.target) {
                self.files.push(file);
            }
        }
        self.run_ldconfig |= other.run_ldconfig;
        self.notes.extend(other.notes);
    }
}
// ANCHOR_END: apply
