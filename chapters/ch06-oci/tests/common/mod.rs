//! Shared by the runtime's tests: bundles made with our own `spec` verb, the binary run with a
//! `--root` of its own, and a guard that force-deletes every container a test made.

#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use labkit::{busybox_rootfs, ScratchDir};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_ch06-oci");

/// What one run of the binary did.
#[derive(Debug)]
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// A scratch directory with a state root, bundles, and the ids to clean up.
pub struct Lab {
    pub scratch: ScratchDir,
    pub root: PathBuf,
    ids: RefCell<Vec<String>>,
    runs: RefCell<u32>,
    /// Host pids of the inits of containers made here, to reap once they end.
    inits: RefCell<BTreeSet<i32>>,
}

impl Lab {
    pub fn new(label: &str) -> Lab {
        // A created container's init is adopted by the nearest subreaper when `create` exits —
        // containerd's shim in real life, this test process here — who must reap it.
        nix::sys::prctl::set_child_subreaper(true).unwrap();
        let scratch = ScratchDir::new(label).unwrap();
        let root = scratch.join("state");
        Lab {
            scratch,
            root,
            ids: RefCell::new(Vec::new()),
            runs: RefCell::new(0),
            inits: RefCell::new(BTreeSet::new()),
        }
    }

    /// A container id unique on this host (cgroups are host-wide).
    pub fn id(&self, name: &str) -> String {
        let id = format!("{name}-{}", std::process::id());
        self.ids.borrow_mut().push(id.clone());
        id
    }

    /// A bundle `<scratch>/<name>`: a busybox rootfs and `spec`'s config.json with a writable
    /// root and `args`, then `edit` applied to the JSON.
    pub fn bundle(&self, name: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> PathBuf {
        let dir = self.scratch.join(name);
        fs::create_dir_all(dir.join("rootfs")).unwrap();
        busybox_rootfs(&dir.join("rootfs")).unwrap();
        let out = self.oci(&["spec", "--bundle", dir.to_str().unwrap()]);
        assert!(out.ok(), "spec: {out:?}");
        let path = dir.join("config.json");
        let mut config: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        config["root"]["readonly"] = Value::Bool(false);
        config["process"]["args"] = args.iter().map(|a| Value::from(*a)).collect();
        edit(&mut config);
        fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
        dir
    }

    /// Adds a bind mount of host `source` at `destination` to a config.
    /// A bundle running `args` with the lab's `out/` directory (returned first) bound at `/out`,
    /// where the command leaves what the test checks.
    pub fn bundle_with_out(&self, name: &str, args: &[&str]) -> (PathBuf, PathBuf) {
        let out_dir = self.scratch.join("out");
        fs::create_dir_all(&out_dir).unwrap();
        let bundle = self.bundle(name, args, |c| Lab::bind(c, &out_dir, "/out"));
        (out_dir, bundle)
    }

    pub fn bind(config: &mut Value, source: &Path, destination: &str) {
        config["mounts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "destination": destination,
                "type": "bind",
                "source": source,
                "options": ["rbind", "rw"]
            }));
    }

    /// Runs the binary with `--root <scratch>/state`. Its stdout and stderr go to files, not
    /// pipes: a detached container inherits them, and a pipe would stay open as long as it runs.
    pub fn oci(&self, args: &[&str]) -> Out {
        let n = {
            let mut runs = self.runs.borrow_mut();
            *runs += 1;
            *runs
        };
        let (out_path, err_path) = (
            self.scratch.join(format!("out-{n}")),
            self.scratch.join(format!("err-{n}")),
        );
        let status = Command::new(BIN)
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(File::create(&out_path).unwrap())
            .stderr(File::create(&err_path).unwrap())
            .status()
            .unwrap();
        self.note_inits();
        Out {
            code: status.code(),
            stdout: fs::read_to_string(out_path).unwrap_or_default(),
            stderr: fs::read_to_string(err_path).unwrap_or_default(),
        }
    }

    /// Remembers the init of every container recorded under the root now.
    fn note_inits(&self) {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let record = fs::read_to_string(entry.path().join("state.json")).unwrap_or_default();
            if let Ok(record) = serde_json::from_str::<Value>(&record) {
                // A record still "creating" has pid 0, which is no process (waitpid(0) would
                // wait for anyone in our process group).
                if let Some(init) = record["pid"].as_i64().filter(|&pid| pid > 0) {
                    self.inits.borrow_mut().insert(init as i32);
                }
            }
        }
    }

    /// `state <id>` as JSON (panics if it fails).
    pub fn state(&self, id: &str) -> Value {
        let out = self.oci(&["state", id]);
        assert!(out.ok(), "state {id}: {out:?}");
        serde_json::from_str(&out.stdout).unwrap()
    }

    /// Waits (up to 10 s) until `state` says `status`.
    pub fn wait_status(&self, id: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = self.state(id);
            if now["status"] == status {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{id} never became {status}: {now}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The container's state directory.
    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            let _ = self.oci(&["delete", "--force", id]);
        }
        // Reap the inits we adopted (only ours: other tests' children are theirs to wait).
        use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
        for &init in self.inits.borrow().iter() {
            let pid = nix::unistd::Pid::from_raw(init);
            let deadline = Instant::now() + Duration::from_secs(5);
            while let Ok(WaitStatus::StillAlive) = waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                if Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// Chapter 4's busybox image, tagged `tag`, under `<scratch>/data` (the layout in `data/oci`).
/// Returns the data directory.
pub fn busybox_image(scratch: &ScratchDir, tag: &str) -> PathBuf {
    let data = scratch.join("data");
    ch04_rootfs::build::busybox_image(&data, tag).unwrap();
    data
}

/// Whether `tool --version` runs (a client such as containerd or podman is installed).
pub fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Waits (up to 10 s) for `path` to exist.
pub fn wait_for(path: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// `/sys/fs/cgroup` (the v2 tree) and every directory under it (the v1 hierarchies, hybrid's
/// `unified`): where a cgroup's directories may be, on any layout.
pub fn cgroup_tops() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    let mut tops = vec![base.to_path_buf()];
    if let Ok(entries) = fs::read_dir(base) {
        tops.extend(entries.filter_map(Result::ok).map(|e| e.path()));
    }
    tops
}

/// Every directory of the cgroup `boxlab/<id>` that exists on this host (any layout).
pub fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    cgroup_tops()
        .into_iter()
        .map(|t| t.join("boxlab").join(id))
        .filter(|d| d.is_dir())
        .collect()
}

/// Reads a cgroup file of container `id`: `v1_controller/<file_v1>` on v1/hybrid, the v2 file
/// otherwise.
pub fn cgroup_value(id: &str, v1_controller: &str, file_v1: &str, file_v2: &str) -> String {
    let v1 = Path::new("/sys/fs/cgroup")
        .join(v1_controller)
        .join("boxlab")
        .join(id)
        .join(file_v1);
    let v2 = Path::new("/sys/fs/cgroup/boxlab").join(id).join(file_v2);
    fs::read_to_string(&v1)
        .or_else(|_| fs::read_to_string(&v2))
        .unwrap_or_else(|e| panic!("neither {} nor {}: {e}", v1.display(), v2.display()))
        .trim()
        .to_string()
}

/// The host pids of live (not zombie) processes that belong to container `id`: forks of the
/// runtime that carry the id on their command line (the set-up processes and the command still
/// waiting at the gate), or anything in a cgroup `boxlab/<id>` or `…/<id>`.
pub fn container_processes(id: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me || is_zombie(pid) {
            continue;
        }
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let by_args = cmdline.split(|&b| b == 0).any(|arg| arg == id.as_bytes());
        let cgroup = fs::read_to_string(entry.path().join("cgroup")).unwrap_or_default();
        let by_cgroup = cgroup
            .lines()
            .any(|l| l.ends_with(&format!("/boxlab/{id}")));
        if by_args || by_cgroup {
            found.push(pid);
        }
    }
    found
}

