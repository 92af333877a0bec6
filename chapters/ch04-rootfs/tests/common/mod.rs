//! Shared by chapter 4's tests: images built with the layout API, and a way to corrupt a blob.

use std::fs;
use std::io::Write;
use std::path::Path;

use ch04_rootfs::digest::sha256_bytes;
use ch04_rootfs::image::layout::docker;
use ch04_rootfs::image::OciLayout;
use oci_spec::image::{
    Arch, Descriptor, Digest, ImageConfigurationBuilder, ImageIndexBuilder, ImageManifestBuilder,
    MediaType, Os, PlatformBuilder, RootFsBuilder,
};
use tar::{Builder, EntryType, Header};

/// A layer tar holding `files` (path, content), all 0644 and owned by root, mtime fixed.
pub fn layer(files: &[(&str, &str)]) -> Vec<u8> {
    let mut tar = Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        tar.append_data(&mut h, path, data.as_bytes()).unwrap();
    }
    tar.into_inner().unwrap()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// Config JSON for linux/`arch` with these diff_ids.
pub fn config_json(arch: Arch, diff_ids: &[Digest]) -> Vec<u8> {
    let config = ImageConfigurationBuilder::default()
        .architecture(arch)
        .os(Os::Linux)
        .created("2024-01-01T00:00:00Z")
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    serde_json::to_vec(&config).unwrap()
}

/// What [`store_image_with`] does differently from [`store_image`].
#[derive(Debug, Default)]
pub struct ImageOptions {
    /// The config's diff_ids instead of the layers' own (to build broken images).
    pub diff_ids: Option<Vec<Digest>>,
    /// Docker schema 2 media types instead of OCI's.
    pub docker: bool,
}

/// Stores gzipped layers, a config for linux/`arch` and a manifest in `layout`; returns the
/// manifest descriptor.
pub fn store_image(layout: &OciLayout, arch: Arch, layers: &[Vec<u8>]) -> Descriptor {
    store_image_with(layout, arch, layers, ImageOptions::default())
}

/// [`store_image`], with other diff_ids or Docker's media types.
pub fn store_image_with(
    layout: &OciLayout,
    arch: Arch,
    layers: &[Vec<u8>],
    options: ImageOptions,
) -> Descriptor {
    let pick = |oci: MediaType, docker_type: &str| {
        if options.docker {
            MediaType::from(docker_type)
        } else {
            oci
        }
    };
    let mut descs = Vec::new();
    let mut ids = Vec::new();
    for tar in layers {
        let media_type = pick(MediaType::ImageLayerGzip, docker::LAYER_GZIP);
        descs.push(layout.put_bytes(&gzip(tar), media_type).unwrap());
        ids.push(sha256_bytes(tar));
    }
    let config = config_json(arch, &options.diff_ids.unwrap_or(ids));
    let config = layout
        .put_bytes(&config, pick(MediaType::ImageConfig, docker::CONFIG))
        .unwrap();
    let manifest_type = pick(MediaType::ImageManifest, docker::MANIFEST);
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(manifest_type.clone())
        .config(config)
        .layers(descs)
        .build()
        .unwrap();
    layout.put_json(&manifest, manifest_type).unwrap()
}

/// Flips one bit in the middle of `path` (its size unchanged), as a bad disk would; returns the
/// file's new content.
pub fn flip_a_byte(path: &Path) -> Vec<u8> {
    let mut bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(path, &bytes).unwrap();
    bytes
}

/// A multi-platform image: an index of type `media_type` (OCI's image index, or docker's
/// manifest list) over `manifests` (each marked linux/`arch`), put into `layout` and named
/// `tag`. Returns the index's descriptor; the manifests get their
/// platform set, as the index lists them.
pub fn multi_platform_index(
    layout: &OciLayout,
    manifests: &mut [(&mut Descriptor, Arch)],
    media_type: MediaType,
    tag: &str,
) -> Descriptor {
    for (manifest, arch) in manifests.iter_mut() {
        let platform = PlatformBuilder::default()
            .os(Os::Linux)
            .architecture(arch.clone())
            .build()
            .unwrap();
        manifest.set_platform(Some(platform));
    }
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(media_type.clone())
        .manifests(
            manifests
                .iter()
                .map(|(m, _)| (**m).clone())
                .collect::<Vec<_>>(),
        )
        .build()
        .unwrap();
    let index = layout.put_json(&index, media_type).unwrap();
    layout.add_to_index(&index, Some(tag)).unwrap();
    index
}
