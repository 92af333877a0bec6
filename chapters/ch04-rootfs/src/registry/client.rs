//! A client for the OCI distribution spec's HTTP API, for one repository.
//!
//! ```text
//! GET  /v2/<name>/manifests/<tag|digest>     Accept: OCI index/manifest, Docker list/manifest
//! GET  /v2/<name>/blobs/<digest>             may redirect (Docker Hub: to a CDN)
//! HEAD /v2/<name>/blobs/<digest>             200: the registry has it
//! POST /v2/<name>/blobs/uploads/             202, Location: <upload URL>
//! PUT  <upload URL>&digest=<digest>          the whole blob; 201
//! PUT  /v2/<name>/manifests/<tag|digest>     Content-Type: the manifest's media type; 201
//! ```
//!
//! Every request goes through [`Client::send`], which answers a 401 by fetching a Bearer token
//! ([`super::auth`]) and trying once more. The `Authorization` header goes to the registry only:
//! ureq drops it when it follows a redirect (`RedirectAuthHeaders::Never`), so a CDN never sees
//! the token.

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use oci_spec::image::{Digest, MediaType};
use ureq::config::RedirectAuthHeaders;
use ureq::http::{self, Response};
use ureq::{Agent, Body, Proxy};

use super::auth;
use super::reference::Reference;
use super::RegistryError;
use crate::digest;
use crate::image::layout::{is_index, is_manifest};
use crate::image::{ImageError, MAX_JSON_BLOB};

/// What we ask a registry for when we fetch a manifest: every kind we can store.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// The largest registry error body read for a message.
const MAX_ERROR_BODY: u64 = 64 * 1024;

/// What a manifest-like document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// An OCI image index or a Docker manifest list: one manifest per platform.
    Index,
    /// An OCI image manifest or a Docker schema 2 manifest: a config and layers.
    Manifest,
}

/// The kind of a manifest media type (OCI or Docker, as the layout tells them apart); `None` for
/// anything else.
pub fn manifest_kind(media_type: &MediaType) -> Option<ManifestKind> {
    if is_index(media_type) {
        Some(ManifestKind::Index)
    } else if is_manifest(media_type) {
        Some(ManifestKind::Manifest)
    } else {
        None
    }
}

/// A manifest (or index) as the registry sent it: the exact bytes, whose sha256 is its digest.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// The bytes, unchanged (rewriting them would change the digest).
    pub bytes: Vec<u8>,
    /// Its media type.
    pub media_type: MediaType,
    /// Its kind.
    pub kind: ManifestKind,
    /// The sha256 of `bytes`, computed here (the `Docker-Content-Digest` header is not trusted).
    pub digest: Digest,
    /// The URL it came from.
    pub url: String,
}

