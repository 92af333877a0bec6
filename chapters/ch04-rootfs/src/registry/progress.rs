//! Progress of blob transfers: a bar per blob on a terminal, one plain line per blob otherwise.
//!
//! ```text
//! terminal:   layer  sha256:9ad63333ebc9  [=========>          ] 1.10 MiB/2.21 MiB 8.4 MiB/s
//! log/pipe:   layer  sha256:9ad63333ebc9  2.21 MiB downloaded
//! ```
//!
//! Bars go to stderr only when stderr is a terminal (a CI log full of redraws helps no one);
//! with `progress: false` nothing is printed at all.

use std::io::{self, IsTerminal, Read};

use indicatif::{BinaryBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use oci_spec::image::Descriptor;

const BAR_TEMPLATE: &str =
    "{prefix} [{bar:30.cyan/blue}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {msg}";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Off,
    Bars,
    Lines,
}

/// Where progress goes for one pull or push.
#[derive(Debug)]
pub struct Progress {
    mode: Mode,
    multi: Option<MultiProgress>,
}

/// The end of one blob's transfer.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    /// Transferred, this many bytes.
    Transferred(u64),
    /// Not transferred: the other side already had it (verified).
    AlreadyPresent,
    /// The transfer failed (the error is reported by the caller).
    Failed,
}

impl Progress {
    /// Bars when `enabled` and stderr is a terminal, plain lines when only `enabled`, else
    /// nothing.
    pub fn new(enabled: bool) -> Self {
        let mode = match (enabled, io::stderr().is_terminal()) {
            (false, _) => Mode::Off,
            (true, true) => Mode::Bars,
            (true, false) => Mode::Lines,
        };
        let multi = (mode == Mode::Bars)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Self { mode, multi }
    }

    /// Starts tracking one blob; `what` is `config`, `layer`, `manifest`, ...
    pub fn blob(&self, what: &str, desc: &Descriptor, verb: &'static str) -> BlobProgress {
        let hex = desc.digest().digest();
        let label = format!("{what:<8} sha256:{}", hex.get(..12).unwrap_or(hex));
        let bar = self.multi.as_ref().map(|multi| {
            let style = ProgressStyle::with_template(BAR_TEMPLATE)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            let bar = multi.add(ProgressBar::new(desc.size()));
            bar.set_style(style);
            bar.set_prefix(label.clone());
            bar
        });
        BlobProgress {
            mode: self.mode,
            bar,
            label,
            verb,
        }
    }
}

/// One blob's progress.
#[derive(Debug)]
pub struct BlobProgress {
    mode: Mode,
    bar: Option<ProgressBar>,
    label: String,
    verb: &'static str,
}

impl BlobProgress {
    /// `reader`, advancing the bar as it is read.
    pub fn wrap<R: Read>(&self, reader: R) -> ProgressReader<R> {
        ProgressReader {
            inner: reader,
            bar: self.bar.clone(),
        }
    }

    /// Ends the bar, or prints the blob's line.
    pub fn finish(self, outcome: Outcome) {
        let message = match outcome {
            Outcome::Transferred(bytes) => format!("{} {}", BinaryBytes(bytes), self.verb),
            Outcome::AlreadyPresent => "already present".to_string(),
            Outcome::Failed => "failed".to_string(),
        };
        match (&self.bar, self.mode) {
            (Some(bar), _) => match outcome {
                Outcome::Failed => bar.abandon_with_message(message),
                _ => bar.finish_with_message(message),
            },
            (None, Mode::Lines) => eprintln!("{}  {message}", self.label),
            (None, _) => {}
        }
    }
}

/// A reader that advances a progress bar.
pub struct ProgressReader<R> {
    inner: R,
    bar: Option<ProgressBar>,
}

impl<R: Read> Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(bar) = &self.bar {
            bar.inc(n as u64);
        }
        Ok(n)
    }
}
