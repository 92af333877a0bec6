//! One device rule — `c 195:* rwm` — and the standard set every container gets.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use nix::sys::stat::{major, minor, stat, SFlag};

use crate::devices::DeviceError;

// ANCHOR: rule
/// Which kind of device node a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// `c`: character devices (`/dev/null`, `/dev/nvidia0`).
    Char,
    /// `b`: block devices (`/dev/sda`).
    Block,
    /// `a`: every device, of both kinds, any number (only `a *:* rwm` makes sense).
    All,
}

/// What may be done with a device: a set of `r` (open for reading), `w` (open for writing) and
/// `m` (`mknod` a node for it). The bits are the ones the kernel hands a device eBPF program
/// (`BPF_DEVCG_ACC_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Access(u8);

impl Access {
    /// `m`: create a node with `mknod(2)` (`BPF_DEVCG_ACC_MKNOD`).
    pub const MKNOD: Access = Access(1);
    /// `r`: open for reading (`BPF_DEVCG_ACC_READ`).
    pub const READ: Access = Access(2);
    /// `w`: open for writing (`BPF_DEVCG_ACC_WRITE`).
    pub const WRITE: Access = Access(4);
    /// `rwm`: everything.
    pub const ALL: Access = Access(7);

    /// The access with these `BPF_DEVCG_ACC_*` bits; `None` for none or unknown bits.
    pub fn from_bits(bits: u8) -> Option<Access> {
        (1..=7).contains(&bits).then_some(Access(bits))
    }

    /// The bits, as the kernel's device program context encodes them.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// True if every access in `other` is in `self`.
    pub fn contains(self, other: Access) -> bool {
        self.0 & other.0 == other.0
    }

    /// True if some access in `other` is in `self`.
    pub fn intersects(self, other: Access) -> bool {
        self.0 & other.0 != 0
    }
}

impl std::ops::BitOr for Access {
    type Output = Access;
    fn bitor(self, other: Access) -> Access {
        Access(self.0 | other.0)
    }
}

/// One line of a devices allow/deny list: allow (or deny) `access` to devices of `kind` with
/// this major and minor number (`None` is the wildcard `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceRule {
    pub allow: bool,
    pub kind: DeviceKind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: Access,
}
// ANCHOR_END: rule

impl DeviceRule {
    /// Allows `access` to the character device `major:minor` (`None` = any).
    pub fn allow_char(major: Option<u32>, minor: Option<u32>, access: Access) -> Self {
        DeviceRule {
            allow: true,
            kind: DeviceKind::Char,
            major,
            minor,
            access,
        }
    }

    /// Allows `access` to the block device `major:minor` (`None` = any).
    pub fn allow_block(major: Option<u32>, minor: Option<u32>, access: Access) -> Self {
        DeviceRule {
            kind: DeviceKind::Block,
            ..DeviceRule::allow_char(major, minor, access)
        }
    }

    /// `a *:* rwm`, allowed or denied: every device.
    pub fn all(allow: bool) -> Self {
        DeviceRule {
            allow,
            kind: DeviceKind::All,
            major: None,
            minor: None,
            access: Access::ALL,
        }
    }

    /// Whether this rule decides an access to device `kind` `major:minor` (`kind` is `Char` or
    /// `Block`), by the same test the generated eBPF program makes. An access may ask for
    /// several things at once (`open(O_RDWR)` asks for `rw`): an allow rule matches only if it
    /// grants all of them, a deny rule as soon as it denies one of them.
    pub fn matches(&self, kind: DeviceKind, major: u32, minor: u32, access: Access) -> bool {
        (self.kind == DeviceKind::All || self.kind == kind)
            && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
            && if self.allow {
                self.access.contains(access)
            } else {
                self.access.intersects(access)
            }
    }
}

/// What a rule list decides for one access: the **last** matching rule wins, and with none the
/// access is denied. That is what the v1 files do when the list is written in order after
/// `a` to `devices.deny`, and what the eBPF program does (it tests the rules last to first and
/// returns at the first match).
pub fn decide(
    rules: &[DeviceRule],
    kind: DeviceKind,
    major: u32,
    minor: u32,
    access: Access,
) -> bool {
    rules
        .iter()
        .rev()
        .find(|r| r.matches(kind, major, minor, access))
        .is_some_and(|r| r.allow)
}

