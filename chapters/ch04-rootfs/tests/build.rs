//! The image builder: the Boxfile parser, COPY-only builds (no root), the cache (hits, misses,
//! what a change rebuilds), reproducibility (two fresh builds, one digest), multi-stage builds,
//! and RUN in a container (root): whiteouts in its layer, and a failing RUN that leaves nothing.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ch04_rootfs::build::{
    build, parse_boxfile, Base, BuildError, BuildOptions, BuildReport, Command, InstructionKind,
    StepError,
};
use ch04_rootfs::image::OciLayout;
use ch04_rootfs::image_run::CONTAINERS_DIR;
use ch04_rootfs::store::LayerStore;
use labkit::{find_static_busybox, require_root, ScratchDir};

/// RUN tests check that nothing of theirs is left under /run/boxlab: one at a time.
static RUN_LOCK: Mutex<()> = Mutex::new(());

// ---------------------------------------------------------------------------------------------
// The parser

#[test]
fn parses_shell_and_exec_forms_continuations_and_comments() {
    let text = r#"
# a comment
FROM scratch AS Builder
COPY --from=0 a b /dest/
RUN echo one \
    # a comment inside is skipped
    && echo two
run ["/bin/busybox", "--install", "-s", "/bin"]
ENV A=1 B="two words" C=x\ y
ENV D four five
WORKDIR /app

FROM busybox:1.36
CMD echo hi
CMD ["sh", "-c", "echo hi"]
"#;
    let boxfile = parse_boxfile(text).unwrap();
    assert_eq!(boxfile.stages.len(), 2);
    let first = &boxfile.stages[0];
    assert_eq!(first.base, Base::Scratch);
    assert_eq!(first.alias.as_deref(), Some("builder"));
    assert_eq!(first.line, 3);
    let kinds: Vec<&InstructionKind> = first.instructions.iter().map(|i| &i.kind).collect();
    assert_eq!(
        kinds[0],
        &InstructionKind::Copy {
            from: Some("0".into()),
            sources: vec!["a".into(), "b".into()],
            dest: "/dest/".into()
        }
    );
    assert_eq!(first.instructions[1].line, 5);
    match kinds[1] {
        InstructionKind::Run(Command::Shell(line)) => {
            assert!(line.starts_with("echo one"), "{line}");
            assert!(line.ends_with("&& echo two"), "{line}");
            assert!(!line.contains("comment"), "{line}");
        }
        other => panic!("not a shell RUN: {other:?}"),
    }
    assert_eq!(
        kinds[2],
        &InstructionKind::Run(Command::Exec(
            ["/bin/busybox", "--install", "-s", "/bin"]
                .map(String::from)
                .to_vec()
        ))
    );
    assert_eq!(first.instructions[2].line, 8);
    assert_eq!(
        kinds[3],
        &InstructionKind::Env(vec![
            ("A".into(), "1".into()),
            ("B".into(), "two words".into()),
            ("C".into(), "x y".into())
        ])
    );
    assert_eq!(
        kinds[4],
        &InstructionKind::Env(vec![("D".into(), "four five".into())])
    );
    assert_eq!(kinds[5], &InstructionKind::Workdir("/app".into()));

    let second = &boxfile.stages[1];
    assert_eq!(second.base, Base::Image("busybox:1.36".into()));
    assert_eq!(second.line, 13);
    let shell = Command::Shell("echo hi".into());
    assert_eq!(
        shell.argv(),
        ["/bin/sh", "-c", "echo hi"].map(String::from).to_vec()
    );
    assert_eq!(second.instructions[0].kind, InstructionKind::Cmd(shell));
    assert_eq!(
        second.instructions[1].kind,
        InstructionKind::Cmd(Command::Exec(
            ["sh", "-c", "echo hi"].map(String::from).to_vec()
        ))
    );
}

fn parse_error(text: &str) -> (usize, String) {
    let err = parse_boxfile(text).unwrap_err();
    let line = err.line().expect("a parse error names a line");
    (line, err.to_string())
}

