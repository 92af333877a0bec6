//! Chapter 5's lab result: a container given one GPU of a fake host, left running
//! (`sudo cargo run -p ch05-gpu -- --host-root ./fake --rootfs ./rootfs --gpus '"device=1"' --
//! sleep 600`).
//!
//! Its `/dev` holds exactly the chosen GPU's node; its devices cgroup (v1's `devices.list`, and
//! on a cgroup2 tree a `BPF_PROG_TYPE_CGROUP_DEVICE` program) lets it open that GPU and refuses
//! the others; the command's environment names the GPU. The access checks are made for real: a
//! short-lived child of the checker joins the container's cgroups and opens device nodes it made
//! under `/tmp/boxlab-labcheck-*` (EPERM: the cgroup refused; anything else got past it), then
//! exits, and the nodes are removed.

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use ch03_cgroups::{detect, Layout};
use ch05_gpu::devices::rule::decide;
use ch05_gpu::devices::{attached_programs, Access, DeviceKind, DeviceRule};
use ch05_gpu::discover::{discover, HostRoots};

use crate::{find, procfs, Check};

/// NVIDIA's character major: `/dev/nvidiaN` is 195:N.
pub const NVIDIA_MAJOR: u32 = 195;

/// What the lab asked for.
#[derive(Debug, Clone)]
pub struct Expect {
    /// The container's init (PID 1 inside); `None`: the newest `ch05-gpu` init.
    pub pid: Option<i32>,
    /// The GPUs given with `--gpus '"device=…"'`, by index.
    pub gpus: Vec<u32>,
    /// The lab's `--host-root` (the fake host), to tell which UUID is which GPU; `None`: this
    /// host's `/dev` and `/proc/driver/nvidia`.
    pub host_root: Option<PathBuf>,
}

/// The programs whose inits count as chapter 5 containers.
pub const PROGRAMS: &[&str] = &["ch05-gpu"];

fn list(gpus: &[u32]) -> String {
    gpus.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn start(expect: &Expect) -> String {
    format!(
        "start it in another terminal: sudo cargo run -p ch05-gpu -- --host-root {} --rootfs ./rootfs --gpus '\"device={}\"' -- sleep 600",
        expect
            .host_root
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "./fake".into()),
        list(&expect.gpus)
    )
}

/// A GPU the lab did not give, to show that it is refused.
fn other_gpu(gpus: &[u32]) -> u32 {
    (0..).find(|n| !gpus.contains(n)).unwrap_or(0)
}

/// Runs every check; always returns the same number of checks.
pub fn check(expect: &Expect) -> Vec<Check> {
    let names = [
        "container",
        "GPU nodes in /dev",
        "devices cgroup rules",
        "chosen GPU opens",
        "other GPU refused",
        "environment",
    ];
    let init = match find::init_or_checks(expect.pid, PROGRAMS, &names, "ch05-gpu", start(expect)) {
        Ok(init) => init,
        Err(checks) => return checks,
    };
    let pid = init.pid;
    let mut checks = vec![Check::ok(names[0], find::describe(&init))];
    checks.push(nodes_check(names[1], pid, expect));

    let dirs = cgroup_dirs(pid);
    checks.push(rules_check(names[2], &dirs, expect));
    let other = other_gpu(&expect.gpus);
    let chosen = expect.gpus.first().copied().unwrap_or(0);
    checks.push(match probe(&dirs, chosen) {
        Ok(errno) => Check::expect(
            names[3],
            errno != Some(libc::EPERM),
            format!("open of c {NVIDIA_MAJOR}:{chosen} past the devices cgroup (no EPERM)"),
            match errno {
                None => format!("c {NVIDIA_MAJOR}:{chosen} opened (a driver is behind it)"),
                Some(libc::EPERM) => format!(
                    "c {NVIDIA_MAJOR}:{chosen}: EPERM, refused by the devices cgroup"
                ),
                Some(e) => format!(
                    "c {NVIDIA_MAJOR}:{chosen}: {} (the cgroup let it through{})",
                    nix::errno::Errno::from_raw(e),
                    if e == libc::ENXIO { "; no driver behind a fake node" } else { "" }
                ),
            },
            format!("the rules must allow c {NVIDIA_MAJOR}:{chosen} rwm: start it with --gpus '\"device={}\"'", list(&expect.gpus)),
        ),
        Err(e) => Check::not_checked(names[3], e),
    });
    checks.push(match probe(&dirs, other) {
        Ok(errno) => Check::expect(
            names[4],
            errno == Some(libc::EPERM),
            format!("open of c {NVIDIA_MAJOR}:{other} (a GPU not given) refused with EPERM"),
            match errno {
                None => format!("c {NVIDIA_MAJOR}:{other} opened"),
                Some(libc::EPERM) => {
                    format!("c {NVIDIA_MAJOR}:{other}: EPERM, refused by the devices cgroup")
                }
                Some(e) => format!(
                    "c {NVIDIA_MAJOR}:{other}: {} (the cgroup let it through)",
                    nix::errno::Errno::from_raw(e)
                ),
            },
            format!(
                "give it only GPU {}: --gpus '\"device={}\"' (if it had only that, its rules are too wide: never c 195:*, see rules_for_plan in src/gpu_container.rs)",
                list(&expect.gpus),
                list(&expect.gpus)
            ),
        ),
        Err(e) => Check::not_checked(names[4], e),
    });
    checks.push(env_check(names[5], pid, expect));
    checks
}

