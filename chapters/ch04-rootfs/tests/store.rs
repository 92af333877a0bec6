//! The layer store: a layer shared by two images is unpacked once, racing unpackers leave one
//! good copy, a layer that does not hash to its diff_id is refused without a trace, and a
//! layer's whiteouts are kept as overlayfs markers (root) — or applied, by `flatten`.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::{Arc, Barrier};

use ch04_rootfs::digest::sha256_bytes;
use ch04_rootfs::image::{OciLayout, ResolvedImage};
use ch04_rootfs::store::{default_root, LayerStore, StoreError};
use ch04_rootfs::unpack::{
    unpack_layer_with_whiteouts, UnpackError, UnpackOptions, WhiteoutMode, OVERLAY_OPAQUE_XATTR,
};
use labkit::ScratchDir;
use oci_spec::image::{
    Arch, Descriptor, ImageConfigurationBuilder, ImageManifestBuilder, MediaType, Os, RootFsBuilder,
};
use tar::{Builder, EntryType, Header};

/// A layer tar: `(path, Some(content))` is a file, `(path, None)` a directory.
fn layer(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
    let mut tar = Builder::new(Vec::new());
    for (path, data) in entries {
        let mut h = Header::new_gnu();
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        match data {
            Some(data) => {
                h.set_entry_type(EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
                tar.append_data(&mut h, path, data.as_bytes()).unwrap();
            }
            None => {
                h.set_entry_type(EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                tar.append_data(&mut h, path, &[][..]).unwrap();
            }
        }
    }
    tar.into_inner().unwrap()
}

fn base() -> Vec<u8> {
    layer(&[
        ("etc/", None),
        ("etc/os-release", Some("boxlab\n")),
        ("etc/motd", Some("hi\n")),
        ("data/", None),
        ("data/old", Some("lower")),
    ])
}

fn top() -> Vec<u8> {
    layer(&[
        ("etc/.wh.motd", Some("")),
        ("data/.wh..wh..opq", Some("")),
        ("data/new", Some("upper")),
    ])
}

/// Stores an image of these layers (plain tars) in `layout` and resolves it.
fn image(layout: &OciLayout, name: &str, layers: &[Vec<u8>]) -> ResolvedImage {
    let descs: Vec<Descriptor> = layers
        .iter()
        .map(|l| layout.put_bytes(l, MediaType::ImageLayer).unwrap())
        .collect();
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256_bytes(l).to_string()).collect();
    let config = ImageConfigurationBuilder::default()
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .rootfs(RootFsBuilder::default().diff_ids(diff_ids).build().unwrap())
        .build()
        .unwrap();
    let config = layout.put_json(&config, MediaType::ImageConfig).unwrap();
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config)
        .layers(descs)
        .build()
        .unwrap();
    let desc = layout
        .put_json(&manifest, MediaType::ImageManifest)
        .unwrap();
    layout.add_to_index(&desc, Some(name)).unwrap();
    layout.resolve_for(name, &Os::Linux, &Arch::Amd64).unwrap()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_layer_shared_by_two_images_is_unpacked_once() {
    let scratch = ScratchDir::new("ch04-store").unwrap();
    let layout = OciLayout::create(scratch.join("oci")).unwrap();
    let store = LayerStore::open(scratch.join("layers")).unwrap();
    let shared = layer(&[("bin/", None), ("bin/tool", Some("v1"))]);
    let one = image(
        &layout,
        "one",
        &[shared.clone(), layer(&[("one", Some("1"))])],
    );
    let two = image(&layout, "two", &[shared, layer(&[("two", Some("2"))])]);

    let dirs = store.layers_for(&layout, &one).unwrap();
    assert_eq!(dirs.len(), 2);
    assert_eq!(fs::read_to_string(dirs[0].join("bin/tool")).unwrap(), "v1");
    assert_eq!(fs::read_to_string(dirs[1].join("one")).unwrap(), "1");
    // Each layer is in a directory of its own: the upper one has only its own file.
    assert_eq!(entries(&dirs[1]), vec!["one"]);

    let (layer, diff_id) = two.layers().next().unwrap();
    let (path, cached) = store.unpacked(&layout, layer, diff_id).unwrap();
    assert!(cached, "the shared layer must come from the store");
    assert_eq!(path, dirs[0]);
    let (layer, diff_id) = two.layers().nth(1).unwrap();
    assert!(!store.unpacked(&layout, layer, diff_id).unwrap().1);

    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().any(|l| l.path == dirs[0]));
    assert!(store.remove(diff_id).unwrap());
    assert!(!store.remove(diff_id).unwrap());
    assert_eq!(store.list().unwrap().len(), 2);
    assert!(store.get(diff_id).unwrap().is_none());
    assert!(entries(&scratch.join("layers/tmp")).is_empty());
}