/// A request body.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// None.
    Empty,
    /// Bytes in memory (a manifest).
    Bytes(&'a [u8]),
    /// A file, streamed (a blob); reopened if the request is retried.
    File(&'a Path),
}

/// A connection to one repository of one registry.
#[derive(Debug)]
pub struct Client {
    agent: Agent,
    base: String,
    reference: Reference,
    scope: String,
    token: Option<String>,
    insecure: bool,
}

impl Client {
    /// A client for `reference`'s repository. Plain HTTP when `insecure` or the registry is on
    /// loopback, HTTPS otherwise. `scope` is what to ask a token for when the registry's
    /// challenge names none ([`auth::pull_scope`], [`auth::push_scope`]).
    pub fn new(reference: &Reference, insecure: bool, scope: String) -> Self {
        let insecure = insecure || reference.is_loopback();
        let scheme = if insecure { "http" } else { "https" };
        let agent = Agent::config_builder()
            // Statuses are answers to read (401 means "get a token", 404 "no such tag").
            .http_status_as_error(false)
            // Never hand the registry's token to whatever host a redirect points to.
            .redirect_auth_headers(RedirectAuthHeaders::Never)
            // Blobs are stored exactly as sent: no transparent decompression.
            .accept_encoding("identity")
            .user_agent(concat!("boxlab-ch04/", env!("CARGO_PKG_VERSION")))
            .proxy(if reference.is_loopback() {
                None
            } else {
                Proxy::try_from_env()
            })
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .build()
            .new_agent();
        Self {
            agent,
            base: format!("{scheme}://{}", reference.api_host()),
            reference: reference.clone(),
            scope,
            token: None,
            insecure,
        }
    }

    /// The reference this client was made for.
    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// `<scheme>://<host>/v2/<repository>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.base, self.reference.repository())
    }

    // ANCHOR: send
    /// Sends a request; on 401, fetches a token as the challenge says and sends it once more.
    pub fn send(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        payload: Payload<'_>,
    ) -> Result<Response<Body>, RegistryError> {
        // Our own URLs come from a checked reference; one that does not parse is a URL the
        // registry sent (an upload's Location), and the error must say so.
        let uri: http::Uri = url.parse().map_err(|e| RegistryError::BadRequest {
            method: method.to_string(),
            url: url.to_string(),
            detail: format!(
                "the registry sent this URL (as an upload's Location) and it is not a valid URL: {e}"
            ),
        })?;
        let mut fetched_token = false;
        loop {
            let mut request = http::Request::builder().method(method).uri(uri.clone());
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            if let Some(token) = &self.token {
                request = request.header("Authorization", format!("Bearer {token}"));
            }
            let response = match payload {
                Payload::Empty => request.body(()).map(|r| self.agent.run(r)),
                Payload::Bytes(bytes) => request.body(bytes).map(|r| self.agent.run(r)),
                Payload::File(path) => {
                    let file = File::open(path).map_err(ImageError::io("open for upload", path))?;
                    request.body(file).map(|r| self.agent.run(r))
                }
            }
            // The URL parsed: what is left is a header value (a media type from the layout).
            .map_err(|e| RegistryError::BadRequest {
                method: method.to_string(),
                url: url.to_string(),
                detail: e.to_string(),
            })?
            .map_err(|e| self.transport_error(method, url, e))?;

            let status = response.status().as_u16();
            if status == 401 && !fetched_token {
                let challenge = auth::challenge_of(response.headers(), url)?;
                self.token = Some(auth::fetch_token(&self.agent, &challenge, &self.scope)?);
                fetched_token = true;
                continue;
            }
            if status == 401 || status == 403 {
                return Err(RegistryError::Unauthorized {
                    url: url.to_string(),
                    status,
                    message: error_message(response),
                });
            }
            return Ok(response);
        }
    }
    // ANCHOR_END: send

    fn transport_error(&self, method: &str, url: &str, e: ureq::Error) -> RegistryError {
        RegistryError::Transport {
            method: method.to_string(),
            url: url.to_string(),
            source: Box::new(e),
            hint: if self.insecure {
                ""
            } else {
                "; if it serves plain HTTP, not HTTPS, use --insecure"
            },
        }
    }

    /// Fetches the manifest (or index) `object` names (a tag or `sha256:` digest), whole and
    /// unchanged, and computes its digest.
    pub fn manifest(&mut self, object: &str) -> Result<FetchedManifest, RegistryError> {
        let url = self.url(&format!("manifests/{object}"));
        let response = self.send("GET", &url, &[("Accept", MANIFEST_ACCEPT)], Payload::Empty)?;
        let status = response.status().as_u16();
        if status == 404 {
            return Err(RegistryError::ManifestNotFound {
                kind: if object.starts_with("sha256:") {
                    "digest"
                } else {
                    "tag"
                },
                object: object.to_string(),
                repository: self.reference.repository().to_string(),
                registry: self.reference.registry().to_string(),
                message: error_message(response),
            });
        }
        if status != 200 {
            return Err(status_error("GET", &url, response));
        }
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        let bytes = response
            .into_body()
            .into_with_config()
            .limit(MAX_JSON_BLOB)
            .read_to_vec()
            .map_err(|e| RegistryError::Download {
                url: url.clone(),
                received: 0,
                source: std::io::Error::other(e),
            })?;
        let (media_type, kind) = classify(&bytes, content_type.as_deref(), &url)?;
        Ok(FetchedManifest {
            digest: digest::sha256_bytes(&bytes),
            bytes,
            media_type,
            kind,
            url,
        })
    }

    /// Starts a blob download: the response, whose body the caller streams, and its URL.
    pub fn blob(&mut self, digest: &Digest) -> Result<(Response<Body>, String), RegistryError> {
        let url = self.url(&format!("blobs/{digest}"));
        let response = self.send("GET", &url, &[], Payload::Empty)?;
        match response.status().as_u16() {
            200 => Ok((response, url)),
            404 => Err(RegistryError::BlobNotFound {
                digest: digest.to_string(),
                repository: self.reference.repository().to_string(),
                url,
                message: error_message(response),
            }),
            _ => Err(status_error("GET", &url, response)),
        }
    }

    /// True when the registry has the blob in this repository.
    pub fn has_blob(&mut self, digest: &Digest) -> Result<bool, RegistryError> {
        let url = self.url(&format!("blobs/{digest}"));
        let response = self.send("HEAD", &url, &[], Payload::Empty)?;
        match response.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(status_error("HEAD", &url, response)),
        }
    }

    // ANCHOR: upload
    /// Uploads the file at `path` as blob `digest`, monolithically: POST opens an upload
    /// session, one PUT with `?digest=` sends the bytes and closes it. The registry checks the
    /// digest itself.
    pub fn upload_blob(&mut self, path: &Path, digest: &Digest) -> Result<(), RegistryError> {
        let url = self.url("blobs/uploads/");
        let response = self.send("POST", &url, &[], Payload::Empty)?;
        if response.status().as_u16() != 202 {
            return Err(status_error("POST", &url, response));
        }
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::Upload {
                url: url.clone(),
                detail: "the registry answered 202 without a Location header".to_string(),
            })?;
        let mut put_url = if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            return Err(RegistryError::Upload {
                url,
                detail: format!("the Location {location:?} is neither absolute nor rooted"),
            });
        };
        put_url.push(if put_url.contains('?') { '&' } else { '?' });
        put_url.push_str(&format!("digest={digest}"));
        let headers = [("Content-Type", "application/octet-stream")];
        let response = self.send("PUT", &put_url, &headers, Payload::File(path))?;
        match response.status().as_u16() {
            201 | 204 => Ok(()),
            _ => Err(status_error("PUT", &put_url, response)),
        }
    }
    // ANCHOR_END: upload

    /// Uploads a manifest (or index) under `object` (a tag, or its digest).
    pub fn put_manifest(
        &mut self,
        object: &str,
        bytes: &[u8],
        media_type: &MediaType,
    ) -> Result<(), RegistryError> {
        let url = self.url(&format!("manifests/{object}"));
        let content_type = media_type.to_string();
        let headers = [("Content-Type", content_type.as_str())];
        let response = self.send("PUT", &url, &headers, Payload::Bytes(bytes))?;
        match response.status().as_u16() {
            200 | 201 | 202 | 204 => Ok(()),
            _ => Err(status_error("PUT", &url, response)),
        }
    }
}