fn nodes_check(name: &str, pid: i32, expect: &Expect) -> Check {
    let dev = PathBuf::from(format!("/proc/{pid}/root/dev"));
    let entries = match fs::read_dir(&dev) {
        Ok(entries) => entries,
        Err(e) => return Check::not_checked(name, format!("{}: {e}", dev.display())),
    };
    let mut gpus: Vec<(String, Option<(u64, u64)>)> = entries
        .filter_map(|e| {
            let e = e.ok()?;
            let file = e.file_name().to_str()?.to_string();
            let n = file.strip_prefix("nvidia")?;
            (!n.is_empty() && n.chars().all(|c| c.is_ascii_digit())).then_some(())?;
            let meta = fs::metadata(e.path()).ok();
            let number = meta.filter(|m| m.file_type().is_char_device()).map(|m| {
                let rdev = m.rdev();
                (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev))
            });
            Some((file, number))
        })
        .collect();
    gpus.sort();
    let want: Vec<(String, Option<(u64, u64)>)> = expect
        .gpus
        .iter()
        .map(|&n| (format!("nvidia{n}"), Some((NVIDIA_MAJOR as u64, n as u64))))
        .collect();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    let show = |v: &[(String, Option<(u64, u64)>)]| {
        if v.is_empty() {
            return "no /dev/nvidiaN".to_string();
        }
        v.iter()
            .map(|(f, n)| match n {
                Some((ma, mi)) => format!("/dev/{f} = c {ma}:{mi}"),
                None => format!("/dev/{f} (not a character device)"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    Check::expect(
        name,
        gpus == want_sorted,
        format!("exactly {}", show(&want)),
        show(&gpus),
        format!("start it with --gpus '\"device={}\"'", list(&expect.gpus)),
    )
}

/// The container's devices cgroup directories: (v1 devices dir, cgroup2 dir), each if any.
#[derive(Debug, Default)]
struct Dirs {
    v1: Option<PathBuf>,
    v2: Option<PathBuf>,
}

fn cgroup_dirs(pid: i32) -> Dirs {
    let (Ok(layout), Ok(lines)) = (detect(), procfs::cgroups(pid)) else {
        return Dirs::default();
    };
    let under = |root: &Path, path: &str| root.join(path.trim_start_matches('/'));
    let v1_path = lines
        .iter()
        .find(|(c, _)| c.split(',').any(|c| c == "devices"))
        .map(|(_, p)| p.clone());
    let v2_path = lines
        .iter()
        .find(|(c, _)| c.is_empty())
        .map(|(_, p)| p.clone());
    match layout {
        Layout::V1 { root } => Dirs {
            v1: v1_path.map(|p| under(&root.join("devices"), &p)),
            v2: None,
        },
        Layout::V2 { root } => Dirs {
            v1: None,
            v2: v2_path.map(|p| under(&root, &p)),
        },
        Layout::Hybrid { root, unified } => Dirs {
            v1: v1_path.map(|p| under(&root.join("devices"), &p)),
            v2: v2_path.map(|p| under(&unified, &p)),
        },
    }
}

fn rules_check(name: &str, dirs: &Dirs, expect: &Expect) -> Check {
    let mut found = Vec::new();
    let mut passed = true;
    let other = other_gpu(&expect.gpus);
    if let Some(dir) = &dirs.v1 {
        let path = dir.join("devices.list");
        match fs::read_to_string(&path) {
            Ok(text) => {
                let rules: Vec<DeviceRule> = text
                    .lines()
                    .filter_map(|l| DeviceRule::parse(l, true).ok())
                    .collect();
                let rw = Access::READ | Access::WRITE;
                let allows = |n: u32| decide(&rules, DeviceKind::Char, NVIDIA_MAJOR, n, rw);
                let given = expect.gpus.iter().all(|&n| allows(n));
                let refused = !allows(other);
                passed &= given && refused && dir.display().to_string().contains("boxlab");
                let nvidia: Vec<&str> = text
                    .lines()
                    .filter(|l| l.contains(&format!(" {NVIDIA_MAJOR}:")) || l.starts_with('a'))
                    .collect();
                found.push(format!(
                    "v1 {}: {} rules, {} for major {NVIDIA_MAJOR} ({}): c {NVIDIA_MAJOR}:{} {}, c {NVIDIA_MAJOR}:{other} {}",
                    path.display(),
                    rules.len(),
                    nvidia.len(),
                    nvidia.join("; "),
                    list(&expect.gpus),
                    if given { "allowed" } else { "NOT allowed" },
                    if refused { "denied" } else { "ALLOWED" },
                ));
            }
            Err(e) => {
                passed = false;
                found.push(format!("v1 {}: {e}", path.display()));
            }
        }
    }
    if let Some(dir) = &dirs.v2 {
        match attached_programs(dir) {
            Ok(ids) => {
                passed &= !ids.is_empty();
                found.push(format!(
                    "cgroup2 {}: {} device program(s) attached{}",
                    dir.display(),
                    ids.len(),
                    if ids.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (id {})",
                            ids.iter()
                                .map(u32::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                ));
            }
            Err(e) => {
                passed = false;
                found.push(format!("cgroup2 {}: {e}", dir.display()));
            }
        }
    }
    if found.is_empty() {
        passed = false;
        found.push("no devices cgroup (v1) and no cgroup2 directory".into());
    }
    Check::expect(
        name,
        passed,
        format!(
            "a boxlab cgroup allowing c {NVIDIA_MAJOR}:{} and denying c {NVIDIA_MAJOR}:{other} (v1 devices.list), with an eBPF device program attached (cgroup2)",
            list(&expect.gpus)
        ),
        found.join("; "),
        "ch05-gpu writes the rules into the container's cgroup at start: start it again",
    )
}

/// Opens a node `c 195:minor`, made under a scratch directory, from a child that joined the
/// container's cgroups: `Ok(None)` if it opened, `Ok(Some(errno))` if not.
fn probe(dirs: &Dirs, minor: u32) -> Result<Option<i32>, String> {
    let procs: Vec<PathBuf> = dirs
        .v1
        .iter()
        .chain(dirs.v2.iter())
        .map(|d| d.join("cgroup.procs"))
        .collect();
    if procs.is_empty() {
        return Err("no cgroup to test from".into());
    }
    let scratch = PathBuf::from(format!(
        "/tmp/boxlab-labcheck-{}-{minor}",
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let result = probe_in(&scratch, &procs, minor);
    let _ = fs::remove_dir_all(&scratch);
    result
}

fn probe_in(scratch: &Path, procs: &[PathBuf], minor: u32) -> Result<Option<i32>, String> {
    let node = scratch.join(format!("nvidia{minor}"));
    nix::sys::stat::mknod(
        &node,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(NVIDIA_MAJOR as u64, minor as u64),
    )
    .map_err(|e| format!("mknod {}: {e}", node.display()))?;
    let cstr = |p: &Path| CString::new(p.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string());
    let node_c = cstr(&node)?;
    let procs_c: Vec<CString> = procs.iter().map(|p| cstr(p)).collect::<Result<_, _>>()?;
    // SAFETY: the child only calls async-signal-safe functions (open, write, close, _exit) on
    // memory prepared before the fork, and never returns into Rust code.
    match unsafe { nix::unistd::fork() }.map_err(|e| format!("fork: {e}"))? {
        nix::unistd::ForkResult::Child => {
            // SAFETY: see above: raw syscalls on NUL-terminated strings that outlive the child.
            unsafe {
                for p in &procs_c {
                    let fd = libc::open(p.as_ptr(), libc::O_WRONLY);
                    if fd < 0 || libc::write(fd, b"0\n".as_ptr().cast(), 2) != 2 {
                        libc::_exit(255);
                    }
                    libc::close(fd);
                }
                let fd = libc::open(node_c.as_ptr(), libc::O_RDWR);
                if fd >= 0 {
                    libc::_exit(0);
                }
                libc::_exit(*libc::__errno_location() & 0x7f);
            }
        }
        nix::unistd::ForkResult::Parent { child } => {
            match nix::sys::wait::waitpid(child, None).map_err(|e| format!("waitpid: {e}"))? {
                nix::sys::wait::WaitStatus::Exited(_, 0) => Ok(None),
                nix::sys::wait::WaitStatus::Exited(_, 255) => Err(format!(
                    "the probe could not join {}",
                    procs
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" and ")
                )),
                nix::sys::wait::WaitStatus::Exited(_, errno) => Ok(Some(errno)),
                other => Err(format!("the probe ended with {other:?}")),
            }
        }
    }
}

fn env_check(name: &str, init: i32, expect: &Expect) -> Check {
    // The command is init's child (init itself is a fork of ch05-gpu, before the exec).
    let pid = procfs::children(init).into_iter().max().unwrap_or(init);
    let environ = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    let vars: Vec<String> = environ
        .split(|&b| b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    let get = |key: &str| {
        vars.iter()
            .find_map(|v| v.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_string)
    };
    let cuda = get("CUDA_VISIBLE_DEVICES");
    let nvidia = get("NVIDIA_VISIBLE_DEVICES");
    let want_cuda = (0..expect.gpus.len())
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",");
    // UUID -> index, from the host's (or the fake host's) driver information.
    let roots = expect
        .host_root
        .as_deref()
        .map(HostRoots::under)
        .unwrap_or_default();
    let known: Vec<(String, u32)> = discover(&roots)
        .map(|d| {
            d.gpus
                .iter()
                .filter_map(|g| Some((g.uuid.clone()?, g.index)))
                .collect()
        })
        .unwrap_or_default();
    let mut unmatched = Vec::new();
    let nvidia_ok = nvidia.as_deref().is_some_and(|v| {
        let items: Vec<&str> = v.split(',').collect();
        items.len() == expect.gpus.len()
            && items.iter().zip(&expect.gpus).all(|(item, n)| {
                match (item.parse::<u32>(), known.iter().find(|(u, _)| u == item)) {
                    (Ok(i), _) => i == *n,
                    (_, Some((_, i))) => i == n,
                    (_, None) => {
                        unmatched.push(item.to_string());
                        item.starts_with("GPU-")
                    }
                }
            })
    });
    Check::expect(
        name,
        cuda.as_deref() == Some(want_cuda.as_str()) && nvidia_ok,
        format!(
            "CUDA_VISIBLE_DEVICES={want_cuda} and NVIDIA_VISIBLE_DEVICES naming GPU {} (index or UUID)",
            list(&expect.gpus)
        ),
        format!(
            "pid {pid} ('{}'): CUDA_VISIBLE_DEVICES={}, NVIDIA_VISIBLE_DEVICES={}{}",
            procfs::command(pid),
            cuda.as_deref().unwrap_or("(unset)"),
            nvidia.as_deref().unwrap_or("(unset)"),
            if unmatched.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} not found on this host: give --host-root to tell which GPU it is)",
                    unmatched.join(", ")
                )
            }
        ),
        "the plan sets both for the command (GpuPlan::env_over): start it again with --gpus",
    )
}