#[test]
fn parse_errors_name_the_line_and_what_to_do() {
    let (line, message) = parse_error("FROM scratch\n\n# c\nFORM x\n");
    assert_eq!(line, 4);
    assert!(message.contains("line 4"), "{message}");
    assert!(message.contains("unknown instruction `FORM`"), "{message}");
    assert!(message.contains("FROM, COPY, RUN"), "{message}");

    let (line, message) = parse_error("COPY a b\n");
    assert_eq!(line, 1);
    assert!(message.contains("before any FROM"), "{message}");

    let (line, message) = parse_error("FROM scratch\nRUN [\"echo\", hi]\n");
    assert_eq!(line, 2);
    assert!(message.contains("JSON array"), "{message}");

    let (line, message) = parse_error("FROM scratch\nCOPY onlyone\n");
    assert_eq!(line, 2);
    assert!(message.contains("source and a destination"), "{message}");

    let (line, message) = parse_error("FROM scratch\nCOPY a b /file\n");
    assert_eq!(line, 2);
    assert!(message.contains("ending in `/`"), "{message}");

    let (line, message) = parse_error("FROM scratch\nCOPY --chown=1 a b\n");
    assert_eq!(line, 2);
    assert!(message.contains("--chown"), "{message}");

    let (line, message) = parse_error("FROM scratch\nRUN echo \\\n");
    assert_eq!(line, 2);
    assert!(message.contains("no line follows"), "{message}");

    let (line, message) = parse_error("FROM scratch\nENV 1BAD=x\n");
    assert_eq!(line, 2);
    assert!(message.contains("not a variable name"), "{message}");

    let (line, message) = parse_error("FROM scratch AS a\nFROM scratch AS a\n");
    assert_eq!(line, 2);
    assert!(message.contains("already called"), "{message}");

    let (line, message) = parse_error("# only a comment\n");
    assert_eq!(line, 1);
    assert!(message.contains("no instructions"), "{message}");

    let (line, _) = parse_error("FROM scratch\nCMD\n");
    assert_eq!(line, 2);
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// A layout, a store, a cache and a context, all in one scratch directory.
struct Setup {
    scratch: ScratchDir,
    layout: OciLayout,
    store: LayerStore,
}

impl Setup {
    fn new(label: &str) -> Self {
        let scratch = ScratchDir::new(label).unwrap();
        let layout = OciLayout::create(scratch.join("oci")).unwrap();
        let store = LayerStore::open(scratch.join("layers")).unwrap();
        fs::create_dir_all(scratch.join("context")).unwrap();
        Setup {
            scratch,
            layout,
            store,
        }
    }

    fn context(&self) -> PathBuf {
        self.scratch.join("context")
    }

    fn write(&self, rel: &str, content: &str, mode: u32) {
        let path = self.context().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn add_busybox(&self) {
        let busybox = find_static_busybox().unwrap();
        fs::copy(busybox, self.context().join("busybox")).unwrap();
    }

    /// Builds `boxfile` from the context (and the build cache) of `context_of`.
    fn build_from(
        &self,
        context_of: &Setup,
        boxfile: &str,
        tag: &str,
    ) -> Result<BuildReport, BuildError> {
        fs::write(context_of.context().join("Boxfile"), boxfile).unwrap();
        let mut events = Vec::new();
        let mut on_step = |e: &ch04_rootfs::build::StepEvent| events.push(e.to_string());
        let report = build(BuildOptions {
            context: context_of.context(),
            boxfile: None,
            tag: Some(tag.into()),
            layout: &self.layout,
            store: &self.store,
            cache_dir: self.scratch.join("build-cache"),
            on_step: Some(&mut on_step),
        });
        for event in &events {
            eprintln!("{event}");
        }
        report
    }

    fn build(&self, boxfile: &str, tag: &str) -> Result<BuildReport, BuildError> {
        self.build_from(self, boxfile, tag)
    }

    /// The built image flattened into a directory.
    fn flatten(&self, tag: &str) -> PathBuf {
        let image = self.layout.resolve(tag).unwrap();
        let target = self.scratch.join(format!("flat-{}", tag.replace(':', "-")));
        LayerStore::flatten(&self.layout, &image, &target).unwrap();
        target
    }
}

/// One entry of a layer tar.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: tar::EntryType,
    mode: u32,
    content: Vec<u8>,
    link: Option<PathBuf>,
}

/// The entries of layer `index` of image `tag`, checking the headers carry no noise.
fn layer(setup: &Setup, tag: &str, index: usize) -> BTreeMap<String, Entry> {
    let image = setup.layout.resolve(tag).unwrap();
    let desc = &image.manifest.layers()[index];
    let mut archive = tar::Archive::new(setup.layout.open_blob(desc).unwrap());
    let mut out = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        assert_eq!(header.uid().unwrap(), 0);
        assert_eq!(header.gid().unwrap(), 0);
        assert_eq!(header.mtime().unwrap(), 0);
        assert_eq!(header.username().unwrap(), Some(""));
        let name = entry.path().unwrap().display().to_string();
        let link = entry.link_name().unwrap().map(|l| l.into_owned());
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        out.insert(
            name,
            Entry {
                kind: header.entry_type(),
                mode: header.mode().unwrap(),
                content,
                link,
            },
        );
    }
    out
}

