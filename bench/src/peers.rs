//! What the report (`src/report/`) and the criterion bench (`benches/oci.rs`) both need to run
//! our runtime beside crun and runc: the busybox bundle, finding the programs, cleaning up after
//! them, measuring a peak resident set, and giving crun a cgroup view it accepts on a hybrid
//! host.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A busybox bundle in `dir` running `args`, with our `spec`'s config.json (runc's defaults);
/// `writable`: the root filesystem is not read-only (the report's isolation check leaves its
/// findings in files there).
pub fn bundle(dir: &Path, args: &[&str], writable: bool) -> Result<PathBuf, String> {
    labkit::busybox_rootfs(&dir.join("rootfs"))
        .map_err(|e| format!("a busybox rootfs (apt install busybox-static): {e}"))?;
    let config_path = dir.join("config.json");
    let err =
        |doing: &str, e: &dyn std::fmt::Display| format!("{doing} {}: {e}", config_path.display());
    let _ = fs::remove_file(&config_path);
    ch06_oci::verbs::spec::write_spec(dir, false).map_err(|e| err("writing", &e))?;
    let text = fs::read_to_string(&config_path).map_err(|e| err("reading", &e))?;
    let mut config: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| err("parsing", &e))?;
    config["process"]["args"] = serde_json::json!(args);
    if writable {
        config["root"]["readonly"] = serde_json::json!(false);
    }
    let text = serde_json::to_string_pretty(&config).map_err(|e| err("serializing", &e))?;
    fs::write(&config_path, text).map_err(|e| err("writing", &e))?;
    Ok(dir.to_path_buf())
}

/// Our runtime's binary: `$BOXLAB_OCI_BIN`, else the release build beside this program (see
/// [`find_workspace_binary`]).
pub fn find_ours() -> Result<PathBuf, String> {
    match std::env::var_os("BOXLAB_OCI_BIN") {
        Some(bin) => Ok(bin.into()),
        None => {
            find_workspace_binary("ch06-oci").map_err(|e| format!("{e}, or set BOXLAB_OCI_BIN"))
        }
    }
}

/// Force-deletes, quietly, every container that runtime `bin` has under its state directory
/// `root` (what a run that failed half way left behind).
pub fn force_delete_all(bin: &Path, root: &Path) {
    for entry in fs::read_dir(root).into_iter().flatten().flatten() {
        let _ = Command::new(bin)
            .arg("--root")
            .arg(root)
            .args(["delete", "--force"])
            .arg(entry.file_name())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `name` on `PATH`, or in the directories Debian installs runtimes to.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into(), "/sbin".into()])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A workspace binary: a sibling of the running one (`target/<profile>/NAME`, or one level up
/// from `deps/` for tests and benches), else `$CARGO_TARGET_DIR/release/NAME`.
pub fn find_workspace_binary(name: &str) -> Result<PathBuf, String> {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        candidates.push(dir.join(name));
        if let Some(up) = dir.parent() {
            candidates.push(up.join(name));
        }
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    candidates.push(target.join("release").join(name));
    candidates.into_iter().find(|c| c.is_file()).ok_or_else(|| {
        format!("the `{name}` binary is not built (cargo build --release -p {name})")
    })
}

/// Runs `program args` (output discarded) and returns its peak resident set in KiB, from
/// `wait4`'s `ru_maxrss`, with its exit status.
///
/// Linux counts into a child's `ru_maxrss` the memory it had before `exec` — a copy of its
/// parent's — so call this from a small process (the `peak-rss` binary, the report's probe),
/// not from a large one.
pub fn peak_rss_kib<S: AsRef<std::ffi::OsStr>>(
    program: &Path,
    args: &[S],
) -> std::io::Result<(u64, std::process::ExitStatus)> {
    use std::os::unix::process::ExitStatusExt;
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: all-zero bytes are a valid `rusage` (plain integers) for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child with pointers to live locals; std's `Child` never reaps on
    // drop, so nothing else reaps this pid.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if reaped != pid {
        return Err(std::io::Error::last_os_error());
    }
    Ok((
        usage.ru_maxrss as u64,
        std::process::ExitStatus::from_raw(status),
    ))
}

/// crun 1.8 refuses a hybrid host whose cgroup2 half has controllers ("cgroups in hybrid mode
/// not supported"). Where that is so, this moves the calling thread (and what it spawns) into
/// a private mount namespace without `/sys/fs/cgroup/unified`, so that all runtimes see the
/// same v1 trees, and says so in words. `Ok(None)`: nothing to hide.
pub fn hide_cgroup2_for_crun() -> Result<Option<String>, String> {
    let unified = Path::new("/sys/fs/cgroup/unified");
    let Ok(controllers) = std::fs::read_to_string(unified.join("cgroup.controllers")) else {
        return Ok(None);
    };
    if controllers.trim().is_empty() {
        return Ok(None);
    }
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("unshare(CLONE_NEWNS) to hide the cgroup2 half: {e}"))?;
    ch02_namespaces::mounts::make_mounts_private()?;
    nix::mount::umount2(unified, nix::mount::MntFlags::MNT_DETACH)
        .map_err(|e| format!("umount {}: {e}", unified.display()))?;
    Ok(Some(format!(
        "cgroup-hybrid host with controllers ({}) on its cgroup2 half, which crun refuses: \
         every runtime runs in a private mount namespace without /sys/fs/cgroup/unified (v1 trees only)",
        controllers.trim()
    )))
}
