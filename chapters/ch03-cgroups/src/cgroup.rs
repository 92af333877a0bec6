//! One cgroup, on whichever layout the host has: create it with limits, put processes in it,
//! read its usage, and remove it — killing what is left inside first.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{geteuid, Pid};

use crate::files::{exists, read, write, Written};
use crate::rootless::{delegated_base, own_v2_cgroup};
use crate::{v1, v2, CgroupError, CgroupPath, Layout, Limits, Usage};

/// The v1 hierarchies boxlab uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V1Controller {
    Memory,
    Cpu,
    Cpuacct,
    Pids,
    Cpuset,
    /// Which device nodes may be opened; chapter 5 writes its rules.
    Devices,
    /// Stops and thaws every process at once (`freezer.state`); chapter 6's `pause`.
    Freezer,
}

impl V1Controller {
    pub const ALL: [V1Controller; 7] = [
        V1Controller::Memory,
        V1Controller::Cpu,
        V1Controller::Cpuacct,
        V1Controller::Pids,
        V1Controller::Cpuset,
        V1Controller::Devices,
        V1Controller::Freezer,
    ];

    /// The hierarchy's directory name under the root (`/sys/fs/cgroup/memory`).
    pub fn name(self) -> &'static str {
        match self {
            V1Controller::Memory => "memory",
            V1Controller::Cpu => "cpu",
            V1Controller::Cpuacct => "cpuacct",
            V1Controller::Pids => "pids",
            V1Controller::Cpuset => "cpuset",
            V1Controller::Devices => "devices",
            V1Controller::Freezer => "freezer",
        }
    }

    /// Whether `limits` cannot be applied without this controller.
    fn required_by(self, limits: &Limits) -> bool {
        match self {
            V1Controller::Memory => limits.memory.is_some() || limits.memory_swap.is_some(),
            V1Controller::Cpu => limits.cpu_millis.is_some() || limits.cpu_shares.is_some(),
            V1Controller::Cpuacct => false,
            V1Controller::Pids => limits.pids.is_some(),
            V1Controller::Cpuset => limits.cpuset_cpus.is_some(),
            V1Controller::Devices | V1Controller::Freezer => false,
        }
    }
}