// ANCHOR: standard
/// The devices every container may use, whatever else it is given: runc's default list
/// (`libcontainer/specconv.AllowedDevices`, runc 1.2, which dropped `/dev/net/tun`):
///
/// | rule          | device                                             |
/// |---------------|----------------------------------------------------|
/// | `c *:* m`     | `mknod` of any character device (opening it is another matter) |
/// | `b *:* m`     | `mknod` of any block device                        |
/// | `c 1:3 rwm`   | `/dev/null`                                        |
/// | `c 1:8 rwm`   | `/dev/random`                                      |
/// | `c 1:7 rwm`   | `/dev/full`                                        |
/// | `c 5:0 rwm`   | `/dev/tty`                                         |
/// | `c 1:5 rwm`   | `/dev/zero`                                        |
/// | `c 1:9 rwm`   | `/dev/urandom`                                     |
/// | `c 136:* rwm` | `/dev/pts/*`: the terminals of the container's devpts (and `/dev/console`, which runtimes bind-mount from one of them) |
/// | `c 5:2 rwm`   | `/dev/ptmx`, which makes new ones                  |
pub fn standard_rules() -> Vec<DeviceRule> {
    let rwm = Access::ALL;
    vec![
        DeviceRule::allow_char(None, None, Access::MKNOD),
        DeviceRule::allow_block(None, None, Access::MKNOD),
        DeviceRule::allow_char(Some(1), Some(3), rwm),
        DeviceRule::allow_char(Some(1), Some(8), rwm),
        DeviceRule::allow_char(Some(1), Some(7), rwm),
        DeviceRule::allow_char(Some(5), Some(0), rwm),
        DeviceRule::allow_char(Some(1), Some(5), rwm),
        DeviceRule::allow_char(Some(1), Some(9), rwm),
        DeviceRule::allow_char(Some(136), None, rwm),
        DeviceRule::allow_char(Some(5), Some(2), rwm),
    ]
}
// ANCHOR_END: standard

/// An allow rule (`rwm`) for exactly the device behind the node at `path`, whatever its
/// numbers: GPUs are `c 195:N` and `/dev/nvidiactl` is `c 195:255`, but `/dev/nvidia-uvm` gets a
/// major assigned when its module loads, so the numbers are read from the node itself (`stat`'s
/// `st_rdev`), never assumed.
pub fn allow_device_node(path: &Path) -> Result<DeviceRule, DeviceError> {
    let st = stat(path).map_err(|errno| DeviceError::NotADevice {
        path: path.to_path_buf(),
        reason: format!("stat failed: {errno}"),
    })?;
    let kind = match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
        SFlag::S_IFCHR => DeviceKind::Char,
        SFlag::S_IFBLK => DeviceKind::Block,
        _ => {
            return Err(DeviceError::NotADevice {
                path: path.to_path_buf(),
                reason: "it is not a character or block device node".into(),
            })
        }
    };
    let rdev = st.st_rdev;
    Ok(DeviceRule {
        allow: true,
        kind,
        major: Some(major(rdev) as u32),
        minor: Some(minor(rdev) as u32),
        access: Access::ALL,
    })
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, c) in [
            (Access::READ, 'r'),
            (Access::WRITE, 'w'),
            (Access::MKNOD, 'm'),
        ] {
            if self.contains(bit) {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceKind::Char => "c",
            DeviceKind::Block => "b",
            DeviceKind::All => "a",
        })
    }
}

/// The v1 syntax without the allow/deny part, which is the file it is written to:
/// `c 195:* rwm`.
impl fmt::Display for DeviceRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let number = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        write!(
            f,
            "{} {}:{} {}",
            self.kind,
            number(self.major),
            number(self.minor),
            self.access
        )
    }
}

impl FromStr for Access {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("the access is empty: give some of r, w, m".into());
        }
        let mut access = Access(0);
        for c in text.chars() {
            let bit = match c {
                'r' => Access::READ,
                'w' => Access::WRITE,
                'm' => Access::MKNOD,
                _ => return Err(format!("'{c}' is not an access: use r, w and m")),
            };
            if access.contains(bit) {
                return Err(format!("'{c}' is given twice"));
            }
            access = access | bit;
        }
        Ok(access)
    }
}

