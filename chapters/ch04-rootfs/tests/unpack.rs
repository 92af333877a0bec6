//! Unpacking real-shaped layers: three layers with whiteouts, opaque directories and type
//! changes give exactly the expected tree, in plain, gzip and zstd form; digests are reported
//! and checked. No root needed, except for the ownership test.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use ch04_rootfs::unpack::{
    unpack_layer, unpack_layer_from, Compression, UnpackError, UnpackOptions, UnpackReport,
};
use labkit::ScratchDir;
use sha2::{Digest, Sha256};
use tar::{Builder, EntryType, Header};

/// Every entry's mtime: unpacking must keep it (reproducible builds depend on it).
const MTIME: u64 = 1_700_000_000;

/// Builds a layer with the `tar` crate's ordinary API (these names are all well-formed).
struct Layer(Builder<Vec<u8>>);

impl Layer {
    fn new() -> Self {
        Self(Builder::new(Vec::new()))
    }

    fn header(kind: EntryType, mode: u32, size: u64) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(MTIME);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    fn dir(mut self, path: &str, mode: u32) -> Self {
        let mut h = Self::header(EntryType::Directory, mode, 0);
        self.0.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    fn file(mut self, path: &str, mode: u32, data: &str) -> Self {
        let mut h = Self::header(EntryType::Regular, mode, data.len() as u64);
        self.0.append_data(&mut h, path, data.as_bytes()).unwrap();
        self
    }

    fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(EntryType::Symlink, 0o777, 0);
        self.0.append_link(&mut h, path, target).unwrap();
        self
    }

