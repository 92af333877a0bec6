//! Finding the NVIDIA devices a host has: the character devices under `/dev` and what the
//! driver says about each GPU under `/proc/driver/nvidia/gpus/<bus id>/information`.
//!
//! Every function takes its roots as parameters ([`HostRoots`]), so that a test or the demo can
//! point them at a fake tree; [`HostRoots::default`] is the real host.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The real host's device directory.
pub const DEFAULT_DEV: &str = "/dev";
/// Where the NVIDIA kernel driver publishes what it knows about each GPU.
pub const DEFAULT_PROC_NVIDIA: &str = "/proc/driver/nvidia";

/// The major number the NVIDIA driver registers for `/dev/nvidia*` (fixed by the driver).
pub const NVIDIA_MAJOR: u32 = 195;
/// `/dev/nvidiactl`'s minor: the control device every CUDA process opens first.
pub const NVIDIACTL_MINOR: u32 = 255;
/// `/dev/nvidia-modeset`'s minor.
pub const NVIDIA_MODESET_MINOR: u32 = 254;

/// The control devices any GPU needs, in the order they are exposed. `nvidia-uvm` (unified
/// memory, needed by every CUDA program) and `nvidia-uvm-tools` (profilers) get a *dynamic*
/// major from the kernel, so they are found by name, never by number.
pub const CONTROL_DEVICES: [&str; 4] = [
    "nvidiactl",
    "nvidia-uvm",
    "nvidia-uvm-tools",
    "nvidia-modeset",
];

/// Where to look: `/dev` and `/proc/driver/nvidia`, or a fake tree standing for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoots {
    pub dev: PathBuf,
    pub proc_nvidia: PathBuf,
}

impl Default for HostRoots {
    fn default() -> Self {
        HostRoots {
            dev: DEFAULT_DEV.into(),
            proc_nvidia: DEFAULT_PROC_NVIDIA.into(),
        }
    }
}

impl HostRoots {
    /// A fake tree: `<root>/dev` and `<root>/proc/driver/nvidia`.
    pub fn under(root: &Path) -> Self {
        HostRoots {
            dev: root.join("dev"),
            proc_nvidia: root.join("proc/driver/nvidia"),
        }
    }
}

/// One character device found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The node on the host (`/dev/nvidia0`).
    pub host: PathBuf,
    /// Its path under `/dev` (`nvidia0`, `nvidia-caps/nvidia-cap1`): the same inside.
    pub name: PathBuf,
    pub major: u32,
    pub minor: u32,
    /// Permission bits (`0o666` for the NVIDIA nodes the driver creates).
    pub mode: u32,
}

/// One GPU: its `/dev/nvidiaN` node and what the driver reports about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    /// The index docker, `nvidia-smi` and `NVIDIA_VISIBLE_DEVICES` use: the position in PCI bus
    /// order (NVML's order), which is usually, not always, the node's minor number.
    pub index: u32,
    pub node: DeviceInfo,
    /// `NVIDIA H200`, from `Model:`.
    pub model: Option<String>,
    /// `0000:19:00.0`, from `Bus Location:` (or the directory's name).
    pub bus_id: Option<String>,
    /// `GPU-1b2c3d4e-…`, from `GPU UUID:`.
    pub uuid: Option<String>,
}

impl Gpu {
    /// How to name this GPU to the driver and the toolkit: its UUID, or its index without one.
    pub fn id(&self) -> String {
        self.uuid.clone().unwrap_or_else(|| self.index.to_string())
    }
}

/// Something discovery saw and left out, with the reason (printed by the demo, kept by tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

/// What the host has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    /// Where it looked.
    pub roots: HostRoots,
    /// The GPUs, in index order.
    pub gpus: Vec<Gpu>,
    /// The control devices present, in [`CONTROL_DEVICES`] order.
    pub control: Vec<DeviceInfo>,
    /// `/dev/nvidia-caps/*`: the capability devices MIG instances need.
    pub caps: Vec<DeviceInfo>,
    /// Entries that looked like NVIDIA devices but could not be used.
    pub skipped: Vec<Skipped>,
}