/// State letter, parent pid and name of process `pid`, from `/proc/<pid>/stat`.
pub fn stat_of(pid: i32) -> Option<(char, i32, String)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (head, rest) = stat.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_string();
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid, comm))
}

fn is_zombie(pid: i32) -> bool {
    matches!(stat_of(pid), Some(('Z' | 'X', _, _)))
}

/// Waits (up to 10 s) until no live process of `id` is left, calling `reap` in between.
pub fn wait_no_processes(id: &str, reap: impl Fn()) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        reap();
        let left = container_processes(id);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Mounts (as the host sees them) whose mount point or source lies under `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_str().unwrap();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(dir))
        .map(str::to_string)
        .collect()
}

/// Asserts that container `id` has left nothing at all: no state directory, no cgroup, no live
/// process (given up to 10 s to go), no mount under the lab's scratch directory.
pub fn assert_nothing_left(lab: &Lab, id: &str, when: &str) {
    assert_nothing_left_reaping(lab, id, || {}, when);
}

/// [`assert_nothing_left`] for a test that is the subreaper of what it starts: `reap` collects
/// the zombies it adopted while it waits. (Reaping children of ours by name is only safe where
/// no other thread of the test binary is waiting for a child of that name.)
pub fn assert_nothing_left_reaping(lab: &Lab, id: &str, reap: impl Fn(), when: &str) {
    assert!(
        !lab.state_dir(id).exists(),
        "{when}: state directory {} left: {:?}",
        lab.state_dir(id).display(),
        fs::read_dir(lab.state_dir(id)).map(|d| d
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect::<Vec<_>>())
    );
    assert!(
        cgroup_dirs(id).is_empty(),
        "{when}: cgroups left: {:?}",
        cgroup_dirs(id)
    );
    let left = wait_no_processes(id, reap);
    assert!(left.is_empty(), "{when}: processes left: {left:?}");
    let mounts = mounts_under(lab.scratch.path());
    assert!(mounts.is_empty(), "{when}: mounts left: {mounts:#?}");
}