/// One directory of the cgroup: per v1 hierarchy, or the single v2 one.
#[derive(Debug, Clone)]
struct Dir {
    path: PathBuf,
    /// The hierarchy's root, so that empty parents can be removed up to (not including) it.
    top: PathBuf,
    kind: DirKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DirKind {
    V1(V1Controller),
    V2,
    /// The controller-less cgroup2 tree of a hybrid host: processes are placed there too, so
    /// `cgroup.kill` and (chapter 5) device eBPF programs work.
    HybridUnified,
}

// ANCHOR: tops
/// Where each directory of a cgroup goes on `layout`: the top of its hierarchy and its kind —
/// one per v1 controller (plus the controller-less cgroup2 twin on a hybrid host), or the one
/// v2 tree. `create` makes these directories and `open` looks for them, so both walk this list.
fn tops(layout: &Layout) -> Vec<(PathBuf, DirKind)> {
    match layout {
        Layout::V1 { root } | Layout::Hybrid { root, .. } => {
            let mut tops: Vec<_> = V1Controller::ALL
                .into_iter()
                .map(|controller| (root.join(controller.name()), DirKind::V1(controller)))
                .collect();
            if let Layout::Hybrid { unified, .. } = layout {
                tops.push((unified.clone(), DirKind::HybridUnified));
            }
            tops
        }
        Layout::V2 { root } => vec![(root.clone(), DirKind::V2)],
    }
}
// ANCHOR_END: tops

/// A cgroup that exists on the host. A handle from [`Cgroup::create`] or [`Cgroup::open`] owns
/// it: dropping the handle removes the cgroup (killing anything still inside). One from
/// [`Cgroup::observe`] does not.
#[derive(Debug)]
pub struct Cgroup {
    layout: Layout,
    path: CgroupPath,
    dirs: Vec<Dir>,
    /// Whether dropping the handle removes the cgroup.
    owned: bool,
    removed: bool,
}

impl Cgroup {
    // ANCHOR: create
    /// Creates the cgroup `path` and applies `limits`; returns it with every file written, in
    /// order. On any error, whatever was created is removed again.
    pub fn create(
        layout: &Layout,
        path: &CgroupPath,
        limits: &Limits,
    ) -> Result<(Cgroup, Vec<Written>), CgroupError> {
        limits.validate()?;
        let base = delegated_base(layout, geteuid(), &own_v2_cgroup())?;
        let relative = base.join(path.as_path());
        let mut cgroup = Cgroup {
            layout: layout.clone(),
            path: path.clone(),
            dirs: Vec::new(),
            owned: true,
            removed: false,
        };
        let mut written = Vec::new();
        for (top, kind) in tops(layout) {
            let (dir, prepared) = match kind {
                DirKind::V1(controller) => {
                    if !top.is_dir() {
                        if controller.required_by(limits) {
                            return Err(CgroupError::ControllerMissing {
                                controller: controller.name(),
                                where_: top,
                                hint: "this cgroup v1 hierarchy is not mounted (mount -t cgroup -o NAME cgroup DIR)".into(),
                            });
                        }
                        continue;
                    }
                    make_dirs(&top, &relative, |level| match controller {
                        V1Controller::Cpuset => v1::cpuset::inherit_from_parent(level),
                        _ => Ok(Vec::new()),
                    })?
                }
                // No controllers there: nothing to prepare.
                DirKind::HybridUnified => make_dirs(&top, &relative, |_| Ok(Vec::new()))?,
                DirKind::V2 => {
                    let (wanted, required) = v2::controllers_for(limits);
                    make_dirs(&top, &relative, |level| {
                        // The level's parent passes the controllers down to it.
                        let parent = level.parent().unwrap_or(&top);
                        v2::enable_controllers(&top, &[parent], &wanted, &required)
                    })?
                }
            };
            written.extend(prepared);
            cgroup.dirs.push(Dir {
                path: dir,
                top,
                kind,
            });
        }
        // The limits, once every directory exists.
        for dir in &cgroup.dirs {
            let path = &dir.path;
            match dir.kind {
                DirKind::V1(V1Controller::Memory) => {
                    written.extend(v1::memory::apply(path, limits)?)
                }
                DirKind::V1(V1Controller::Cpu) => written.extend(v1::cpu::apply(path, limits)?),
                DirKind::V1(V1Controller::Pids) => written.extend(v1::pids::apply(path, limits)?),
                DirKind::V1(V1Controller::Cpuset) => {
                    written.extend(v1::cpuset::apply(path, limits)?)
                }
                DirKind::V2 => {
                    written.extend(v2::memory::apply(path, limits)?);
                    written.extend(v2::cpu::apply(path, limits)?);
                    written.extend(v2::pids::apply(path, limits)?);
                    written.extend(v2::cpuset::apply(path, limits)?);
                }
                _ => {}
            }
        }
        Ok((cgroup, written))
    }
    // ANCHOR_END: create

    // ANCHOR: open
    /// Re-opens the existing cgroup `path` (made earlier, perhaps by another process: an OCI
    /// runtime's `create` makes it, its `delete` removes it). Takes every directory of it that
    /// exists — per v1 hierarchy, the cgroup2 twin on a hybrid host, or the one v2 directory —
    /// and creates nothing. Errors if none exists.
    ///
    /// Like a created one, the handle removes the cgroup when dropped: to only look, use
    /// [`Cgroup::observe`] (or call [`Cgroup::keep`]).
    pub fn open(layout: &Layout, path: &CgroupPath) -> Result<Cgroup, CgroupError> {
        let base = delegated_base(layout, geteuid(), &own_v2_cgroup())?;
        let relative = base.join(path.as_path());
        let (found, missing): (Vec<_>, Vec<_>) = tops(layout)
            .into_iter()
            .map(|(top, kind)| Dir {
                path: top.join(&relative),
                top,
                kind,
            })
            .partition(|dir| dir.path.is_dir());
        if found.is_empty() {
            return Err(CgroupError::NotFound {
                path: path.to_string(),
                checked: missing.into_iter().map(|dir| dir.path).collect(),
            });
        }
        Ok(Cgroup {
            layout: layout.clone(),
            path: path.clone(),
            dirs: found,
            owned: true,
            removed: false,
        })
    }
    // ANCHOR_END: open

    /// Opens the existing cgroup `path` as [`Cgroup::open`] does, but only to look and to act on
    /// what is inside (read usage, list or add processes, freeze): dropping this handle leaves
    /// the cgroup as it is, so an early return cannot take a container's cgroup with it. Only an
    /// explicit [`Cgroup::remove`] removes it.
    pub fn observe(layout: &Layout, path: &CgroupPath) -> Result<Cgroup, CgroupError> {
        let mut cgroup = Cgroup::open(layout, path)?;
        cgroup.owned = false;
        Ok(cgroup)
    }

    /// Lets go of the handle and leaves the cgroup on the host (with whatever is inside): the
    /// opposite of dropping it, for a cgroup that outlives this process.
    pub fn keep(mut self) {
        self.owned = false;
    }

