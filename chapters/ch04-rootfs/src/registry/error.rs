//! What can go wrong talking to a registry, each failure naming the URL, digest or status and
//! what to do.

use std::io;

use crate::digest::DigestError;
use crate::image::ImageError;

/// Why a pull or push failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The image reference does not parse.
    #[error("{given:?} is not an image reference: {reason}; write [REGISTRY[:PORT]/]REPOSITORY[:TAG][@sha256:DIGEST], e.g. busybox:1.36 or 127.0.0.1:5000/team/app@sha256:…")]
    BadReference {
        /// What was given.
        given: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The request never got an HTTP answer (DNS, refused connection, TLS, timeout).
    #[error(
        "{method} {url} failed: {source}; check the registry address and that it is running{hint}"
    )]
    Transport {
        /// The HTTP method.
        method: String,
        /// The URL.
        url: String,
        /// What ureq said.
        #[source]
        source: Box<ureq::Error>,
        /// An extra hint (plain HTTP registries need `--insecure`).
        hint: &'static str,
    },

    /// A response body broke off or could not be written while it streamed.
    #[error("reading {url} failed after {received} bytes: {source}; try again")]
    Download {
        /// The URL.
        url: String,
        /// Bytes received before the failure.
        received: u64,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// The registry answered with an unexpected status.
    #[error("{method} {url} answered {status}: {message}")]
    Status {
        /// The HTTP method.
        method: String,
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The registry's error message (from its `{"errors":[…]}` JSON) or body.
        message: String,
    },

    /// The tag or digest is not in the repository.
    #[error("{kind} {object} not found in {repository} at {registry} (404: {message}); check the spelling, or list the repository's tags with GET /v2/{repository}/tags/list")]
    ManifestNotFound {
        /// `tag` or `digest`.
        kind: &'static str,
        /// The tag or digest asked for.
        object: String,
        /// The repository.
        repository: String,
        /// The registry.
        registry: String,
        /// The registry's message.
        message: String,
    },

    /// A blob a manifest names is not in the registry.
    #[error("blob {digest} not found in {repository} ({url} answered 404: {message}); the image in the registry is incomplete: push it again")]
    BlobNotFound {
        /// The blob's digest.
        digest: String,
        /// The repository.
        repository: String,
        /// The URL asked.
        url: String,
        /// The registry's message.
        message: String,
    },

    /// The registry refused access even with a token.
    #[error("{url} refused access (status {status}): {message}; the repository may not exist or be private (only anonymous pulls are supported)")]
    Unauthorized {
        /// The URL.
        url: String,
        /// 401 or 403.
        status: u16,
        /// The registry's message.
        message: String,
    },

    /// The registry asked for an authentication scheme we do not speak.
    #[error("{url} asks for {scheme:?} authentication ({challenge}); only anonymous Bearer tokens (as Docker Hub uses) are supported")]
    UnsupportedAuth {
        /// The URL.
        url: String,
        /// The scheme (`Basic`, ...).
        scheme: String,
        /// The whole `WWW-Authenticate` header.
        challenge: String,
    },

    /// The token endpoint failed or answered nonsense.
    #[error("could not get a token from {realm} (for {scope}): {detail}")]
    Token {
        /// The token endpoint.
        realm: String,
        /// The scope asked for.
        scope: String,
        /// What went wrong.
        detail: String,
    },

    /// Content does not hash to the digest it was asked for by.
    #[error("{what} from {url} has digest {actual}, expected {expected}; the registry (or something between) served corrupt or different content; it was not stored: try again, and if it persists the image in the registry is damaged")]
    DigestMismatch {
        /// `blob`, `manifest`, ...
        what: &'static str,
        /// The URL it came from.
        url: String,
        /// The digest asked for.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },

    /// Content has another size than its descriptor says.
    #[error("{what} {digest} from {url} is {actual} bytes (at least), its descriptor says {expected}; the registry served something else; it was not stored: try again")]
    SizeMismatch {
        /// `blob`, `manifest`, ...
        what: &'static str,
        /// The digest.
        digest: String,
        /// The URL.
        url: String,
        /// The descriptor's size.
        expected: u64,
        /// What arrived.
        actual: u64,
    },

    /// The manifest is of a kind we do not handle.
    #[error("{url} returned a {media_type:?} manifest; only OCI image manifests/indexes and Docker schema 2 manifests/manifest lists are supported{hint}")]
    UnsupportedManifest {
        /// The URL.
        url: String,
        /// Its media type (or what was found instead).
        media_type: String,
        /// What to do.
        hint: &'static str,
    },

    /// A request could not be made: a URL the registry sent is not a valid URL, or a header
    /// value is malformed.
    #[error("could not make the request {method} {url}: {detail}")]
    BadRequest {
        /// The HTTP method.
        method: String,
        /// The URL.
        url: String,
        /// What is wrong, and where it came from.
        detail: String,
    },

    /// A manifest or token response does not parse.
    #[error("{url} returned invalid {kind}: {detail}")]
    BadJson {
        /// The URL.
        url: String,
        /// What it should have been.
        kind: &'static str,
        /// The parser's message.
        detail: String,
    },

    /// A multi-platform image offers no manifest for the wanted platform.
    #[error("{reference} has no image for {wanted}; it offers: {available}; pick one of those with the platform option")]
    NoPlatform {
        /// The reference.
        reference: String,
        /// `os/arch`.
        wanted: String,
        /// What it offers.
        available: String,
    },

    /// The registry's upload protocol answer is unusable (no `Location`, ...).
    #[error("blob upload to {url} failed: {detail}")]
    Upload {
        /// The URL.
        url: String,
        /// What is wrong.
        detail: String,
    },

    /// A digest is malformed or not sha256.
    #[error(transparent)]
    Digest(#[from] DigestError),

    /// Reading or writing the local image layout failed.
    #[error(transparent)]
    Layout(#[from] ImageError),
}
