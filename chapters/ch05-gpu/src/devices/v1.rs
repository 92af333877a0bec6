//! cgroup v1: the `devices` hierarchy's `devices.deny` and `devices.allow` files.
//!
//! A v1 devices cgroup holds a default (allow or deny) and a list of exceptions, shown in
//! `devices.list`. Writing `a` to `devices.deny` makes the default "deny" and empties the list;
//! each line written to `devices.allow` then adds an exception (`c 195:* rwm`). A line written to
//! `devices.deny` afterwards takes away what an *identical* allow line gave (it does not punch a
//! hole into a wider one: `c 1:5 rwm` denied after `c 1:* rwm` allowed leaves `/dev/zero` open
//! in v1, while the eBPF program would deny it). Allow lists — all boxlab writes — mean the same
//! in both.
//!
//! The kernel also keeps the hierarchy consistent: a cgroup can never allow what its parent
//! denies (the write fails with `EPERM`), so a container's list is always within its parent's.
//! The root cgroup allows everything (`a *:* rwm`).

use std::path::Path;

use ch03_cgroups::files::{write, Written};

use crate::devices::{DeviceError, DeviceRule};

/// The v1 control file a rule is written to.
pub fn file_for(rule: &DeviceRule) -> &'static str {
    if rule.allow {
        "devices.allow"
    } else {
        "devices.deny"
    }
}

/// The writes that give a cgroup exactly `rules`, in order: first `a` to `devices.deny`.
pub fn lines(rules: &[DeviceRule]) -> Vec<(&'static str, String)> {
    std::iter::once(("devices.deny", "a".to_string()))
        .chain(rules.iter().map(|r| (file_for(r), r.to_string())))
        .collect()
}

// ANCHOR: v1_write
/// Writes `rules` into the v1 devices cgroup directory `dir`: deny everything, then one
/// `write(2)` per rule (the kernel takes one rule per write). Returns each file written.
pub fn write_rules(dir: &Path, rules: &[DeviceRule]) -> Result<Vec<Written>, DeviceError> {
    lines(rules)
        .into_iter()
        .map(|(file, line)| {
            write(dir, file, line).map_err(|source| DeviceError::V1 {
                dir: dir.to_path_buf(),
                source,
            })
        })
        .collect()
}
// ANCHOR_END: v1_write

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_all_first_then_one_line_per_rule() {
        let rules = [
            DeviceRule::parse("c 1:3 rwm", true).unwrap(),
            DeviceRule::parse("c 195:* rwm", true).unwrap(),
            DeviceRule::parse("c 1:3 w", false).unwrap(),
        ];
        assert_eq!(
            lines(&rules),
            [
                ("devices.deny", "a".to_string()),
                ("devices.allow", "c 1:3 rwm".to_string()),
                ("devices.allow", "c 195:* rwm".to_string()),
                ("devices.deny", "c 1:3 w".to_string()),
            ]
        );
    }

    #[test]
    fn a_missing_directory_says_which_file() {
        let err = write_rules(Path::new("/nonexistent-boxlab"), &[]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("/nonexistent-boxlab/devices.deny") && text.contains("ENOENT"),
            "{text}"
        );
    }
}
