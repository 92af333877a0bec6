//! Pull (and push) against real registry servers on loopback, no root, no internet:
//!
//! - Debian's `docker-registry` ([`LocalRegistry`]): images built here with the layout API are
//!   pushed with our own client, then pulled by tag and by digest, again (nothing downloaded),
//!   as a multi-platform index, from a corrupted blob store, and by a tag that does not exist.
//! - A tiny in-test HTTP server that demands a Bearer token as Docker Hub does
//!   (401 + `WWW-Authenticate` → token endpoint → retry) and redirects blob downloads, checking
//!   that the token never follows the redirect.
//!
//! The registry package is a prerequisite (scripts/setup installs it): without it these tests
//! fail, they never skip.

mod common;

use common::{flip_a_byte, layer, store_image, store_image_with, ImageOptions};

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use ch04_rootfs::digest::sha256_bytes;
use ch04_rootfs::image::layout::docker;
use ch04_rootfs::image::OciLayout;
use ch04_rootfs::registry::{pull, push, PullOptions, PullReport, PushOptions, RegistryError};
use labkit::{LocalRegistry, ScratchDir};
use oci_spec::image::{Arch, Descriptor, Digest, MediaType, Os};

// ---------------------------------------------------------------------------------------------
// Images, built with the layout API

/// A two-layer linux/amd64 image named `app:1` in a new layout; returns the manifest descriptor.
fn source_image(scratch: &ScratchDir) -> (OciLayout, Descriptor) {
    let layout = OciLayout::create(scratch.join("source")).unwrap();
    let desc = store_image(
        &layout,
        Arch::Amd64,
        &[
            layer(&[("etc/os-release", "boxlab\n"), ("bin/sh", "#!")]),
            layer(&[("app/run", "hello from the registry\n")]),
        ],
    );
    layout.add_to_index(&desc, Some("app:1")).unwrap();
    (layout, desc)
}

fn layers_of(layout: &OciLayout, manifest: &Descriptor) -> Vec<Descriptor> {
    let bytes = layout.read_blob(manifest).unwrap();
    let manifest = oci_spec::image::ImageManifest::from_reader(&bytes[..]).unwrap();
    manifest.layers().clone()
}

fn start_registry() -> LocalRegistry {
    LocalRegistry::start().unwrap_or_else(|e| panic!("{e}"))
}

fn quiet() -> PullOptions {
    PullOptions {
        progress: false,
        ..PullOptions::default()
    }
}

