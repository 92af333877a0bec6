//! `config.json` → chapters 2–5: what `create` builds, read from the bundle and checked before
//! anything is made, so that a bad config leaves nothing behind.

use std::fs;
use std::path::{Path, PathBuf};

use ch01_process::exec::Program;
use ch02_namespaces::{IdMap, Namespace};
use ch03_cgroups::limits::DEFAULT_CPU_PERIOD_US;
use ch03_cgroups::{CgroupPath, Limits, BOXLAB_PARENT};
use ch05_gpu::devices::{standard_rules, Access, DeviceKind, DeviceRule};
use oci_spec::runtime::{
    LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType, LinuxIdMapping, LinuxNamespaceType,
    LinuxResources, Spec,
};

use crate::mounts::{plan, resolve_in_root, MountPlan};
use crate::OciError;

/// The runtime spec major version this runtime implements.
pub const SUPPORTED_MAJOR: u64 = 1;

/// A bundle: its directory, its config, and its root filesystem (absolute).
#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    pub spec: Spec,
    pub rootfs: PathBuf,
}

// ANCHOR: load
/// Reads `<bundle>/config.json` and checks what a runtime must refuse before making anything:
/// a config that does not parse, another major version of the spec, no `root.path`, a root
/// filesystem that is not a directory, no `process`.
pub fn load_bundle(bundle: &Path) -> Result<Bundle, OciError> {
    let dir = bundle
        .canonicalize()
        .map_err(|e| OciError::io("opening the bundle", bundle, e))?;
    let path = dir.join("config.json");
    let text = fs::read_to_string(&path).map_err(|e| OciError::Config {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    // serde_json directly (not Spec::load): its errors name the line and column. The version
    // first: a config of another major version may not even have this one's shape.
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| OciError::Config {
        path: path.clone(),
        reason: format!("not valid JSON: {e}"),
    })?;
    check_version(value["ociVersion"].as_str().unwrap_or(""))?;
    let spec: Spec = serde_json::from_value(value).map_err(|e| OciError::Config {
        path: path.clone(),
        reason: format!("not a valid OCI runtime config: {e}"),
    })?;
    let root = spec
        .root()
        .as_ref()
        .filter(|r| !r.path().as_os_str().is_empty())
        .ok_or(OciError::Missing {
            field: "root.path",
            hint: "set root.path to the container's root filesystem (relative to the bundle, e.g. \"rootfs\")",
        })?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        dir.join(root.path())
    };
    match fs::metadata(&rootfs) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(OciError::Rootfs {
                path: rootfs,
                reason: "it is not a directory".into(),
            })
        }
        Err(e) => {
            return Err(OciError::Rootfs {
                path: rootfs,
                reason: e.to_string(),
            })
        }
    }
    let rootfs = rootfs
        .canonicalize()
        .map_err(|e| OciError::io("resolving the root filesystem", &rootfs, e))?;
    Ok(Bundle { dir, spec, rootfs })
}
// ANCHOR_END: load

/// Accepts `1.x.y` (any minor: later minors only add); refuses another major.
pub fn check_version(version: &str) -> Result<(), OciError> {
    let major = version.split('.').next().unwrap_or("");
    match major.parse::<u64>() {
        Ok(SUPPORTED_MAJOR) => Ok(()),
        _ if version.is_empty() => Err(OciError::Missing {
            field: "ociVersion",
            hint: "set it to the runtime spec version the config follows, e.g. \"1.0.2\"",
        }),
        _ => Err(OciError::OciVersion {
            version: version.to_string(),
        }),
    }
}

/// Everything `create` builds, translated from the config.
#[derive(Debug)]
pub struct Plan {
    /// Namespaces to create.
    pub namespaces: Vec<Namespace>,
    /// Existing namespaces to join (`path` set in the config).
    pub joins: Vec<(Namespace, PathBuf)>,
    pub uid_maps: Vec<IdMap>,
    pub gid_maps: Vec<IdMap>,
    pub hostname: Option<String>,
    pub mounts: Vec<MountPlan>,
    /// `linux.devices`: nodes to make in `/dev`.
    pub devices: Vec<LinuxDevice>,
    /// The config mounts its own `/dev` / `/sys` (chapter 4 must not mount its defaults).
    pub own_dev: bool,
    pub own_sys: bool,
    pub readonly: bool,
    pub program: Program,
    pub cgroup: CgroupPath,
    pub limits: Limits,
    pub device_rules: Vec<DeviceRule>,
}

