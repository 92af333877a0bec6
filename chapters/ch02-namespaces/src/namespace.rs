//! The namespace kinds, their names, their clone flags, and whether this kernel has them.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use nix::sched::CloneFlags;

use crate::NamespaceError;

// ANCHOR: kinds
/// One kind of Linux namespace: each gives the process its own copy of one global resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Namespace {
    /// User and group ids: root inside can be an ordinary user outside.
    User,
    /// Mount table: mounts made inside are invisible outside.
    Mount,
    /// Hostname and NIS domain name.
    Uts,
    /// System V IPC objects and POSIX message queues.
    Ipc,
    /// Network devices, addresses, routes, ports, firewall.
    Net,
    /// Process ids: the first process inside is PID 1.
    Pid,
    /// The view of the cgroup tree: the process's own cgroup becomes `/`.
    Cgroup,
    /// CLOCK_MONOTONIC and CLOCK_BOOTTIME offsets.
    Time,
}

impl Namespace {
    /// The flag that `unshare(2)` and `clone(2)` take for this namespace.
    pub fn clone_flag(self) -> CloneFlags {
        match self {
            Namespace::User => CloneFlags::CLONE_NEWUSER,
            Namespace::Mount => CloneFlags::CLONE_NEWNS,
            Namespace::Uts => CloneFlags::CLONE_NEWUTS,
            Namespace::Ipc => CloneFlags::CLONE_NEWIPC,
            Namespace::Net => CloneFlags::CLONE_NEWNET,
            Namespace::Pid => CloneFlags::CLONE_NEWPID,
            Namespace::Cgroup => CloneFlags::CLONE_NEWCGROUP,
            // nix has no constant for it yet; the kernel's value is CLONE_NEWTIME = 0x80.
            Namespace::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
        }
    }
    // ANCHOR_END: kinds

    /// The name of its clone flag, for messages.
    pub fn flag_name(self) -> &'static str {
        match self {
            Namespace::User => "CLONE_NEWUSER",
            Namespace::Mount => "CLONE_NEWNS",
            Namespace::Uts => "CLONE_NEWUTS",
            Namespace::Ipc => "CLONE_NEWIPC",
            Namespace::Net => "CLONE_NEWNET",
            Namespace::Pid => "CLONE_NEWPID",
            Namespace::Cgroup => "CLONE_NEWCGROUP",
            Namespace::Time => "CLONE_NEWTIME",
        }
    }

    /// Every kind, in the order the runtime creates them.
    pub const ALL: [Namespace; 8] = [
        Namespace::User,
        Namespace::Mount,
        Namespace::Uts,
        Namespace::Ipc,
        Namespace::Net,
        Namespace::Pid,
        Namespace::Cgroup,
        Namespace::Time,
    ];

    /// The six of the course's namespace table: PID, NET, MNT, UTS, IPC, USER.
    pub const COURSE_TABLE: [Namespace; 6] = [
        Namespace::User,
        Namespace::Mount,
        Namespace::Uts,
        Namespace::Ipc,
        Namespace::Net,
        Namespace::Pid,
    ];

    /// What `docker run` creates by default: all of the table but USER, plus CGROUP.
    pub const DOCKER_DEFAULTS: [Namespace; 6] = [
        Namespace::Mount,
        Namespace::Uts,
        Namespace::Ipc,
        Namespace::Net,
        Namespace::Pid,
        Namespace::Cgroup,
    ];

    /// The short name used on the command line and in `/proc/<pid>/ns/<name>`.
    pub fn name(self) -> &'static str {
        match self {
            Namespace::User => "user",
            Namespace::Mount => "mnt",
            Namespace::Uts => "uts",
            Namespace::Ipc => "ipc",
            Namespace::Net => "net",
            Namespace::Pid => "pid",
            Namespace::Cgroup => "cgroup",
            Namespace::Time => "time",
        }
    }

    /// Whether the running kernel has this kind of namespace (it shows up in `/proc/self/ns`).
    pub fn supported(self) -> bool {
        Path::new("/proc/self/ns").join(self.name()).exists()
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Namespace {
    type Err = NamespaceError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let wanted = name.trim().to_ascii_lowercase();
        let alias = match wanted.as_str() {
            "mount" | "mnt" => Some(Namespace::Mount),
            "network" => Some(Namespace::Net),
            _ => None,
        };
        alias
            .or_else(|| Namespace::ALL.into_iter().find(|ns| ns.name() == wanted))
            .ok_or_else(|| NamespaceError::UnknownNamespace {
                name: name.to_string(),
            })
    }
}

/// Parses a comma-separated list such as `pid,mnt,uts` (duplicates are ignored).
pub fn parse_list(list: &str) -> Result<Vec<Namespace>, NamespaceError> {
    let mut kinds = list
        .split(',')
        .filter(|word| !word.trim().is_empty())
        .map(Namespace::from_str)
        .collect::<Result<Vec<_>, _>>()?;
    kinds.sort();
    kinds.dedup();
    Ok(kinds)
}

/// Combines the clone flags of several kinds.
pub fn flags_of(kinds: impl IntoIterator<Item = Namespace>) -> CloneFlags {
    kinds
        .into_iter()
        .fold(CloneFlags::empty(), |flags, ns| flags | ns.clone_flag())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_aliases() {
        assert_eq!(
            parse_list("pid, mount,network,uts,pid").unwrap(),
            vec![
                Namespace::Mount,
                Namespace::Uts,
                Namespace::Net,
                Namespace::Pid
            ]
        );
        assert_eq!(parse_list("").unwrap(), vec![]);
    }

    #[test]
    fn unknown_name_is_a_clear_error() {
        let err = parse_list("pid,bogus").unwrap_err().to_string();
        assert!(err.contains("'bogus'"), "{err}");
        assert!(
            err.contains("user, mnt, uts, ipc, net, pid, cgroup, time"),
            "{err}"
        );
    }

    #[test]
    fn flags_match_the_kernel_constants() {
        assert_eq!(
            flags_of([Namespace::Pid, Namespace::Net]).bits(),
            libc::CLONE_NEWPID | libc::CLONE_NEWNET
        );
        assert_eq!(Namespace::Time.clone_flag().bits(), 0x80);
    }
}