    /// The cgroup's name.
    pub fn path(&self) -> &CgroupPath {
        &self.path
    }

    /// The layout it was made on.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Its directories: one per v1 hierarchy, or one on v2.
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(|d| d.path.as_path())
    }

    /// The directory of a v1 controller, if this is a v1 or hybrid cgroup that has it.
    pub fn v1_dir(&self, controller: V1Controller) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|d| d.kind == DirKind::V1(controller))
            .map(|d| d.path.as_path())
    }

    /// The cgroup2 directory: the cgroup itself on v2, the controller-less twin on hybrid.
    pub fn unified_dir(&self) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|d| matches!(d.kind, DirKind::V2 | DirKind::HybridUnified))
            .map(|d| d.path.as_path())
    }

    // ANCHOR: add_process
    /// Moves process `pid` (and, from then on, every child it forks) into the cgroup: one write
    /// of its pid to `cgroup.procs` in each directory.
    pub fn add_process(&self, pid: Pid) -> Result<Vec<Written>, CgroupError> {
        self.dirs
            .iter()
            .map(|dir| write(&dir.path, "cgroup.procs", pid))
            .collect()
    }
    // ANCHOR_END: add_process

    /// Reads the usage figures this host reports.
    pub fn usage(&self) -> Result<Usage, CgroupError> {
        let mut usage = Usage::default();
        for dir in &self.dirs {
            match dir.kind {
                DirKind::V1(V1Controller::Memory) => v1::memory::read_usage(&dir.path, &mut usage)?,
                DirKind::V1(V1Controller::Cpuacct) => {
                    v1::cpuacct::read_usage(&dir.path, &mut usage)?
                }
                DirKind::V1(V1Controller::Pids) => v1::pids::read_usage(&dir.path, &mut usage)?,
                DirKind::V1(V1Controller::Cpu) => v1::cpu::read_usage(&dir.path, &mut usage)?,
                DirKind::V2 => {
                    if exists(&dir.path, "memory.current") {
                        v2::memory::read_usage(&dir.path, &mut usage)?;
                    }
                    if exists(&dir.path, "pids.current") {
                        v2::pids::read_usage(&dir.path, &mut usage)?;
                    }
                    v2::cpu::read_usage(&dir.path, &mut usage)?;
                }
                _ => {}
            }
        }
        Ok(usage)
    }

    /// The processes in it now (from every directory, without duplicates).
    pub fn processes(&self) -> Vec<Pid> {
        let mut pids: Vec<Pid> = self
            .dirs
            .iter()
            .filter_map(|dir| read(&dir.path, "cgroup.procs").ok())
            .flat_map(|text| {
                text.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .map(Pid::from_raw)
                    .collect::<Vec<_>>()
            })
            .collect();
        pids.sort();
        pids.dedup();
        pids
    }

    // ANCHOR: kill
    /// Kills every process inside: with `cgroup.kill` where the kernel has it (5.14+, v2 and the
    /// hybrid twin), which cannot race with a fork; otherwise by sending SIGKILL to each listed
    /// process until none is left.
    pub fn kill_all(&self) {
        if let Some(dir) = self.unified_dir() {
            if exists(dir, "cgroup.kill") {
                let _ = write(dir, "cgroup.kill", 1);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let pids = self.processes();
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            for pid in pids {
                let _ = kill(pid, Signal::SIGKILL);
            }
            sleep(Duration::from_millis(2));
        }
    }
    // ANCHOR_END: kill

    /// Kills what is left inside, then removes every directory, and the `boxlab` parents if they
    /// are now empty.
    pub fn remove(mut self) -> Result<(), CgroupError> {
        self.remove_now()
    }

    fn remove_now(&mut self) -> Result<(), CgroupError> {
        if self.removed {
            return Ok(());
        }
        self.removed = true;
        self.kill_all();
        let mut first_error = None;
        for dir in self.dirs.iter().rev() {
            if let Err(e) = remove_dir_waiting(&dir.path) {
                first_error.get_or_insert(e);
                continue;
            }
            remove_empty_parents(&dir.path, &dir.top);
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if self.owned {
            let _ = self.remove_now();
        }
    }
}

/// Creates `top/relative` level by level, outermost first, and runs `prepare` on each level once
/// it exists (v1 cpuset copies its parent's CPUs into it; v2 makes the parent pass controllers
/// down). The last level must not exist yet. Retries when another runtime removes a shared,
/// empty parent (`boxlab/`) between our steps; on error removes what it created.
fn make_dirs(
    top: &Path,
    relative: &Path,
    mut prepare: impl FnMut(&Path) -> Result<Vec<Written>, CgroupError>,
) -> Result<(PathBuf, Vec<Written>), CgroupError> {
    let leaf = top.join(relative);
    let mut levels: Vec<PathBuf> = relative
        .ancestors()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| top.join(p))
        .collect();
    levels.reverse();
    let mut last_error = None;
    'attempt: for _ in 0..10 {
        let mut written = Vec::new();
        for level in &levels {
            match fs::create_dir(level) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && *level != leaf => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(CgroupError::Exists { dir: leaf })
                }
                // The parent is gone (ENOENT) or being removed (ENODEV, from cgroupfs).
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound
                        || e.raw_os_error() == Some(libc::ENODEV) =>
                {
                    continue 'attempt
                }
                Err(e) => {
                    let errno = Errno::from_raw(e.raw_os_error().unwrap_or(0));
                    let hint = if matches!(errno, Errno::EACCES | Errno::EPERM) {
                        ": run as root"
                    } else {
                        ""
                    };
                    remove_empty_parents(level, top);
                    return Err(CgroupError::Create {
                        dir: level.clone(),
                        errno,
                        hint,
                    });
                }
            }
            match prepare(level) {
                Ok(more) => written.extend(more),
                // A shared parent that was empty a moment ago, being removed by another
                // runtime between our mkdir and our writes into it: its files fail (ENODEV),
                // and by the time we look the path may hold a new directory already. Start
                // again from the top, as for a parent gone before our mkdir; a lasting error
                // comes back on every attempt and is returned after the last.
                Err(e) if *level != leaf => {
                    last_error = Some(e);
                    continue 'attempt;
                }
                Err(e) => {
                    let _ = fs::remove_dir(&leaf);
                    remove_empty_parents(&leaf, top);
                    return Err(e);
                }
            }
        }
        return Ok((leaf, written));
    }
    // Parents we made for nothing go again (unless another runtime's cgroup is in them now).
    remove_empty_parents(&leaf, top);
    Err(last_error.unwrap_or(CgroupError::Create {
        dir: leaf,
        errno: Errno::ENOENT,
        hint: ": a parent kept disappearing",
    }))
}

