//! Which GPUs a container gets: docker's `--gpus` flag and the NVIDIA Container Toolkit's
//! `NVIDIA_VISIBLE_DEVICES`, parsed into one [`GpuSelection`] and resolved against a
//! [`Discovery`].

use std::fmt;

use crate::discover::{Discovery, Gpu};

/// The capabilities `NVIDIA_DRIVER_CAPABILITIES` accepts (the toolkit's list). They decide which
/// driver libraries and programs are mounted (see [`crate::libraries`]).
pub const KNOWN_CAPABILITIES: [&str; 7] = [
    "compute", "compat32", "graphics", "utility", "video", "display", "ngx",
];

/// What the toolkit uses when a container asks for no capability: CUDA and `nvidia-smi`.
pub const DEFAULT_CAPABILITIES: [&str; 2] = ["compute", "utility"];

/// How one GPU was named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceId {
    /// `0`: NVML's index, PCI bus order.
    Index(u32),
    /// `GPU-1b2c3d4e-…`, as `nvidia-smi -L` prints it.
    Uuid(String),
    /// `MIG-…` or `0:1` (GPU 0, MIG instance 1): parsed so the error can say what it is.
    Mig(String),
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceId::Index(i) => write!(f, "{i}"),
            DeviceId::Uuid(u) | DeviceId::Mig(u) => f.write_str(u),
        }
    }
}

/// Which GPUs were asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuRequest {
    /// `--gpus all`, `NVIDIA_VISIBLE_DEVICES=all`.
    All,
    /// `--gpus 2`, `--gpus count=2`: the first N, in index order.
    Count(u32),
    /// `--gpus '"device=0,1"'`, `NVIDIA_VISIBLE_DEVICES=0,GPU-…`.
    Devices(Vec<DeviceId>),
    /// `NVIDIA_VISIBLE_DEVICES=none`: no GPU, but the control devices and driver libraries
    /// (so that, say, a build step can link against libcuda).
    DriverOnly,
    /// `NVIDIA_VISIBLE_DEVICES=void`, empty or unset: nothing of the GPU at all.
    Nothing,
}

/// A parsed request and the driver capabilities that go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuSelection {
    pub request: GpuRequest,
    /// `compute`, `utility`, …; `None` means [`DEFAULT_CAPABILITIES`].
    pub capabilities: Option<Vec<String>>,
}

impl GpuSelection {
    /// The capabilities in effect: the ones asked for, or the toolkit's default. `all` expands
    /// to every known capability.
    pub fn effective_capabilities(&self) -> Vec<String> {
        let caps: Vec<String> = match &self.capabilities {
            Some(caps) => caps.clone(),
            None => DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect(),
        };
        if caps.iter().any(|c| c == "all") {
            return KNOWN_CAPABILITIES.iter().map(|c| c.to_string()).collect();
        }
        caps
    }
}

