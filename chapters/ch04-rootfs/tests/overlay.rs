//! overlayfs: the image's layers stay untouched, the container's writes land in its own upper
//! layer, and a whiteout in an upper layer hides a lower file.

use std::fs::{self, File};
use std::io::Read;

use ch01_process::exec::Program;
use ch02_namespaces::{Exit, Isolation};
use ch04_rootfs::with_layers;
use labkit::{busybox_rootfs, require_root, ScratchDir};
use nix::sys::stat::{mknod, Mode, SFlag};
use nix::unistd::pipe;

#[test]
fn writes_go_to_the_container_layer_and_whiteouts_hide_lower_files() {
    if !require_root("writes_go_to_the_container_layer_and_whiteouts_hide_lower_files") {
        return;
    }
    let scratch = ScratchDir::new("overlay").unwrap();
    let base = busybox_rootfs(&scratch.join("layer1")).unwrap();
    let top = scratch.join("layer2");
    fs::create_dir_all(top.join("etc")).unwrap();
    fs::create_dir_all(top.join("bin")).unwrap();
    fs::write(top.join("etc/motd"), "from layer 2\n").unwrap();
    // The overlayfs whiteout: a 0:0 character device hides bin/vi of the layer below.
    mknod(
        &top.join("bin/vi"),
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o000),
        0,
    )
    .unwrap();

    let container = scratch.join("container");
    let (reader, writer) = pipe().unwrap();
    let isolation = with_layers(
        Isolation::container_defaults().stdout(writer),
        vec![base.clone(), top.clone()],
        &container,
        false,
    )
    .unwrap();
    let script = "cat /etc/motd; test -e /bin/vi && echo vi-visible || echo vi-hidden; test -e /bin/sh && echo sh-visible; echo written > /etc/new; rm /etc/passwd; echo done";
    let child = isolation
        .spawn(&Program::new(&["sh", "-c", script]).unwrap())
        .unwrap();
    drop(isolation); // it holds a copy of the pipe's write end: drop it, or the read never ends
    let mut out = String::new();
    File::from(reader).read_to_string(&mut out).unwrap();
    assert_eq!(child.wait().unwrap(), Exit::Code(0), "{out}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["from layer 2", "vi-hidden", "sh-visible", "done"]
    );

    // The container's changes are in its upper layer only.
    assert_eq!(
        fs::read_to_string(container.join("upper/etc/new")).unwrap(),
        "written\n"
    );
    assert!(
        base.join("etc/passwd").exists(),
        "the lower layer is untouched by rm"
    );
    assert!(!base.join("etc/new").exists() && !top.join("etc/new").exists());
    let whiteout = fs::symlink_metadata(container.join("upper/etc/passwd")).unwrap();
    use std::os::unix::fs::FileTypeExt;
    assert!(
        whiteout.file_type().is_char_device(),
        "rm left a whiteout in the upper layer"
    );
    // Nothing is left mounted on the host: the overlay lived in the container's mount namespace.
    assert!(!fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .contains(&container.display().to_string()));
}
