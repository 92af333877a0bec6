//! The cgroup v1 mechanism for real: `a` to devices.deny and one line per rule to devices.allow
//! in the cgroup's `devices` hierarchy decide what a container may open — on its own, without
//! the eBPF program.

use std::fs::{self};

use ch03_cgroups::{Cgroup, V1Controller};
use ch05_gpu::devices::{apply_v1, attached_programs};
mod common;

use common::*;
use labkit::require_root;

fn cgroup_with_devices(label: &str) -> Option<Cgroup> {
    cgroup_having(
        label,
        |c| c.v1_dir(V1Controller::Devices).is_some(),
        "a cgroup v1 devices hierarchy (a v2 host uses the eBPF program)",
    )
}

#[test]
fn v1_list_alone_permits_null_and_denies_zero() {
    if !require_root("v1_list_alone_permits_null_and_denies_zero") {
        return;
    }
    let Some(cgroup) = cgroup_with_devices("t-dev-v1") else {
        return;
    };
    let dir = cgroup.v1_dir(V1Controller::Devices).unwrap().to_path_buf();
    let written = apply_v1(&cgroup, &rules_without_zero()).unwrap();
    assert_eq!(written[0].value, "a");
    assert!(written[0].file.ends_with("devices.deny"));
    assert_eq!(written.len(), 1 + rules_without_zero().len());
    // The kernel's own view: exactly our rules.
    let list = fs::read_to_string(dir.join("devices.list")).unwrap();
    let mut listed: Vec<&str> = list.lines().collect();
    let expected_rules: Vec<String> = rules_without_zero().iter().map(|r| r.to_string()).collect();
    let mut expected: Vec<&str> = expected_rules.iter().map(String::as_str).collect();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);
    // No eBPF program is involved.
    if let Some(unified) = cgroup.unified_dir() {
        assert!(attached_programs(unified).unwrap().is_empty());
    }
    assert_null_opens_and_zero_is_refused(cgroup);
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn v1_refuses_a_malformed_line_and_names_the_file() {
    if !require_root("v1_refuses_a_malformed_line_and_names_the_file") {
        return;
    }
    let Some(cgroup) = cgroup_with_devices("t-dev-v1-bad") else {
        return;
    };
    // A line the kernel refuses, written directly: the parser never produces it, so go to the
    // file with ch03's writer to see the kernel's error as the v1 writer would report it.
    let dir = cgroup.v1_dir(V1Controller::Devices).unwrap();
    let err = ch03_cgroups::files::write(dir, "devices.allow", "x 1:3 rwm")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("devices.allow") && err.contains("EINVAL"),
        "{err}"
    );
    cgroup.remove().unwrap();
}