/// Translates a loaded bundle for container `id`.
pub fn plan_for(bundle: &Bundle, id: &str) -> Result<Plan, OciError> {
    let spec = &bundle.spec;
    let linux = spec.linux().clone().unwrap_or_default();
    let (namespaces, joins) = namespaces(linux.namespaces().as_deref().unwrap_or(&[]))?;
    let has = |ns| namespaces.contains(&ns);
    let hostname = spec.hostname().clone().filter(|h| !h.is_empty());
    if hostname.is_some() && !has(Namespace::Uts) {
        return Err(OciError::invalid(
            "hostname",
            hostname.unwrap_or_default(),
            "setting a hostname needs a new uts namespace in linux.namespaces",
        ));
    }
    if !has(Namespace::Mount) {
        return Err(OciError::invalid(
            "linux.namespaces",
            "no mount namespace",
            "a container with its own root filesystem needs a new mount namespace",
        ));
    }
    let maps = |list: &Option<Vec<LinuxIdMapping>>| -> Vec<IdMap> {
        list.iter()
            .flatten()
            .map(|m| IdMap {
                inside: m.container_id(),
                outside: m.host_id(),
                count: m.size(),
            })
            .collect()
    };
    let (uid_maps, gid_maps) = (maps(linux.uid_mappings()), maps(linux.gid_mappings()));
    if (!uid_maps.is_empty() || !gid_maps.is_empty()) && !has(Namespace::User) {
        return Err(OciError::invalid(
            "linux.uidMappings",
            "set",
            "id mappings need a new user namespace in linux.namespaces",
        ));
    }

    let mounts = spec
        .mounts()
        .iter()
        .flatten()
        .map(|m| plan(m, &bundle.dir))
        .collect::<Result<Vec<_>, _>>()?;
    let own = |dest: &str| mounts.iter().any(|m| m.destination == Path::new(dest));
    let (own_dev, own_sys) = (own("/dev"), own("/sys"));

    let program = program(spec, &bundle.rootfs)?;
    let cgroup = match linux.cgroups_path() {
        Some(path) => {
            let text = path.to_str().ok_or_else(|| {
                OciError::invalid("linux.cgroupsPath", path.display(), "not valid UTF-8")
            })?;
            CgroupPath::new(text)?
        }
        None => CgroupPath::new(&format!("{BOXLAB_PARENT}/{id}"))?,
    };
    let resources = linux.resources().clone().unwrap_or_default();
    let limits = limits(&resources)?;
    let devices = linux.devices().clone().unwrap_or_default();
    let device_rules = device_rules(resources.devices().as_deref().unwrap_or(&[]), &devices)?;
    Ok(Plan {
        namespaces,
        joins,
        uid_maps,
        gid_maps,
        hostname,
        mounts,
        devices,
        own_dev,
        own_sys,
        readonly: spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false),
        program,
        cgroup,
        limits,
        device_rules,
    })
}

/// The namespaces to create, and those to join (kind, namespace file).
pub type Namespaces = (Vec<Namespace>, Vec<(Namespace, PathBuf)>);

// ANCHOR: namespaces
/// `linux.namespaces` → chapter 2's kinds. An entry with a `path` joins that namespace instead
/// of creating one — how containerd hands over the pod's network namespace prepared by CNI,
/// and its PID namespace when the pod shares one. Supported for all kinds but `mount`, which
/// would mean taking over another container's root and mounts.
pub fn namespaces(list: &[oci_spec::runtime::LinuxNamespace]) -> Result<Namespaces, OciError> {
    let mut create = Vec::new();
    let mut join = Vec::new();
    for entry in list {
        let kind = match entry.typ() {
            LinuxNamespaceType::Mount => Namespace::Mount,
            LinuxNamespaceType::Cgroup => Namespace::Cgroup,
            LinuxNamespaceType::Uts => Namespace::Uts,
            LinuxNamespaceType::Ipc => Namespace::Ipc,
            LinuxNamespaceType::User => Namespace::User,
            LinuxNamespaceType::Pid => Namespace::Pid,
            LinuxNamespaceType::Network => Namespace::Net,
            LinuxNamespaceType::Time => Namespace::Time,
        };
        match entry.path() {
            None => create.push(kind),
            Some(path) if path.as_os_str().is_empty() => create.push(kind),
            Some(path) if kind != Namespace::Mount => {
                if !path.exists() {
                    return Err(OciError::invalid(
                        format!("linux.namespaces[{kind}].path"),
                        path.display(),
                        "no such namespace file",
                    ));
                }
                join.push((kind, path.clone()));
            }
            Some(path) => return Err(OciError::Unsupported {
                what: format!("joining an existing {kind} namespace ({})", path.display()),
                hint: "joining a mount namespace would mean another container's root and mounts; drop the path to get a new one",
            }),
        }
    }
    create.sort();
    create.dedup();
    Ok((create, join))
}
// ANCHOR_END: namespaces

