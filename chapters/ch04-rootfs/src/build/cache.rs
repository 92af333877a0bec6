//! The build cache: one small JSON file per step, named by the step's cache key.
//!
//! ```text
//! <cache_dir>/<key>.json   {"key", "instruction", "layer": {digest, size, diff_id} | null, "config": {...}}
//! ```
//!
//! A key stands for everything the step's result depends on, so equal keys mean equal results
//! and the work can be skipped. The key *chains*: each step's key includes the previous step's,
//! so a change on line 5 changes the keys of line 5 and of every line after it — and nothing
//! before. That is why a Boxfile puts what changes least (the base, dependencies) first.

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, Digest, MediaType};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::image::layout::canonical_json;
use crate::image::OciLayout;

use super::boxfile::InstructionKind;

/// Bumped when the meaning of a key or entry changes, so old entries stop matching.
const CACHE_VERSION: u32 = 1;

// ANCHOR: cache_key
/// The cache key of a step: sha256 of (the parent's key, the instruction normalized, the
/// step's inputs). `parent` is the previous step's key, or for a stage's first step the base
/// image's manifest digest (or `scratch`). `inputs` is what the instruction reads besides its
/// text: for COPY the content hash of every source and the WORKDIR; for RUN the accumulated
/// ENV and WORKDIR.
pub fn step_key(parent: &str, instruction: &InstructionKind, inputs: serde_json::Value) -> String {
    let value = serde_json::json!({
        "version": CACHE_VERSION,
        "parent": parent,
        "instruction": instruction,
        "inputs": inputs,
    });
    // Canonical JSON (sorted keys) of plain strings and numbers cannot fail to serialize.
    let bytes = canonical_json(&value).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}
// ANCHOR_END: cache_key

/// The image config a stage has accumulated; a cache entry keeps it as it was after the step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigState {
    /// `KEY=value`, in order of first definition.
    pub env: Vec<String>,
    /// Absolute, or empty for none (`/`).
    pub workdir: String,
    /// The default command.
    pub cmd: Option<Vec<String>>,
}

impl ConfigState {
    /// Sets `key` to `value`, in place if it is set already.
    pub fn set_env(&mut self, key: &str, value: &str) {
        let entry = format!("{key}={value}");
        match self
            .env
            .iter_mut()
            .find(|kv| kv.split_once('=').map(|(k, _)| k) == Some(key))
        {
            Some(old) => *old = entry,
            None => self.env.push(entry),
        }
    }
}

/// A layer a step made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedLayer {
    /// The blob's digest.
    #[serde(with = "sha256")]
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// The digest of the uncompressed tar (the same as `digest`: layers are stored
    /// uncompressed).
    #[serde(with = "sha256")]
    pub diff_id: Digest,
}

impl CachedLayer {
    /// The blob's descriptor.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(MediaType::ImageLayer, self.size, self.digest.clone())
    }
}

/// A digest in an entry's JSON: `sha256:<hex>`, checked with [`crate::digest::parse`] when read, so an
/// entry with a bad one fails to parse and is a miss like any unreadable entry.
mod sha256 {
    use oci_spec::image::Digest;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(digest: &Digest, out: S) -> Result<S::Ok, S::Error> {
        out.collect_str(digest)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(input: D) -> Result<Digest, D::Error> {
        let text = String::deserialize(input)?;
        crate::digest::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// What a step produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// The key (also the file name).
    pub key: String,
    /// The instruction, as written (for people reading the cache).
    pub instruction: String,
    /// The layer, if the step made one.
    pub layer: Option<CachedLayer>,
    /// The config after the step.
    pub config: ConfigState,
}

/// The cache directory.
#[derive(Debug, Clone)]
pub struct BuildCache {
    dir: PathBuf,
}

impl BuildCache {
    /// The cache in `dir` (which exists).
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// The entry for `key` if there is one whose layer blob is still in `layout` (with its
    /// size). A missing, unreadable or stale entry is a miss: the step is simply done again.
    pub fn lookup(&self, key: &str, layout: &OciLayout) -> Option<CacheEntry> {
        let bytes = fs::read(self.path(key)).ok()?;
        let entry: CacheEntry = serde_json::from_slice(&bytes).ok()?;
        if entry.key != key {
            return None;
        }
        if let Some(layer) = &entry.layer {
            layout.open_blob(&layer.descriptor()).ok()?;
        }
        Some(entry)
    }

    /// Records `entry` (atomically: a temporary file renamed into place). Failing to record is
    /// not fatal to the build — the next build just redoes the step — so the error is returned
    /// for the caller to report or ignore.
    pub fn store(&self, entry: &CacheEntry) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(entry)?;
        let path = self.path(&entry.key);
        let temp = self
            .dir
            .join(format!(".{}.{}.tmp", entry.key, std::process::id()));
        fs::write(&temp, bytes)?;
        fs::rename(&temp, &path).inspect_err(|_| {
            let _ = fs::remove_file(&temp);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_keep_their_digests_and_refuse_bad_ones() {
        let hex = "ab".repeat(32);
        let json = |digest: &str| {
            format!(
                r#"{{"key":"k","instruction":"COPY . /","layer":{{"digest":"{digest}","size":3,"diff_id":"sha256:{hex}"}},"config":{{"env":[],"workdir":"","cmd":null}}}}"#
            )
        };
        let good: CacheEntry = serde_json::from_str(&json(&format!("sha256:{hex}"))).unwrap();
        let layer = good.layer.clone().unwrap();
        assert_eq!(
            layer.descriptor().digest().to_string(),
            format!("sha256:{hex}")
        );
        let again: CacheEntry =
            serde_json::from_slice(&serde_json::to_vec(&good).unwrap()).unwrap();
        assert_eq!(again, good);
        for bad in ["sha256:short", "sha512:abc", "nonsense"] {
            assert!(
                serde_json::from_str::<CacheEntry>(&json(bad)).is_err(),
                "{bad}"
            );
        }
    }
}