#[test]
fn racing_unpackers_leave_one_good_copy() {
    let scratch = ScratchDir::new("ch04-store").unwrap();
    let layout = OciLayout::create(scratch.join("oci")).unwrap();
    let store = LayerStore::open(scratch.join("layers")).unwrap();
    let files: Vec<(String, String)> = (0..200)
        .map(|i| (format!("f/{i}"), format!("content {i}")))
        .collect();
    let entries_ref: Vec<(&str, Option<&str>)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), Some(c.as_str())))
        .collect();
    let img = image(&layout, "race", &[layer(&entries_ref)]);
    let (desc, diff_id) = img.layers().next().unwrap();

    let barrier = Arc::new(Barrier::new(2));
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let barrier = Arc::clone(&barrier);
                let (store, layout) = (&store, &layout);
                s.spawn(move || {
                    barrier.wait();
                    store.unpacked(layout, desc, diff_id).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results[0].0, results[1].0);
    let installed = results.iter().filter(|(_, cached)| !cached).count();
    assert_eq!(installed, 1, "exactly one caller installs the layer");
    let dir = &results[0].0;
    assert_eq!(entries(&dir.join("f")).len(), 200);
    assert_eq!(fs::read_to_string(dir.join("f/7")).unwrap(), "content 7");
    assert_eq!(entries(&scratch.join("layers/sha256")).len(), 1);
    assert!(entries(&scratch.join("layers/tmp")).is_empty());
}

#[test]
fn a_diff_id_mismatch_is_refused_and_leaves_nothing() {
    let scratch = ScratchDir::new("ch04-store").unwrap();
    let layout = OciLayout::create(scratch.join("oci")).unwrap();
    let store = LayerStore::open(scratch.join("layers")).unwrap();
    let img = image(&layout, "img", &[base()]);
    let (desc, _) = img.layers().next().unwrap();
    let wrong = sha256_bytes(b"some other layer");
    let err = store.unpacked(&layout, desc, &wrong).unwrap_err();
    assert!(matches!(err, StoreError::DiffIdMismatch { .. }), "{err}");
    assert!(err.to_string().contains(wrong.as_ref()), "{err}");
    assert!(entries(&scratch.join("layers/sha256")).is_empty());
    assert!(entries(&scratch.join("layers/tmp")).is_empty());

    // A corrupted blob: the unpacker sees the digest mismatch at the end; nothing is kept.
    let (desc, diff_id) = img.layers().next().unwrap();
    let path = layout.blob_path(desc.digest());
    let mut bytes = fs::read(&path).unwrap();
    let at = bytes.windows(7).position(|w| w == b"boxlab\n").unwrap();
    bytes[at] ^= 1; // file content, not a header: only the digest can tell
    fs::write(&path, bytes).unwrap();
    let err = store.unpacked(&layout, desc, diff_id).unwrap_err();
    let StoreError::Unpack { source, .. } = &err else {
        panic!("expected an unpack error, got {err}");
    };
    assert!(
        matches!(**source, UnpackError::DigestMismatchAfterUnpack { .. }),
        "{err}"
    );
    assert!(entries(&scratch.join("layers/sha256")).is_empty());
    assert!(entries(&scratch.join("layers/tmp")).is_empty());
}

