//! Chapter 4: a root filesystem — the isolated, limited child gets files of its own.
//!
//! So far: [`pivot`] switches the child's root to a prepared directory (with the mounts a
//! container needs), and [`unpack`] applies OCI image layers to a directory safely, whiteouts
//! included. Image layouts, the layer store, overlayfs, registry pulls and the builder follow.

mod container;
pub mod dev;
mod error;
pub mod pivot;
pub mod unpack;

pub use container::with_rootfs;
pub use error::RootfsError;