/// A request that cannot be parsed or met, and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("--gpus is empty; use `all`, a count such as `2`, or '\"device=0,1\"'")]
    Empty,
    #[error("--gpus {value:?}: a quote is not closed; write the device list as '\"device=0,1\"'")]
    UnclosedQuote { value: String },
    #[error("--gpus {value:?}: the key `{key}` is given twice; give each of count, device, capabilities, driver once")]
    Repeated { value: String, key: String },
    #[error(
        "--gpus {value:?}: unknown key `{key}`; the keys are count, device, capabilities, driver"
    )]
    UnknownKey { value: String, key: String },
    #[error("--gpus {value:?}: `{count}` is not a GPU count; use a number from 1 up, or `all` (a list after `device=` or `capabilities=` needs double quotes: '\"capabilities=compute,utility\"')")]
    BadCount { value: String, count: String },
    #[error("--gpus {value:?}: a count of 0 asks for no GPU; leave --gpus out instead")]
    ZeroCount { value: String },
    #[error("--gpus {value:?}: both a count and a device list; the shell split `device=0,1` at the comma — quote it: --gpus '\"device=0,1\"'")]
    CountAndDevices { value: String },
    #[error("--gpus {value:?}: driver `{driver}` is not supported; only `nvidia` is")]
    Driver { value: String, driver: String },
    #[error("{source_name} {value:?}: `{id}` is not a GPU index (0, 1, …), a UUID (GPU-…) or a MIG id (MIG-… or 0:1)")]
    BadDeviceId {
        source_name: &'static str,
        value: String,
        id: String,
    },
    #[error("{source_name} {value:?}: an empty entry in the device list; separate ids with single commas")]
    EmptyDeviceId {
        source_name: &'static str,
        value: String,
    },
    #[error("{source_name} {value:?}: unknown capability `{capability}`; known: compute, compat32, graphics, utility, video, display, ngx, all")]
    BadCapability {
        source_name: &'static str,
        value: String,
        capability: String,
    },
    #[error("no NVIDIA GPU was found on this host (no /dev/nvidiaN character device); is the driver loaded? (`nvidia-smi`)")]
    NoGpus,
    #[error("GPU {index} was asked for, but this host has {count} GPU(s), numbered 0 to {last}; `nvidia-smi -L` lists them", last = count.saturating_sub(1))]
    NoSuchIndex { index: u32, count: usize },
    #[error("no GPU has UUID {uuid}; `nvidia-smi -L` lists the UUIDs (the driver reports them in /proc/driver/nvidia/gpus/*/information)")]
    NoSuchUuid { uuid: String },
    #[error("{count} GPU(s) were asked for, but this host has only {available}")]
    NotEnough { count: u32, available: usize },
    #[error("MIG device {id}: boxlab exposes whole GPUs only (a MIG instance also needs its /dev/nvidia-caps nodes); ask for the GPU that holds it")]
    Mig { id: String },
}

// ANCHOR: gpus_flag
/// Parses docker's `--gpus` value, as docker does: the value is one CSV record (so the literal
/// double quotes the shell passes in `--gpus '"device=0,1"'` keep the comma inside one field),
/// each field `key=value` or a bare count.
///
/// `all`, `2`, `count=2`, `count=all`, `"device=0,1"`, `device=GPU-…`,
/// `"capabilities=compute,utility"`, `driver=nvidia`, and combinations such as
/// `2,"capabilities=compute"`.
pub fn parse_gpus_flag(value: &str) -> Result<GpuSelection, SelectError> {
    let fields = split_csv(value)?;
    if fields.iter().all(|f| f.trim().is_empty()) {
        return Err(SelectError::Empty);
    }
    let mut seen: Vec<String> = Vec::new();
    let mut count: Option<GpuRequest> = None;
    let mut devices: Option<Vec<DeviceId>> = None;
    let mut capabilities = None;
    for field in &fields {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => ("count", None),
        };
        if seen.iter().any(|s| s == key) {
            return Err(if key == "count" && devices.is_some() {
                SelectError::CountAndDevices {
                    value: value.into(),
                }
            } else {
                SelectError::Repeated {
                    value: value.into(),
                    key: key.into(),
                }
            });
        }
        seen.push(key.to_string());
        match key {
            "count" => count = Some(parse_count(value, val.unwrap_or(field.trim()))?),
            "device" => {
                devices = Some(parse_device_list(
                    "--gpus device=",
                    value,
                    val.unwrap_or(""),
                )?)
            }
            "capabilities" => {
                capabilities = Some(parse_capabilities("--gpus", value, val.unwrap_or(""))?)
            }
            "driver" => {
                let driver = val.unwrap_or("");
                if driver != "nvidia" {
                    return Err(SelectError::Driver {
                        value: value.into(),
                        driver: driver.into(),
                    });
                }
            }
            other => {
                return Err(SelectError::UnknownKey {
                    value: value.into(),
                    key: other.into(),
                })
            }
        }
    }
    let request = match (count, devices) {
        (Some(_), Some(_)) => {
            return Err(SelectError::CountAndDevices {
                value: value.into(),
            })
        }
        (Some(count), None) => count,
        (None, Some(devices)) => GpuRequest::Devices(devices),
        // docker: `--gpus capabilities=…` alone means one GPU.
        (None, None) => GpuRequest::Count(1),
    };
    Ok(GpuSelection {
        request,
        capabilities,
    })
}
// ANCHOR_END: gpus_flag