impl Discovery {
    /// The control device called `name` (`nvidiactl`), if the host has it.
    pub fn control_device(&self, name: &str) -> Option<&DeviceInfo> {
        self.control
            .iter()
            .find(|d| d.name.as_os_str() == std::ffi::OsStr::new(name))
    }
}

/// What went wrong while discovering.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("cannot list the device directory {path}: {source}; pass the right --dev root (the host's is /dev)")]
    DevDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}; is the NVIDIA driver loaded (lsmod | grep nvidia)?")]
    Proc {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The fields of one `/proc/driver/nvidia/gpus/<bus>/information` file that matter here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpuInformation {
    pub model: Option<String>,
    pub uuid: Option<String>,
    pub bus_location: Option<String>,
    /// Ties the bus directory to `/dev/nvidia<minor>`.
    pub device_minor: Option<u32>,
}

// ANCHOR: information
/// Parses the driver's `information` file: `Key:` then tabs and spaces, then the value.
/// Unknown keys are ignored; a missing or malformed `Device Minor` is left `None`.
pub fn parse_information(text: &str) -> GpuInformation {
    let mut info = GpuInformation::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        match key.trim() {
            "Model" => info.model = Some(value.to_string()),
            "GPU UUID" => info.uuid = Some(value.to_string()),
            "Bus Location" => info.bus_location = Some(value.to_string()),
            "Device Minor" => info.device_minor = value.parse().ok(),
            _ => {}
        }
    }
    info
}
// ANCHOR_END: information

// ANCHOR: discover
/// Looks for NVIDIA devices under `roots.dev` and the driver's view under `roots.proc_nvidia`.
///
/// A host without NVIDIA devices is not an error: it yields an empty [`Discovery`] (selecting a
/// GPU from it is). Entries named like NVIDIA devices that are not character devices (a plain
/// file in a fake tree, a broken link) are listed in [`Discovery::skipped`] with the reason.
pub fn discover(roots: &HostRoots) -> Result<Discovery, DiscoverError> {
    let mut found = Discovery {
        roots: roots.clone(),
        ..Discovery::default()
    };
    let entries = fs::read_dir(&roots.dev).map_err(|source| DiscoverError::DevDir {
        path: roots.dev.clone(),
        source,
    })?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();

    let mut nodes = Vec::new(); // (minor from the name, device)
    for name in &names {
        let gpu_number = name
            .strip_prefix("nvidia")
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u32>().ok());
        if let Some(number) = gpu_number {
            if let Some(device) = char_device(roots, Path::new(name), &mut found.skipped) {
                nodes.push((number, device));
            }
        }
    }
    for name in CONTROL_DEVICES {
        if let Some(device) = char_device_if_present(roots, Path::new(name), &mut found.skipped) {
            found.control.push(device);
        }
    }
    if let Some(cap_names) = sorted_file_names(&roots.dev.join("nvidia-caps")) {
        for name in cap_names {
            let relative = Path::new("nvidia-caps").join(name);
            if let Some(device) = char_device(roots, &relative, &mut found.skipped) {
                found.caps.push(device);
            }
        }
    }

    let information = read_information(&roots.proc_nvidia, &mut found.skipped)?;
    found.gpus = nodes
        .into_iter()
        .map(|(_, node)| {
            let info = information
                .iter()
                .find(|(_, info)| info.device_minor == Some(node.minor));
            Gpu {
                index: 0,
                model: info.and_then(|(_, i)| i.model.clone()),
                bus_id: info.map(|(dir, i)| i.bus_location.clone().unwrap_or(dir.clone())),
                uuid: info.and_then(|(_, i)| i.uuid.clone()),
                node,
            }
        })
        .collect();
    // NVML (and so nvidia-smi, docker and the toolkit) numbers GPUs in PCI bus order. Bus ids
    // such as `0000:19:00.0` sort correctly as text once lower-cased; GPUs the driver did not
    // describe go after those it did, in minor order.
    found.gpus.sort_by_key(|gpu| {
        (
            gpu.bus_id.is_none(),
            gpu.bus_id.as_deref().map(str::to_ascii_lowercase),
            gpu.node.minor,
        )
    });
    for (index, gpu) in found.gpus.iter_mut().enumerate() {
        gpu.index = index as u32;
    }
    Ok(found)
}
// ANCHOR_END: discover

