//! OCI image layouts built in the test with the crate's own API: resolve by name and digest,
//! every kind of corruption refused by name, multi-platform indexes, and imports of the archives
//! `docker save` / `podman save` write (built here as tars). No root, no network.

mod common;

use common::{config_json, flip_a_byte, layer, store_image, store_image_with, ImageOptions};

use std::fs;
use std::path::Path;

use ch04_rootfs::digest::sha256_bytes;
use ch04_rootfs::image::{import_archive, ImageError, OciLayout, ANNOTATION_CONTAINERD_NAME};
use labkit::ScratchDir;
use oci_spec::image::{Arch, Digest, MediaType, Os};
use tar::{Builder, EntryType, Header};

fn two_layers() -> Vec<Vec<u8>> {
    vec![
        layer(&[("etc/os-release", "boxlab\n"), ("bin/sh", "#!")]),
        layer(&[("app/run", "hello\n")]),
    ]
}

#[test]
fn resolves_by_ref_name_and_by_digest() {
    let scratch = ScratchDir::new("ch04-layout").unwrap();
    let layout = OciLayout::create(scratch.join("oci")).unwrap();
    let desc = store_image(&layout, Arch::Amd64, &two_layers());
    layout.add_to_index(&desc, Some("busybox:1.36")).unwrap();

    let layout = OciLayout::open(scratch.join("oci")).unwrap();
    for reference in ["busybox:1.36", "docker.io/library/busybox:1.36"] {
        let image = layout
            .resolve_for(reference, &Os::Linux, &Arch::Amd64)
            .unwrap();
        assert_eq!(image.manifest_digest, *desc.digest());
        assert_eq!(image.ref_name.as_deref(), Some("busybox:1.36"));
        assert_eq!(image.layers().count(), 2);
        let (first, diff_id) = image.layers().next().unwrap();
        assert_eq!(first.media_type(), &MediaType::ImageLayerGzip);
        assert_eq!(*diff_id, sha256_bytes(&two_layers()[0]));
        layout.verify_image(&image).unwrap();
    }
    let by_digest = layout
        .resolve_for(desc.digest().as_ref(), &Os::Linux, &Arch::Amd64)
        .unwrap();
    assert_eq!(by_digest.manifest_digest, *desc.digest());

    let images = layout.images().unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].ref_name.as_deref(), Some("busybox:1.36"));
    assert_eq!(images[0].created.as_deref(), Some("2024-01-01T00:00:00Z"));
    assert!(images[0].size > desc.size());

    let err = layout.resolve("alpine").unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("busybox:1.36"), "{err}");
}

