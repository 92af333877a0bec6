//! Image names as people type them and as tools store them.
//!
//! `docker save` stores `busybox:1.36`, podman `docker.io/library/busybox:1.36`, containerd puts
//! the full name in `io.containerd.image.name` and only the tag in
//! `org.opencontainers.image.ref.name`. To let `busybox` find any of them, names are compared in
//! a normal form: Docker Hub's implied prefixes dropped, `:latest` added when no tag is given.

/// Docker Hub prefixes that name nothing more than their absence does.
const IMPLIED_PREFIXES: &[&str] = &[
    "docker.io/library/",
    "index.docker.io/library/",
    "registry-1.docker.io/library/",
    "docker.io/",
    "index.docker.io/",
    "registry-1.docker.io/",
    // Docker Hub's official images, named without the registry: `library/busybox`.
    "library/",
];

/// The normal form of an image name: `docker.io/library/busybox` -> `busybox:latest`.
pub fn normalize(name: &str) -> String {
    let mut short = name.trim();
    for prefix in IMPLIED_PREFIXES {
        if let Some(rest) = short.strip_prefix(prefix) {
            short = rest;
            break;
        }
    }
    if short.contains('@') || has_tag(short) {
        short.to_string()
    } else {
        format!("{short}:latest")
    }
}

/// True when `name` ends in `:tag` (a colon after the last slash; `host:5000/x` has none).
pub fn has_tag(name: &str) -> bool {
    let last = name.rsplit('/').next().unwrap_or(name);
    last.contains(':')
}

/// True when what the user typed names the stored name.
pub fn matches(query: &str, stored: &str) -> bool {
    query == stored || normalize(query) == normalize(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_in_normal_form() {
        assert_eq!(normalize("busybox"), "busybox:latest");
        assert_eq!(normalize("docker.io/library/busybox:1.36"), "busybox:1.36");
        assert_eq!(normalize("localhost:5000/app"), "localhost:5000/app:latest");
        assert!(matches("busybox", "docker.io/library/busybox:latest"));
        assert!(matches("library/busybox", "busybox"));
        assert_eq!(normalize("library/busybox@sha256:00"), "busybox@sha256:00");
        assert!(matches("latest", "latest"));
        assert!(!matches("busybox:1.36", "busybox:1.35"));
        assert!(!matches("alpine", "busybox"));
    }
}