/// The bus directories under `<proc_nvidia>/gpus` and their parsed `information`. No `gpus`
/// directory (no driver, or a fake tree without one) means no information, not an error.
fn read_information(
    proc_nvidia: &Path,
    skipped: &mut Vec<Skipped>,
) -> Result<Vec<(String, GpuInformation)>, DiscoverError> {
    let gpus = proc_nvidia.join("gpus");
    let entries = match fs::read_dir(&gpus) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(DiscoverError::Proc { path: gpus, source }),
    };
    let mut dirs: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    dirs.sort();
    let mut out = Vec::new();
    for dir in dirs {
        let file = gpus.join(&dir).join("information");
        match fs::read_to_string(&file) {
            Ok(text) => {
                let info = parse_information(&text);
                if info.device_minor.is_none() {
                    skipped.push(Skipped {
                        path: file,
                        reason: "no `Device Minor:` line, so it cannot be matched to a /dev/nvidiaN node".into(),
                    });
                    continue;
                }
                out.push((dir, info));
            }
            Err(e) => skipped.push(Skipped {
                path: file,
                reason: format!("unreadable: {e}"),
            }),
        }
    }
    Ok(out)
}

fn char_device_if_present(
    roots: &HostRoots,
    name: &Path,
    skipped: &mut Vec<Skipped>,
) -> Option<DeviceInfo> {
    if fs::symlink_metadata(roots.dev.join(name)).is_err() {
        return None;
    }
    char_device(roots, name, skipped)
}

/// `roots.dev/name` as a character device, or `None` with the reason recorded.
fn char_device(roots: &HostRoots, name: &Path, skipped: &mut Vec<Skipped>) -> Option<DeviceInfo> {
    let host = roots.dev.join(name);
    match device_numbers(&host) {
        Ok((major, minor, mode)) => Some(DeviceInfo {
            host,
            name: name.to_path_buf(),
            major,
            minor,
            mode,
        }),
        Err(reason) => {
            skipped.push(Skipped { path: host, reason });
            None
        }
    }
}

/// The major and minor numbers and permission bits of a character device (links followed).
pub fn device_numbers(path: &Path) -> Result<(u32, u32, u32), String> {
    let meta = fs::metadata(path).map_err(|e| format!("cannot stat it: {e}"))?;
    if !meta.file_type().is_char_device() {
        let what = if meta.is_dir() {
            "a directory"
        } else if meta.file_type().is_block_device() {
            "a block device"
        } else {
            "a regular file or other non-device"
        };
        return Err(format!(
            "not a char device ({what}); a real one is made with `mknod {} c MAJOR MINOR` as root",
            path.display()
        ));
    }
    let rdev = meta.rdev();
    Ok((
        nix::sys::stat::major(rdev) as u32,
        nix::sys::stat::minor(rdev) as u32,
        meta.mode() & 0o7777,
    ))
}

/// One GPU of a fake host ([`build_fake_host`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeGpu {
    /// `/dev/nvidia<minor>`.
    pub minor: u32,
    pub model: String,
    pub uuid: String,
    pub bus_id: String,
}

impl FakeGpu {
    /// GPU `minor` as an H200 with a made-up UUID and bus id that sort in minor order.
    pub fn h200(minor: u32) -> Self {
        FakeGpu {
            minor,
            model: "NVIDIA H200".into(),
            uuid: format!("GPU-{minor:08x}-1b2c-3d4e-5f60-718293a4b5c6"),
            bus_id: format!("0000:{:02x}:00.0", 0x19 + minor * 0x22),
        }
    }
}