#[test]
fn blobs_are_content_addressed_and_json_is_reproducible() {
    let scratch = ScratchDir::new("ch04-layout").unwrap();
    let a = OciLayout::create(scratch.join("a")).unwrap();
    let b = OciLayout::create(scratch.join("b")).unwrap();
    let desc_a = store_image(&a, Arch::Amd64, &two_layers());
    let desc_b = store_image(&b, Arch::Amd64, &two_layers());
    assert_eq!(desc_a, desc_b, "the same image must get the same digest");

    let again = a.put_bytes(b"hello", MediaType::ImageConfig).unwrap();
    let twice = a.put_bytes(b"hello", MediaType::ImageConfig).unwrap();
    assert_eq!(again, twice);
    assert_eq!(fs::read(a.blob_path(again.digest())).unwrap(), b"hello");
    // No temporary files left behind in blobs/.
    let leftovers: Vec<_> = fs::read_dir(scratch.join("a/blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec!["sha256"]);
    assert_eq!(
        fs::read_to_string(scratch.join("a/oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
}

#[test]
fn a_corrupted_blob_is_refused_naming_its_digest() {
    let scratch = ScratchDir::new("ch04-layout").unwrap();
    let layout = OciLayout::create(scratch.join("oci")).unwrap();
    let desc = store_image(&layout, Arch::Amd64, &two_layers());
    layout.add_to_index(&desc, Some("img")).unwrap();
    let image = layout.resolve_for("img", &Os::Linux, &Arch::Amd64).unwrap();

    // A layer: resolve only checks presence and size; verify hashes.
    let layer = image.manifest.layers()[1].clone();
    flip_a_byte(&layout.blob_path(layer.digest()));
    let err = layout.verify_blob(&layer).unwrap_err();
    assert!(matches!(err, ImageError::BlobDigest { .. }), "{err}");
    assert!(err.to_string().contains(layer.digest().as_ref()), "{err}");

    // The config: resolve reads it, so resolve fails.
    let config = image.manifest.config().clone();
    flip_a_byte(&layout.blob_path(config.digest()));
    let err = layout
        .resolve_for("img", &Os::Linux, &Arch::Amd64)
        .unwrap_err();
    assert!(matches!(err, ImageError::BlobDigest { .. }), "{err}");
    assert!(err.to_string().contains(config.digest().as_ref()), "{err}");
}

#[test]
fn a_blob_of_the_wrong_size_is_refused() {
    let scratch = ScratchDir::new("ch04-layout").unwrap();
    let layout = OciLayout::create(scratch.join("oci")).unwrap();
    let desc = store_image(&layout, Arch::Amd64, &two_layers());

    // A descriptor that lies about the size.
    let mut lying = desc.clone();
    lying.set_size(desc.size() + 1);
    layout.add_to_index(&lying, Some("lying")).unwrap();
    let err = layout
        .resolve_for("lying", &Os::Linux, &Arch::Amd64)
        .unwrap_err();
    assert!(
        matches!(err, ImageError::BlobSize { expected, actual, .. } if expected == actual + 1),
        "{err}"
    );
    assert!(err.to_string().contains(desc.digest().as_ref()), "{err}");

    // A truncated layer blob.
    layout.add_to_index(&desc, Some("truncated")).unwrap();
    let image = layout
        .resolve_for("truncated", &Os::Linux, &Arch::Amd64)
        .unwrap();
    let layer = &image.manifest.layers()[0];
    let path = layout.blob_path(layer.digest());
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    let err = layout
        .resolve_for("truncated", &Os::Linux, &Arch::Amd64)
        .unwrap_err();
    assert!(matches!(err, ImageError::BlobSize { .. }), "{err}");
    assert!(err.to_string().contains(layer.digest().as_ref()), "{err}");

    // A missing one.
    fs::remove_file(&path).unwrap();
    let err = layout
        .resolve_for("truncated", &Os::Linux, &Arch::Amd64)
        .unwrap_err();
    assert!(matches!(err, ImageError::BlobMissing { .. }), "{err}");
}

#[test]
fn diff_id_count_must_match_the_layers() {
    let scratch = ScratchDir::new("ch04-layout").unwrap();
    let layout = OciLayout::create(scratch.join("oci")).unwrap();
    let layers = two_layers();
    let desc = store_image_with(
        &layout,
        Arch::Amd64,
        &layers,
        ImageOptions {
            diff_ids: Some(vec![sha256_bytes(&layers[0])]),
            ..ImageOptions::default()
        },
    );
    layout.add_to_index(&desc, Some("short")).unwrap();
    let err = layout
        .resolve_for("short", &Os::Linux, &Arch::Amd64)
        .unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::DiffIdCount {
                layers: 2,
                diff_ids: 1,
                ..
            }
        ),
        "{err}"
    );
    // `images` lists it anyway, with the problem.
    let images = layout.images().unwrap();
    assert!(images[0].problem.as_deref().unwrap().contains("diff_ids"));
}

#[test]
fn a_multi_platform_index_gives_the_wanted_platform() {
    let scratch = ScratchDir::new("ch04-layout").unwrap();
    let layout = OciLayout::create(scratch.join("oci")).unwrap();
    let mut amd64 = store_image(&layout, Arch::Amd64, &two_layers());
    let mut arm64 = store_image(&layout, Arch::ARM64, &[layer(&[("arm", "64")])]);
    common::multi_platform_index(
        &layout,
        &mut [(&mut arm64, Arch::ARM64), (&mut amd64, Arch::Amd64)],
        MediaType::ImageIndex,
        "multi:1",
    );

    let image = layout
        .resolve_for("multi:1", &Os::Linux, &Arch::Amd64)
        .unwrap();
    assert_eq!(image.manifest_digest, *amd64.digest());
    assert_eq!(image.config.architecture(), &Arch::Amd64);
    let image = layout
        .resolve_for("multi:1", &Os::Linux, &Arch::ARM64)
        .unwrap();
    assert_eq!(image.manifest_digest, *arm64.digest());
    let err = layout
        .resolve_for("multi:1", &Os::Linux, &Arch::s390x)
        .unwrap_err();
    assert!(matches!(err, ImageError::NoPlatform { .. }), "{err}");
    assert!(err.to_string().contains("linux/amd64"), "{err}");
    // A platform manifest by its own digest, though only the index is in index.json.
    let image = layout
        .resolve_for(amd64.digest().as_ref(), &Os::Linux, &Arch::Amd64)
        .unwrap();
    assert_eq!(image.manifest_digest, *amd64.digest());
    #[cfg(target_arch = "x86_64")]
    assert_eq!(
        layout.resolve("multi:1").unwrap().manifest_digest,
        *amd64.digest()
    );
}

#[test]
fn a_tag_moves_to_the_new_image() {
    let scratch = ScratchDir::new("ch04-layout").unwrap();
    let layout = OciLayout::create(scratch.join("oci")).unwrap();
    let old = store_image(&layout, Arch::Amd64, &two_layers());
    let new = store_image(&layout, Arch::Amd64, &[layer(&[("new", "1")])]);
    layout.add_to_index(&old, Some("app:latest")).unwrap();
    layout.add_to_index(&old, Some("app:v1")).unwrap();
    layout.add_to_index(&new, Some("app:latest")).unwrap();
    assert_eq!(layout.index().unwrap().manifests().len(), 2);
    let latest = layout.resolve_for("app", &Os::Linux, &Arch::Amd64).unwrap();
    assert_eq!(latest.manifest_digest, *new.digest());
    assert!(layout.remove_from_index("app:v1").unwrap());
    assert!(!layout.remove_from_index("app:v1").unwrap());
}

#[test]
fn a_directory_that_is_not_a_layout_is_refused() {
    let scratch = ScratchDir::new("ch04-layout").unwrap();
    let err = OciLayout::open(scratch.path()).unwrap_err();
    assert!(matches!(err, ImageError::NotALayout { .. }), "{err}");
    fs::write(
        scratch.join("oci-layout"),
        r#"{"imageLayoutVersion":"9.9.9"}"#,
    )
    .unwrap();
    let err = OciLayout::open(scratch.path()).unwrap_err();
    assert!(matches!(err, ImageError::LayoutVersion { .. }), "{err}");
}

/// Appends a regular file to an archive being built.
fn add_file(tar: &mut Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    tar.append_data(&mut h, path, data).unwrap();
}

/// A docker-archive as `docker save busybox:1.36 other:1` wrote it before Docker 25: layer
/// tars in `<id>/layer.tar` (the shared one linked, not copied), configs as `<hex>.json`.
fn docker_archive(path: &Path, diff_id_override: Option<Digest>) -> (Vec<Vec<u8>>, Vec<u8>) {
    let layers = two_layers();
    let ids: Vec<Digest> = layers.iter().map(|l| sha256_bytes(l)).collect();
    let mut config_ids = ids.clone();
    if let Some(wrong) = diff_id_override {
        config_ids[1] = wrong;
    }
    let config = config_json(Arch::Amd64, &config_ids);
    let config_name = format!("{}.json", sha256_bytes(&config).digest());
    let other_config = config_json(Arch::Amd64, &ids[..1]);
    let other_name = format!("{}.json", sha256_bytes(&other_config).digest());
    let manifest = serde_json::json!([
        {"Config": config_name, "RepoTags": ["busybox:1.36"],
         "Layers": ["aaa/layer.tar", "bbb/layer.tar"]},
        {"Config": other_name, "RepoTags": ["docker.io/library/other:1"],
         "Layers": ["ccc/layer.tar"]},
    ]);
    let mut tar = Builder::new(Vec::new());
    add_file(&mut tar, "aaa/layer.tar", &layers[0]);
    add_file(&mut tar, "bbb/layer.tar", &layers[1]);
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::Symlink);
    h.set_size(0);
    tar.append_link(&mut h, "ccc/layer.tar", "../aaa/layer.tar")
        .unwrap();
    add_file(&mut tar, &config_name, &config);
    add_file(&mut tar, &other_name, &other_config);
    add_file(&mut tar, "manifest.json", manifest.to_string().as_bytes());
    add_file(&mut tar, "repositories", b"{}");
    fs::write(path, tar.into_inner().unwrap()).unwrap();
    (layers, config)
}

// ANCHOR: docker_archive_test
#[test]
fn imports_a_docker_save_archive() {
    let scratch = ScratchDir::new("ch04-archive").unwrap();
    let archive = scratch.join("busybox.tar");
    let (layers, config) = docker_archive(&archive, None);
    let layout = OciLayout::create(scratch.join("oci")).unwrap();
    let imported = import_archive(&archive, &layout).unwrap();
    let names: Vec<_> = imported.iter().filter_map(|i| i.ref_name.clone()).collect();
    assert_eq!(names, vec!["busybox:1.36", "other:1"]);

    let image = layout
        .resolve_for("busybox:1.36", &Os::Linux, &Arch::Amd64)
        .unwrap();
    assert_eq!(image.manifest.config().digest(), &sha256_bytes(&config));
    assert_eq!(
        image.manifest.config().media_type(),
        &MediaType::ImageConfig
    );
    for ((layer, diff_id), tar) in image.layers().zip(&layers) {
        assert_eq!(layer.media_type(), &MediaType::ImageLayer);
        assert_eq!(
            layer.digest(),
            diff_id,
            "an uncompressed layer's digest is its diff_id"
        );
        assert_eq!(fs::read(layout.blob_path(layer.digest())).unwrap(), *tar);
    }
    layout.verify_image(&image).unwrap();
    // The linked layer resolved to the shared one.
    let other = layout
        .resolve_for("other:1", &Os::Linux, &Arch::Amd64)
        .unwrap();
    assert_eq!(
        other.manifest.layers()[0].digest(),
        image.manifest.layers()[0].digest()
    );
    // Importing again changes nothing.
    import_archive(&archive, &layout).unwrap();
    assert_eq!(layout.index().unwrap().manifests().len(), 2);
}
// ANCHOR_END: docker_archive_test

#[test]
fn a_docker_archive_with_a_wrong_diff_id_is_refused() {
    let scratch = ScratchDir::new("ch04-archive").unwrap();
    let archive = scratch.join("bad.tar");
    docker_archive(&archive, Some(sha256_bytes(b"not the layer")));
    let layout = OciLayout::create(scratch.join("oci")).unwrap();
    let err = import_archive(&archive, &layout).unwrap_err();
    assert!(matches!(err, ImageError::Archive { .. }), "{err}");
    assert!(err.to_string().contains("bbb/layer.tar"), "{err}");
    assert!(layout.index().unwrap().manifests().is_empty());

    fs::write(&archive, b"not a tar at all, just some bytes").unwrap();
    assert!(import_archive(&archive, &layout).is_err());
}

#[test]
fn imports_an_oci_archive() {
    // What `docker save` (Docker 25+) and `podman save --format oci-archive` write: a layout
    // in a tar. Make one with our own API, annotate it as containerd does, tar it up.
    let scratch = ScratchDir::new("ch04-archive").unwrap();
    let source = OciLayout::create(scratch.join("src")).unwrap();
    let mut desc = store_image(&source, Arch::Amd64, &two_layers());
    let annotations = [(
        ANNOTATION_CONTAINERD_NAME.to_string(),
        "docker.io/library/busybox:latest".to_string(),
    )];
    desc.set_annotations(Some(annotations.into_iter().collect()));
    source.add_to_index(&desc, Some("latest")).unwrap();
    let mut tar = Builder::new(Vec::new());
    tar.append_dir_all(".", source.root()).unwrap();
    let archive = scratch.join("oci.tar");
    fs::write(&archive, tar.into_inner().unwrap()).unwrap();

    let layout = OciLayout::create(scratch.join("oci")).unwrap();
    let imported = import_archive(&archive, &layout).unwrap();
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0].ref_name.as_deref(), Some("busybox:latest"));
    let image = layout
        .resolve_for("busybox", &Os::Linux, &Arch::Amd64)
        .unwrap();
    assert_eq!(image.manifest_digest, *desc.digest());
    layout.verify_image(&image).unwrap();
}