fn cached(report: &BuildReport) -> Vec<(usize, bool)> {
    report.steps.iter().map(|s| (s.line, s.cached)).collect()
}

fn copy_context(setup: &Setup) {
    setup.write("hello.txt", "hello\n", 0o644);
    setup.write("bin/tool", "#!/bin/sh\necho tool\n", 0o755);
    setup.write("dir/sub/a", "a\n", 0o600);
    symlink("sub/a", setup.context().join("dir/link")).unwrap();
}

const COPY_BOXFILE: &str = r#"FROM scratch
COPY hello.txt /hello.txt
COPY dir /opt/dir
ENV GREETING=hi NAME="a b"
WORKDIR /app
COPY bin/tool ./
CMD ["/app/tool", "x"]
"#;

// ---------------------------------------------------------------------------------------------
// COPY-only builds: no root needed

#[test]
fn a_copy_only_build_needs_no_root_and_gives_the_right_image() {
    let setup = Setup::new("build-copy");
    copy_context(&setup);
    let report = setup.build(COPY_BOXFILE, "copy:1").unwrap();
    assert_eq!(report.ref_name.as_deref(), Some("copy:1"));
    assert_eq!(report.steps.len(), 7);

    let image = setup.layout.resolve("copy:1").unwrap();
    assert_eq!(image.manifest_digest, report.manifest_digest);
    // COPY, COPY, WORKDIR (/app is missing: created), COPY.
    assert_eq!(image.manifest.layers().len(), 4);
    let layers: Vec<_> = report
        .steps
        .iter()
        .filter_map(|s| s.layer.clone())
        .collect();
    assert_eq!(layers.len(), 4);
    for ((digest, diff_id, size), desc) in layers.iter().zip(image.manifest.layers()) {
        assert_eq!(digest, desc.digest());
        assert_eq!(diff_id, digest, "layers are stored uncompressed");
        assert_eq!(*size, desc.size());
    }

    let first = layer(&setup, "copy:1", 0);
    assert_eq!(first.keys().collect::<Vec<_>>(), ["hello.txt"]);
    assert_eq!(first["hello.txt"].content, b"hello\n");
    assert_eq!(first["hello.txt"].mode, 0o644);

    let second = layer(&setup, "copy:1", 1);
    assert_eq!(
        second.keys().collect::<Vec<_>>(),
        [
            "opt",
            "opt/dir",
            "opt/dir/link",
            "opt/dir/sub",
            "opt/dir/sub/a"
        ]
    );
    assert_eq!(second["opt/dir/sub/a"].mode, 0o600);
    assert_eq!(second["opt/dir/link"].kind, tar::EntryType::Symlink);
    assert_eq!(
        second["opt/dir/link"].link.as_deref(),
        Some(Path::new("sub/a"))
    );

    assert_eq!(
        layer(&setup, "copy:1", 2).keys().collect::<Vec<_>>(),
        ["app"]
    );
    let fourth = layer(&setup, "copy:1", 3);
    assert_eq!(fourth.keys().collect::<Vec<_>>(), ["app/tool"]);
    assert_eq!(fourth["app/tool"].mode, 0o755);

    let config = image.config.config().clone().unwrap();
    assert_eq!(
        config.env().clone().unwrap(),
        ["GREETING=hi", "NAME=a b"].map(String::from).to_vec()
    );
    assert_eq!(config.working_dir().as_deref(), Some("/app"));
    assert_eq!(
        config.cmd().clone().unwrap(),
        ["/app/tool", "x"].map(String::from).to_vec()
    );
    assert_eq!(
        image.config.created().as_deref(),
        Some("1970-01-01T00:00:00Z")
    );
    let history = image.config.history().clone().unwrap();
    assert_eq!(history.len(), 6);
    assert_eq!(
        history[2].created_by().as_deref(),
        Some(r#"ENV GREETING=hi NAME="a b""#)
    );
    assert_eq!(history[2].empty_layer(), Some(true));
    assert_eq!(history[1].empty_layer(), None);

    let flat = setup.flatten("copy:1");
    assert_eq!(
        fs::read_to_string(flat.join("opt/dir/link")).unwrap(),
        "a\n"
    );
    assert_eq!(
        fs::read_to_string(flat.join("app/tool")).unwrap(),
        "#!/bin/sh\necho tool\n"
    );
}

#[test]
fn two_fresh_builds_give_the_same_digest() {
    let one = Setup::new("build-repro-1");
    let two = Setup::new("build-repro-2");
    copy_context(&one);
    let first = one.build(COPY_BOXFILE, "repro:1").unwrap();
    // Six months later: the files were touched (new mtimes), the layout and cache are new.
    for rel in ["hello.txt", "bin/tool", "dir/sub/a"] {
        let file = fs::File::options()
            .write(true)
            .open(one.context().join(rel))
            .unwrap();
        file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(3600))
            .unwrap();
    }
    let second = two.build_from(&one, COPY_BOXFILE, "repro:1").unwrap();
    assert!(second.steps.iter().skip(1).all(|s| !s.cached));
    assert_eq!(first.manifest_digest, second.manifest_digest);
    let blobs = |s: &Setup| {
        let mut names: Vec<_> = fs::read_dir(s.scratch.join("oci/blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    assert_eq!(blobs(&one), blobs(&two));
}

#[test]
fn the_cache_rebuilds_only_what_follows_a_change() {
    let setup = Setup::new("build-cache");
    copy_context(&setup);
    let first = setup.build(COPY_BOXFILE, "cache:1").unwrap();
    assert_eq!(
        cached(&first),
        [
            (1, true),
            (2, false),
            (3, false),
            (4, false),
            (5, false),
            (6, false),
            (7, false)
        ]
    );

    // The same again: everything from the cache, the same image.
    let again = setup.build(COPY_BOXFILE, "cache:1").unwrap();
    assert!(again.steps.iter().all(|s| s.cached), "{:?}", cached(&again));
    assert_eq!(again.manifest_digest, first.manifest_digest);

    // Change the last line: only it is done again.
    let changed_cmd =
        COPY_BOXFILE.replace(r#"CMD ["/app/tool", "x"]"#, r#"CMD ["/app/tool", "y"]"#);
    let last = setup.build(&changed_cmd, "cache:2").unwrap();
    assert_eq!(
        cached(&last),
        [
            (1, true),
            (2, true),
            (3, true),
            (4, true),
            (5, true),
            (6, true),
            (7, false)
        ]
    );
    assert_ne!(last.manifest_digest, first.manifest_digest);

    // Change a COPY source: that COPY and everything after it is done again.
    setup.write("dir/sub/a", "A changed\n", 0o600);
    let source = setup.build(COPY_BOXFILE, "cache:3").unwrap();
    assert_eq!(
        cached(&source),
        [
            (1, true),
            (2, true),
            (3, false),
            (4, false),
            (5, false),
            (6, false),
            (7, false)
        ]
    );
    // Unchanged results of re-done steps are the same layers as before (content addressed).
    assert_eq!(source.steps[5].layer, first.steps[5].layer);
    assert_ne!(source.steps[2].layer, first.steps[2].layer);

    // A mode change counts too.
    setup.write("dir/sub/a", "A changed\n", 0o644);
    let mode = setup.build(COPY_BOXFILE, "cache:4").unwrap();
    assert!(!mode.steps[2].cached);

    // A cache entry whose blob is gone is a miss, not an error.
    let blob = setup
        .layout
        .blob_path(&mode.steps[1].layer.as_ref().unwrap().0);
    fs::remove_file(blob).unwrap();
    let rebuilt = setup.build(COPY_BOXFILE, "cache:5").unwrap();
    assert!(!rebuilt.steps[1].cached);
    assert!(rebuilt.steps[2].cached);
    assert_eq!(rebuilt.manifest_digest, mode.manifest_digest);
}

#[test]
fn a_copy_only_multi_stage_build_keeps_only_what_the_last_stage_copies() {
    let setup = Setup::new("build-stages-copy");
    copy_context(&setup);
    let boxfile = "FROM scratch AS assets\nCOPY dir /src\nCOPY hello.txt /src/\n\nFROM scratch\nCOPY --from=assets /src/hello.txt /src/sub/a /out/\nCMD [\"/bin/true\"]\n";
    setup.build(boxfile, "stages:1").unwrap();
    let image = setup.layout.resolve("stages:1").unwrap();
    assert_eq!(image.manifest.layers().len(), 1);
    assert_eq!(
        layer(&setup, "stages:1", 0).keys().collect::<Vec<_>>(),
        ["out", "out/a", "out/hello.txt"]
    );
    // By number too.
    let by_number = boxfile.replace("--from=assets", "--from=0");
    let report = setup.build(&by_number, "stages:2").unwrap();
    let by_number = setup.layout.resolve("stages:2").unwrap();
    assert_eq!(by_number.manifest_digest, report.manifest_digest);
    // The same layer; only the history's `created_by` differs.
    assert_eq!(by_number.manifest.layers(), image.manifest.layers());

    let err = setup
        .build(&boxfile.replace("--from=assets", "--from=nothere"), "x:1")
        .unwrap_err();
    assert_eq!(err.line(), Some(6));
    assert!(err.to_string().contains("no earlier stage"), "{err}");
}

#[test]
fn copy_cannot_read_outside_the_context() {
    let setup = Setup::new("build-outside");
    fs::write(setup.scratch.join("secret"), "secret").unwrap();
    setup.write("ok", "ok", 0o644);
    // A symlink to / in the context means the context's root, not the host's.
    symlink("/", setup.context().join("root")).unwrap();

    let err = setup
        .build("FROM scratch\nCOPY ok /ok\nCOPY ../secret /secret\n", "x:1")
        .unwrap_err();
    assert_eq!(err.line(), Some(3));
    let message = err.to_string();
    assert!(message.contains("Boxfile line 3"), "{message}");
    assert!(message.contains("outside the build context"), "{message}");
    assert!(matches!(
        err.step_error(),
        Some(StepError::OutsideContext { .. })
    ));

    let err = setup
        .build("FROM scratch\nCOPY root/etc/passwd /p\n", "x:1")
        .unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");

    let err = setup
        .build("FROM scratch\nCOPY missing /m\n", "x:1")
        .unwrap_err();
    assert_eq!(err.line(), Some(2));
    assert!(err.to_string().contains("not found"), "{err}");

    let err = setup.build("FROM nothere:1\n", "x:1").unwrap_err();
    assert_eq!(err.line(), Some(1));
    assert!(err.to_string().contains("base image not found"), "{err}");

    let err = setup.build("FROM scratch\nBOGUS x\n", "x:1").unwrap_err();
    let message = err.to_string();
    assert!(message.contains("context/Boxfile line 2"), "{message}");
}

// ---------------------------------------------------------------------------------------------
// RUN: root

const BUSYBOX_BASE: &str = r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
"#;

fn nothing_left_in_run_boxlab() {
    let prefix = format!("build-{}-", std::process::id());
    let left: Vec<_> = fs::read_dir(CONTAINERS_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&format!("{CONTAINERS_DIR}/{prefix}")),
        "{mounts}"
    );
}

#[test]
fn run_changes_become_a_layer_with_whiteouts() {
    if !require_root("run_changes_become_a_layer_with_whiteouts") {
        return;
    }
    let _lock = RUN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let setup = Setup::new("build-run");
    setup.add_busybox();
    setup.write("files/a", "a\n", 0o644);
    setup.write("files/b", "b\n", 0o644);
    setup.write("files/dir/c", "c\n", 0o644);
    let boxfile = format!(
        "{BUSYBOX_BASE}COPY files /data/\nENV WHO=builder\nWORKDIR /data\n\
         RUN echo \"made by $WHO in $(pwd)\" > new && echo changed >> a && rm b \\\n && rm -r dir && mkdir dir && echo d > dir/d\n\
         CMD [\"cat\", \"/data/new\"]\n"
    );
    let report = setup.build(&boxfile, "run:1").unwrap();
    let image = setup.layout.resolve("run:1").unwrap();
    // COPY busybox, RUN install, COPY files, RUN changes (WORKDIR /data exists: no layer).
    assert_eq!(image.manifest.layers().len(), 4);
    assert!(
        report.steps[5].layer.is_none(),
        "WORKDIR of an existing dir"
    );

    let changes = layer(&setup, "run:1", 3);
    let names: Vec<&str> = changes.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "data",
            "data/.wh.b",
            "data/a",
            "data/dir",
            "data/dir/.wh..wh..opq",
            "data/dir/d",
            "data/new"
        ],
        "the runtime's mount points (proc, dev, sys) are not in the layer"
    );
    assert_eq!(changes["data/a"].content, b"a\nchanged\n");

    let installed = layer(&setup, "run:1", 1);
    assert_eq!(
        installed["bin/sh"].link.as_deref(),
        Some(Path::new("/bin/busybox"))
    );

    let flat = setup.flatten("run:1");
    assert_eq!(
        fs::read_to_string(flat.join("data/new")).unwrap(),
        "made by builder in /data\n"
    );
    assert_eq!(
        fs::read_to_string(flat.join("data/a")).unwrap(),
        "a\nchanged\n"
    );
    assert!(!flat.join("data/b").exists());
    assert!(!flat.join("data/dir/c").exists());
    assert_eq!(fs::read_to_string(flat.join("data/dir/d")).unwrap(), "d\n");
    assert!(!flat.join("proc").exists());

    // The image runs with chapter 4's runtime: its CMD, WORKDIR and layers.
    let out_path = setup.scratch.join("stdout");
    let out = fs::File::create(&out_path).unwrap();
    let isolation = ch02_namespaces::Isolation::container_defaults().stdout(out.into());
    let (isolation, program, dir) = ch04_rootfs::image_run::prepare_image_container(
        &setup.layout,
        &setup.store,
        "run:1",
        &[],
        isolation,
        false,
        |_, _| {},
    )
    .unwrap();
    let status = isolation.spawn(&program).unwrap().wait().unwrap();
    drop(dir);
    assert!(status.success(), "{status}");
    assert_eq!(
        fs::read_to_string(&out_path).unwrap(),
        "made by builder in /data\n"
    );

    // Again: all cached, no container needed.
    let again = setup.build(&boxfile, "run:1").unwrap();
    assert!(again.steps.iter().all(|s| s.cached));
    assert_eq!(again.manifest_digest, report.manifest_digest);
    nothing_left_in_run_boxlab();
}

#[test]
fn builds_with_run_are_reproducible_and_multi_stage_keeps_only_the_result() {
    if !require_root("builds_with_run_are_reproducible_and_multi_stage_keeps_only_the_result") {
        return;
    }
    let _lock = RUN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let one = Setup::new("build-run-repro-1");
    let two = Setup::new("build-run-repro-2");
    one.add_busybox();
    let boxfile = format!(
        "{BUSYBOX_BASE}RUN mkdir /out && echo built > /out/file && ln /out/file /out/hard\n\n\
         FROM scratch\nCOPY --from=0 /out/file /file\nCMD [\"/file\"]\n"
    );
    let first = one.build(&boxfile, "multi:1").unwrap();
    let second = two.build_from(&one, &boxfile, "multi:1").unwrap();
    assert!(second
        .steps
        .iter()
        .skip(1)
        .all(|s| s.line == 6 || !s.cached));
    assert_eq!(first.manifest_digest, second.manifest_digest);

    // The builder stage's RUN layer: a hard link is written as one.
    let (digest, _, size) = first.steps[3].layer.clone().unwrap();
    assert_eq!(second.steps[3].layer.clone().unwrap().0, digest);
    let desc =
        oci_spec::image::Descriptor::new(oci_spec::image::MediaType::ImageLayer, size, digest);
    let mut archive = tar::Archive::new(one.layout.open_blob(&desc).unwrap());
    let links: Vec<(PathBuf, tar::EntryType, Option<PathBuf>)> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let link = e.link_name().unwrap().map(|l| l.into_owned());
            (
                e.path().unwrap().into_owned(),
                e.header().entry_type(),
                link,
            )
        })
        .collect();
    assert_eq!(
        links,
        [
            (PathBuf::from("out"), tar::EntryType::Directory, None),
            (PathBuf::from("out/file"), tar::EntryType::Regular, None),
            (
                PathBuf::from("out/hard"),
                tar::EntryType::Link,
                Some(PathBuf::from("out/file"))
            ),
        ]
    );

    // The result: only the file, in one layer of its own.
    let image = one.layout.resolve("multi:1").unwrap();
    assert_eq!(image.manifest.layers().len(), 1);
    assert_eq!(
        layer(&one, "multi:1", 0).keys().collect::<Vec<_>>(),
        ["file"]
    );
    let flat = one.flatten("multi:1");
    let mut all: Vec<_> = fs::read_dir(&flat)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    all.sort();
    assert_eq!(all, ["file"]);
    assert_eq!(fs::read_to_string(flat.join("file")).unwrap(), "built\n");
    nothing_left_in_run_boxlab();
}