/// How a fake host's device entries are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeNodes {
    /// Real character devices (`mknod`, needs root), with NVIDIA's numbers.
    Real,
    /// Plain files with the right names: what an unprivileged test can make.
    PlainFiles,
}

/// The dynamic major a fake host gives `nvidia-uvm` and `nvidia-uvm-tools` (minors 0 and 1),
/// as the kernel might on a real one.
pub const FAKE_UVM_MAJOR: u32 = 511;
/// The dynamic major of a fake host's `nvidia-caps` devices.
pub const FAKE_CAPS_MAJOR: u32 = 508;

// ANCHOR: fake_host
/// Builds a host tree under `root` (`root/dev`, `root/proc/driver/nvidia`) with `gpus`, the
/// control devices and one capability device, for tests and the demo on a machine without a
/// GPU. The nodes are never opened: they only have to exist with the right numbers.
pub fn build_fake_host(
    root: &Path,
    gpus: &[FakeGpu],
    nodes: FakeNodes,
) -> std::io::Result<HostRoots> {
    let roots = HostRoots::under(root);
    fs::create_dir_all(roots.dev.join("nvidia-caps"))?;
    let mut entries: Vec<(PathBuf, u32, u32)> = gpus
        .iter()
        .map(|g| (format!("nvidia{}", g.minor).into(), NVIDIA_MAJOR, g.minor))
        .collect();
    entries.extend([
        ("nvidiactl".into(), NVIDIA_MAJOR, NVIDIACTL_MINOR),
        ("nvidia-modeset".into(), NVIDIA_MAJOR, NVIDIA_MODESET_MINOR),
        ("nvidia-uvm".into(), FAKE_UVM_MAJOR, 0),
        ("nvidia-uvm-tools".into(), FAKE_UVM_MAJOR, 1),
        ("nvidia-caps/nvidia-cap1".into(), FAKE_CAPS_MAJOR, 1),
    ]);
    for (name, major, minor) in entries {
        let path = roots.dev.join(name);
        match nodes {
            FakeNodes::Real => {
                use nix::sys::stat::{makedev, mknod, Mode, SFlag};
                let mode = Mode::from_bits_truncate(0o666);
                mknod(
                    &path,
                    SFlag::S_IFCHR,
                    mode,
                    makedev(major.into(), minor.into()),
                )
                .map_err(|e| {
                    std::io::Error::new(
                        std::io::Error::from(e).kind(),
                        format!(
                            "mknod {} c {major} {minor}: {e} (needs root)",
                            path.display()
                        ),
                    )
                })?;
                // mknod applies the umask; the driver's nodes are 0666.
                fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o666))?;
            }
            FakeNodes::PlainFiles => fs::write(&path, "")?,
        }
    }
    for gpu in gpus {
        let dir = roots.proc_nvidia.join("gpus").join(&gpu.bus_id);
        fs::create_dir_all(&dir)?;
        fs::write(
            dir.join("information"),
            format!(
                "Model: \t\t {}\nIRQ:   \t\t 42\nGPU UUID: \t {}\nVideo BIOS: \t 96.00.74.00.01\nBus Type: \t PCIe\nDMA Size: \t 52 bits\nDMA Mask: \t 0xfffffffffffff\nBus Location: \t {}\nDevice Minor: \t {}\nGPU Excluded:\t No\n",
                gpu.model, gpu.uuid, gpu.bus_id, gpu.minor
            ),
        )?;
    }
    Ok(roots)
}
// ANCHOR_END: fake_host

/// The names in directory `dir`, sorted (directory order is the file system's whim); `None`
/// where it cannot be read. Names that are not UTF-8 are left out: no NVIDIA file has one.
pub(crate) fn sorted_file_names(dir: &Path) -> Option<Vec<String>> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    Some(names)
}