/// Temporary files `put_blob` left in a layout (there must be none).
fn leftovers(layout: &OciLayout) -> Vec<String> {
    fs::read_dir(layout.root().join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "sha256")
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Against docker-registry

#[test]
fn push_then_pull_by_tag_by_digest_and_again() {
    let registry = start_registry();
    let scratch = ScratchDir::new("ch04-registry").unwrap();
    let (source, manifest) = source_image(&scratch);
    let reference = format!("{}/test/app:v1", registry.host());

    let pushed = push(&source, "app:1", &reference, &PushOptions::default())
        .unwrap_or_else(|e| panic!("{e}\nregistry log:\n{}", registry.log()));
    assert_eq!(pushed.manifest_digest, *manifest.digest());
    assert_eq!((pushed.blobs_uploaded, pushed.blobs_present), (3, 0));
    assert_eq!(pushed.manifests, 1);
    let again = push(&source, "app:1", &reference, &PushOptions::default()).unwrap();
    assert_eq!((again.blobs_uploaded, again.blobs_present), (0, 3));

    // By tag, with progress on (stderr is no terminal here: one line per blob).
    let layout = OciLayout::create(scratch.join("pulled")).unwrap();
    let report = pull(&reference, &layout, &PullOptions::default())
        .unwrap_or_else(|e| panic!("{e}\nregistry log:\n{}", registry.log()));
    let blob_bytes: u64 = layers_of(&source, &manifest)
        .iter()
        .map(Descriptor::size)
        .sum::<u64>()
        + source.resolve("app:1").unwrap().manifest.config().size();
    assert_eq!(report.manifest_digest, *manifest.digest());
    assert_eq!(report.layers, 2);
    assert_eq!(report.downloaded, blob_bytes);
    assert_eq!(report.already_present, 0);
    assert_eq!(report.ref_name, reference);
    assert_eq!(report.reference, reference);
    for name in [reference.as_str(), manifest.digest().as_ref()] {
        let image = layout.resolve(name).unwrap();
        assert_eq!(image.manifest_digest, *manifest.digest());
        layout.verify_image(&image).unwrap();
    }
    // The manifest is stored byte for byte: same digest, same bytes as the source's.
    assert_eq!(
        fs::read(layout.blob_path(manifest.digest())).unwrap(),
        fs::read(source.blob_path(manifest.digest())).unwrap()
    );

    // Again: everything is there and intact, nothing is downloaded.
    let report = pull(&reference, &layout, &quiet()).unwrap();
    assert_eq!((report.downloaded, report.already_present), (0, 3));

    // By digest, into a fresh layout.
    let by_digest = format!("{}/test/app@{}", registry.host(), manifest.digest());
    let fresh = OciLayout::create(scratch.join("by-digest")).unwrap();
    let report: PullReport = pull(&by_digest, &fresh, &quiet()).unwrap();
    assert_eq!(report.manifest_digest, *manifest.digest());
    assert_eq!(report.ref_name, by_digest);
    let image = fresh.resolve(&by_digest).unwrap();
    fresh.verify_image(&image).unwrap();
    assert!(leftovers(&fresh).is_empty(), "{:?}", leftovers(&fresh));

    // A damaged local blob is not trusted: it is downloaded again.
    let first_layer = &layers_of(&source, &manifest)[0];
    let path = layout.blob_path(first_layer.digest());
    let mut bytes = fs::read(&path).unwrap();
    bytes[10] ^= 0xff;
    fs::write(&path, bytes).unwrap();
    let report = pull(&reference, &layout, &quiet()).unwrap();
    assert_eq!(report.downloaded, first_layer.size());
    assert_eq!(report.already_present, 2);
    layout.verify_blob(first_layer).unwrap();
}

#[test]
fn a_multi_platform_index_pulls_the_wanted_platform() {
    let registry = start_registry();
    let scratch = ScratchDir::new("ch04-registry").unwrap();
    let source = OciLayout::create(scratch.join("source")).unwrap();
    let mut amd64 = store_image(&source, Arch::Amd64, &[layer(&[("arch", "amd64")])]);
    let mut arm64 = store_image(&source, Arch::ARM64, &[layer(&[("arch", "arm64")])]);
    let index = common::multi_platform_index(
        &source,
        &mut [(&mut arm64, Arch::ARM64), (&mut amd64, Arch::Amd64)],
        MediaType::ImageIndex,
        "multi:1",
    );

    let reference = format!("{}/test/multi:1", registry.host());
    let pushed = push(&source, "multi:1", &reference, &PushOptions::default())
        .unwrap_or_else(|e| panic!("{e}\nregistry log:\n{}", registry.log()));
    assert_eq!(pushed.manifests, 3, "two platform manifests and the index");
    assert_eq!(pushed.manifest_digest, *index.digest());

    let for_platform = |arch: Arch| PullOptions {
        platform: (Os::Linux, arch),
        ..quiet()
    };
    let layout = OciLayout::create(scratch.join("amd64")).unwrap();
    let report = pull(&reference, &layout, &for_platform(Arch::Amd64)).unwrap();
    assert_eq!(report.manifest_digest, *amd64.digest());
    assert_eq!(report.layers, 1);
    // index.json names the platform manifest; the index is kept, the other platform is not.
    let image = layout.resolve(&reference).unwrap();
    assert_eq!(image.manifest_digest, *amd64.digest());
    assert_eq!(image.config.architecture(), &Arch::Amd64);
    layout.verify_image(&image).unwrap();
    assert!(layout.has_blob(index.digest()));
    assert!(!layout.has_blob(arm64.digest()));

    // The other platform when asked for; by the index's digest as well.
    let by_digest = format!("{}/test/multi@{}", registry.host(), index.digest());
    let layout = OciLayout::create(scratch.join("arm64")).unwrap();
    let report = pull(&by_digest, &layout, &for_platform(Arch::ARM64)).unwrap();
    assert_eq!(report.manifest_digest, *arm64.digest());

    // A platform the image does not have: an error listing those it has.
    let layout = OciLayout::create(scratch.join("s390x")).unwrap();
    let err = pull(&reference, &layout, &for_platform(Arch::s390x)).unwrap_err();
    eprintln!("as expected: {err}");
    assert!(matches!(err, RegistryError::NoPlatform { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("linux/amd64") && message.contains("linux/arm64"),
        "{message}"
    );
}

#[test]
fn docker_schema2_manifests_and_lists_are_stored_as_they_are() {
    let registry = start_registry();
    let scratch = ScratchDir::new("ch04-registry").unwrap();
    let source = OciLayout::create(scratch.join("source")).unwrap();
    let layers = [layer(&[("docker", "schema 2")])];
    let mut amd64 = store_image_with(
        &source,
        Arch::Amd64,
        &layers,
        ImageOptions {
            docker: true,
            ..ImageOptions::default()
        },
    );
    let mut arm64 = store_image_with(
        &source,
        Arch::ARM64,
        &layers,
        ImageOptions {
            docker: true,
            ..ImageOptions::default()
        },
    );
    let list = common::multi_platform_index(
        &source,
        &mut [(&mut amd64, Arch::Amd64), (&mut arm64, Arch::ARM64)],
        MediaType::from(docker::MANIFEST_LIST),
        "docker:1",
    );
    let reference = format!("{}/test/docker:1", registry.host());
    push(&source, "docker:1", &reference, &PushOptions::default())
        .unwrap_or_else(|e| panic!("{e}\nregistry log:\n{}", registry.log()));

    let layout = OciLayout::create(scratch.join("pulled")).unwrap();
    let options = PullOptions {
        platform: (Os::Linux, Arch::Amd64),
        ..quiet()
    };
    let report = pull(&reference, &layout, &options).unwrap();
    assert_eq!(report.manifest_digest, *amd64.digest());
    let image = layout.resolve(&reference).unwrap();
    assert_eq!(
        image.manifest_descriptor.media_type().to_string(),
        docker::MANIFEST
    );
    assert_eq!(
        image.manifest.config().media_type().to_string(),
        docker::CONFIG
    );
    assert_eq!(
        image.manifest.layers()[0].media_type().to_string(),
        docker::LAYER_GZIP
    );
    layout.verify_image(&image).unwrap();
    // The list is kept byte for byte, under its own digest.
    assert_eq!(
        fs::read(layout.blob_path(list.digest())).unwrap(),
        fs::read(source.blob_path(list.digest())).unwrap()
    );
}

#[test]
fn a_corrupted_blob_in_the_registry_is_rejected() {
    let registry = start_registry();
    let scratch = ScratchDir::new("ch04-registry").unwrap();
    let (source, manifest) = source_image(&scratch);
    let reference = format!("{}/test/app:v1", registry.host());
    push(&source, "app:1", &reference, &PushOptions::default()).unwrap();

    // Flip a byte of the second layer where the filesystem driver keeps it (size unchanged).
    let victim = layers_of(&source, &manifest)[1].clone();
    let data = registry.blob_data_path(victim.digest().as_ref());
    let bytes = flip_a_byte(&data);

    let layout = OciLayout::create(scratch.join("pulled")).unwrap();
    let err = pull(&reference, &layout, &quiet()).unwrap_err();
    eprintln!("as expected: {err}");
    match &err {
        RegistryError::DigestMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected, victim.digest().as_ref());
            assert_eq!(actual, sha256_bytes(&bytes).as_ref());
        }
        other => panic!("expected a digest mismatch, got: {other}"),
    }
    assert!(err.to_string().contains(victim.digest().as_ref()), "{err}");
    // Nothing of it stored, no temporary file left, no name pointing at a broken image.
    assert!(!layout.has_blob(victim.digest()));
    assert!(!layout.has_blob(&sha256_bytes(&bytes)));
    assert!(leftovers(&layout).is_empty(), "{:?}", leftovers(&layout));
    assert!(layout.index().unwrap().manifests().is_empty());
    assert!(layout.resolve(&reference).is_err());
}

#[test]
fn a_missing_tag_or_repository_is_named_in_the_error() {
    let registry = start_registry();
    let scratch = ScratchDir::new("ch04-registry").unwrap();
    let (source, _) = source_image(&scratch);
    push(
        &source,
        "app:1",
        &format!("{}/test/app:v1", registry.host()),
        &PushOptions::default(),
    )
    .unwrap();
    let layout = OciLayout::create(scratch.join("pulled")).unwrap();

    let err = pull(
        &format!("{}/test/app:nope", registry.host()),
        &layout,
        &quiet(),
    )
    .unwrap_err();
    eprintln!("as expected: {err}");
    assert!(
        matches!(err, RegistryError::ManifestNotFound { .. }),
        "{err}"
    );
    let message = err.to_string();
    for part in ["tag nope", "test/app", &registry.host()] {
        assert!(message.contains(part), "{part:?} not in: {message}");
    }

    let err = pull(
        &format!("{}/test/nothing-here:v1", registry.host()),
        &layout,
        &quiet(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("test/nothing-here"), "{err}");

    let missing_digest = sha256_bytes(b"no such manifest");
    let err = pull(
        &format!("{}/test/app@{missing_digest}", registry.host()),
        &layout,
        &quiet(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("digest {missing_digest} not found")),
        "{err}"
    );
    assert!(leftovers(&layout).is_empty());
}

#[test]
fn bad_references_and_unreachable_registries_are_errors_not_panics() {
    let scratch = ScratchDir::new("ch04-registry").unwrap();
    let layout = OciLayout::create(scratch.join("pulled")).unwrap();
    let err = pull("Not A Reference", &layout, &quiet()).unwrap_err();
    assert!(matches!(err, RegistryError::BadReference { .. }), "{err}");

    // A loopback port nobody listens on.
    let port = labkit::free_port();
    let err = pull(&format!("127.0.0.1:{port}/x:1"), &layout, &quiet()).unwrap_err();
    eprintln!("as expected: {err}");
    assert!(matches!(err, RegistryError::Transport { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Bearer tokens, as Docker Hub hands them out

const TOKEN: &str = "boxlab-test-token";

/// One request the fake registry saw.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    authorization: Option<String>,
}

/// A registry that wants a token: every `/v2/…` request without `Authorization: Bearer TOKEN`
/// gets a 401 challenge; `/token` hands the token out for scope `repository:x:pull`; layer
/// blobs are redirected to `/cdn/<digest>`, which must not see the token.
struct FakeRegistry {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

struct FakeContent {
    manifest: (Vec<u8>, String),
    blobs: HashMap<String, Vec<u8>>,
    redirected: Vec<String>,
    /// False: the token endpoint refuses everyone.
    grant_token: bool,
}

impl FakeRegistry {
    fn start(content: FakeContent) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let content = Arc::new(content);
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (seen, content) = (seen.clone(), content.clone());
                    std::thread::spawn(move || serve_connection(stream, port, &seen, &content));
                }
            })
        };
        Self {
            port,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wakes accept()
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers requests on one (keep-alive) connection until the client closes it.
fn serve_connection(stream: TcpStream, port: u16, seen: &Mutex<Vec<Seen>>, content: &FakeContent) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
            }
        }
        let target = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_string();
        let authorization = headers.get("authorization").cloned();
        seen.lock().unwrap().push(Seen {
            path: target.clone(),
            authorization: authorization.clone(),
        });
        let (status, extra, body) = route(&target, authorization.as_deref(), port, content);
        let mut response = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nDocker-Distribution-Api-Version: registry/2.0\r\n",
            body.len()
        );
        for (name, value) in extra {
            response.push_str(&format!("{name}: {value}\r\n"));
        }
        response.push_str("\r\n");
        if writer.write_all(response.as_bytes()).is_err() || writer.write_all(&body).is_err() {
            return;
        }
    }
}