#[test]
fn flatten_applies_whiteouts_into_one_directory() {
    let scratch = ScratchDir::new("ch04-store").unwrap();
    let layout = OciLayout::create(scratch.join("oci")).unwrap();
    let img = image(&layout, "img", &[base(), top()]);
    let target = scratch.join("rootfs");
    let reports = LayerStore::flatten(&layout, &img, &target).unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(entries(&target.join("etc")), vec!["os-release"]);
    assert_eq!(entries(&target.join("data")), vec!["new"]);
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let cpath = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let cname = std::ffi::CString::new(name).unwrap();
    let mut buf = [0u8; 64];
    // SAFETY: both strings are NUL-terminated and outlive the call; `buf` is writable for its
    // whole length, which is what we pass.
    let n = unsafe {
        libc::lgetxattr(
            cpath.as_ptr(),
            cname.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

// ANCHOR: overlay_markers_test
#[test]
fn overlay_marker_mode_keeps_whiteouts_for_overlayfs() {
    if !labkit::require_root("overlay_marker_mode_keeps_whiteouts_for_overlayfs") {
        return;
    }
    let scratch = ScratchDir::new("ch04-store").unwrap();
    let target = scratch.join("layer");
    let options = UnpackOptions::default();
    let report =
        unpack_layer_with_whiteouts(&top()[..], &target, &options, WhiteoutMode::OverlayMarkers)
            .unwrap();
    assert_eq!((report.whiteouts, report.opaque_dirs), (1, 1));

    let motd = fs::symlink_metadata(target.join("etc/motd")).unwrap();
    assert!(
        motd.file_type().is_char_device(),
        "a whiteout is a char device"
    );
    assert_eq!(motd.rdev(), 0, "overlayfs whiteouts are device 0:0");
    assert_eq!(
        xattr(&target.join("data"), OVERLAY_OPAQUE_XATTR).as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(entries(&target.join("data")), vec!["new"]);
    assert_eq!(entries(&target.join("etc")), vec!["motd"], "no .wh. names");
    assert!(xattr(&target.join("etc"), OVERLAY_OPAQUE_XATTR).is_none());

    // The store keeps layers this way.
    let layout = OciLayout::create(scratch.join("oci")).unwrap();
    let store = LayerStore::open(scratch.join("layers")).unwrap();
    let img = image(&layout, "img", &[base(), top()]);
    let dirs = store.layers_for(&layout, &img).unwrap();
    let meta = fs::symlink_metadata(dirs[1].join("etc/motd")).unwrap();
    assert!(meta.file_type().is_char_device() && meta.rdev() == 0);
    assert_eq!(
        fs::read_to_string(dirs[0].join("etc/motd")).unwrap(),
        "hi\n"
    );
    assert!(store.remove(img.layers().nth(1).unwrap().1).unwrap());
}
// ANCHOR_END: overlay_markers_test

#[test]
fn a_layer_of_its_own_wins_over_its_whiteout() {
    if !labkit::require_root("a_layer_of_its_own_wins_over_its_whiteout") {
        return;
    }
    // `.wh.x` and `x` in the same layer: the layer's own `x` stays, in either order.
    let scratch = ScratchDir::new("ch04-store").unwrap();
    for (i, tar) in [
        layer(&[("x", Some("mine")), (".wh.x", Some(""))]),
        layer(&[(".wh.x", Some("")), ("x", Some("mine"))]),
    ]
    .iter()
    .enumerate()
    {
        let target = scratch.join(format!("l{i}"));
        unpack_layer_with_whiteouts(
            &tar[..],
            &target,
            &UnpackOptions::default(),
            WhiteoutMode::OverlayMarkers,
        )
        .unwrap();
        assert_eq!(fs::read_to_string(target.join("x")).unwrap(), "mine");
    }
}

#[test]
fn the_default_root_is_named_boxlab() {
    assert!(
        default_root().ends_with("boxlab") || default_root().to_string_lossy().contains("boxlab-")
    );
}
