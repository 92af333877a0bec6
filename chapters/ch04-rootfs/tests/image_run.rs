//! From a `docker save` archive to a running container: import, list, run with the image's
//! command, environment and working directory on an overlay of its layers.

use std::fs::{self, File};
use std::path::Path;
use std::process::{Command, Output};

use labkit::{busybox_rootfs, require_root, ScratchDir};
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_ch04-rootfs");

/// Writes a docker-save archive with one layer (the busybox root) and a config.
fn docker_save_archive(scratch: &ScratchDir) -> std::path::PathBuf {
    let root = busybox_rootfs(&scratch.join("rootfs")).unwrap();
    let layer = scratch.join("layer.tar");
    let mut builder = tar::Builder::new(File::create(&layer).unwrap());
    builder.follow_symlinks(false);
    builder.append_dir_all(".", &root).unwrap();
    builder.into_inner().unwrap();
    let diff_id = format!("sha256:{:x}", Sha256::digest(fs::read(&layer).unwrap()));
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh", "-c", "echo default command"], "Env": ["PATH=/bin", "GREETING=hello from the image"], "WorkingDir": "/tmp"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    let manifest = serde_json::json!([{"Config": "config.json", "RepoTags": ["boxlab-test:1"], "Layers": ["layer/layer.tar"]}]);
    let archive = scratch.join("image.tar");
    let mut out = tar::Builder::new(File::create(&archive).unwrap());
    let mut add = |name: &str, bytes: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        out.append_data(&mut header, name, bytes).unwrap();
    };
    add(
        "config.json",
        serde_json::to_vec(&config).unwrap().as_slice(),
    );
    add(
        "manifest.json",
        serde_json::to_vec(&manifest).unwrap().as_slice(),
    );
    add("layer/layer.tar", &fs::read(&layer).unwrap());
    out.into_inner().unwrap();
    archive
}

fn ch04(data: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg(args[0]).arg("--data").arg(data).args(&args[1..]);
    cmd.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn import_list_and_run_an_image() {
    if !require_root("import_list_and_run_an_image") {
        return;
    }
    let scratch = ScratchDir::new("image-run").unwrap();
    let archive = docker_save_archive(&scratch);
    let data = scratch.join("data");

    let out = ch04(&data, &["import", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("imported boxlab-test:1"),
        "{}",
        text(&out.stdout)
    );

    let out = ch04(&data, &["images"]);
    assert!(
        text(&out.stdout).contains("boxlab-test:1"),
        "{}",
        text(&out.stdout)
    );

    // The image's own command, env and working directory.
    let out = ch04(&data, &["run", "boxlab-test:1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "default command\n");
    assert!(
        text(&out.stderr).contains("unpacked into the store"),
        "{}",
        text(&out.stderr)
    );

    // A command of ours; the layer is cached now; writes go to the container's layer only.
    let out = ch04(
        &data,
        &[
            "run",
            "boxlab-test:1",
            "--",
            "sh",
            "-c",
            "echo $GREETING; pwd; echo x > /written; ls /written",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello from the image\n/tmp\n/written\n");
    assert!(
        text(&out.stderr).contains("already unpacked"),
        "{}",
        text(&out.stderr)
    );

    let out = ch04(&data, &["run", "boxlab-test:1", "--", "cat", "/written"]);
    assert!(
        !out.status.success(),
        "each container starts from the image, not from the last one's writes"
    );

    let out = ch04(&data, &["run", "nothere:1", "--", "true"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("nothere"),
        "{}",
        text(&out.stderr)
    );
    // (Container directories are checked by the leak check after the whole run: other tests
    // may have containers of their own running right now.)
}

#[test]
fn push_to_a_registry_pull_elsewhere_and_run() {
    if !require_root("push_to_a_registry_pull_elsewhere_and_run") {
        return;
    }
    let registry = labkit::LocalRegistry::start().expect("scripts/setup installs docker-registry");
    let scratch = ScratchDir::new("image-pull").unwrap();
    let archive = docker_save_archive(&scratch);
    let (here, there) = (scratch.join("here"), scratch.join("there"));
    assert!(ch04(&here, &["import", archive.to_str().unwrap()])
        .status
        .success());

    let remote = format!("{}/boxlab/test:1", registry.host());
    let out = ch04(&here, &["push", "boxlab-test:1", &remote]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = ch04(&there, &["pull", &remote]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("1 layers"),
        "{}",
        text(&out.stdout)
    );

    let out = ch04(
        &there,
        &["run", &remote, "--", "sh", "-c", "echo $GREETING"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello from the image\n");

    let out = ch04(
        &there,
        &["pull", &format!("{}/boxlab/test:missing", registry.host())],
    );
    assert!(!out.status.success());
    // The reference itself holds "missing": look for the error's own words.
    assert!(
        text(&out.stderr).contains("tag missing not found in boxlab/test"),
        "{}",
        text(&out.stderr)
    );
}
