//! Pull from (and push to) a registry that speaks the OCI distribution spec: Docker Hub,
//! ghcr.io, or Debian's `docker-registry` on loopback.
//!
//! ```text
//! "busybox:1.36" ──reference──> docker.io / library/busybox / tag 1.36
//!        │                       (API at registry-1.docker.io)
//!        ▼
//!   client: GET /v2/library/busybox/manifests/1.36 ── 401 ──> auth: Bearer token ──> retry
//!        │   index (manifest list)? pick linux/amd64, GET its manifest by digest
//!        ▼
//!   pull: config + layers streamed into the OciLayout, each checked on the way,
//!         a bar per blob (progress); manifests stored, then the name in index.json
//! ```
//!
//! - [`reference`](mod@reference): `[registry[:port]/]repository[:tag][@digest]`, Docker Hub's defaults.
//! - [`auth`]: the `WWW-Authenticate: Bearer` challenge and the anonymous token.
//! - [`client`]: the distribution API for one repository: manifests, blobs, uploads.
//! - [`progress`]: indicatif bars on a terminal, a line per blob otherwise.
//! - [`pull`](mod@pull), [`push`](mod@push): the two verbs.

pub mod auth;
pub mod client;
mod error;
pub mod progress;
pub mod pull;
pub mod push;
pub mod reference;

pub use error::RegistryError;
pub use pull::{pull, PullOptions, PullReport};
pub use push::{push, PushOptions, PushReport};
pub use reference::Reference;
