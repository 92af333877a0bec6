//! The config's `mounts` list, mounted inside the new root by the container's init.
//!
//! It runs in the container's mount namespace *before* chapter 4's `pivot_root`, on paths under
//! the root filesystem: a bind mount's source is a host path, and after the pivot the host's
//! files are gone. Chapter 4 then binds the root onto itself recursively (taking these mounts
//! along) and pivots into it; we tell it to skip its own `/dev` and `/sys` when the list has them.
//!
//! Two rules keep a hostile image from turning a mount against the host:
//! - a destination is resolved inside the root one component at a time with `lstat`, and a
//!   symlink is followed *as if the root were `/`* (an absolute link starts again at the root, a
//!   `..` stops there): `/etc/x -> /../../host` lands in `<root>/host`, never on the host;
//! - `/proc` only takes procfs and `/dev` only a tmpfs (or devtmpfs), as runc insists: a bind of
//!   some directory onto `/proc` would let a container fake or escape what the kernel shows.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use ch04_rootfs::unpack::resolve::resolve_dir_in_root;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount};

use crate::OciError;

/// One entry of `mounts`, checked and turned into `mount(2)` arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPlan {
    /// Where, as the container sees it (absolute).
    pub destination: PathBuf,
    /// The filesystem type (`proc`, `tmpfs`...); `None` for a bind mount.
    pub fstype: Option<String>,
    /// The source: a host path for a bind mount, a label otherwise.
    pub source: Option<PathBuf>,
    /// `MS_*` flags for the mount itself.
    pub flags: MsFlags,
    /// `MS_PRIVATE`, `MS_SHARED`... applied afterwards (with `MS_REC` for the `r` forms).
    pub propagation: MsFlags,
    /// The filesystem-specific options (`mode=755,size=65536k`).
    pub data: String,
}

impl MountPlan {
    fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
}

// ANCHOR: options
/// Splits fstab-style options into `mount(2)` flags, propagation and the data string, as runc
/// does: known words set or clear a flag, the rest go to the filesystem.
pub fn parse_options(options: &[String]) -> (MsFlags, MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut propagation = MsFlags::empty();
    let mut data = Vec::new();
    for option in options {
        let (set, clear) = match option.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "lazytime" => (MsFlags::MS_LAZYTIME, MsFlags::empty()),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                let kind = match option.trim_start_matches('r') {
                    "private" => MsFlags::MS_PRIVATE,
                    "shared" => MsFlags::MS_SHARED,
                    "slave" => MsFlags::MS_SLAVE,
                    _ => MsFlags::MS_UNBINDABLE,
                };
                let rec = if option.starts_with('r') {
                    MsFlags::MS_REC
                } else {
                    MsFlags::empty()
                };
                propagation = kind | rec;
                continue;
            }
            _ => {
                data.push(option.clone());
                continue;
            }
        };
        flags.insert(set);
        flags.remove(clear);
    }
    (flags, propagation, data.join(","))
}
// ANCHOR_END: options