type Answer = (&'static str, Vec<(&'static str, String)>, Vec<u8>);

fn route(target: &str, authorization: Option<&str>, port: u16, content: &FakeContent) -> Answer {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let json = |status, body: &str| {
        (
            status,
            vec![("Content-Type", "application/json".to_string())],
            body.as_bytes().to_vec(),
        )
    };
    if path == "/token" {
        let params: Vec<&str> = query.split('&').collect();
        let scope_ok = params.contains(&"scope=repository%3Ax%3Apull")
            || params.contains(&"scope=repository:x:pull");
        return if !content.grant_token {
            json(
                "401 Unauthorized",
                r#"{"details":"incorrect username or password"}"#,
            )
        } else if scope_ok && params.contains(&"service=test") {
            json(
                "200 OK",
                &format!(r#"{{"token":"{TOKEN}","expires_in":300}}"#),
            )
        } else {
            json("400 Bad Request", r#"{"details":"wrong scope or service"}"#)
        };
    }
    if let Some(digest) = path.strip_prefix("/cdn/") {
        // The "CDN": no token needed, and none must arrive.
        return match content.blobs.get(digest) {
            Some(blob) => ("200 OK", vec![], blob.clone()),
            None => json("404 Not Found", "{}"),
        };
    }
    if authorization != Some(&format!("Bearer {TOKEN}")) {
        let challenge = format!(
            r#"Bearer realm="http://127.0.0.1:{port}/token",service="test",scope="repository:x:pull""#
        );
        return (
            "401 Unauthorized",
            vec![
                ("WWW-Authenticate", challenge),
                ("Content-Type", "application/json".to_string()),
            ],
            br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#.to_vec(),
        );
    }
    if path == "/v2/x/manifests/latest" {
        let (bytes, media_type) = &content.manifest;
        return (
            "200 OK",
            vec![("Content-Type", media_type.clone())],
            bytes.clone(),
        );
    }
    if let Some(digest) = path.strip_prefix("/v2/x/blobs/") {
        if content.redirected.iter().any(|d| d == digest) {
            let location = format!("http://127.0.0.1:{port}/cdn/{digest}");
            return (
                "307 Temporary Redirect",
                vec![("Location", location)],
                vec![],
            );
        }
        if let Some(blob) = content.blobs.get(digest) {
            return ("200 OK", vec![], blob.clone());
        }
    }
    json(
        "404 Not Found",
        r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
    )
}

#[test]
fn bearer_token_auth_as_docker_hub_does_it() {
    let scratch = ScratchDir::new("ch04-registry").unwrap();
    let (source, manifest) = source_image(&scratch);
    let image = source.resolve("app:1").unwrap();
    let read = |digest: &Digest| fs::read(source.blob_path(digest)).unwrap();
    let mut blobs = HashMap::new();
    blobs.insert(
        image.manifest.config().digest().to_string(),
        read(image.manifest.config().digest()),
    );
    for layer in image.manifest.layers() {
        blobs.insert(layer.digest().to_string(), read(layer.digest()));
    }
    let redirected: Vec<String> = image
        .manifest
        .layers()
        .iter()
        .map(|l| l.digest().to_string())
        .collect();
    let server = FakeRegistry::start(FakeContent {
        // Served as Docker Hub would label it; stored exactly as sent.
        manifest: (
            read(manifest.digest()),
            "application/vnd.oci.image.manifest.v1+json".to_string(),
        ),
        blobs,
        redirected: redirected.clone(),
        grant_token: true,
    });

    let layout = OciLayout::create(scratch.join("pulled")).unwrap();
    let reference = format!("127.0.0.1:{}/x", server.port);
    let report = pull(&reference, &layout, &quiet()).unwrap();
    assert_eq!(report.manifest_digest, *manifest.digest());
    assert_eq!(report.ref_name, format!("{reference}:latest"));
    let pulled = layout.resolve(&reference).unwrap();
    layout.verify_image(&pulled).unwrap();

    let seen = server.seen();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    // The first request goes without a token and is challenged; one token serves the rest.
    assert_eq!(seen[0].path, "/v2/x/manifests/latest", "{paths:?}");
    assert_eq!(seen[0].authorization, None);
    assert!(seen[1].path.starts_with("/token?"), "{paths:?}");
    assert_eq!(
        seen[1].authorization, None,
        "the token endpoint gets no token"
    );
    assert_eq!(
        seen.iter().filter(|s| s.path.starts_with("/token")).count(),
        1,
        "{paths:?}"
    );
    for s in &seen[2..] {
        if s.path.starts_with("/cdn/") {
            assert_eq!(
                s.authorization, None,
                "the token followed a redirect to {}",
                s.path
            );
        } else {
            assert_eq!(
                s.authorization.as_deref(),
                Some(format!("Bearer {TOKEN}").as_str()),
                "{}",
                s.path
            );
        }
    }
    // Both layers came through the redirect.
    for digest in &redirected {
        assert!(
            paths.contains(&format!("/cdn/{digest}").as_str()),
            "{paths:?}"
        );
    }
}

#[test]
fn a_refused_token_is_a_clear_error() {
    let server = FakeRegistry::start(FakeContent {
        manifest: (Vec::new(), String::new()),
        blobs: HashMap::new(),
        redirected: Vec::new(),
        grant_token: false,
    });
    let scratch = ScratchDir::new("ch04-registry").unwrap();
    let layout = OciLayout::create(scratch.join("pulled")).unwrap();
    let err = pull(&format!("127.0.0.1:{}/x:1", server.port), &layout, &quiet()).unwrap_err();
    eprintln!("as expected: {err}");
    assert!(matches!(err, RegistryError::Token { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&format!("http://127.0.0.1:{}/token", server.port))
            && message.contains("repository:x:pull")
            && message.contains("401"),
        "{message}"
    );
    assert!(layout.index().unwrap().manifests().is_empty());
}