/// The media type and kind of a manifest: its own `mediaType` field when it has one we know,
/// else the Content-Type, else its shape (`manifests` → index, `layers` → manifest; OCI allows
/// leaving `mediaType` out).
fn classify(
    bytes: &[u8],
    content_type: Option<&str>,
    url: &str,
) -> Result<(MediaType, ManifestKind), RegistryError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Shape {
        schema_version: Option<u32>,
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        layers: Option<serde_json::Value>,
    }
    let shape: Shape = serde_json::from_slice(bytes).map_err(|e| RegistryError::BadJson {
        url: url.to_string(),
        kind: "manifest JSON",
        detail: e.to_string(),
    })?;
    if shape.schema_version == Some(1)
        || content_type
            .is_some_and(|t| t.starts_with("application/vnd.docker.distribution.manifest.v1"))
    {
        return Err(RegistryError::UnsupportedManifest {
            url: url.to_string(),
            media_type: content_type.unwrap_or("schema 1").to_string(),
            hint: " (Docker schema 1 is deprecated; pull a newer tag, or push the image again with a current tool)",
        });
    }
    for candidate in [shape.media_type.as_deref(), content_type]
        .into_iter()
        .flatten()
    {
        let media_type = MediaType::from(candidate);
        if let Some(kind) = manifest_kind(&media_type) {
            return Ok((media_type, kind));
        }
    }
    match (shape.manifests.is_some(), shape.layers.is_some()) {
        (true, false) => Ok((MediaType::ImageIndex, ManifestKind::Index)),
        (false, true) => Ok((MediaType::ImageManifest, ManifestKind::Manifest)),
        _ => Err(RegistryError::UnsupportedManifest {
            url: url.to_string(),
            media_type: shape
                .media_type
                .or(content_type.map(str::to_string))
                .unwrap_or_else(|| "unknown".to_string()),
            hint: " (an artifact, not a container image?)",
        }),
    }
}