// ANCHOR: plan
/// Checks one `mounts` entry and turns it into a plan. `bundle` anchors a relative bind source.
pub fn plan(entry: &Mount, bundle: &Path) -> Result<MountPlan, OciError> {
    let destination = entry.destination().clone();
    let field = format!("mounts[{}]", destination.display());
    if !destination.is_absolute() {
        return Err(OciError::invalid(
            format!("{field}.destination"),
            destination.display(),
            "a mount destination must be an absolute path inside the container",
        ));
    }
    let (flags, propagation, data) = parse_options(entry.options().as_deref().unwrap_or(&[]));
    let fstype = entry
        .typ()
        .clone()
        .filter(|t| !t.is_empty() && t != "none" && t != "bind");
    let bind = flags.contains(MsFlags::MS_BIND) || fstype.is_none();
    let flags = if bind {
        flags | MsFlags::MS_BIND
    } else {
        flags
    };
    let clean = normalize(&destination);
    let kind = fstype.as_deref().unwrap_or("bind");
    if clean == Path::new("/proc") && kind != "proc" {
        return Err(OciError::invalid(
            format!("{field}.type"),
            kind,
            "only a procfs may be mounted on /proc (a bind or another filesystem there could fake or expose what the kernel shows)",
        ));
    }
    if clean == Path::new("/dev") && !matches!(kind, "tmpfs" | "devtmpfs") {
        return Err(OciError::invalid(
            format!("{field}.type"),
            kind,
            "/dev takes only a tmpfs (or devtmpfs): the runtime fills it with the allowed devices",
        ));
    }
    if clean == Path::new("/") {
        return Err(OciError::invalid(
            format!("{field}.destination"),
            "/",
            "the root is root.path, not a mount",
        ));
    }
    let mut source = entry.source().clone();
    if bind {
        let Some(src) = &source else {
            return Err(OciError::invalid(
                format!("{field}.source"),
                "",
                "a bind mount needs a source",
            ));
        };
        let src = if src.is_absolute() {
            src.clone()
        } else {
            bundle.join(src)
        };
        if fs::metadata(&src).is_err() {
            return Err(OciError::invalid(
                format!("{field}.source"),
                src.display(),
                "the bind source does not exist on the host",
            ));
        }
        source = Some(src);
    }
    Ok(MountPlan {
        destination: clean,
        fstype,
        source,
        flags,
        propagation,
        data,
    })
}
// ANCHOR_END: plan

/// `/a/./b//c/` → `/a/b/c` (lexically; `..` is left to [`resolve_in_root`]).
fn normalize(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

// ANCHOR: resolve
/// Resolves `path` (as the container will see it) to a host path under `root`, following
/// symlinks as if `root` were `/`: no symlink and no `..` can lead outside. Components that do
/// not exist yet are appended as they are (the caller creates them). This is chapter 4's walk,
/// the one its unpacker uses for layer entries, one `lstat` per component.
pub fn resolve_in_root(root: &Path, path: &Path) -> Result<PathBuf, String> {
    let rel = resolve_dir_in_root(root, path).map_err(|e| {
        format!(
            "resolving {} inside the root {}: {e}",
            path.display(),
            root.display()
        )
    })?;
    Ok(root.join(rel))
}
// ANCHOR_END: resolve

/// Creates `target` (and its parents) inside `root` without following a symlink out: each
/// level is re-resolved, so a symlink met on the way is resolved inside the root.
fn make_mount_point(root: &Path, target: &Path, as_file: bool) -> Result<(), String> {
    let relative = target.strip_prefix(root).map_err(|_| {
        format!(
            "mount point {} is not under the root {}",
            target.display(),
            root.display()
        )
    })?;
    let mut current = root.to_path_buf();
    let parts: Vec<_> = relative.components().collect();
    for (index, part) in parts.iter().enumerate() {
        let next = current.join(part);
        let last = index + 1 == parts.len();
        match fs::symlink_metadata(&next) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(format!(
                    "{} became a symlink while mounting: refusing to follow it",
                    next.display()
                ))
            }
            Ok(meta) if !last && !meta.is_dir() => {
                return Err(format!("{} is not a directory", next.display()))
            }
            Ok(_) => {}
            Err(_) if last && as_file => {
                fs::File::create(&next).map_err(|e| format!("creating {}: {e}", next.display()))?;
            }
            Err(_) => {
                fs::create_dir(&next).map_err(|e| format!("mkdir {}: {e}", next.display()))?;
            }
        }
        current = next;
    }
    Ok(())
}

// ANCHOR: mount_all
/// Mounts every planned entry under `root`, in order, then makes the config's device nodes.
/// Runs in the container's init, in its own mount namespace, before the pivot.
pub fn mount_all(root: &Path, plans: &[MountPlan], devices: &[LinuxDevice]) -> Result<(), String> {
    for plan in plans {
        let target = resolve_in_root(root, &plan.destination)?;
        let source_is_file = plan.is_bind()
            && plan
                .source
                .as_ref()
                .and_then(|s| fs::metadata(s).ok())
                .is_some_and(|m| !m.is_dir());
        make_mount_point(root, &target, source_is_file)?;
        mount_one(plan, &target)?;
        if plan.destination == Path::new("/dev") {
            fill_dev(&target)?;
        }
    }
    for device in devices {
        make_device(root, device)?;
    }
    Ok(())
}
// ANCHOR_END: mount_all

