//! Shared by chapter 4's tests.

use ch04_rootfs::image::OciLayout;
use oci_spec::image::{Arch, Descriptor, ImageIndexBuilder, MediaType, Os, PlatformBuilder};

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
