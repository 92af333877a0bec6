//! Chapter 4: a root filesystem — the isolated, limited child gets files of its own.
//!
//! [`pivot`] switches the child's root to a prepared directory (with the mounts a
//! container needs), and [`unpack`] applies OCI image layers to a directory safely, whiteouts
//! included; [`image`] reads and writes OCI image layouts and imports `docker save` archives;
//! [`store`] keeps each layer unpacked once, by diff_id; [`overlay`] stacks them under a
//! container. Registry pulls and the builder follow.

pub mod args;
pub mod build;
mod container;
pub mod dev;
pub mod digest;
mod error;
pub mod image;
pub mod image_run;
pub mod overlay;
pub mod pivot;
pub mod registry;
pub mod store;
pub mod unpack;

pub use container::{with_layers, with_rootfs, with_rootfs_spec};
pub use error::RootfsError;