#[test]
fn a_failing_run_names_its_line_and_leaves_nothing() {
    if !require_root("a_failing_run_names_its_line_and_leaves_nothing") {
        return;
    }
    let _lock = RUN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let setup = Setup::new("build-run-fail");
    setup.add_busybox();
    let boxfile = format!("{BUSYBOX_BASE}RUN echo about to fail && exit 3\nCMD [\"sh\"]\n");
    let err = setup.build(&boxfile, "fail:1").unwrap_err();
    assert_eq!(err.line(), Some(4));
    let message = err.to_string();
    assert!(message.contains("line 4"), "{message}");
    assert!(message.contains("exited with status 3"), "{message}");
    assert!(
        message.contains("RUN echo about to fail && exit 3"),
        "{message}"
    );
    assert!(setup.layout.resolve("fail:1").is_err());
    nothing_left_in_run_boxlab();
    let tmp = setup.scratch.join("build-cache/tmp");
    assert!(
        !tmp.exists() || fs::read_dir(&tmp).unwrap().next().is_none(),
        "the build's work directory is removed"
    );

    // Fixed: the steps before the failure come from the cache.
    let fixed = boxfile.replace("exit 3", "true");
    let report = setup.build(&fixed, "fail:1").unwrap();
    assert_eq!(
        cached(&report),
        [(1, true), (2, true), (3, true), (4, false), (5, false)]
    );
    nothing_left_in_run_boxlab();
}
