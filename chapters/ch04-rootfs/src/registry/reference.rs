//! Image references as a registry needs them: `[registry[:port]/]repository[:tag][@digest]`.
//!
//! ```text
//! busybox                         docker.io  library/busybox  tag latest
//! busybox:1.36                    docker.io  library/busybox  tag 1.36
//! ghcr.io/owner/app@sha256:…      ghcr.io    owner/app        digest sha256:…
//! 127.0.0.1:5000/team/app:v1      127.0.0.1:5000  team/app    tag v1
//! ```
//!
//! The grammar is the distribution spec's (oci-spec's parser: the first component is a registry
//! when it has a `.` or a `:` or is `localhost`). On top of it: Docker Hub's aliases become
//! `docker.io`, whose API lives at `registry-1.docker.io`; only sha256 digests are accepted; and
//! the name written to a layout's index is [`crate::image::reference::normalize`]'s, so that
//! `busybox:1.36` finds what `docker.io/library/busybox:1.36` pulled.

use std::fmt;
use std::net::IpAddr;

use oci_spec::distribution::Reference as SpecReference;
use oci_spec::image::Digest;

use super::RegistryError;
use crate::digest;
use crate::image::reference::normalize;

/// Docker Hub's name in references.
pub const DOCKER_HUB: &str = "docker.io";

/// Where Docker Hub's registry API answers.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// Other names of Docker Hub.
const DOCKER_HUB_ALIASES: &[&str] = &["index.docker.io", "registry-1.docker.io"];

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses what a user typed. No tag and no digest means `:latest`.
    pub fn parse(given: &str) -> Result<Self, RegistryError> {
        let bad = |reason: String| RegistryError::BadReference {
            given: given.to_string(),
            reason,
        };
        let spec = SpecReference::try_from(given.trim()).map_err(|e| bad(e.to_string()))?;
        let mut registry = spec.registry().to_string();
        let mut repository = spec.repository().to_string();
        if DOCKER_HUB_ALIASES.contains(&registry.as_str()) {
            registry = DOCKER_HUB.to_string();
        }
        // The grammar lets a first component that is no registry through in capitals.
        if repository.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(bad(format!(
                "repository {repository:?} has capitals; repository names are lowercase"
            )));
        }
        if registry == DOCKER_HUB && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        let digest = spec
            .digest()
            .map(digest::parse)
            .transpose()
            .map_err(|e| bad(e.reason))?;
        Ok(Self {
            registry,
            repository,
            tag: spec.tag().map(str::to_string),
            digest,
        })
    }

    /// The registry as named in references (`docker.io`, `127.0.0.1:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host (and port) the registry API answers on: Docker Hub's is `registry-1.docker.io`.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// The repository (`library/busybox`, `team/app`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if one was given (or implied: `latest` when neither tag nor digest was).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if one was given.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to ask the registry for: the digest when there is one (it pins the content), else
    /// the tag.
    pub fn object(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// True when the registry is this machine (`localhost`, `127.0.0.0/8`, `::1`): such a
    /// registry is spoken to over plain HTTP, as docker does.
    pub fn is_loopback(&self) -> bool {
        let host = match self.registry.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or(rest),
            None => self.registry.split(':').next().unwrap_or(&self.registry),
        };
        host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// The same repository at another tag or digest.
    pub fn with_object(&self, tag: Option<&str>, digest: Option<&Digest>) -> Self {
        Self {
            tag: tag.map(str::to_string),
            digest: digest.cloned(),
            ..self.clone()
        }
    }

    /// The name written to a layout's index: the normal form (`busybox:1.36`,
    /// `127.0.0.1:5000/team/app:v1`, `busybox@sha256:…`), which `OciLayout::resolve` matches
    /// whichever way the user writes it.
    pub fn ref_name(&self) -> String {
        normalize(&self.to_string())
    }
}

impl fmt::Display for Reference {
    /// The full form: `docker.io/library/busybox:1.36`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(given: &str) -> (String, String, String, Option<String>, Option<String>) {
        let r = Reference::parse(given).unwrap();
        (
            r.registry().to_string(),
            r.api_host().to_string(),
            r.repository().to_string(),
            r.tag().map(str::to_string),
            r.digest().map(|d| d.to_string()),
        )
    }

    #[test]
    fn docker_hub_defaults_apply() {
        let hub = |repo: &str, tag: &str| {
            (
                "docker.io".to_string(),
                "registry-1.docker.io".to_string(),
                repo.to_string(),
                Some(tag.to_string()),
                None,
            )
        };
        assert_eq!(parts("busybox"), hub("library/busybox", "latest"));
        assert_eq!(parts("busybox:1.36"), hub("library/busybox", "1.36"));
        assert_eq!(
            parts("library/busybox:1.36"),
            hub("library/busybox", "1.36")
        );
        assert_eq!(parts("docker.io/busybox"), hub("library/busybox", "latest"));
        assert_eq!(
            parts("index.docker.io/busybox"),
            hub("library/busybox", "latest")
        );
        assert_eq!(
            parts("registry-1.docker.io/busybox"),
            hub("library/busybox", "latest")
        );
        assert_eq!(parts("someone/app:2"), hub("someone/app", "2"));
    }

    #[test]
    fn registries_ports_and_digests_parse() {
        let hex = "ab".repeat(32);
        let r = Reference::parse(&format!("127.0.0.1:5000/team/app@sha256:{hex}")).unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.api_host(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "team/app");
        assert_eq!(r.tag(), None);
        assert_eq!(r.object(), format!("sha256:{hex}"));
        assert!(r.is_loopback());
        assert_eq!(
            r.ref_name(),
            format!("127.0.0.1:5000/team/app@sha256:{hex}")
        );

        let r = Reference::parse("localhost:5000/app:v1").unwrap();
        assert_eq!((r.registry(), r.repository()), ("localhost:5000", "app"));
        assert!(r.is_loopback());
        assert!(!Reference::parse("ghcr.io/o/app").unwrap().is_loopback());

        let both = Reference::parse(&format!("busybox:1.36@sha256:{hex}")).unwrap();
        assert_eq!(both.tag(), Some("1.36"));
        assert_eq!(both.object(), format!("sha256:{hex}"), "the digest pins");
    }

    #[test]
    fn ref_names_are_the_layouts_normal_form() {
        assert_eq!(
            Reference::parse("busybox").unwrap().ref_name(),
            "busybox:latest"
        );
        assert_eq!(
            Reference::parse("docker.io/library/busybox:1.36")
                .unwrap()
                .ref_name(),
            "busybox:1.36"
        );
        assert_eq!(
            Reference::parse("someone/app").unwrap().ref_name(),
            "someone/app:latest"
        );
        let full = Reference::parse("busybox:1.36").unwrap();
        assert_eq!(full.to_string(), "docker.io/library/busybox:1.36");
    }

    #[test]
    fn bad_references_are_refused_with_the_reason() {
        for bad in ["", "UPPER/case", "app:", "app@sha256:abc", "a b"] {
            let err = Reference::parse(bad).unwrap_err().to_string();
            assert!(err.contains("is not an image reference"), "{bad:?}: {err}");
        }
        let sha512 = format!("app@sha512:{}", "ab".repeat(64));
        assert!(Reference::parse(&sha512)
            .unwrap_err()
            .to_string()
            .contains("sha256"));
    }
}
