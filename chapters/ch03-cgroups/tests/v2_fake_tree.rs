//! cgroup v2 logic on a fake tree (this CI host is hybrid; most students' machines are v2): the
//! exact files and values written, controller delegation, and refusal of what the root lacks.
//! Plus layout detection on real mounts of each kind.

use std::fs;
use std::path::Path;

use ch03_cgroups::{detect_at, Cgroup, CgroupPath, Layout, Limits};
use labkit::{require_root, ScratchDir};

fn fake_v2_root(controllers: &str) -> ScratchDir {
    let tree = ScratchDir::new("fake-cgroup2").unwrap();
    fs::write(tree.join("cgroup.controllers"), controllers).unwrap();
    fs::write(tree.join("cgroup.subtree_control"), "").unwrap();
    tree
}

fn rel(tree: &ScratchDir, file: &Path) -> String {
    file.strip_prefix(tree.path())
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn v2_writes_exactly_these_files() {
    if !require_root("v2_writes_exactly_these_files") {
        return; // Cgroup::create asks for a delegated subtree when not root
    }
    let tree = fake_v2_root("cpuset cpu io memory hugetlb pids");
    let layout = Layout::V2 {
        root: tree.path().to_path_buf(),
    };
    let limits = Limits {
        memory: Some(64 << 20),
        memory_swap: Some(96 << 20),
        cpu_millis: Some(500),
        cpu_shares: Some(512),
        pids: Some(20),
        cpuset_cpus: Some("0".into()),
    };
    let path = CgroupPath::new("boxlab/web").unwrap();
    let (cgroup, written) = Cgroup::create(&layout, &path, &limits).unwrap();
    let written: Vec<(String, String)> = written
        .iter()
        .map(|w| (rel(&tree, &w.file), w.value.clone()))
        .collect();
    let expected = [
        ("cgroup.subtree_control", "+memory +cpu +pids +cpuset"),
        (
            "boxlab/cgroup.subtree_control",
            "+memory +cpu +pids +cpuset",
        ),
        ("boxlab/web/memory.max", "67108864"),
        ("boxlab/web/memory.swap.max", "33554432"),
        ("boxlab/web/cpu.max", "50000 100000"),
        ("boxlab/web/cpu.weight", "20"),
        ("boxlab/web/pids.max", "20"),
        ("boxlab/web/cpuset.cpus", "0"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(f, v)| (f.to_string(), v.to_string()))
        .collect();
    assert_eq!(written, expected);
    assert_eq!(cgroup.unified_dir().unwrap(), tree.join("boxlab/web"));
    std::mem::forget(cgroup); // a plain directory tree cannot be rmdir'ed like cgroupfs; ScratchDir removes it

    // A second cgroup: the root and boxlab/ already pass the controllers down; nothing re-enabled.
    let (second, written) =
        Cgroup::create(&layout, &CgroupPath::new("boxlab/db").unwrap(), &limits).unwrap();
    assert!(
        written
            .iter()
            .all(|w| !w.file.ends_with("cgroup.subtree_control")),
        "{written:?}"
    );
    std::mem::forget(second);
}

#[test]
fn v2_only_enables_what_the_root_offers_and_refuses_required_ones() {
    if !require_root("v2_only_enables_what_the_root_offers_and_refuses_required_ones") {
        return;
    }
    // Like the cgroup2 mount of a hybrid host: no memory, cpu or pids of its own.
    let tree = fake_v2_root("hugetlb");
    let layout = Layout::V2 {
        root: tree.path().to_path_buf(),
    };
    let (cgroup, written) = Cgroup::create(
        &layout,
        &CgroupPath::new("boxlab/plain").unwrap(),
        &Limits::default(),
    )
    .unwrap();
    assert!(
        written.is_empty(),
        "nothing to enable or limit: {written:?}"
    );
    std::mem::forget(cgroup);

    let err = Cgroup::create(
        &layout,
        &CgroupPath::new("boxlab/limited").unwrap(),
        &Limits {
            pids: Some(5),
            ..Limits::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("pids controller is not available") && err.contains("offers only 'hugetlb'"),
        "{err}"
    );
    assert!(
        !tree.join("boxlab/limited").exists(),
        "nothing created for a refused cgroup"
    );
}

#[test]
fn a_missing_v1_hierarchy_is_named() {
    if !require_root("a_missing_v1_hierarchy_is_named") {
        return;
    }
    let tree = ScratchDir::new("fake-cgroup1").unwrap();
    fs::create_dir(tree.join("memory")).unwrap();
    let layout = Layout::V1 {
        root: tree.path().to_path_buf(),
    };
    let err = Cgroup::create(
        &layout,
        &CgroupPath::unique("t"),
        &Limits {
            pids: Some(5),
            ..Limits::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("pids controller is not available") && err.contains("pids"),
        "{err}"
    );
    assert!(
        fs::read_dir(tree.join("memory")).unwrap().next().is_none(),
        "the memory directory was cleaned up"
    );
}

#[test]
fn detection_on_real_mounts_of_each_layout() {
    if !require_root("detection_on_real_mounts_of_each_layout") {
        return;
    }
    use nix::mount::{mount, MsFlags};
    let none = None::<&str>;

    let v2 = ScratchDir::new("detect-v2").unwrap();
    mount(
        Some("boxlab"),
        v2.path(),
        Some("cgroup2"),
        MsFlags::empty(),
        none,
    )
    .unwrap();
    assert_eq!(
        detect_at(v2.path()).unwrap(),
        Layout::V2 {
            root: v2.path().into()
        }
    );

    let v1 = ScratchDir::new("detect-v1").unwrap();
    mount(
        Some("boxlab"),
        v1.path(),
        Some("tmpfs"),
        MsFlags::empty(),
        none,
    )
    .unwrap();
    assert_eq!(
        detect_at(v1.path()).unwrap(),
        Layout::V1 {
            root: v1.path().into()
        }
    );

    fs::create_dir(v1.join("unified")).unwrap();
    mount(
        Some("boxlab"),
        &v1.join("unified"),
        Some("cgroup2"),
        MsFlags::empty(),
        none,
    )
    .unwrap();
    assert_eq!(
        detect_at(v1.path()).unwrap(),
        Layout::Hybrid {
            root: v1.path().into(),
            unified: v1.join("unified")
        }
    );
    // ScratchDir unmounts all of it on drop.
}