/// `rmdir`, retrying while the kernel still counts exiting processes (EBUSY).
fn remove_dir_waiting(dir: &Path) -> Result<(), CgroupError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if Instant::now() < deadline && e.raw_os_error() == Some(libc::EBUSY) => {
                sleep(Duration::from_millis(5))
            }
            Err(e) => {
                return Err(CgroupError::Remove {
                    dir: dir.to_path_buf(),
                    reason: e.to_string(),
                })
            }
        }
    }
}

/// Removes the now-empty parents of `dir` up to (not including) `top`; stops at the first one
/// that still has children (another container's).
fn remove_empty_parents(dir: &Path, top: &Path) {
    for parent in dir
        .ancestors()
        .skip(1)
        .take_while(|p| p.starts_with(top) && *p != top)
    {
        if fs::remove_dir(parent).is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a hybrid layout made of plain directories (no cgroupfs is touched).
    #[test]
    fn open_says_where_it_looked_and_an_observed_handle_leaves_the_cgroup() {
        if !geteuid().is_root() {
            // Without root, `open` first wants a delegated cgroup2 tree, which v1 cannot have.
            eprintln!("skipped: needs root");
            return;
        }
        let scratch = labkit::ScratchDir::new("open").unwrap();
        let root = scratch.path().to_path_buf();
        let layout = Layout::Hybrid {
            root: root.clone(),
            unified: root.join("unified"),
        };
        let path = CgroupPath::new("boxlab/t").unwrap();

        let err = Cgroup::open(&layout, &path).unwrap_err();
        let CgroupError::NotFound { checked, .. } = &err else {
            panic!("expected NotFound, got {err:?}");
        };
        assert_eq!(checked.len(), V1Controller::ALL.len() + 1, "{checked:?}");
        let text = err.to_string();
        for dir in ["pids/boxlab/t", "freezer/boxlab/t", "unified/boxlab/t"] {
            assert!(
                text.contains(&root.join(dir).display().to_string()),
                "{text}"
            );
        }

        let pids = root.join("pids/boxlab/t");
        fs::create_dir_all(&pids).unwrap();
        let observed = Cgroup::observe(&layout, &path).unwrap();
        assert_eq!(observed.dirs().collect::<Vec<_>>(), vec![pids.as_path()]);
        drop(observed);
        assert!(
            pids.is_dir(),
            "dropping an observed handle removed the cgroup"
        );
    }
}