fn mount_one(plan: &MountPlan, target: &Path) -> Result<(), String> {
    let what = format!(
        "mount {} on {} (type {}, options '{}')",
        plan.source
            .as_deref()
            .unwrap_or(Path::new("none"))
            .display(),
        plan.destination.display(),
        plan.fstype.as_deref().unwrap_or("bind"),
        plan.data
    );
    let data = (!plan.data.is_empty()).then_some(plan.data.as_str());
    if plan.is_bind() {
        let bind = plan.flags & (MsFlags::MS_BIND | MsFlags::MS_REC);
        mount(
            plan.source.as_deref(),
            target,
            None::<&str>,
            bind,
            None::<&str>,
        )
        .map_err(|e| format!("{what}: {e}"))?;
        // A bind mount ignores the other flags; a remount applies them.
        let rest = plan.flags - MsFlags::MS_REC;
        if rest != MsFlags::MS_BIND {
            mount(
                None::<&str>,
                target,
                None::<&str>,
                rest | MsFlags::MS_REMOUNT,
                None::<&str>,
            )
            .map_err(|e| format!("{what}: remount with its flags: {e}"))?;
        }
    } else if plan.fstype.as_deref() == Some("sysfs") {
        // A fresh sysfs needs its own network namespace (or root over the host's); chapter 4
        // falls back to a read-only bind of the host's /sys, as runc does.
        ch04_rootfs::pivot::mount_sys(target, plan.flags).map_err(|e| format!("{what}: {e}"))?;
    } else {
        let fstype = match plan.fstype.as_deref() {
            Some("cgroup") => cgroup_fstype(),
            other => other.unwrap_or("none").to_string(),
        };
        let source = plan
            .source
            .clone()
            .unwrap_or_else(|| PathBuf::from(&fstype));
        mount(
            Some(&source),
            target,
            Some(fstype.as_str()),
            plan.flags,
            data,
        )
        .map_err(|e| format!("{what}: {e}"))?;
    }
    if !plan.propagation.is_empty() {
        mount(
            None::<&str>,
            target,
            None::<&str>,
            plan.propagation,
            None::<&str>,
        )
        .map_err(|e| format!("{what}: setting propagation: {e}"))?;
    }
    Ok(())
}

/// The filesystem a `cgroup` mount becomes: the unified tree on a cgroup v2 host; on a v1 or
/// hybrid host an empty read-only tmpfs (exposing the container's own v1 hierarchies is not done
/// yet).
fn cgroup_fstype() -> String {
    match ch03_cgroups::detect() {
        Ok(ch03_cgroups::Layout::V2 { .. }) => "cgroup2".into(),
        _ => "tmpfs".into(),
    }
}

/// A config-mounted `/dev` gets what chapter 4's own `/dev` has: the standard device nodes and
/// the `fd`, `stdin`, `stdout`, `stderr`, `ptmx` links.
fn fill_dev(dev: &Path) -> Result<(), String> {
    ch04_rootfs::dev::populate_dev(dev, Path::new("/dev"))?;
    ch04_rootfs::dev::add_dev_links(dev)
}