// ANCHOR: visible_devices
/// Parses `NVIDIA_VISIBLE_DEVICES` (and `NVIDIA_DRIVER_CAPABILITIES`) as the toolkit does:
/// `all`; `none` (driver without GPUs); `void`, empty or unset (nothing); or a comma list of
/// indexes, `GPU-` UUIDs and MIG ids.
pub fn parse_visible_devices(
    visible: Option<&str>,
    capabilities: Option<&str>,
) -> Result<GpuSelection, SelectError> {
    const NAME: &str = "NVIDIA_VISIBLE_DEVICES";
    let request = match visible.map(str::trim) {
        None | Some("") | Some("void") => GpuRequest::Nothing,
        Some("none") => GpuRequest::DriverOnly,
        Some("all") => GpuRequest::All,
        Some(list) => GpuRequest::Devices(parse_device_list(NAME, list, list)?),
    };
    let capabilities = match capabilities.map(str::trim) {
        None | Some("") => None,
        Some(caps) => Some(parse_capabilities(
            "NVIDIA_DRIVER_CAPABILITIES",
            caps,
            caps,
        )?),
    };
    Ok(GpuSelection {
        request,
        capabilities,
    })
}
// ANCHOR_END: visible_devices

/// One device id: `0`, `GPU-<hex and dashes>`, `MIG-…`, `0:1`.
pub fn parse_device_id(
    source_name: &'static str,
    value: &str,
    id: &str,
) -> Result<DeviceId, SelectError> {
    let bad = || SelectError::BadDeviceId {
        source_name,
        value: value.into(),
        id: id.into(),
    };
    let is_hexish = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
        return id.parse().map(DeviceId::Index).map_err(|_| bad());
    }
    // The prefix is matched in any case (`gpu-…` as well), the UUID itself when resolving.
    let prefixed = |prefix: &str| {
        id.get(..prefix.len())
            .filter(|p| p.eq_ignore_ascii_case(prefix))
            .map(|_| &id[prefix.len()..])
    };
    if let Some(rest) = prefixed("GPU-") {
        return if is_hexish(rest) {
            Ok(DeviceId::Uuid(format!("GPU-{rest}")))
        } else {
            Err(bad())
        };
    }
    if let Some(rest) = prefixed("MIG-") {
        return if !rest.is_empty() {
            Ok(DeviceId::Mig(format!("MIG-{rest}")))
        } else {
            Err(bad())
        };
    }
    if let Some((gpu, instance)) = id.split_once(':') {
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b':');
        if digits(gpu) && digits(instance) {
            return Ok(DeviceId::Mig(id.to_string()));
        }
    }
    Err(bad())
}

fn parse_device_list(
    source_name: &'static str,
    value: &str,
    list: &str,
) -> Result<Vec<DeviceId>, SelectError> {
    list.split(',')
        .map(str::trim)
        .map(|id| {
            if id.is_empty() {
                Err(SelectError::EmptyDeviceId {
                    source_name,
                    value: value.into(),
                })
            } else {
                parse_device_id(source_name, value, id)
            }
        })
        .collect()
}

fn parse_count(value: &str, count: &str) -> Result<GpuRequest, SelectError> {
    if count == "all" {
        return Ok(GpuRequest::All);
    }
    match count.parse::<u32>() {
        Ok(0) => Err(SelectError::ZeroCount {
            value: value.into(),
        }),
        Ok(n) => Ok(GpuRequest::Count(n)),
        Err(_) => Err(SelectError::BadCount {
            value: value.into(),
            count: count.into(),
        }),
    }
}

