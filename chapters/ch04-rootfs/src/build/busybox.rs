//! The smallest useful image, from nothing but the host's static busybox: what the later
//! chapters' tests and labs run (chapter 6 hands it to podman, the lab checker runs it).

use std::fs;
use std::path::Path;

use super::{build, BuildError, BuildOptions, BuildReport};
use crate::store::DataDir;

/// Its Boxfile: busybox, its applets installed as links, a shell by default.
pub const BUSYBOX_BOXFILE: &str = "FROM scratch\n\
COPY busybox /bin/busybox\n\
RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
CMD [\"sh\"]\n";

/// Builds [`BUSYBOX_BOXFILE`] as `tag` under `data`, laid out as `ch04-rootfs --data DATA`
/// lays it out ([`DataDir`]), with the build context in `data/context`. RUN needs root.
pub fn busybox_image(data: &Path, tag: &str) -> Result<BuildReport, BuildError> {
    let context = data.join("context");
    fs::create_dir_all(&context).map_err(BuildError::io("create the build context", &context))?;
    let busybox = labkit::find_static_busybox()?;
    fs::copy(&busybox, context.join("busybox"))
        .map_err(BuildError::io("copy busybox into", &context))?;
    let boxfile = context.join("Boxfile");
    fs::write(&boxfile, BUSYBOX_BOXFILE).map_err(BuildError::io("write", &boxfile))?;
    let data = DataDir::new(data);
    let layout = data.create_layout().map_err(BuildError::Image)?;
    let store = data.store().map_err(BuildError::Store)?;
    build(BuildOptions {
        context,
        boxfile: None,
        tag: Some(tag.into()),
        layout: &layout,
        store: &store,
        cache_dir: data.cache_dir(),
        on_step: None,
    })
}
