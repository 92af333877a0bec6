//! User and group id maps for a user namespace: who is who inside versus outside.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use nix::errno::Errno;
use nix::unistd::Pid;

use crate::NamespaceError;

/// One line of `/proc/<pid>/uid_map` or `gid_map`: ids `inside..inside+count` in the namespace
/// are ids `outside..outside+count` on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMap {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

impl IdMap {
    /// Maps one outside id to root inside: what rootless containers do with the caller's id.
    pub fn root_is(outside: u32) -> Self {
        IdMap {
            inside: 0,
            outside,
            count: 1,
        }
    }

    /// Parses `INSIDE:OUTSIDE:COUNT`, `kind` naming "uid" or "gid" for messages.
    pub fn parse(kind: &'static str, spec: &str) -> Result<Self, NamespaceError> {
        let invalid = |reason: &str| NamespaceError::InvalidIdMap {
            kind,
            spec: spec.to_string(),
            reason: reason.into(),
        };
        let fields: Vec<&str> = spec.trim().split(':').collect();
        let [inside, outside, count] = fields.as_slice() else {
            return Err(invalid("it needs exactly three numbers separated by ':'"));
        };
        let number = |field: &str, what: &str| {
            u32::from_str(field.trim()).map_err(|_| {
                invalid(&format!(
                    "{what} '{field}' is not a number from 0 to 4294967295"
                ))
            })
        };
        let map = IdMap {
            inside: number(inside, "INSIDE")?,
            outside: number(outside, "OUTSIDE")?,
            count: number(count, "COUNT")?,
        };
        if map.count == 0 {
            return Err(invalid("COUNT must be at least 1"));
        }
        if map.inside.checked_add(map.count - 1).is_none()
            || map.outside.checked_add(map.count - 1).is_none()
        {
            return Err(invalid("the range runs past the largest id, 4294967295"));
        }
        Ok(map)
    }

    /// Parses a comma-separated list of maps.
    pub fn parse_list(kind: &'static str, list: &str) -> Result<Vec<Self>, NamespaceError> {
        list.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|spec| IdMap::parse(kind, spec))
            .collect()
    }
}

impl fmt::Display for IdMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.inside, self.outside, self.count)
    }
}

// ANCHOR: write_maps
/// Writes the uid and gid maps of the user namespace that process `pid` has just created.
///
/// Only a process outside the namespace may write them, and only once. Without root on the host
/// the kernel accepts a single line mapping the caller's own id, and only after `setgroups` is
/// set to `deny` (otherwise a process could drop a group that was denying it access: CVE-2014-8989).
pub fn write_id_maps(
    pid: Pid,
    uid_maps: &[IdMap],
    gid_maps: &[IdMap],
    deny_setgroups: bool,
) -> Result<(), NamespaceError> {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    if deny_setgroups {
        write_proc_file(proc_dir.join("setgroups"), "deny")?;
    }
    write_proc_file(proc_dir.join("uid_map"), &lines(uid_maps))?;
    write_proc_file(proc_dir.join("gid_map"), &lines(gid_maps))?;
    Ok(())
}
// ANCHOR_END: write_maps

/// Reads an id map as the kernel shows it (`/proc/<pid>/uid_map` or `gid_map`): one
/// `INSIDE OUTSIDE COUNT` line per range, the numbers padded with spaces. Seen from inside the
/// namespace, INSIDE is the id there; an empty file is a namespace whose map is not written yet.
pub fn read_id_maps(file: &Path) -> Result<Vec<IdMap>, NamespaceError> {
    let unreadable = |reason: String| NamespaceError::IdMapUnreadable {
        file: file.to_path_buf(),
        reason,
    };
    let text = fs::read_to_string(file).map_err(|e| unreadable(e.to_string()))?;
    parse_proc_lines(&text).map_err(unreadable)
}

fn parse_proc_lines(text: &str) -> Result<Vec<IdMap>, String> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let numbers: Vec<u32> = line
                .split_whitespace()
                .map(u32::from_str)
                .collect::<Result<_, _>>()
                .map_err(|_| format!("line '{}' holds something that is not an id", line.trim()))?;
            match numbers[..] {
                [inside, outside, count] => Ok(IdMap {
                    inside,
                    outside,
                    count,
                }),
                _ => Err(format!(
                    "line '{}' does not have three numbers (INSIDE OUTSIDE COUNT)",
                    line.trim()
                )),
            }
        })
        .collect()
}

fn lines(maps: &[IdMap]) -> String {
    maps.iter().map(|m| format!("{m}\n")).collect()
}

fn write_proc_file(file: PathBuf, content: &str) -> Result<(), NamespaceError> {
    // The kernel wants the whole map in one write(2); fs::write does exactly one for short data.
    fs::write(&file, content).map_err(|err| {
        let errno = Errno::from_raw(err.raw_os_error().unwrap_or(0));
        let hint = match errno {
            Errno::EPERM => "without root only your own id may be mapped, once; with root every outside id must exist and ranges must not overlap",
            Errno::EINVAL => "ranges overlap, are empty, or there are more than 340 lines",
            _ => "see user_namespaces(7)",
        };
        NamespaceError::IdMapRejected { file: file.clone(), content: content.trim_end().replace('\n', ", "), errno, hint }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_range() {
        assert_eq!(
            IdMap::parse("uid", "0:100000:65536").unwrap(),
            IdMap {
                inside: 0,
                outside: 100000,
                count: 65536
            }
        );
        assert_eq!(
            IdMap::parse_list("gid", "0:1000:1, 1:100000:65535")
                .unwrap()
                .len(),
            2
        );
        assert_eq!(IdMap::root_is(1000).to_string(), "0 1000 1");
    }

    #[test]
    fn reads_the_kernels_map_format() {
        let maps = parse_proc_lines(
            "         0       1000          1\n         1     100000      65536\n",
        )
        .unwrap();
        assert_eq!(
            maps,
            vec![
                IdMap::root_is(1000),
                IdMap {
                    inside: 1,
                    outside: 100000,
                    count: 65536
                }
            ]
        );
        assert_eq!(parse_proc_lines("").unwrap(), vec![]);
        let err = parse_proc_lines("0 1000\n").unwrap_err();
        assert!(
            err.contains("'0 1000'") && err.contains("three numbers"),
            "{err}"
        );
        let err = parse_proc_lines("0 x 1\n").unwrap_err();
        assert!(err.contains("'0 x 1'"), "{err}");
    }

    #[test]
    fn an_unreadable_map_is_an_error_naming_the_file() {
        let err = read_id_maps(Path::new("/proc/self/no_such_map"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/proc/self/no_such_map"), "{err}");
        // Every user namespace this test can run in maps someone; the initial one maps all.
        assert!(!read_id_maps(Path::new("/proc/self/uid_map"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn rejects_malformed_maps_with_the_reason() {
        for (spec, reason) in [
            ("0:1000", "exactly three numbers"),
            ("0:x:1", "OUTSIDE 'x' is not a number"),
            ("0:1000:0", "COUNT must be at least 1"),
            ("-1:0:1", "INSIDE '-1'"),
            ("4294967295:0:2", "runs past the largest id"),
        ] {
            let err = IdMap::parse("uid", spec).unwrap_err().to_string();
            assert!(err.contains(reason), "{spec}: {err}");
            assert!(err.contains(&format!("'{spec}'")), "{spec}: {err}");
        }
    }
}
