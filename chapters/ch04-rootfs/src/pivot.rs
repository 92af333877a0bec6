//! Switching the container's root: bind the prepared directory onto itself, give it the mounts
//! a container needs, and `pivot_root` into it, leaving no way back to the host's files.

use std::fs;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, pivot_root};

use crate::dev::{add_dev_links, populate_dev};
use crate::unpack::resolve::{clean_entry_name, make_dirs, resolve_dir_in_root};

/// A root filesystem to switch into.
#[derive(Debug, Clone, Default)]
pub struct RootfsSpec {
    /// The directory that becomes `/`.
    pub path: PathBuf,
    /// Remount `/` read-only once everything is mounted (`docker run --read-only`).
    pub readonly: bool,
    /// Extra device nodes for the container's `/dev` (chapter 5's GPUs): each host node is
    /// bind-mounted at `/dev/<name>`.
    pub devices: Vec<DeviceNode>,
    /// Host files or directories bind-mounted into the root (chapter 5's driver libraries).
    pub binds: Vec<BindMount>,
    /// The caller mounts its own `/dev` before this step runs (an OCI config's `mounts` list
    /// does): skip the default tmpfs `/dev`, which would hide it.
    pub own_dev: bool,
    /// The caller mounts its own `/sys`: skip the default read-only sysfs.
    pub own_sys: bool,
}

/// A host device node to expose as `/dev/<name>` inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    /// The node on the host (`/dev/nvidia0`).
    pub host: PathBuf,
    /// Its name under the container's `/dev` (`nvidia0`, `nvidia-caps/nvidia-cap1`).
    pub name: PathBuf,
}

/// A bind mount into the container's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// On the host.
    pub source: PathBuf,
    /// Inside the container (an absolute path, as the container sees it).
    pub target: PathBuf,
    pub readonly: bool,
}

// ANCHOR: pivot
/// Runs inside the container's init, in its own mount namespace, after mounts were made private
/// (chapter 2) and before `/proc` is mounted. On return, `/` is `spec.path`.
pub fn enter_rootfs(spec: &RootfsSpec) -> Result<(), String> {
    let root = &spec.path;
    // `--rootfs /` (the host's own files, as chapter 5's GPU check uses): there is no other root
    // to pivot into — a bind of / onto itself hides under the root that "/" resolves to, and
    // pivot_root answers EBUSY — so the fresh /dev, /sys and binds below are simply mounted over
    // the host's in this private mount namespace. The host's other mounts stay visible.
    let host_root = fs::canonicalize(root).is_ok_and(|real| real == Path::new("/"));
    if !host_root {
        // pivot_root needs the new root to be a mount point: bind it onto itself.
        mount(
            Some(root),
            root,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| format!("mount --rbind {0} {0}: {e}", root.display()))?;
    }

    for dir in ["proc", "dev", "sys"] {
        ensure_dir(&root.join(dir))?;
    }
    // The host's device nodes are bound from the host's /dev. With the host's root, the fresh
    // /dev covers it, so hold it open first and reach it through /proc/self/fd.
    let host_dev_dir = if host_root {
        Some(fs::File::open("/dev").map_err(|e| format!("opening the host's /dev: {e}"))?)
    } else {
        None
    };
    let host_dev = match &host_dev_dir {
        Some(dir) => PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())),
        None => PathBuf::from("/dev"),
    };
    if !spec.own_dev {
        mount_dev(&root.join("dev"), &host_dev)?;
    }
    for device in &spec.devices {
        bind_device(root, device, &host_dev)?;
    }
    if !spec.own_sys {
        mount_sys(&root.join("sys"), SYS_FLAGS)?;
    }
    for bind in &spec.binds {
        bind_into(root, bind)?;
    }

    // The runc trick: with both arguments ".", the old root ends up stacked *under* the new one
    // at "/", and a lazy unmount of "." removes it. No directory for the old root is needed, so
    // none is left behind in the image.
    if !host_root {
        chdir(root).map_err(|e| format!("chdir {}: {e}", root.display()))?;
        pivot_root(".", ".").map_err(|e| format!("pivot_root({}): {e}", root.display()))?;
        umount2(".", MntFlags::MNT_DETACH).map_err(|e| format!("unmounting the old root: {e}"))?;
    }
    chdir("/").map_err(|e| format!("chdir /: {e}"))?;

    if spec.readonly {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
            .map_err(|e| format!("remount / read-only: {e}"))?;
    }
    Ok(())
}
// ANCHOR_END: pivot

// ANCHOR: dev
/// A fresh `/dev`: a small tmpfs with the handful of devices every program expects, its own
/// pseudo-terminal instance, and shared memory. Never the host's `/dev`, which would hand the
/// container every disk.
fn mount_dev(dev: &Path, host_dev: &Path) -> Result<(), String> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME;
    mount(
        Some("tmpfs"),
        dev,
        Some("tmpfs"),
        flags,
        Some("mode=755,size=65536k"),
    )
    .map_err(|e| format!("mount tmpfs on {}: {e}", dev.display()))?;
    populate_dev(dev, host_dev)?;

    let pts = dev.join("pts");
    ensure_dir(&pts)?;
    let pts_flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        pts_flags,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )
    .map_err(|e| format!("mount devpts on {}: {e}", pts.display()))?;

    let shm = dev.join("shm");
    ensure_dir(&shm)?;
    let shm_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some("shm"),
        &shm,
        Some("tmpfs"),
        shm_flags,
        Some("mode=1777,size=65536k"),
    )
    .map_err(|e| format!("mount tmpfs on {}: {e}", shm.display()))?;

    add_dev_links(dev)
}
// ANCHOR_END: dev