fn parse_capabilities(
    source_name: &'static str,
    value: &str,
    list: &str,
) -> Result<Vec<String>, SelectError> {
    let mut caps = Vec::new();
    for cap in list.split(',').map(str::trim) {
        // docker adds `gpu` itself; it names the device class, not a driver capability.
        if cap == "gpu" {
            continue;
        }
        if cap != "all" && !KNOWN_CAPABILITIES.contains(&cap) {
            return Err(SelectError::BadCapability {
                source_name,
                value: value.into(),
                capability: cap.into(),
            });
        }
        if !caps.iter().any(|c| c == cap) {
            caps.push(cap.to_string());
        }
    }
    Ok(caps)
}

/// Splits one CSV record (Go's `encoding/csv`, as docker uses): fields separated by commas, a
/// field in double quotes may hold commas, `""` inside quotes is one quote.
fn split_csv(value: &str) -> Result<Vec<String>, SelectError> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = value.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted => {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                }
            }
            '"' if at_start => quoted = true,
            ',' if !quoted => {
                fields.push(std::mem::take(&mut field));
                at_start = true;
                continue;
            }
            c => field.push(c),
        }
        at_start = false;
    }
    if quoted {
        return Err(SelectError::UnclosedQuote {
            value: value.into(),
        });
    }
    fields.push(field);
    Ok(fields)
}

// ANCHOR: resolve
/// The GPUs a selection names on this host, in index order, each once.
///
/// They are sorted by index (PCI bus order) whatever order they were asked in, because that is
/// the order CUDA will number them inside the container (see [`crate::expose`]), and
/// `NVIDIA_VISIBLE_DEVICES` and `CUDA_VISIBLE_DEVICES` must agree on it.
pub fn resolve<'a>(
    selection: &GpuSelection,
    discovery: &'a Discovery,
) -> Result<Vec<&'a Gpu>, SelectError> {
    let gpus = &discovery.gpus;
    let needs_gpus = !matches!(
        selection.request,
        GpuRequest::DriverOnly | GpuRequest::Nothing
    );
    if needs_gpus && gpus.is_empty() {
        return Err(SelectError::NoGpus);
    }
    let mut chosen: Vec<&Gpu> = match &selection.request {
        GpuRequest::Nothing | GpuRequest::DriverOnly => Vec::new(),
        GpuRequest::All => gpus.iter().collect(),
        GpuRequest::Count(n) => {
            if *n as usize > gpus.len() {
                return Err(SelectError::NotEnough {
                    count: *n,
                    available: gpus.len(),
                });
            }
            gpus.iter().take(*n as usize).collect()
        }
        GpuRequest::Devices(ids) => ids
            .iter()
            .map(|id| find(gpus, id))
            .collect::<Result<_, _>>()?,
    };
    chosen.sort_by_key(|gpu| gpu.index);
    chosen.dedup_by_key(|gpu| gpu.index);
    Ok(chosen)
}
// ANCHOR_END: resolve

fn find<'a>(gpus: &'a [Gpu], id: &DeviceId) -> Result<&'a Gpu, SelectError> {
    match id {
        DeviceId::Index(index) => {
            gpus.iter()
                .find(|g| g.index == *index)
                .ok_or(SelectError::NoSuchIndex {
                    index: *index,
                    count: gpus.len(),
                })
        }
        DeviceId::Uuid(uuid) => gpus
            .iter()
            .find(|g| {
                g.uuid
                    .as_deref()
                    .is_some_and(|u| u.eq_ignore_ascii_case(uuid))
            })
            .ok_or_else(|| SelectError::NoSuchUuid { uuid: uuid.clone() }),
        DeviceId::Mig(mig) => Err(SelectError::Mig { id: mig.clone() }),
    }
}