/// A [`RegistryError::Status`] for an unexpected answer, with the registry's message.
pub fn status_error(method: &str, url: &str, response: Response<Body>) -> RegistryError {
    let status = response.status().as_u16();
    RegistryError::Status {
        method: method.to_string(),
        url: url.to_string(),
        status,
        message: error_message(response),
    }
}

/// The registry's error JSON (`{"errors":[{"code":…,"message":…,"detail":…}]}`) as one line,
/// or the start of the body if it is something else.
pub fn error_message(response: Response<Body>) -> String {
    let reason = response
        .status()
        .canonical_reason()
        .unwrap_or("no reason given")
        .to_string();
    let body = response
        .into_body()
        .into_with_config()
        .limit(MAX_ERROR_BODY)
        .lossy_utf8(true)
        .read_to_string()
        .unwrap_or_default();
    let parsed: Option<oci_spec::distribution::ErrorResponse> = serde_json::from_str(&body).ok();
    match parsed {
        Some(errors) if !errors.detail().is_empty() => errors
            .detail()
            .iter()
            .map(|e| {
                let mut line = e.code().to_string();
                if let Some(message) = e.message() {
                    line.push_str(&format!(": {message}"));
                }
                if let Some(detail) = e.detail() {
                    line.push_str(&format!(" ({detail})"));
                }
                line
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ if body.trim().is_empty() => reason,
        _ => body.trim().chars().take(300).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::layout::docker;

    #[test]
    fn request_errors_name_the_url_or_the_file() {
        let reference = Reference::parse("127.0.0.1:1/x/y:1").unwrap();
        let mut client = Client::new(&reference, true, auth::pull_scope("x/y"));
        // A Location with a space: the registry's fault, not the reference's.
        let bad = "http://127.0.0.1:1/v2/x/y/blobs/uploads/a b?digest=sha256:0";
        let err = client.send("PUT", bad, &[], Payload::Empty).unwrap_err();
        assert!(matches!(err, RegistryError::BadRequest { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(bad) && text.contains("the registry sent this URL"),
            "{text}"
        );
        // A blob file that cannot be opened is named, and nothing is sent.
        let missing = Path::new("/nonexistent/boxlab-blob");
        let url = client.url("blobs/uploads/1");
        let err = client
            .send("PUT", &url, &[], Payload::File(missing))
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("could not open for upload /nonexistent/boxlab-blob"),
            "{text}"
        );
    }
    #[test]
    fn manifests_are_classified_by_field_header_or_shape() {
        let url = "http://r/v2/x/manifests/t";
        let docker = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{},"layers":[]}"#;
        assert_eq!(
            classify(docker, Some("application/json"), url).unwrap(),
            (MediaType::from(docker::MANIFEST), ManifestKind::Manifest)
        );
        let bare_index = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(
            classify(bare_index, None, url).unwrap().1,
            ManifestKind::Index
        );
        assert_eq!(
            classify(
                bare_index,
                Some("application/vnd.docker.distribution.manifest.list.v2+json"),
                url
            )
            .unwrap()
            .0
            .to_string(),
            docker::MANIFEST_LIST
        );
        let schema1 = br#"{"schemaVersion":1,"fsLayers":[]}"#;
        assert!(classify(schema1, None, url)
            .unwrap_err()
            .to_string()
            .contains("schema 1"));
        assert!(classify(b"not json", None, url).is_err());
        let oci = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
        let oci_type = "application/vnd.oci.image.manifest.v1+json";
        assert_eq!(
            classify(oci, Some(oci_type), url).unwrap(),
            (MediaType::ImageManifest, ManifestKind::Manifest)
        );
        let signed = "application/vnd.docker.distribution.manifest.v1+prettyjws";
        assert!(classify(oci, Some(signed), url).is_err());
    }
}