/// The flags of the container's `/sys`: read-only, and nothing on it runs or acts as a device.
pub const SYS_FLAGS: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NOSUID)
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// A sysfs on `sys` with `flags` ([`SYS_FLAGS`] here; chapter 6 passes its config's). A fresh
/// sysfs shows the container's own network namespace; where the kernel refuses one with EPERM
/// (a user namespace without its own network namespace), the host's `/sys` is bound instead,
/// always read-only, as runc does.
pub fn mount_sys(sys: &Path, flags: MsFlags) -> Result<(), String> {
    match mount(Some("sysfs"), sys, Some("sysfs"), flags, None::<&str>) {
        Ok(()) => return Ok(()),
        Err(nix::errno::Errno::EPERM) => {}
        Err(e) => return Err(format!("mount sysfs on {}: {e}", sys.display())),
    }
    mount(
        Some("/sys"),
        sys,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| format!("bind /sys on {} (sysfs was refused): {e}", sys.display()))?;
    let remount =
        flags | MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC;
    mount(None::<&str>, sys, None::<&str>, remount, None::<&str>)
        .map_err(|e| format!("remount {} read-only: {e}", sys.display()))
}

/// Bind-mounts a host device node onto an empty file in the container's `/dev`; a node under
/// the host's `/dev` is reached through `host_dev` (see [`enter_rootfs`]). The node's path is
/// resolved inside `root` like a bind's target: a caller's own `/dev` may hold symlinks.
fn bind_device(root: &Path, device: &DeviceNode, host_dev: &Path) -> Result<(), String> {
    let node = mount_point_in_root(root, &Path::new("/dev").join(&device.name), false)?;
    let source = match device.host.strip_prefix("/dev") {
        Ok(rest) => host_dev.join(rest),
        Err(_) => device.host.clone(),
    };
    mount(
        Some(&source),
        &node,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| format!("bind {} on {}: {e}", device.host.display(), node.display()))
}

/// Bind-mounts `bind.source` at `bind.target` inside `root` (read-only if asked), creating the
/// mount point as a file or directory to match the source.
fn bind_into(root: &Path, bind: &BindMount) -> Result<(), String> {
    let source_meta = fs::metadata(&bind.source)
        .map_err(|e| format!("bind source {}: {e}", bind.source.display()))?;
    let target = mount_point_in_root(root, &bind.target, source_meta.is_dir())?;
    mount(
        Some(&bind.source),
        &target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| {
        format!(
            "bind {} on {}: {e}",
            bind.source.display(),
            target.display()
        )
    })?;
    if bind.readonly {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        mount(None::<&str>, &target, None::<&str>, flags, None::<&str>)
            .map_err(|e| format!("remount {} read-only: {e}", target.display()))?;
    }
    Ok(())
}

// ANCHOR: mount_point
/// The host path of `target` (a path as the container will see it) under `root`, made ready to
/// mount on: a directory if `dir`, else an empty file, with missing parents created.
///
/// This runs before `pivot_root`, while the host's files are still reachable, on a tree that
/// came from an image. A plain `root.join(target)` would let an image's `usr -> /` turn a bind
/// at `/usr/lib/x` into a file created on the host; so the path is resolved the way the unpacker
/// resolves entries (symlinks followed as the container sees them, never above `root`), and
/// only real directories are walked or created. Unlike the unpacker, the last component is
/// followed too (inside the root), as runc does: `mount(2)` would follow it anyway.
pub fn mount_point_in_root(root: &Path, target: &Path, dir: bool) -> Result<PathBuf, String> {
    let clean = clean_entry_name(target)
        .ok_or_else(|| format!("mount target {} leaves the root", target.display()))?;
    let rel = resolve_dir_in_root(root, &clean).map_err(|e| {
        format!(
            "resolving mount target {} under {}: {e}",
            target.display(),
            root.display()
        )
    })?;
    let parents = if dir {
        Some(rel.as_path())
    } else {
        rel.parent()
    };
    make_dirs(root, parents.unwrap_or(Path::new("")), |_| {}).map_err(|(path, e)| {
        format!(
            "mount target {}: making directory {}: {e}",
            target.display(),
            path.display()
        )
    })?;
    let host = root.join(&rel);
    if !dir && fs::symlink_metadata(&host).is_err() {
        // O_EXCL: never through a symlink, should one have appeared since the walk.
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&host)
            .map_err(|e| {
                format!(
                    "mount target {}: creating {}: {e}",
                    target.display(),
                    host.display()
                )
            })?;
    }
    Ok(host)
}
// ANCHOR_END: mount_point

fn ensure_dir(dir: &Path) -> Result<(), String> {
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(format!(
            "{} exists but is not a directory; a mount point must be one",
            dir.display()
        )),
        Err(_) => fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display())),
    }
}
