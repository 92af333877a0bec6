//! Progress bars for the report's sections.
//!
//! Drawn from the main thread on each step, never with indicatif's steady tick: that tick is a
//! thread, and the report forks (workers, containers) — a fork while another thread holds the
//! allocator's lock can leave the child stuck. Single-threaded, the forks are safe.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps, labelled `what`.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>28} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(what.to_string());
    bar
}
