//! This chapter's flags as a reusable piece: later chapters flatten [`RootfsArgs`] next to
//! chapter 2's `IsolationArgs` and chapter 3's `LimitArgs`.

use std::path::PathBuf;

use clap::Args;

/// The root filesystem a command runs in.
#[derive(Debug, Clone, Default, Args)]
pub struct RootfsArgs {
    /// The directory that becomes the container's `/`.
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,

    /// Make `/` read-only inside (docker's --read-only).
    #[arg(long)]
    pub read_only: bool,
}
