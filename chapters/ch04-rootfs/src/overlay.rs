//! overlayfs: an image's layers stacked read-only, with one writable layer on top per container.
//!
//! ```text
//!   merged/   what the container sees as /          (mount -t overlay)
//!   upper/    the container's own changes           (writable, one per container)
//!   work/     overlayfs's scratch space             (same filesystem as upper)
//!   lower N … lower 1   the image's layers          (read-only, shared by every container)
//! ```
//!
//! A file is looked up from the top down; a write copies the file up into `upper` first; a
//! deletion leaves a *whiteout* in `upper` (a 0:0 character device) that hides the lower file.
//! So starting a container costs one mount, not a copy of the image.

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};

/// The largest mount option string the kernel takes (one page).
const MAX_MOUNT_DATA: usize = 4096;

/// What to mount.
#[derive(Debug, Clone)]
pub struct OverlaySpec {
    /// The image's layers, lowest (base) first.
    pub lowers: Vec<PathBuf>,
    /// The container's writable layer.
    pub upper: PathBuf,
    /// overlayfs's work directory (must be empty, on the same filesystem as `upper`).
    pub work: PathBuf,
    /// Where the merged view appears.
    pub merged: PathBuf,
    /// Store overlay metadata in `user.*` xattrs: needed inside a user namespace (rootless),
    /// where `trusted.*` xattrs are out of reach.
    pub userxattr: bool,
}

/// Whether this kernel has overlayfs (it is listed in /proc/filesystems once the module is in).
pub fn overlay_available() -> bool {
    fs::read_to_string("/proc/filesystems")
        .map(|list| list.lines().any(|l| l.trim_end().ends_with("overlay")))
        .unwrap_or(false)
}

// ANCHOR: mount_overlay
/// Mounts the overlay. overlayfs lists `lowerdir` top-most first, so the base layer goes last.
pub fn mount_overlay(spec: &OverlaySpec) -> Result<(), String> {
    if spec.lowers.is_empty() {
        return Err("an overlay needs at least one lower layer".into());
    }
    let lowers: Vec<String> = spec.lowers.iter().rev().map(|p| escape(p)).collect();
    let mut options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowers.join(":"),
        escape(&spec.upper),
        escape(&spec.work)
    );
    if spec.userxattr {
        options.push_str(",userxattr");
    }
    if options.len() >= MAX_MOUNT_DATA {
        return Err(format!(
            "{} layers make a {}-byte option string, over the kernel's {MAX_MOUNT_DATA}: use shorter store paths or fewer layers",
            spec.lowers.len(),
            options.len()
        ));
    }
    mount(
        Some("overlay"),
        &spec.merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(|e| {
        let hint = match e {
            nix::errno::Errno::ENODEV => " (no overlayfs in this kernel: modprobe overlay)",
            nix::errno::Errno::EINVAL if spec.userxattr => " (rootless overlay needs Linux 5.11+)",
            nix::errno::Errno::EINVAL => {
                " (a layer directory is missing, or upper and work are on different filesystems)"
            }
            _ => "",
        };
        format!(
            "mount -t overlay -o {options} overlay {}: {e}{hint}",
            spec.merged.display()
        )
    })
}
// ANCHOR_END: mount_overlay

/// overlayfs splits its options on ',' and the layer list on ':'; a backslash escapes them.
fn escape(path: &Path) -> String {
    path.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace(':', "\\:")
        .replace(',', "\\,")
}

/// The directories of one container's writable layer, under `dir`.
pub fn container_layer(
    dir: &Path,
    lowers: Vec<PathBuf>,
    userxattr: bool,
) -> Result<OverlaySpec, std::io::Error> {
    let spec = OverlaySpec {
        lowers,
        upper: dir.join("upper"),
        work: dir.join("work"),
        merged: dir.join("merged"),
        userxattr,
    };
    for d in [&spec.upper, &spec.work, &spec.merged] {
        fs::create_dir_all(d)?;
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_in_paths_are_escaped() {
        assert_eq!(escape(Path::new("/a:b,c\\d")), "/a\\:b\\,c\\\\d");
    }

    #[test]
    fn an_overlay_without_layers_is_refused() {
        let spec = OverlaySpec {
            lowers: vec![],
            upper: "/u".into(),
            work: "/w".into(),
            merged: "/m".into(),
            userxattr: false,
        };
        assert!(mount_overlay(&spec)
            .unwrap_err()
            .contains("at least one lower layer"));
    }
}
