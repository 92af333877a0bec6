//! Chapter 4's lab result: a container left running in a root filesystem of its own, from an
//! image (`sudo cargo run -p ch04-rootfs -- run lab:1 --read-only -- sleep 600`: an overlay of
//! the image's layers with a writable layer on top) or from a directory (`--rootfs DIR`).

use std::fs;
use std::path::PathBuf;

use crate::{find, namespaces, procfs, Check};

/// Where the lab's container got its root from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// `ch04-rootfs run IMAGE`: an overlay of the image's layers.
    Image,
    /// `ch04-rootfs --rootfs DIR`: a bind mount of a directory.
    Rootfs,
}

/// What the lab asked for.
#[derive(Debug, Clone)]
pub struct Expect {
    /// The container's init (PID 1 inside); `None`: the newest `ch04-rootfs` init.
    pub pid: Option<i32>,
    pub from: From,
    /// `--read-only` was asked for.
    pub read_only: bool,
    /// The command the lab left running.
    pub command: Vec<String>,
}

/// The programs whose inits count as chapter 4 containers.
pub const PROGRAMS: &[&str] = &["ch04-rootfs"];

fn start(expect: &Expect) -> String {
    let ro = if expect.read_only { " --read-only" } else { "" };
    match expect.from {
        From::Image => format!(
            "start it in another terminal: sudo cargo run -p ch04-rootfs -- run lab:1{ro} -- {}",
            expect.command.join(" ")
        ),
        From::Rootfs => format!(
            "start it in another terminal: sudo cargo run -p ch04-rootfs -- --rootfs ./rootfs{ro} -- {}",
            expect.command.join(" ")
        ),
    }
}

/// One line of `/proc/<pid>/mountinfo`, the fields the checks use.
#[derive(Debug, Clone, Default)]
pub struct Mount {
    /// The directory of its filesystem that is mounted (`/` for a whole filesystem).
    pub root: String,
    pub mount_point: String,
    /// Per-mount options (`ro`, `rw`, `nosuid`, …).
    pub options: Vec<String>,
    pub fs_type: String,
    pub source: String,
    /// The filesystem's own options (overlay's `lowerdir=`, `upperdir=`).
    pub super_options: Vec<String>,
}

/// Every mount of the process's mount namespace, in order.
pub fn mounts(pid: i32) -> Vec<Mount> {
    fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split_whitespace().collect();
            let r: Vec<&str> = right.split_whitespace().collect();
            Some(Mount {
                root: l.get(3)?.to_string(),
                mount_point: l.get(4)?.to_string(),
                options: l.get(5)?.split(',').map(str::to_string).collect(),
                fs_type: r.first()?.to_string(),
                source: r.get(1).unwrap_or(&"").to_string(),
                super_options: split_options(r.get(2).unwrap_or(&"")),
            })
        })
        .collect()
}

/// Overlay's super options, split at commas not escaped with a backslash.
fn split_options(text: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut escaped = false;
    for c in text.chars() {
        let last = out.len() - 1;
        if escaped {
            if c != ',' {
                out[last].push('\\');
            }
            out[last].push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            out.push(String::new());
        } else {
            out[last].push(c);
        }
    }
    out
}

fn option<'a>(mount: &'a Mount, key: &str) -> Option<&'a str> {
    mount
        .super_options
        .iter()
        .find_map(|o| o.strip_prefix(key)?.strip_prefix('='))
}

fn push(out: &mut [String], c: char) {
    if let Some(last) = out.last_mut() {
        last.push(c);
    }
}

