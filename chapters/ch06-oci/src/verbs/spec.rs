//! `spec [--bundle DIR] [--rootless]`: write a starting `config.json`, as `runc spec` does.

use std::path::Path;

use oci_spec::runtime::{
    LinuxBuilder, LinuxDeviceCgroupBuilder, LinuxResourcesBuilder, ProcessBuilder, Spec,
};

use crate::OciError;

// ANCHOR: spec
/// The default config: oci-spec's defaults (runc's namespaces, mounts, capabilities, masked
/// paths), running `sh` without a terminal, hostname `boxlab`, every device denied but the
/// standard ones. `rootless` adds a user namespace mapping the caller to root and drops what
/// needs root on the host (the network namespace, the cgroup resources).
pub fn default_spec(rootless: bool) -> Spec {
    let mut spec = if rootless {
        Spec::rootless(
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    } else {
        Spec::default()
    };
    spec.set_hostname(Some("boxlab".into()));
    let process = spec.process().clone().unwrap_or_default();
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(process.user().clone())
        .args(vec!["sh".to_string()])
        .env(process.env().clone().unwrap_or_default())
        .cwd(process.cwd().clone())
        .capabilities(process.capabilities().clone().unwrap_or_default())
        .rlimits(process.rlimits().clone().unwrap_or_default())
        .no_new_privileges(true)
        .build()
        .unwrap_or(process);
    spec.set_process(Some(process));
    if !rootless {
        let deny_all = LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .ok();
        let resources = LinuxResourcesBuilder::default()
            .devices(deny_all.into_iter().collect::<Vec<_>>())
            .build()
            .ok();
        let linux = spec
            .linux()
            .clone()
            .unwrap_or_else(|| LinuxBuilder::default().build().unwrap_or_default());
        let mut linux = linux;
        linux.set_resources(resources);
        spec.set_linux(Some(linux));
    }
    spec
}
// ANCHOR_END: spec

/// Writes `<bundle>/config.json`; refuses to overwrite one.
pub fn write_spec(bundle: &Path, rootless: bool) -> Result<(), OciError> {
    let path = bundle.join("config.json");
    if path.exists() {
        return Err(OciError::Config {
            path,
            reason: "it exists already: remove it first".into(),
        });
    }
    let text =
        serde_json::to_string_pretty(&default_spec(rootless)).map_err(|e| OciError::Config {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    std::fs::write(&path, text + "\n").map_err(|e| OciError::io("writing", &path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_passes_our_own_checks() {
        let spec = default_spec(false);
        crate::config::check_version(spec.version()).unwrap();
        assert_eq!(spec.process().as_ref().unwrap().terminal(), Some(false));
        assert_eq!(spec.root().as_ref().unwrap().path(), Path::new("rootfs"));
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["linux"]["resources"]["devices"][0]["allow"], false);
        let rootless = serde_json::to_value(default_spec(true)).unwrap();
        assert!(rootless["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "user"));
    }
}
