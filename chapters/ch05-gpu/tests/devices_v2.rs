//! The cgroup v2 mechanism for real: a generated BPF_PROG_TYPE_CGROUP_DEVICE program, loaded and
//! attached to the cgroup's cgroup2 directory (on a hybrid host, its twin under
//! /sys/fs/cgroup/unified), decides what a container may open — on its own, without the v1 list.

use std::path::Path;

use ch02_namespaces::Exit;
use ch03_cgroups::Cgroup;
use ch05_gpu::devices::ebpf::{exit, jmp_ja, mov64_imm, R0};
use ch05_gpu::devices::{
    allow_device_node, apply, apply_ebpf, attach_to_cgroup, attached_programs, load,
    standard_rules, DeviceError, DeviceRule, Program,
};
mod common;

use common::*;
use labkit::{require_root, ScratchDir};
use nix::errno::Errno;
use nix::sys::stat::{makedev, mknod, Mode, SFlag};

fn cgroup_with_unified(label: &str) -> Option<Cgroup> {
    cgroup_having(
        label,
        |c| c.unified_dir().is_some(),
        "a cgroup2 mount, so device eBPF programs",
    )
}

#[test]
fn ebpf_program_alone_permits_null_and_denies_zero() {
    if !require_root("ebpf_program_alone_permits_null_and_denies_zero") {
        return;
    }
    let Some(cgroup) = cgroup_with_unified("t-dev-bpf") else {
        return;
    };
    let applied = apply_ebpf(&cgroup, &rules_without_zero()).unwrap();
    let dir = cgroup.unified_dir().unwrap().to_path_buf();
    assert_eq!(applied.dir, dir);
    assert_eq!(attached_programs(&dir).unwrap().len(), 1);
    assert!(applied.replaced.is_empty());
    assert!(
        applied.verifier_log.contains("processed"),
        "{}",
        applied.verifier_log
    );
    assert_null_opens_and_zero_is_refused(cgroup);
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn an_access_subset_permits_reading_zero_but_not_writing() {
    if !require_root("an_access_subset_permits_reading_zero_but_not_writing") {
        return;
    }
    let Some(cgroup) = cgroup_with_unified("t-dev-bpf-r") else {
        return;
    };
    let mut rules = rules_without_zero();
    rules.push(DeviceRule::parse("c 1:5 r", true).unwrap());
    apply_ebpf(&cgroup, &rules).unwrap();
    let (_, out) = run_in(
        cgroup,
        "head -c1 /dev/zero | od -An -tx1; { echo >/dev/zero; } 2>&1",
    );
    assert!(out.contains("00"), "reading is allowed:\n{out}");
    assert!(
        out.contains("Operation not permitted"),
        "writing is not (only r was allowed):\n{out}"
    );
}

#[test]
fn applying_again_replaces_the_program() {
    if !require_root("applying_again_replaces_the_program") {
        return;
    }
    let Some(cgroup) = cgroup_with_unified("t-dev-bpf-again") else {
        return;
    };
    let dir = cgroup.unified_dir().unwrap().to_path_buf();
    apply_ebpf(&cgroup, &rules_without_zero()).unwrap();
    let first = attached_programs(&dir).unwrap();
    // The second set is wider: it would have no effect if it were only added beside the first.
    let second = apply_ebpf(&cgroup, &standard_rules()).unwrap();
    assert_eq!(second.replaced, first);
    let now = attached_programs(&dir).unwrap();
    assert_eq!(now.len(), 1);
    assert_ne!(now, first);
    let (_, out) = run_in(cgroup, NULL_AND_ZERO);
    assert!(
        out.contains("null-ok") && !out.contains("zero-denied"),
        "{out}"
    );
}

#[test]
fn a_gpu_node_is_allowed_by_its_own_numbers_and_its_neighbour_is_not() {
    if !require_root("a_gpu_node_is_allowed_by_its_own_numbers_and_its_neighbour_is_not") {
        return;
    }
    let Some(cgroup) = cgroup_with_unified("t-dev-bpf-gpu") else {
        return;
    };
    // Fake NVIDIA nodes: c 195:0 and c 195:1. No driver answers them, so an open that the
    // cgroup lets through fails with ENXIO ("No such device or address"), one it stops with
    // EPERM.
    let scratch = ScratchDir::new("ch05-gpu-nodes").unwrap();
    let mode = Mode::from_bits_truncate(0o666);
    mknod(
        &scratch.join("nvidia0"),
        SFlag::S_IFCHR,
        mode,
        makedev(195, 0),
    )
    .unwrap();
    mknod(
        &scratch.join("nvidia1"),
        SFlag::S_IFCHR,
        mode,
        makedev(195, 1),
    )
    .unwrap();
    let mut rules = standard_rules();
    let gpu = allow_device_node(&scratch.join("nvidia0")).unwrap();
    assert_eq!(gpu.to_string(), "c 195:0 rwm");
    rules.push(gpu);
    apply_ebpf(&cgroup, &rules).unwrap();
    let script = format!(
        "cat {0}/nvidia0 2>&1; cat {0}/nvidia1 2>&1",
        scratch.path().display()
    );
    let (_, out) = run_in(cgroup, &script);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].contains("No such device"), "nvidia0 passes: {out}");
    assert!(
        lines[1].contains("Operation not permitted"),
        "nvidia1 is refused: {out}"
    );
}