impl DeviceRule {
    /// Parses one v1 line (`c 195:* rwm`, `b 8:0 r`, `a *:* rwm` or just `a`) as an allow rule
    /// if `allow`, a deny rule otherwise.
    pub fn parse(line: &str, allow: bool) -> Result<Self, DeviceError> {
        let bad = |reason: String| DeviceError::BadRule {
            rule: line.to_string(),
            reason,
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        if words == ["a"] {
            return Ok(DeviceRule::all(allow));
        }
        let [kind, numbers, access] = words[..] else {
            return Err(bad(
                "expected 'TYPE MAJOR:MINOR ACCESS', such as 'c 195:* rwm' (or just 'a')".into(),
            ));
        };
        let kind = match kind {
            "c" => DeviceKind::Char,
            "b" => DeviceKind::Block,
            "a" => DeviceKind::All,
            _ => return Err(bad(format!("'{kind}' is not a type: use c, b or a"))),
        };
        let (major, minor) = numbers
            .split_once(':')
            .ok_or_else(|| bad(format!("'{numbers}' is not MAJOR:MINOR")))?;
        let number = |n: &str, what: &str, limit: u32| -> Result<Option<u32>, DeviceError> {
            if n == "*" {
                return Ok(None);
            }
            match n.parse::<u32>() {
                Ok(v) if v <= limit => Ok(Some(v)),
                _ => Err(bad(format!(
                    "the {what} number '{n}' is not '*' or a number up to {limit}"
                ))),
            }
        };
        // The kernel's dev_t has 12 bits of major and 20 of minor.
        let major = number(major, "major", (1 << 12) - 1)?;
        let minor = number(minor, "minor", (1 << 20) - 1)?;
        let access: Access = access.parse().map_err(bad)?;
        let rule = DeviceRule {
            allow,
            kind,
            major,
            minor,
            access,
        };
        if kind == DeviceKind::All && rule != DeviceRule::all(allow) {
            return Err(bad(
                "an 'a' rule always means every device ('a *:* rwm'): the v1 kernel ignores numbers and access on it".into(),
            ));
        }
        Ok(rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_syntax_round_trips() {
        for line in ["c 195:* rwm", "b 8:0 r", "c *:* m", "a *:* rwm", "c 1:3 wm"] {
            assert_eq!(DeviceRule::parse(line, true).unwrap().to_string(), line);
        }
        assert_eq!(
            DeviceRule::parse("a", false).unwrap(),
            DeviceRule::all(false)
        );
        assert_eq!(
            DeviceRule::parse("c 1:3 mwr", true).unwrap().to_string(),
            "c 1:3 rwm"
        );
    }

    #[test]
    fn bad_rules_say_why() {
        for (line, why) in [
            ("x 1:3 rwm", "not a type"),
            ("c 1 rwm", "MAJOR:MINOR"),
            ("c 1:3", "expected"),
            ("c 1:3 rwx", "'x' is not an access"),
            ("c 1:3 rr", "twice"),
            ("c 4096:0 r", "major number"),
            ("c 1:-1 r", "minor number"),
            ("a 1:3 r", "every device"),
        ] {
            let err = DeviceRule::parse(line, true).unwrap_err().to_string();
            assert!(err.contains(line) && err.contains(why), "{line}: {err}");
        }
    }

    #[test]
    fn standard_set_is_runcs() {
        let lines: Vec<String> = standard_rules().iter().map(|r| r.to_string()).collect();
        assert_eq!(
            lines,
            [
                "c *:* m",
                "b *:* m",
                "c 1:3 rwm",
                "c 1:8 rwm",
                "c 1:7 rwm",
                "c 5:0 rwm",
                "c 1:5 rwm",
                "c 1:9 rwm",
                "c 136:* rwm",
                "c 5:2 rwm"
            ]
        );
        assert!(standard_rules().iter().all(|r| r.allow));
    }

    #[test]
    fn last_matching_rule_decides_and_nothing_matching_denies() {
        let rules = standard_rules();
        let (c, r, rw, m) = (
            DeviceKind::Char,
            Access::READ,
            Access::READ | Access::WRITE,
            Access::MKNOD,
        );
        assert!(decide(&rules, c, 1, 3, rw));
        assert!(decide(&rules, c, 136, 7, r));
        assert!(!decide(&rules, c, 195, 0, r), "a GPU is not standard");
        assert!(decide(&rules, c, 195, 0, m), "but mknod is");
        assert!(!decide(&rules, DeviceKind::Block, 8, 0, r));
        let mut more = rules.clone();
        more.push(DeviceRule {
            allow: false,
            ..DeviceRule::allow_char(Some(1), Some(3), Access::WRITE)
        });
        assert!(decide(&more, c, 1, 3, r), "the deny rule covers only w");
        assert!(
            !decide(&more, c, 1, 3, rw),
            "a later deny wins, for any part of an access"
        );
        assert!(!decide(&more, c, 1, 3, Access::WRITE));
    }

    #[test]
    fn a_device_node_gives_its_own_numbers() {
        let rule = allow_device_node(Path::new("/dev/null")).unwrap();
        assert_eq!(rule.to_string(), "c 1:3 rwm");
        let err = allow_device_node(&Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .unwrap_err();
        assert!(
            err.to_string().contains("not a character or block device"),
            "{err}"
        );
        let err = allow_device_node(Path::new("/dev/boxlab-none")).unwrap_err();
        assert!(err.to_string().contains("ENOENT"), "{err}");
    }
}
