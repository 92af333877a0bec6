//! A hostile corpus: crafted archives that try to write outside the target. The `tar` crate's
//! `Builder` refuses most of these names, so the headers are written by hand (raw GNU headers,
//! `././@LongLink` records for long names) — which is what an attacker does too.
//!
//! Every case unpacks into `<scratch>/x/y/target`, next to `<scratch>/outside` with a sentinel
//! file, and checks afterwards that nothing in the scratch directory outside the target changed
//! and that the host files the attack aimed at (`/etc/...`) are untouched. Each case then states
//! its outcome: **refused** (an error naming the entry) or **placed** (written safely inside).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use ch04_rootfs::unpack::{unpack_layer_from, UnpackError, UnpackOptions, UnpackReport};
use labkit::ScratchDir;
use tar::{EntryType, Header};

/// One crafted entry.
enum Kind<'a> {
    File(&'a str),
    Dir,
    Symlink(&'a str),
    HardLink(&'a str),
    Char(u32, u32),
}

/// Writes an archive byte by byte: names go straight into the header fields, unchecked.
fn raw_tar(entries: &[(&str, Kind<'_>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind) in entries {
        let (entry_type, data, link): (EntryType, &[u8], &str) = match kind {
            Kind::File(data) => (EntryType::Regular, data.as_bytes(), ""),
            Kind::Dir => (EntryType::Directory, b"", ""),
            Kind::Symlink(to) => (EntryType::Symlink, b"", to),
            Kind::HardLink(to) => (EntryType::Link, b"", to),
            Kind::Char(..) => (EntryType::Char, b"", ""),
        };
        if name.len() > 100 {
            long_record(&mut out, EntryType::GNULongName, name);
        }
        if link.len() > 100 {
            long_record(&mut out, EntryType::GNULongLink, link);
        }
        let mut h = Header::new_gnu();
        h.set_entry_type(entry_type);
        h.set_mode(if entry_type == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        if let Kind::Char(major, minor) = kind {
            h.set_device_major(*major).unwrap();
            h.set_device_minor(*minor).unwrap();
        }
        let gnu = h.as_gnu_mut().unwrap();
        let n = name.len().min(100);
        gnu.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        let l = link.len().min(100);
        gnu.linkname[..l].copy_from_slice(&link.as_bytes()[..l]);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        push_padded(&mut out, data);
    }
    out.extend_from_slice(&[0u8; 1024]); // end of archive
    out
}

/// A GNU `././@LongLink` record: the next header's full name (or link target) as data.
fn long_record(out: &mut Vec<u8>, kind: EntryType, long: &str) {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(long.len() as u64 + 1);
    h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    let mut data = long.as_bytes().to_vec();
    data.push(0);
    push_padded(out, &data);
}

fn push_padded(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// Host files an attack might aim at; they must stay exactly as they were.
const HOST_FILES: &[&str] = &["/etc/passwd", "/etc/hostname"];
/// Host paths an attack might create; they must not appear.
const HOST_MUST_NOT_EXIST: &[&str] = &[
    "/etc/boxlab-abs",
    "/etc/passwd-boxlab",
    "/escape",
    "/tmp/boxlab-escape",
];

/// A scratch directory with the target deep inside and a sentinel beside it.
struct Arena {
    scratch: ScratchDir,
    target: PathBuf,
}

impl Arena {
    fn new(label: &str) -> Self {
        let scratch = ScratchDir::new(label).unwrap();
        let target = scratch.join("x/y/target");
        fs::create_dir_all(&target).unwrap();
        fs::create_dir(scratch.join("outside")).unwrap();
        fs::write(scratch.join("outside/sentinel"), b"untouched").unwrap();
        Self { scratch, target }
    }

    /// The absolute host path of the outside directory, as an attacker's symlink would name it.
    fn outside(&self) -> String {
        self.scratch.join("outside").display().to_string()
    }

    /// Unpacks `entries` and checks that nothing outside the target changed.
    fn unpack(
        &self,
        entries: &[(&str, Kind<'_>)],
        options: &UnpackOptions,
    ) -> Result<UnpackReport, UnpackError> {
        let before = self.outside_snapshot();
        let host_before = host_snapshot();
        let result = unpack_layer_from(&raw_tar(entries)[..], &self.target, options);
        assert_eq!(
            self.outside_snapshot(),
            before,
            "something outside the target changed"
        );
        assert_eq!(host_snapshot(), host_before, "a host file changed");
        for path in HOST_MUST_NOT_EXIST {
            assert!(
                fs::symlink_metadata(path).is_err(),
                "{path} was created outside the target"
            );
        }
        result
    }

    /// Everything under the scratch directory except the target: path, type, size, content.
    fn outside_snapshot(&self) -> Vec<String> {
        let mut out = Vec::new();
        snapshot(self.scratch.path(), &self.target, &mut out);
        out.sort();
        out
    }

    fn in_target(&self, rel: &str) -> PathBuf {
        self.target.join(rel)
    }
}

fn snapshot(dir: &Path, skip: &Path, out: &mut Vec<String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path == skip {
            continue;
        }
        let meta = fs::symlink_metadata(&path).unwrap();
        let content = if meta.is_file() {
            fs::read(&path).unwrap()
        } else {
            Vec::new()
        };
        out.push(format!(
            "{} {:o} {} {content:?}",
            path.display(),
            meta.mode(),
            meta.nlink()
        ));
        if meta.is_dir() {
            snapshot(&path, skip, out);
        }
    }
}

fn host_snapshot() -> Vec<(String, Option<Vec<u8>>, Option<u64>)> {
    HOST_FILES
        .iter()
        .map(|p| {
            let meta = fs::symlink_metadata(p).ok();
            (p.to_string(), fs::read(p).ok(), meta.map(|m| m.nlink()))
        })
        .collect()
}

fn plain() -> UnpackOptions {
    UnpackOptions::default()
}

/// Refused: an error that names the entry.
#[track_caller]
fn assert_refused(result: Result<UnpackReport, UnpackError>, entry: &str) -> UnpackError {
    let err = result.expect_err("the layer should have been refused");
    assert!(
        err.to_string().contains(entry),
        "the error does not name {entry:?}: {err}"
    );
    err
}

#[test]
fn dot_dot_above_the_target_is_refused() {
    let arena = Arena::new("ch04-hostile-dotdot");
    for name in [
        "../../escape",
        "a/../../escape",
        "../outside/sentinel",
        "/../escape",
    ] {
        let err = assert_refused(arena.unpack(&[(name, Kind::File("pwned"))], &plain()), name);
        assert!(matches!(err, UnpackError::Escape { .. }), "{name}: {err:?}");
    }
    assert!(!arena.scratch.join("x/escape").exists());
    assert!(!arena.scratch.join("x/y/escape").exists());
}

#[test]
fn dot_dot_that_stays_inside_is_placed() {
    let arena = Arena::new("ch04-hostile-dotdot-inside");
    arena
        .unpack(&[("a/b/../../c", Kind::File("ok"))], &plain())
        .unwrap();
    assert_eq!(fs::read(arena.in_target("c")).unwrap(), b"ok");
}

#[test]
fn absolute_names_are_placed_inside() {
    let arena = Arena::new("ch04-hostile-abs");
    arena
        .unpack(&[("/etc/boxlab-abs", Kind::File("inside"))], &plain())
        .unwrap();
    assert_eq!(
        fs::read(arena.in_target("etc/boxlab-abs")).unwrap(),
        b"inside"
    );
}

#[test]
fn a_symlink_to_slash_is_followed_inside_the_target() {
    let arena = Arena::new("ch04-hostile-link-root");
    let entries = [
        ("link", Kind::Symlink("/")),
        ("link/etc/passwd-boxlab", Kind::File("pwned")),
    ];
    arena.unpack(&entries, &plain()).unwrap();
    // Placed: `/` inside the container is the target.
    assert_eq!(
        fs::read(arena.in_target("etc/passwd-boxlab")).unwrap(),
        b"pwned"
    );
    assert_eq!(
        fs::read_link(arena.in_target("link")).unwrap(),
        Path::new("/")
    );
}

#[test]
fn a_symlink_climbing_out_is_clamped_at_the_target() {
    let arena = Arena::new("ch04-hostile-link-up");
    let entries = [
        ("link", Kind::Symlink("../..")),
        ("link/escape", Kind::File("pwned")),
        ("d", Kind::Dir),
        ("d/up", Kind::Symlink("../../../../../../outside")),
        ("d/up/sentinel", Kind::File("pwned")),
    ];
    arena.unpack(&entries, &plain()).unwrap();
    // Placed: `..` stops at the target's root.
    assert_eq!(fs::read(arena.in_target("escape")).unwrap(), b"pwned");
    assert_eq!(
        fs::read(arena.in_target("outside/sentinel")).unwrap(),
        b"pwned"
    );
}

#[test]
fn a_symlink_replacing_a_directory_between_entries_is_not_written_through() {
    let arena = Arena::new("ch04-hostile-swap");
    let outside = arena.outside();
    let entries = [
        ("d/", Kind::Dir),
        ("d/first", Kind::File("first")),
        ("d", Kind::Symlink(&outside)),
        ("d/sentinel", Kind::File("pwned")),
    ];
    arena.unpack(&entries, &plain()).unwrap();
    // Placed: the symlink replaced the directory, and `d/sentinel` went where the link points
    // *inside* the target.
    let rel = outside.trim_start_matches('/');
    assert_eq!(
        fs::read(arena.in_target(rel).join("sentinel")).unwrap(),
        b"pwned"
    );
    assert!(fs::symlink_metadata(arena.in_target("d"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn a_symlink_as_the_last_component_is_replaced_not_followed() {
    let arena = Arena::new("ch04-hostile-last");
    let sentinel = format!("{}/sentinel", arena.outside());
    let entries = [
        ("s", Kind::Symlink(&sentinel)),
        ("s", Kind::File("pwned")),
        ("p", Kind::Symlink("/etc/passwd")),
        ("p", Kind::Dir),
    ];
    arena.unpack(&entries, &plain()).unwrap();
    // Placed: the entries replaced the links.
    assert_eq!(fs::read(arena.in_target("s")).unwrap(), b"pwned");
    assert!(arena.in_target("p").is_dir());
}

#[test]
fn hard_links_outside_the_target_are_refused() {
    let arena = Arena::new("ch04-hostile-hardlink");
    // `..` above the target: refused by the name rule.
    let err = assert_refused(
        arena.unpack(
            &[("h", Kind::HardLink("../../../outside/sentinel"))],
            &plain(),
        ),
        "../../../outside/sentinel",
    );
    assert!(matches!(err, UnpackError::Escape { .. }), "{err:?}");

    // An absolute target is re-rooted: the target's /etc/passwd does not exist, so refused.
    let err = assert_refused(
        arena.unpack(&[("pw", Kind::HardLink("/etc/passwd"))], &plain()),
        "pw",
    );
    assert!(matches!(err, UnpackError::HardLink { .. }), "{err:?}");

    // Through a symlinked parent pointing at the host's outside dir: resolved inside, missing.
    let outside = arena.outside();
    let err = assert_refused(
        arena.unpack(
            &[
                ("up", Kind::Symlink(&outside)),
                ("h2", Kind::HardLink("up/sentinel")),
            ],
            &plain(),
        ),
        "h2",
    );
    assert!(matches!(err, UnpackError::HardLink { .. }), "{err:?}");

    // To a directory: impossible.
    let err = assert_refused(
        arena.unpack(
            &[("dir/", Kind::Dir), ("hd", Kind::HardLink("dir"))],
            &plain(),
        ),
        "hd",
    );
    assert!(matches!(err, UnpackError::HardLink { .. }), "{err:?}");
}

#[test]
fn hard_links_inside_the_target_are_placed() {
    let arena = Arena::new("ch04-hostile-hardlink-inside");
    let entries = [
        ("etc/passwd", Kind::File("fake")),
        ("pw", Kind::HardLink("/etc/passwd")),
        ("s", Kind::Symlink("/etc/passwd")),
        ("hs", Kind::HardLink("s")), // links the symlink itself, never its target
    ];
    arena.unpack(&entries, &plain()).unwrap();
    let fake = fs::metadata(arena.in_target("etc/passwd")).unwrap();
    let pw = fs::metadata(arena.in_target("pw")).unwrap();
    assert_eq!(fake.ino(), pw.ino());
    assert_ne!(fs::metadata("/etc/passwd").unwrap().ino(), pw.ino());
    let hs = fs::symlink_metadata(arena.in_target("hs")).unwrap();
    assert!(hs.file_type().is_symlink());
}

#[test]
fn device_nodes_are_skipped_unless_allowed() {
    let arena = Arena::new("ch04-hostile-dev");
    let report = arena
        .unpack(&[("dev/evil", Kind::Char(1, 3))], &plain())
        .unwrap();
    // Skipped and reported, not created.
    assert!(fs::symlink_metadata(arena.in_target("dev/evil")).is_err());
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].0, Path::new("dev/evil"));
    assert!(
        report.skipped[0].1.contains("allow_devices"),
        "{:?}",
        report.skipped
    );
}

#[test]
fn device_nodes_are_made_when_allowed_as_root() {
    if !labkit::require_root("device_nodes_are_made_when_allowed_as_root") {
        return;
    }
    let arena = Arena::new("ch04-hostile-dev-root");
    let options = UnpackOptions {
        allow_devices: true,
        ..UnpackOptions::default()
    };
    let report = arena
        .unpack(&[("dev/null", Kind::Char(1, 3))], &options)
        .unwrap();
    let meta = fs::symlink_metadata(arena.in_target("dev/null")).unwrap();
    // Real root (not root of a user namespace) can always mknod: then the node must be there.
    let in_user_namespace = fs::read_to_string("/proc/self/uid_map")
        .map(|map| map.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
        .unwrap_or(true);
    assert!(
        in_user_namespace || report.skipped.is_empty(),
        "{:?}",
        report.skipped
    );
    if report.skipped.is_empty() {
        assert!(meta.file_type().is_char_device());
        assert_eq!(meta.rdev(), nix::sys::stat::makedev(1, 3));
    } else {
        // Root in a user namespace: mknod is refused, and the report says so.
        assert!(
            report.skipped[0].1.contains("EPERM"),
            "{:?}",
            report.skipped
        );
    }
}

#[test]
fn long_paths_are_placed_or_refused_clearly() {
    let arena = Arena::new("ch04-hostile-long");
    // ~2.4 KB: a GNU long name, placed.
    let long: String = (0..40).map(|i| format!("{i:060}/")).collect::<String>() + "file";
    arena
        .unpack(&[(&long, Kind::File("deep"))], &plain())
        .unwrap();
    assert_eq!(fs::read(arena.in_target(&long)).unwrap(), b"deep");

    // Over PATH_MAX, or one component over NAME_MAX: refused, naming the entry.
    let too_long: String = (0..80).map(|i| format!("{i:060}/")).collect::<String>() + "file";
    let err = assert_refused(
        arena.unpack(&[(&too_long, Kind::File("x"))], &plain()),
        "file",
    );
    assert!(matches!(err, UnpackError::Io { .. }), "{err:?}");
    let wide = "w".repeat(300);
    assert_refused(arena.unpack(&[(&wide, Kind::File("x"))], &plain()), &wide);
    // And a long `..` name, hidden in a long-name record: refused by the name rule.
    let sneaky = "a/".repeat(60) + &"../".repeat(62) + "escape";
    let err = assert_refused(
        arena.unpack(&[(&sneaky, Kind::File("x"))], &plain()),
        "escape",
    );
    assert!(matches!(err, UnpackError::Escape { .. }), "{err:?}");
}

#[test]
fn an_opaque_marker_at_the_root_empties_only_the_target() {
    let arena = Arena::new("ch04-hostile-opq-root");
    fs::write(arena.in_target("lower"), b"from a lower layer").unwrap();
    let entries = [
        ("new", Kind::File("this layer")),
        (".wh..wh..opq", Kind::File("")),
    ];
    let report = arena.unpack(&entries, &plain()).unwrap();
    // Placed: the root is opaque — the lower file goes, this layer's file stays.
    assert_eq!(report.opaque_dirs, 1);
    assert!(!arena.in_target("lower").exists());
    assert_eq!(fs::read(arena.in_target("new")).unwrap(), b"this layer");
    assert!(!arena.in_target(".wh..wh..opq").exists());
}

#[test]
fn whiteouts_through_symlinks_stay_inside() {
    let arena = Arena::new("ch04-hostile-wh-link");
    let scratch = arena.scratch.path().display().to_string();
    let outside = arena.outside();
    let entries = [
        ("l", Kind::Symlink(&scratch)),
        ("l/.wh.outside", Kind::File("")), // would delete <scratch>/outside if followed on the host
        ("o", Kind::Symlink(&outside)),
        ("o/.wh..wh..opq", Kind::File("")), // would empty <scratch>/outside
        ("up", Kind::Symlink("../../..")),
        ("up/.wh.outside", Kind::File("")),
    ];
    // Placed (as no-ops or inside): the outside snapshot check in `unpack` is the point.
    let report = arena.unpack(&entries, &plain()).unwrap();
    assert_eq!((report.whiteouts, report.opaque_dirs), (2, 1));
    assert!(arena.scratch.join("outside/sentinel").exists());
}

#[test]
fn malformed_whiteouts_are_refused() {
    let arena = Arena::new("ch04-hostile-wh-bad");
    for name in [".wh...", "a/.wh..", ".wh.", "a/.wh.b/c"] {
        let err = assert_refused(arena.unpack(&[(name, Kind::File(""))], &plain()), name);
        assert!(
            matches!(err, UnpackError::BadWhiteout { .. }),
            "{name}: {err:?}"
        );
    }
    // `.wh...` as a directory that `..` then leaves: cleaned as text to `a/x`, placed.
    arena
        .unpack(&[("a/.wh.../../x", Kind::File("x"))], &plain())
        .unwrap();
    assert_eq!(fs::read(arena.in_target("a/x")).unwrap(), b"x");
    // ... and when it climbs out: refused.
    let err = assert_refused(
        arena.unpack(&[("a/.wh.../../../../x", Kind::File(""))], &plain()),
        "a/.wh.../../../../x",
    );
    assert!(matches!(err, UnpackError::Escape { .. }), "{err:?}");
}

#[test]
fn symlink_loops_and_root_replacement_are_refused() {
    let arena = Arena::new("ch04-hostile-loop");
    let entries = [
        ("a", Kind::Symlink("b")),
        ("b", Kind::Symlink("a")),
        ("a/x", Kind::File("")),
    ];
    let err = assert_refused(arena.unpack(&entries, &plain()), "a/x");
    assert!(matches!(err, UnpackError::SymlinkLoop { .. }), "{err:?}");

    for name in [".", "/", "./"] {
        let err = assert_refused(arena.unpack(&[(name, Kind::File("x"))], &plain()), name);
        assert!(matches!(err, UnpackError::ReplacesRoot { .. }), "{err:?}");
    }
    assert!(arena.target.is_dir());
}