#[test]
fn combined_apply_uses_every_mechanism_the_host_has() {
    if !require_root("combined_apply_uses_every_mechanism_the_host_has") {
        return;
    }
    let cgroup = new_cgroup("t-dev-apply");
    let applied = apply(&cgroup, &rules_without_zero()).unwrap();
    let has_v1 = cgroup.v1_dir(ch03_cgroups::V1Controller::Devices).is_some();
    assert_eq!(!applied.v1.is_empty(), has_v1);
    assert_eq!(applied.ebpf.is_some(), cgroup.unified_dir().is_some());
    let (exit, out) = run_in(cgroup, NULL_AND_ZERO);
    assert_eq!(exit, Exit::Code(0), "{out}");
    assert!(
        out.contains("null-ok") && out.contains("Operation not permitted"),
        "{out}"
    );
}

#[test]
fn the_verifier_refuses_a_jump_out_of_the_program_and_says_why() {
    if !require_root("the_verifier_refuses_a_jump_out_of_the_program_and_says_why") {
        return;
    }
    let bad = Program::from_insns(vec![mov64_imm(R0, 1), jmp_ja(100), exit()]);
    let err = load(&bad).unwrap_err();
    let DeviceError::Load {
        insns,
        errno,
        ref log_tail,
        ..
    } = err
    else {
        panic!("not a load error: {err}");
    };
    assert_eq!((insns, errno), (3, Errno::EINVAL));
    assert!(log_tail.contains("jump out of range"), "{log_tail}");
    let text = err.to_string();
    assert!(
        text.contains("BPF_PROG_LOAD") && text.contains("jump out of range from insn 1"),
        "{text}"
    );
}

#[test]
fn attaching_to_a_directory_that_is_no_cgroup_says_so() {
    if !require_root("attaching_to_a_directory_that_is_no_cgroup_says_so") {
        return;
    }
    let loaded = load(&Program::build(&standard_rules())).unwrap();
    let scratch = ScratchDir::new("ch05-not-a-cgroup").unwrap();
    let err = attach_to_cgroup(scratch.path(), &loaded)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&scratch.path().display().to_string()) && err.contains("bpf("),
        "{err}"
    );
    let err = attach_to_cgroup(Path::new("/sys/fs/cgroup/boxlab-none"), &loaded)
        .unwrap_err()
        .to_string();
    assert!(err.contains("ENOENT"), "{err}");
}