    fn hardlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(EntryType::Link, 0o644, 0);
        self.0.append_link(&mut h, path, target).unwrap();
        self
    }

    /// A whiteout is an empty regular file with a `.wh.` name.
    fn whiteout(self, path: &str) -> Self {
        self.file(path, 0o644, "")
    }

    fn tar(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

fn layer1() -> Vec<u8> {
    Layer::new()
        .dir("etc", 0o755)
        .file("etc/hosts", 0o644, "127.0.0.1 localhost\n")
        .file("etc/passwd", 0o644, "root:x:0:0::/root:/bin/sh\n")
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .file("usr/bin/tool", 0o755, "tool v1\n")
        .file("usr/bin/suid", 0o4755, "setuid program\n")
        .dir("usr/lib", 0o755)
        .file("usr/lib/libc.so", 0o644, "libc\n")
        .symlink("lib", "usr/lib")
        .dir("var", 0o755)
        .dir("var/cache", 0o755)
        .file("var/cache/a", 0o644, "a\n")
        .dir("var/cache/sub", 0o755)
        .file("var/cache/sub/b", 0o644, "b\n")
        .dir("opt", 0o755)
        .dir("opt/app", 0o755)
        .file("opt/app/config", 0o644, "v1\n")
        .dir("opt/app/data", 0o755)
        .file("opt/app/data/x", 0o644, "x\n")
        .dir("home", 0o755)
        .dir("home/user", 0o700)
        .file("home/user/.profile", 0o644, "profile\n")
        .dir("srv", 0o755)
        .file("srv/file", 0o644, "srv\n")
        .dir("tmp", 0o1777)
        .tar()
}

fn layer2() -> Vec<u8> {
    Layer::new()
        .whiteout("etc/.wh.passwd") // a file from layer 1 goes
        .whiteout("var/.wh.cache") // a whole directory from layer 1 goes
        .file("etc/motd", 0o644, "hello\n")
        .dir("opt/app", 0o755)
        // Written *before* the opaque marker in the same layer: must survive it.
        .file("opt/app/new", 0o644, "v2\n")
        .whiteout("opt/app/.wh..wh..opq")
        .dir("opt/app/data", 0o755)
        .file("opt/app/data/y", 0o644, "y\n")
        .file("usr/bin/tool", 0o755, "tool v2\n")
        .hardlink("usr/bin/link-to-tool", "usr/bin/tool")
        .whiteout("home/.wh.nothing") // nothing to delete: a no-op
        .file("lib/libextra.so", 0o644, "extra\n") // through `lib -> usr/lib`
        .tar()
}

fn layer3() -> Vec<u8> {
    Layer::new()
        .file("srv", 0o644, "srv is a file now\n") // a directory becomes a file
        .symlink("etc/hosts", "/run/hosts") // a file becomes a symlink
        .dir("etc/motd", 0o755) // a file becomes a directory
        .file("etc/motd/today", 0o644, "sunny\n")
        .whiteout("opt/app/.wh.new") // layer 2's file goes
        .file("opt/app/new2", 0o644, "v3\n")
        .whiteout("opt/app/.wh.new2") // same layer: does not delete new2
        .whiteout("usr/bin/.wh.link-to-tool")
        .dir("var", 0o750) // directory over directory: contents stay, mode changes
        .whiteout("usr/lib/.wh.libc.so") // whiteout first, then the same layer's new file
        .file("usr/lib/libc.so", 0o644, "libc v3\n")
        .tar()
}

/// The tree after all three layers, one line per path: `dir/ mode`, `file mode "content"`,
/// `link -> target`.
const EXPECTED: &[&str] = &[
    "etc/ 0755",
    "etc/hosts -> /run/hosts",
    "etc/motd/ 0755",
    "etc/motd/today 0644 \"sunny\\n\"",
    "home/ 0755",
    "home/user/ 0700",
    "home/user/.profile 0644 \"profile\\n\"",
    "lib -> usr/lib",
    "opt/ 0755",
    "opt/app/ 0755",
    "opt/app/data/ 0755",
    "opt/app/data/y 0644 \"y\\n\"",
    "opt/app/new2 0644 \"v3\\n\"",
    "srv 0644 \"srv is a file now\\n\"",
    "tmp/ 1777",
    "usr/ 0755",
    "usr/bin/ 0755",
    "usr/bin/suid 4755 \"setuid program\\n\"",
    "usr/bin/tool 0755 \"tool v2\\n\"",
    "usr/lib/ 0755",
    "usr/lib/libc.so 0644 \"libc v3\\n\"",
    "usr/lib/libextra.so 0644 \"extra\\n\"",
    "var/ 0750",
];

/// A sorted listing of everything under `root` (not following symlinks).
fn tree(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let meta = fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).unwrap();
                out.push(format!("{rel} -> {}", target.display()));
            } else if meta.is_dir() {
                out.push(format!("{rel}/ {mode:04o}"));
                walk(root, &path, out);
            } else if meta.is_file() {
                let content = String::from_utf8_lossy(&fs::read(&path).unwrap()).into_owned();
                out.push(format!("{rel} {mode:04o} {content:?}"));
            } else {
                out.push(format!("{rel} special {:o}", meta.mode()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// Every file and symlink under `root` carries the layers' mtime.
fn assert_mtimes_kept(root: &Path) {
    fn walk(dir: &Path) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                walk(&path);
            } else {
                assert_eq!(meta.mtime() as u64, MTIME, "mtime of {}", path.display());
            }
        }
    }
    walk(root);
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn gzip(tar: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(tar).unwrap();
    gz.finish().unwrap()
}

fn zstd(tar: &[u8]) -> Vec<u8> {
    zstd::encode_all(tar, 3).unwrap()
}

fn unpack(blob: &[u8], target: &Path) -> UnpackReport {
    unpack_layer_from(blob, target, &UnpackOptions::default())
        .unwrap_or_else(|e| panic!("unpack into {}: {e}", target.display()))
}

#[test]
fn three_layers_give_exactly_the_expected_tree() {
    let scratch = ScratchDir::new("ch04-unpack-layers").unwrap();
    let root = scratch.join("rootfs");

    let r1 = unpack(&layer1(), &root);
    assert_eq!(r1.entries, 26);
    assert_eq!(r1.compression, Compression::None);

    let r2 = unpack(&layer2(), &root);
    assert_eq!((r2.whiteouts, r2.opaque_dirs), (3, 1));
    // After layer 2: the opaque directory holds only layer 2's entries, `new` included although
    // it came before the marker in the tar.
    let app: Vec<String> = tree(&root.join("opt/app"));
    assert_eq!(
        app,
        ["data/ 0755", "data/y 0644 \"y\\n\"", "new 0644 \"v2\\n\""]
    );
    assert!(!root.join("etc/passwd").exists());
    assert!(!root.join("var/cache").exists());
    let tool = fs::metadata(root.join("usr/bin/tool")).unwrap();
    let link = fs::metadata(root.join("usr/bin/link-to-tool")).unwrap();
    assert_eq!(
        tool.ino(),
        link.ino(),
        "the hard link shares the file's inode"
    );

    let r3 = unpack(&layer3(), &root);
    assert_eq!((r3.whiteouts, r3.opaque_dirs), (4, 0));
    assert!(r3.skipped.is_empty(), "{:?}", r3.skipped);

    assert_eq!(tree(&root), EXPECTED);
    assert_mtimes_kept(&root);
    assert!(
        tree(&root).iter().all(|line| !line.contains(".wh.")),
        "no whiteout marker may reach the output"
    );
}

#[test]
fn gzip_and_zstd_give_the_same_tree_and_digests() {
    let scratch = ScratchDir::new("ch04-unpack-compression").unwrap();
    let layers = [layer1(), layer2(), layer3()];
    let mut trees = Vec::new();
    for (label, compress, expected) in [
        (
            "plain",
            (|t: &[u8]| t.to_vec()) as fn(&[u8]) -> Vec<u8>,
            Compression::None,
        ),
        ("gzip", gzip, Compression::Gzip),
        ("zstd", zstd, Compression::Zstd),
    ] {
        let root = scratch.join(label);
        for tar in &layers {
            let blob = compress(tar);
            let report = unpack(&blob, &root);
            assert_eq!(report.compression, expected, "{label}");
            assert_eq!(
                report.digest,
                sha256(&blob),
                "{label}: digest is of the blob as given"
            );
            assert_eq!(
                report.diff_id,
                sha256(tar),
                "{label}: diff_id is of the tar"
            );
            assert_eq!(report.size, blob.len() as u64, "{label}");
        }
        trees.push(tree(&root));
    }
    assert_eq!(trees[0], EXPECTED);
    assert_eq!(trees[1], trees[0], "gzip differs from plain");
    assert_eq!(trees[2], trees[0], "zstd differs from plain");
}

#[test]
fn layer_files_are_detected_and_digests_checked() {
    let scratch = ScratchDir::new("ch04-unpack-digest").unwrap();
    let blob = gzip(&layer1());
    let file = scratch.join("layer.tar.gz");
    fs::write(&file, &blob).unwrap();
    let digest = sha256(&blob);

    // The right digest: unpacked.
    let options = UnpackOptions {
        expected_digest: Some(digest.clone()),
        ..UnpackOptions::default()
    };
    let report = unpack_layer(&file, &scratch.join("ok"), &options).unwrap();
    assert_eq!(report.digest, digest);
    assert_eq!(report.diff_id, sha256(&layer1()));
    assert_eq!(report.bytes, tree_bytes(&layer1()));

    // A wrong digest: refused before anything is written, and both digests are named.
    let wrong = format!("sha256:{}", "0".repeat(64));
    let options = UnpackOptions {
        expected_digest: Some(wrong.clone()),
        ..UnpackOptions::default()
    };
    let target = scratch.join("refused");
    let err = unpack_layer(&file, &target, &options).unwrap_err();
    assert!(matches!(err, UnpackError::DigestMismatch { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&wrong) && message.contains(&digest),
        "{message}"
    );
    assert!(
        !target.exists(),
        "the target was touched despite the mismatch"
    );

    // From a stream the mismatch shows at the end, and the error says to discard the target.
    let target = scratch.join("streamed");
    let err = unpack_layer_from(&blob[..], &target, &options).unwrap_err();
    assert!(
        matches!(err, UnpackError::DigestMismatchAfterUnpack { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&wrong) && message.contains(&digest),
        "{message}"
    );
    assert!(message.contains(&target.display().to_string()), "{message}");

    // Not a sha256 digest at all.
    let options = UnpackOptions {
        expected_digest: Some("md5:1234".into()),
        ..UnpackOptions::default()
    };
    let err = unpack_layer(&file, &scratch.join("bad"), &options).unwrap_err();
    assert!(matches!(err, UnpackError::BadDigest { .. }), "{err:?}");
}

/// Sum of the file sizes in a tar: what `bytes` should report.
fn tree_bytes(tar: &[u8]) -> u64 {
    let mut archive = tar::Archive::new(tar);
    archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.header().entry_type() == EntryType::Regular)
        .map(|e| e.header().size().unwrap())
        .sum()
}

#[test]
fn truncated_and_corrupt_streams_are_errors() {
    let scratch = ScratchDir::new("ch04-unpack-corrupt").unwrap();
    let blob = gzip(&layer1());
    let err = unpack_layer_from(
        &blob[..blob.len() / 2],
        &scratch.join("a"),
        &Default::default(),
    )
    .unwrap_err();
    assert!(matches!(err, UnpackError::Stream { .. }), "{err:?}");

    let mut tar = layer1();
    tar[100] ^= 0xff; // inside the first header: its checksum no longer matches
    let err = unpack_layer_from(&tar[..], &scratch.join("b"), &Default::default()).unwrap_err();
    assert!(matches!(err, UnpackError::Stream { .. }), "{err:?}");

    let err = unpack_layer(
        &scratch.join("missing.tar"),
        &scratch.join("c"),
        &Default::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("missing.tar"), "{err}");
}

#[test]
fn a_root_entry_sets_the_targets_metadata() {
    let scratch = ScratchDir::new("ch04-unpack-root-entry").unwrap();
    let tar = Layer::new()
        .dir("./", 0o711)
        .file("./hello", 0o600, "hi")
        .tar();
    let root = scratch.join("rootfs");
    unpack(&tar, &root);
    let meta = fs::metadata(&root).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o711);
    assert_eq!(meta.mtime() as u64, MTIME);
    assert_eq!(tree(&root), ["hello 0600 \"hi\""]);
}

#[test]
fn fifos_need_no_privilege() {
    let scratch = ScratchDir::new("ch04-unpack-fifo").unwrap();
    let mut layer = Layer::new();
    let mut h = Layer::header(EntryType::Fifo, 0o620, 0);
    layer.0.append_data(&mut h, "run/pipe", &[][..]).unwrap();
    let tar = layer.tar();
    let report = unpack(&tar, &scratch.join("rootfs"));
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    let meta = fs::symlink_metadata(scratch.join("rootfs/run/pipe")).unwrap();
    use std::os::unix::fs::FileTypeExt;
    assert!(meta.file_type().is_fifo());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o620);
}

#[test]
fn ownership_is_kept_when_asked() {
    if !labkit::require_root("ownership_is_kept_when_asked") {
        return;
    }
    let scratch = ScratchDir::new("ch04-unpack-owner").unwrap();
    let mut layer = Layer::new();
    let mut h = Layer::header(EntryType::Regular, 0o4755, 2);
    h.set_uid(1234);
    h.set_gid(5678);
    layer.0.append_data(&mut h, "owned", &b"hi"[..]).unwrap();
    let tar = layer.tar();
    let options = UnpackOptions {
        preserve_ownership: true,
        ..UnpackOptions::default()
    };
    unpack_layer_from(&tar[..], &scratch.join("rootfs"), &options).unwrap();
    let meta = fs::metadata(scratch.join("rootfs/owned")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1234, 5678));
    // chown clears setuid; the unpacker sets the mode after the owner, so it survives.
    assert_eq!(meta.permissions().mode() & 0o7777, 0o4755);
}