// ANCHOR: devices
/// Makes one `linux.devices` node: `mknod` with its numbers and mode, owned as configured; where
/// `mknod` is refused (a user namespace), a bind mount of the host's node with those numbers.
fn make_device(root: &Path, device: &LinuxDevice) -> Result<(), String> {
    let path = device.path();
    let target = resolve_in_root(root, path)?;
    if let Some(parent) = target.parent() {
        make_mount_point(root, parent, false)?;
    }
    let kind = match device.typ() {
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        _ => SFlag::S_IFCHR,
    };
    let perms = Mode::from_bits_truncate(device.file_mode().unwrap_or(0o666) & 0o7777);
    let dev = makedev(device.major() as u64, device.minor() as u64);
    let _ = fs::remove_file(&target);
    match mknod(&target, kind, perms, dev) {
        Ok(()) => {
            // mknod applies the umask: set the mode exactly.
            let _ = fs::set_permissions(&target, fs::Permissions::from_mode(perms.bits()));
        }
        Err(nix::errno::Errno::EPERM) if path.exists() => {
            fs::File::create(&target).map_err(|e| format!("creating {}: {e}", target.display()))?;
            mount(
                Some(path),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| format!("bind {} on {}: {e}", path.display(), target.display()))?;
        }
        Err(e) => return Err(format!("mknod {}: {e}", path.display())),
    }
    let uid = device.uid().map(nix::unistd::Uid::from_raw);
    let gid = device.gid().map(nix::unistd::Gid::from_raw);
    if uid.is_some() || gid.is_some() {
        nix::unistd::chown(&target, uid, gid)
            .map_err(|e| format!("chown {}: {e}", target.display()))?;
    }
    Ok(())
}
// ANCHOR_END: devices

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::MountBuilder;
    use std::os::unix::fs::symlink;

    #[test]
    fn options_become_flags_propagation_and_data() {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (flags, prop, data) = parse_options(&words(&[
            "nosuid",
            "strictatime",
            "mode=755",
            "size=65536k",
        ]));
        assert_eq!(flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert!(prop.is_empty());
        assert_eq!(data, "mode=755,size=65536k");
        let (flags, prop, _) = parse_options(&words(&["rbind", "ro", "rprivate", "rw"]));
        assert_eq!(flags, MsFlags::MS_BIND | MsFlags::MS_REC);
        assert_eq!(prop, MsFlags::MS_PRIVATE | MsFlags::MS_REC);
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let scratch = labkit::ScratchDir::new("ch06-resolve").unwrap();
        let root = scratch.join("root");
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::create_dir_all(root.join("data")).unwrap();
        symlink("/../../../tmp", root.join("escape")).unwrap();
        symlink("../../../../data", root.join("etc/rel")).unwrap();
        symlink("/data", root.join("abs")).unwrap();
        let r = |p: &str| resolve_in_root(&root, Path::new(p)).unwrap();
        assert_eq!(r("/escape/x"), root.join("tmp/x"));
        assert_eq!(r("/etc/rel/y"), root.join("data/y"));
        assert_eq!(r("/abs"), root.join("data"));
        assert_eq!(r("/../../etc"), root.join("etc"));
        assert_eq!(r("/new/a/../b"), root.join("new/b"));
        symlink("loop", root.join("loop")).unwrap();
        assert!(resolve_in_root(&root, Path::new("/loop")).is_err());
    }

    #[test]
    fn proc_and_dev_take_only_their_filesystems() {
        let bundle = Path::new("/");
        let entry = |dest: &str, typ: &str, src: &str| {
            MountBuilder::default()
                .destination(dest)
                .typ(typ)
                .source(src)
                .build()
                .unwrap()
        };
        assert!(plan(&entry("/proc", "proc", "proc"), bundle).is_ok());
        let err = plan(&entry("/proc", "bind", "/tmp"), bundle)
            .unwrap_err()
            .to_string();
        assert!(err.contains("only a procfs"), "{err}");
        let err = plan(&entry("/dev/", "sysfs", "sysfs"), bundle)
            .unwrap_err()
            .to_string();
        assert!(err.contains("/dev takes only a tmpfs"), "{err}");
        assert!(plan(&entry("/dev", "tmpfs", "tmpfs"), bundle).is_ok());
        let err = plan(&entry("relative", "tmpfs", "tmpfs"), bundle)
            .unwrap_err()
            .to_string();
        assert!(err.contains("absolute"), "{err}");
        let err = plan(&entry("/x", "bind", "/nonexistent/boxlab"), bundle)
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
        let p = plan(&entry("/x", "none", "/tmp"), bundle).unwrap();
        assert!(p.is_bind());
    }
}