/// overlay's `lowerdir=a:b:c` (`\:` is a colon inside a path).
fn lowers(value: &str) -> Vec<PathBuf> {
    let mut out = vec![String::new()];
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    push(&mut out, n);
                }
            }
            ':' => out.push(String::new()),
            c => push(&mut out, c),
        }
    }
    out.into_iter()
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// Runs every check; always returns the same number of checks.
pub fn check(expect: &Expect) -> Vec<Check> {
    let names = [
        "container",
        "MNT namespace",
        "root filesystem",
        match expect.from {
            From::Image => "overlay",
            From::Rootfs => "bind-mounted root",
        },
        "read-only root",
        "command",
        "host mounts",
    ];
    let init =
        match find::init_or_checks(expect.pid, PROGRAMS, &names, "ch04-rootfs", start(expect)) {
            Ok(init) => init,
            Err(checks) => return checks,
        };
    let pid = init.pid;
    let mut checks = vec![Check::ok(names[0], find::describe(&init))];
    checks.push(namespaces::own(
        pid,
        "mnt",
        "a root of its own needs a mount namespace: run it as root without --ns",
    ));

    let (reference, whose) = namespaces::host_reference();
    let table = mounts(pid);
    let root = table.iter().rev().find(|m| m.mount_point == "/").cloned();
    checks.push(match (procfs::root_id(pid), procfs::root_id(reference)) {
        (Ok(inside), Ok(host)) => Check::expect(
            names[2],
            inside != host,
            format!("a root other than {whose} /"),
            if inside != host {
                format!(
                    "/proc/{pid}/root is device {}, inode {}; {whose} / is device {}, inode {}",
                    inside.0, inside.1, host.0, host.1
                )
            } else {
                "the host's / (same device and inode)".to_string()
            },
            "the container must pivot_root into its own root: give --rootfs DIR or run an image",
        ),
        (Err(e), _) | (_, Err(e)) => Check::not_checked(names[2], e),
    });

    let Some(root) = root else {
        checks.extend(Check::none_of(
            &names[3..5],
            format!("no mount on / in /proc/{pid}/mountinfo"),
        ));
        checks.push(command_check(names[5], pid, expect));
        checks.push(Check::not_checked(names[6], "no root mount"));
        return checks;
    };

    checks.push(match expect.from {
        From::Image => {
            let lower = option(&root, "lowerdir").map(lowers).unwrap_or_default();
            let upper = option(&root, "upperdir").map(PathBuf::from);
            let missing: Vec<String> = lower
                .iter()
                .chain(upper.iter())
                .filter(|p| !p.is_dir())
                .map(|p| p.display().to_string())
                .collect();
            let passed = root.fs_type == "overlay"
                && !lower.is_empty()
                && upper.is_some()
                && missing.is_empty();
            Check::expect(
                names[3],
                passed,
                "/ an overlay: the image's layers as lowerdir, a writable upperdir, all on the host",
                if root.fs_type != "overlay" {
                    format!("/ is {} ({})", root.fs_type, root.source)
                } else {
                    format!(
                        "overlay with {} lower layer(s) ({}) and upperdir {}{}",
                        lower.len(),
                        lower
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                        upper
                            .as_ref()
                            .map(|p| p.display().to_string())
                            .unwrap_or_else(|| "none".into()),
                        if missing.is_empty() {
                            String::new()
                        } else {
                            format!("; missing on the host: {}", missing.join(", "))
                        }
                    )
                },
                "run an image (ch04-rootfs run IMAGE -- …): its layers are stacked with overlayfs",
            )
        }
        From::Rootfs => Check::expect(
            names[3],
            root.fs_type != "overlay" && root.root != "/",
            "/ a bind mount of the --rootfs directory (not a whole filesystem, not an overlay)",
            format!(
                "/ is {} of {} ({} on {})",
                root.fs_type, root.root, root.source, root.fs_type
            ),
            "give --rootfs DIR: chapter 4 bind-mounts DIR and pivots into it",
        ),
    });

    let ro = root.options.iter().any(|o| o == "ro");
    checks.push(Check::expect(
        names[4],
        ro == expect.read_only,
        if expect.read_only {
            "/ mounted ro (the lab asked for --read-only)"
        } else {
            "/ mounted rw (the lab did not ask for --read-only)"
        },
        format!("/ mounted {}", root.options.join(",")),
        if expect.read_only {
            "start it with --read-only"
        } else {
            "start it without --read-only (or check it with --read-only)"
        },
    ));

    checks.push(command_check(names[5], pid, expect));

    // The container's root is mounted in its own mount namespace only.
    let host = mounts(reference);
    let leaked: Vec<&Mount> = host
        .iter()
        .filter(|m| match expect.from {
            From::Image => {
                m.fs_type == "overlay"
                    && option(m, "upperdir").is_some()
                    && option(m, "upperdir") == option(&root, "upperdir")
            }
            From::Rootfs => m.root == root.root && m.root != "/" && m.source == root.source,
        })
        .collect();
    checks.push(Check::expect(
        names[6],
        leaked.is_empty(),
        format!("the container's root not mounted in {whose} mount namespace"),
        if leaked.is_empty() {
            format!(
                "{whose} mount table ({} mounts) has no mount of the container's root",
                host.len()
            )
        } else {
            format!(
                "mounted on the host at {}",
                leaked
                    .iter()
                    .map(|m| m.mount_point.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        "mount the root inside the container's mount namespace, made private first (MS_REC|MS_PRIVATE)",
    ));
    checks
}

fn command_check(name: &str, init: i32, expect: &Expect) -> Check {
    let children = procfs::children(init);
    let found = children
        .iter()
        .chain(std::iter::once(&init))
        .find(|&&c| procfs::cmdline(c) == expect.command);
    match found {
        Some(&p) => Check::ok(
            name,
            format!("'{}' running as host pid {p}", expect.command.join(" ")),
        ),
        None => Check::fail(
            name,
            format!("'{}' running in the container", expect.command.join(" ")),
            if children.is_empty() {
                "no process but init".to_string()
            } else {
                children
                    .iter()
                    .map(|&c| format!("'{}'", procfs::command(c)))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            start(expect),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options_split_with_escapes() {
        let opts = split_options("rw,lowerdir=/a\\:b:/c,upperdir=/u\\,1,workdir=/w");
        assert_eq!(opts[1], "lowerdir=/a\\:b:/c");
        assert_eq!(opts[2], "upperdir=/u,1");
        assert_eq!(
            lowers("/a\\:b:/c"),
            vec![PathBuf::from("/a:b"), PathBuf::from("/c")]
        );
    }
}
