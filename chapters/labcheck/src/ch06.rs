//! Chapter 6's lab result: a container created and started by our runtime, left running
//! (`sudo ch06-oci create --bundle . mybox && sudo ch06-oci start mybox`, with
//! `process.args = ["sleep", "600"]`).

use std::fs;
use std::path::{Path, PathBuf};

use ch03_cgroups::{detect, Cgroup, CgroupPath};
use ch06_oci::state::{Container, Store};

use crate::{find, namespaces, procfs, Check};

/// What the lab asked for.
#[derive(Debug, Clone)]
pub struct Expect {
    /// The container's id.
    pub id: String,
    /// The runtime's state root (`--root`; `/run/boxlab/runtime` by default).
    pub root: PathBuf,
}

fn start(expect: &Expect) -> String {
    let root = if expect.root == Path::new(ch06_oci::DEFAULT_ROOT) {
        String::new()
    } else {
        format!("--root {} ", expect.root.display())
    };
    format!(
        "in your bundle (config.json: \"args\": [\"sleep\", \"600\"], \"terminal\": false): sudo ch06-oci {root}create --bundle . {id} && sudo ch06-oci {root}start {id}",
        id = expect.id
    )
}

/// Runs every check; always returns the same number of checks.
pub fn check(expect: &Expect) -> Vec<Check> {
    let names = [
        "listed",
        "running",
        "PID 1",
        "PID namespace",
        "MNT namespace",
        "root filesystem",
        "cgroup",
        "command",
    ];
    let rest = |from: usize, because: &str| Check::none_of(&names[from..], because);
    let store = Store::new(&expect.root);
    let listed: Vec<Container> = store.list();
    let Some(container) = listed.iter().find(|c| c.record.id == expect.id) else {
        let ids: Vec<&str> = listed.iter().map(|c| c.record.id.as_str()).collect();
        let mut checks = vec![Check::fail(
            names[0],
            format!(
                "`ch06-oci list` to show '{}' (state in {})",
                expect.id,
                store.root().display()
            ),
            if ids.is_empty() {
                "no containers".to_string()
            } else {
                format!("only {}", ids.join(", "))
            },
            start(expect),
        )];
        checks.extend(rest(1, "no such container"));
        return checks;
    };
    let record = &container.record;
    let mut checks = vec![Check::ok(
        names[0],
        format!(
            "'{}', bundle {}, state in {}",
            record.id,
            record.bundle.display(),
            container.dir.display()
        ),
    )];
    let status = container.status_name();
    if status != "running" {
        checks.push(Check::fail(
            names[1],
            "status running",
            format!("status {status}"),
            if status == "created" {
                format!("start it: sudo ch06-oci start {}", expect.id)
            } else {
                format!(
                    "delete it (sudo ch06-oci delete --force {}) and {}",
                    expect.id,
                    start(expect)
                )
            },
        ));
        checks.extend(rest(2, format!("the container is {status}").as_str()));
        return checks;
    }
    let pid = record.pid;
    checks.push(Check::ok(
        names[1],
        format!("status running, init is host pid {pid}"),
    ));

    checks.push(match procfs::nspid(pid) {
        Ok(nspid) => Check::expect(
            names[2],
            find::is_inner_init(pid),
            "NSpid <host pid> 1: PID 1 in a PID namespace of its own",
            format!(
                "NSpid {}",
                nspid
                    .iter()
                    .map(i32::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            "the config needs {\"type\": \"pid\"} in linux.namespaces",
        ),
        Err(e) => Check::not_checked(names[2], e),
    });
    checks.extend(namespaces::all_own(
        pid,
        &["pid", "mnt"],
        "the config needs pid and mount in linux.namespaces (ch06-oci spec writes both)",
    ));

    checks.push(
        match (
            procfs::root_id(pid),
            procfs::root_id(namespaces::host_reference().0),
        ) {
            (Ok(root), Ok(host)) => Check::expect(
                names[5],
                root != host,
                "a root other than the host's /",
                if root != host {
                    format!(
                    "{} (device {}, inode {}; the host's / is device {}, inode {}), mounted as {}",
                    record.rootfs.display(),
                    root.0,
                    root.1,
                    host.0,
                    host.1,
                    procfs::root_fs_type(pid).unwrap_or_else(|_| "?".into())
                )
                } else {
                    "the host's / (same device and inode)".to_string()
                },
                "the config's root.path must name the bundle's rootfs",
            ),
            (Err(e), _) | (_, Err(e)) => Check::not_checked(names[5], e),
        },
    );

    checks.push(cgroup_check(names[6], &record.cgroup, pid));
    checks.push(command_check(names[7], &record.bundle, pid));
    checks
}

fn cgroup_check(name: &str, cgroup: &str, pid: i32) -> Check {
    let (layout, path) = match (detect(), CgroupPath::new(cgroup)) {
        (Ok(layout), Ok(path)) => (layout, path),
        (Err(e), _) => return Check::not_checked(name, e),
        (_, Err(e)) => return Check::not_checked(name, e),
    };
    // Only looking: the student's cgroup stays, whatever happens here.
    let Ok(handle) = Cgroup::observe(&layout, &path) else {
        return Check::fail(
            name,
            format!("cgroup {path} (recorded at create)"),
            "no such directory in any hierarchy",
            "something removed it: delete the container and create it again",
        );
    };
    let inside = handle.processes().iter().any(|p| p.as_raw() == pid);
    let first = handle
        .dirs()
        .next()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    Check::expect(
        name,
        inside,
        format!("init (pid {pid}) in cgroup {path}"),
        if inside {
            format!("pid {pid} in {first}")
        } else {
            format!("{first} without pid {pid}")
        },
        "the runtime puts init into the cgroup at create: create the container again",
    )
}

fn command_check(name: &str, bundle: &Path, pid: i32) -> Check {
    let config = bundle.join("config.json");
    let args: Option<Vec<String>> = fs::read_to_string(&config)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|v| {
            v["process"]["args"].as_array().map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
        });
    let Some(args) = args else {
        return Check::not_checked(name, format!("no process.args in {}", config.display()));
    };
    let running = procfs::cmdline(pid);
    Check::expect(
        name,
        running == args,
        format!("process.args of {}: '{}'", config.display(), args.join(" ")),
        format!("'{}' running as PID 1", running.join(" ")),
        "PID 1 runs process.args itself (it execs them): was the config edited after create?",
    )
}
