//! The `unpack` verb, as a student uses it: apply layers one after the other onto a directory.

use std::fs;
use std::process::{Command, Output};

use labkit::ScratchDir;

const BIN: &str = env!("CARGO_BIN_EXE_ch04-rootfs");

fn tar_gz(dir: &std::path::Path, out: &std::path::Path) {
    let status = Command::new("tar")
        .arg("-czf")
        .arg(out)
        .arg("-C")
        .arg(dir)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
}

fn unpack(args: &[&std::path::Path], extra: &[&str]) -> Output {
    Command::new(BIN)
        .arg("unpack")
        .args(extra)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn two_layers_with_a_whiteout_give_the_merged_tree() {
    let scratch = ScratchDir::new("cli-unpack").unwrap();
    let (one, two) = (scratch.join("one"), scratch.join("two"));
    fs::create_dir_all(one.join("etc")).unwrap();
    fs::write(one.join("etc/motd"), "hello").unwrap();
    fs::write(one.join("etc/hostname"), "box").unwrap();
    fs::create_dir_all(two.join("etc")).unwrap();
    fs::write(two.join("etc/.wh.motd"), "").unwrap();
    fs::write(two.join("etc/issue"), "boxlab").unwrap();
    tar_gz(&one, &scratch.join("one.tar.gz"));
    tar_gz(&two, &scratch.join("two.tar.gz"));

    let root = scratch.join("root");
    let out = unpack(&[&scratch.join("one.tar.gz"), &root], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = unpack(&[&scratch.join("two.tar.gz"), &root], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 whiteouts"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let mut names: Vec<String> = fs::read_dir(root.join("etc"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["hostname", "issue"],
        "motd deleted by the whiteout, no .wh. file left"
    );
}

#[test]
fn a_wrong_digest_is_refused_before_anything_is_written() {
    let scratch = ScratchDir::new("cli-digest").unwrap();
    fs::create_dir_all(scratch.join("src")).unwrap();
    fs::write(scratch.join("src/file"), "data").unwrap();
    tar_gz(&scratch.join("src"), &scratch.join("layer.tar.gz"));
    let wrong = format!("sha256:{}", "0".repeat(64));
    let out = unpack(
        &[&scratch.join("layer.tar.gz"), &scratch.join("root")],
        &["--digest", &wrong],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&wrong) && err.lines().count() == 1, "{err}");
    assert!(!scratch.join("root/file").exists());
}