/// `process` → chapter 1's program, checked: args present, cwd absolute, and the executable findable in the root filesystem (so that `create`, not a silent `start`, fails).
fn program(spec: &Spec, rootfs: &Path) -> Result<Program, OciError> {
    let process = spec.process().as_ref().ok_or(OciError::Missing {
        field: "process",
        hint: "a container needs a process to run (process.args, process.cwd)",
    })?;
    let args = process
        .args()
        .clone()
        .filter(|a| !a.is_empty())
        .ok_or(OciError::Missing {
            field: "process.args",
            hint: "give the command to run, e.g. [\"sh\"]",
        })?;
    let cwd = process.cwd();
    if !cwd.is_absolute() {
        return Err(OciError::invalid(
            "process.cwd",
            cwd.display(),
            "the working directory must be an absolute path",
        ));
    }
    let env = process.env().clone().unwrap_or_default();
    let path_var = env
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or(ch01_process::exec::DEFAULT_PATH);
    if !findable(rootfs, &args[0], path_var) {
        return Err(OciError::invalid(
            "process.args[0]",
            &args[0],
            format!(
                "no such executable in the root filesystem {} (searched PATH={path_var})",
                rootfs.display()
            ),
        ));
    }
    Ok(Program::new(&args)?.with_env(&env)?.with_cwd(cwd)?)
}

/// Whether `name` resolves to a file inside `rootfs`, as `execvp` inside would find it.
fn findable(rootfs: &Path, name: &str, path_var: &str) -> bool {
    let exists = |p: &Path| {
        resolve_in_root(rootfs, p)
            .map(|host| host.is_file())
            .unwrap_or(false)
    };
    if name.contains('/') {
        return exists(Path::new(name));
    }
    path_var
        .split(':')
        .filter(|d| d.starts_with('/'))
        .any(|dir| exists(&Path::new(dir).join(name)))
}

// ANCHOR: resources
/// `linux.resources` → chapter 3's limits. OCI's `memory.swap` is memory + swap (what
/// chapter 3 calls `memory_swap`); a CFS quota/period becomes thousandths of a CPU; -1 and 0
/// mean "no limit" where the spec says so.
pub fn limits(resources: &LinuxResources) -> Result<Limits, OciError> {
    let positive = |v: Option<i64>| v.filter(|&v| v > 0).map(|v| v as u64);
    let mut limits = Limits::default();
    if let Some(memory) = resources.memory() {
        limits.memory = positive(memory.limit());
        limits.memory_swap = positive(memory.swap());
    }
    if let Some(cpu) = resources.cpu() {
        if let Some(quota) = positive(cpu.quota()) {
            let period = cpu
                .period()
                .filter(|&p| p > 0)
                .unwrap_or(DEFAULT_CPU_PERIOD_US);
            limits.cpu_millis = Some((quota * 1000).div_ceil(period));
        }
        limits.cpu_shares = cpu.shares().filter(|&s| s > 0);
        limits.cpuset_cpus = cpu.cpus().clone().filter(|c| !c.is_empty());
    }
    if let Some(pids) = resources.pids() {
        limits.pids = Some(pids.limit()).filter(|&p| p > 0).map(|p| p as u64);
    }
    limits.validate()?;
    Ok(limits)
}
// ANCHOR_END: resources

// ANCHOR: device_rules
/// `linux.resources.devices` (in order) + the standard devices every container gets + every
/// node of `linux.devices` → chapter 5's rules (the last matching rule wins), as runc orders
/// them.
pub fn device_rules(
    list: &[LinuxDeviceCgroup],
    nodes: &[LinuxDevice],
) -> Result<Vec<DeviceRule>, OciError> {
    let mut rules = Vec::new();
    for (index, entry) in list.iter().enumerate() {
        let field = format!("linux.resources.devices[{index}]");
        let kind = match entry.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => DeviceKind::All,
            LinuxDeviceType::B => DeviceKind::Block,
            LinuxDeviceType::C | LinuxDeviceType::U => DeviceKind::Char,
            LinuxDeviceType::P => continue, // FIFOs are not devices to the cgroup
        };
        if kind == DeviceKind::All {
            rules.push(DeviceRule::all(entry.allow()));
            continue;
        }
        let number = |n: Option<i64>, what: &str| -> Result<Option<u32>, OciError> {
            match n {
                None | Some(-1) => Ok(None),
                Some(v) if (0..1 << 20).contains(&v) => Ok(Some(v as u32)),
                Some(v) => Err(OciError::invalid(
                    format!("{field}.{what}"),
                    v,
                    "out of range",
                )),
            }
        };
        let access = match entry.access().as_deref() {
            None | Some("") => Access::ALL,
            Some(text) => text
                .parse()
                .map_err(|e: String| OciError::invalid(format!("{field}.access"), text, e))?,
        };
        rules.push(DeviceRule {
            allow: entry.allow(),
            kind,
            major: number(entry.major(), "major")?,
            minor: number(entry.minor(), "minor")?,
            access,
        });
    }
    rules.extend(standard_rules());
    for node in nodes {
        let kind = match node.typ() {
            LinuxDeviceType::B => DeviceKind::Block,
            LinuxDeviceType::P => continue,
            _ => DeviceKind::Char,
        };
        rules.push(DeviceRule {
            allow: true,
            kind,
            major: Some(node.major() as u32),
            minor: Some(node.minor() as u32),
            access: Access::ALL,
        });
    }
    Ok(rules)
}
// ANCHOR_END: device_rules

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxNamespaceBuilder, LinuxResourcesBuilder};

    #[test]
    fn versions_of_another_major_are_refused() {
        check_version("1.0.2").unwrap();
        check_version("1.2.0-rc.1").unwrap();
        let err = check_version("2.0.0").unwrap_err().to_string();
        assert!(err.contains("'2.0.0'"), "{err}");
        assert!(check_version("")
            .unwrap_err()
            .to_string()
            .contains("ociVersion"));
    }

    #[test]
    fn resources_become_chapter_3_limits() {
        let r: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 67108864, "swap": 134217728},
            "cpu": {"quota": 50000, "period": 100000, "shares": 512, "cpus": "0"},
            "pids": {"limit": 32}
        }))
        .unwrap();
        let l = limits(&r).unwrap();
        assert_eq!(l.memory, Some(64 << 20));
        assert_eq!(l.memory_swap, Some(128 << 20));
        assert_eq!(l.cpu_millis, Some(500));
        assert_eq!(l.cpu_shares, Some(512));
        assert_eq!(l.cpuset_cpus.as_deref(), Some("0"));
        assert_eq!(l.pids, Some(32));
        let unlimited: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": -1}, "pids": {"limit": 0}
        }))
        .unwrap();
        assert!(limits(&unlimited).unwrap().is_empty());
        assert!(limits(&LinuxResourcesBuilder::default().build().unwrap())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn device_lists_keep_their_order_then_the_standard_set() {
        let list: Vec<LinuxDeviceCgroup> = serde_json::from_value(serde_json::json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rw"}
        ]))
        .unwrap();
        let rules = device_rules(&list, &[]).unwrap();
        assert_eq!(rules[0], DeviceRule::all(false));
        assert_eq!(rules[1].to_string(), "c 10:200 rw");
        assert_eq!(&rules[2..], &standard_rules()[..]);
    }

    /// The builder's GPU nodes rely on this: a `linux.devices` node is allowed even after a
    /// deny-all `linux.resources.devices` (the last matching rule wins).
    #[test]
    fn every_linux_devices_node_is_allowed_last() {
        let list: Vec<LinuxDeviceCgroup> =
            serde_json::from_value(serde_json::json!([{"allow": false, "access": "rwm"}])).unwrap();
        let nodes: Vec<LinuxDevice> = serde_json::from_value(serde_json::json!([
            {"path": "/dev/nvidia1", "type": "c", "major": 195, "minor": 1}
        ]))
        .unwrap();
        let rules = device_rules(&list, &nodes).unwrap();
        assert_eq!(rules.last().unwrap().to_string(), "c 195:1 rwm");
        assert!(rules.last().unwrap().allow);
    }

    #[test]
    fn joining_is_for_every_kind_but_mount() {
        let ns = |typ, path: Option<&str>| {
            let b = LinuxNamespaceBuilder::default().typ(typ);
            match path {
                Some(p) => b.path(p).build().unwrap(),
                None => b.build().unwrap(),
            }
        };
        let (create, join) = namespaces(&[
            ns(LinuxNamespaceType::Pid, None),
            ns(LinuxNamespaceType::Network, Some("/proc/self/ns/net")),
        ])
        .unwrap();
        assert_eq!(create, vec![Namespace::Pid]);
        assert_eq!(join, vec![(Namespace::Net, "/proc/self/ns/net".into())]);
        let (_, join) =
            namespaces(&[ns(LinuxNamespaceType::Pid, Some("/proc/self/ns/pid"))]).unwrap();
        assert_eq!(join, vec![(Namespace::Pid, "/proc/self/ns/pid".into())]);
        let err = namespaces(&[ns(LinuxNamespaceType::Mount, Some("/proc/self/ns/mnt"))])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not supported yet"), "{err}");
        let (_, join) =
            namespaces(&[ns(LinuxNamespaceType::User, Some("/proc/self/ns/user"))]).unwrap();
        assert_eq!(join, vec![(Namespace::User, "/proc/self/ns/user".into())]);
        let err = namespaces(&[ns(LinuxNamespaceType::Pid, Some("/no/such/ns"))])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no such namespace file"), "{err}");
    }
}
