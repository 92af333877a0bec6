//! `ch04-rootfs`: run a command in namespaces, a cgroup and a root filesystem of its own; and
//! the image tools that make such filesystems (`unpack` so far).

mod demo;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ch01_process::exec::Program;
use ch02_namespaces::args::IsolationArgs;
use ch03_cgroups::args::LimitArgs;
use ch03_cgroups::run::run_limited;
use ch04_rootfs::args::RootfsArgs;
use ch04_rootfs::image::{import_archive, OciLayout};
use ch04_rootfs::image_run::prepare_image_container;
use ch04_rootfs::registry::{pull, push, PullOptions, PushOptions};
use ch04_rootfs::store::DataDir;
use ch04_rootfs::with_rootfs;
use clap::{Parser, Subcommand};

/// Run a command in its own root filesystem (plus chapter 2's namespaces and chapter 3's limits).
///
/// With no arguments: a demo that builds a tiny busybox root and runs a shell in it.
#[derive(Debug, Parser)]
#[command(name = "ch04-rootfs", version, args_conflicts_with_subcommands = true, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    verb: Option<Verb>,

    #[command(flatten)]
    root: RootfsArgs,

    #[command(flatten)]
    limits: LimitArgs,

    #[command(flatten)]
    isolation: IsolationArgs,

    /// The command to run, after `--`; it is looked up in the new root's PATH.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Import a `docker save` / `podman save` archive (or an OCI archive) into the image store.
    Import {
        /// The archive (a tar file).
        archive: PathBuf,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Pull an image from a registry (Docker Hub by default) into the image store.
    Pull {
        /// The image: [REGISTRY/]REPOSITORY[:TAG][@DIGEST], e.g. busybox:1.36 or 127.0.0.1:5000/demo:1.
        reference: String,
        /// Speak plain HTTP to this registry (always so for localhost and 127.0.0.1).
        #[arg(long)]
        insecure: bool,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Push an image from the store to a registry.
    Push {
        /// The image in the store (name or digest).
        image: String,
        /// Where to: REGISTRY/REPOSITORY[:TAG].
        destination: String,
        /// Speak plain HTTP to this registry (always so for localhost and 127.0.0.1).
        #[arg(long)]
        insecure: bool,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Build an image from a Boxfile (FROM, COPY, RUN, ENV, WORKDIR, CMD; multi-stage), with a
    /// layer cache.
    Build {
        /// The build context: the directory holding the Boxfile and the files COPY takes.
        context: PathBuf,
        /// The name to give the image, e.g. demo:1.
        #[arg(short, long)]
        tag: Option<String>,
        /// The Boxfile (default: CONTEXT/Boxfile).
        #[arg(short = 'f', long)]
        file: Option<PathBuf>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List the images in the store.
    Images {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Run a container from an image: its layers stacked with overlayfs, its command and env.
    Run(Box<RunArgs>),
    /// Apply one image layer (tar, tar.gz or tar.zst), whiteouts included, onto a directory.
    Unpack {
        /// The layer file.
        layer: PathBuf,
        /// The directory to apply it to (created if missing).
        dir: PathBuf,
        /// Refuse the layer unless its sha256 is this ("sha256:<hex>").
        #[arg(long)]
        digest: Option<String>,
        /// Create device nodes the layer contains (root only; skipped otherwise).
        #[arg(long)]
        devices: bool,
    },
}

/// `run`'s arguments.
#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The image, by name (busybox:latest) or digest (sha256:…).
    image: String,
    /// Make `/` read-only inside.
    #[arg(long)]
    read_only: bool,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    isolation: IsolationArgs,
    /// The command (default: the image's Entrypoint and Cmd), after `--`.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

#[derive(Debug, Clone, clap::Args)]
struct DataArgs {
    /// boxlab's data directory: images in DIR/oci, unpacked layers in DIR/layers
    /// (default: /var/lib/boxlab as root, ~/.local/share/boxlab otherwise).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
}

impl DataArgs {
    fn dir(&self) -> DataDir {
        self.data.clone().map(DataDir::new).unwrap_or_default()
    }
}

const EXAMPLES: &str = "Examples:
  sudo ch04-rootfs                                              # the demo
  sudo ch04-rootfs --rootfs ./rootfs -- sh -c 'ls /; ps'        # a shell in its own root
  sudo ch04-rootfs --rootfs ./rootfs --read-only --memory 64m -- sh
  ch04-rootfs unpack layer.tar.gz ./rootfs                      # apply a layer, whiteouts and all
  ch04-rootfs pull busybox:1.36                                 # from Docker Hub (needs internet)
  ch04-rootfs import busybox.tar                                # a `docker save` archive
  sudo ch04-rootfs build -t demo:1 ./context                    # from ./context/Boxfile
  ch04-rootfs images
  sudo ch04-rootfs run busybox:latest -- sh                     # overlay of its layers";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let cli = Cli::parse();
    let result = match (&cli.verb, args.len()) {
        (Some(verb), _) => run_verb(verb),
        (None, 1) => demo::run(),
        (None, _) => run_command(&cli),
    };
    ch01_process::status::finish("ch04-rootfs", result)
}

fn run_command(cli: &Cli) -> Result<i32> {
    if cli.command.is_empty() {
        bail!("no command given: put it after `--`, e.g. ch04-rootfs --rootfs ./rootfs -- sh");
    }
    let Some(rootfs) = &cli.root.rootfs else {
        bail!(
            "no root filesystem: give --rootfs DIR (chapter 3 runs commands on the host's files)"
        );
    };
    let resolved = cli.limits.resolve()?;
    let program = Program::new(&cli.command)?;
    let isolation = with_rootfs(
        cli.isolation.to_isolation("ch04")?,
        rootfs,
        cli.root.read_only,
    )?;
    let exit = run_limited(
        isolation,
        &resolved,
        cli.limits.cgroup.as_deref(),
        &program,
        "ch04",
    )
    .with_context(|| format!("running '{}' in {}", program.display(), rootfs.display()))?;
    Ok(exit.shell_code())
}

fn run_verb(verb: &Verb) -> Result<i32> {
    match verb {
        Verb::Unpack {
            layer,
            dir,
            digest,
            devices,
        } => demo::unpack_verb(layer, dir, digest.clone(), *devices),
        Verb::Import { archive, data } => {
            let layout = data.dir().create_layout()?;
            let imported = import_archive(archive, &layout)
                .with_context(|| format!("importing {}", archive.display()))?;
            for image in imported {
                let name = image.ref_name.unwrap_or_else(|| "(no name)".into());
                println!("imported {name}  {}", image.manifest.digest());
            }
            Ok(0)
        }
        Verb::Pull {
            reference,
            insecure,
            data,
        } => {
            let layout = data.dir().create_layout()?;
            let options = PullOptions {
                insecure: *insecure,
                ..PullOptions::default()
            };
            let report = pull(reference, &layout, &options)?;
            println!(
                "pulled {} as {}: {} layers, {} downloaded, {} blobs already here; manifest {}",
                report.reference,
                report.ref_name,
                report.layers,
                ch03_cgroups::quantity::human_bytes(report.downloaded),
                report.already_present,
                report.manifest_digest
            );
            Ok(0)
        }
        Verb::Push {
            image,
            destination,
            insecure,
            data,
        } => {
            let layout = open_layout(&data.dir())?;
            let options = PushOptions {
                insecure: *insecure,
                progress: true,
            };
            let report = push(&layout, image, destination, &options)?;
            println!(
                "pushed {image} to {}: {} blobs uploaded ({}), {} already there; manifest {}",
                report.destination,
                report.blobs_uploaded,
                ch03_cgroups::quantity::human_bytes(report.uploaded),
                report.blobs_present,
                report.manifest_digest
            );
            Ok(0)
        }
        Verb::Build {
            context,
            tag,
            file,
            data,
        } => {
            let report = demo::build_image(&data.dir(), context, file.clone(), tag.clone())?;
            println!(
                "built {} {}",
                report
                    .ref_name
                    .clone()
                    .unwrap_or_else(|| "(unnamed)".into()),
                report.manifest_digest
            );
            Ok(0)
        }
        Verb::Images { data } => {
            let layout = open_layout(&data.dir())?;
            println!(
                "{:<32} {:<20} {:>7} {:>10}  created",
                "NAME", "DIGEST", "LAYERS", "SIZE"
            );
            for image in layout.images()? {
                let name = image.ref_name.clone().unwrap_or_else(|| "<none>".into());
                let short = image
                    .digest
                    .trim_start_matches("sha256:")
                    .chars()
                    .take(12)
                    .collect::<String>();
                match &image.problem {
                    Some(problem) => println!("{name:<32} {short:<20} {problem}"),
                    None => println!(
                        "{name:<32} {short:<20} {:>7} {:>10}  {}",
                        image.layers,
                        ch03_cgroups::quantity::human_bytes(image.size),
                        image.created.clone().unwrap_or_default()
                    ),
                }
            }
            Ok(0)
        }
        Verb::Run(run) => {
            let RunArgs {
                image,
                read_only,
                data,
                limits,
                isolation,
                command,
            } = run.as_ref();
            let data = data.dir();
            let layout = open_layout(&data)?;
            let store = data.store()?;
            let resolved = limits.resolve()?;
            let on_layer = |diff_id: &str, cached: bool| {
                let short: String = diff_id
                    .trim_start_matches("sha256:")
                    .chars()
                    .take(12)
                    .collect();
                eprintln!(
                    "ch04: layer {short} {}",
                    if cached {
                        "already unpacked"
                    } else {
                        "unpacked into the store"
                    }
                );
            };
            let (isolation, program, dir) = prepare_image_container(
                &layout,
                &store,
                image,
                command,
                isolation.to_isolation("ch04")?,
                *read_only,
                on_layer,
            )?;
            let exit = run_limited(
                isolation,
                &resolved,
                limits.cgroup.as_deref(),
                &program,
                "ch04",
            )
            .with_context(|| format!("running '{}' from {image}", program.display()))?;
            drop(dir);
            Ok(exit.shell_code())
        }
    }
}

fn open_layout(data: &DataDir) -> Result<OciLayout> {
    data.open_layout().with_context(|| {
        format!(
            "no image store at {}: import or pull an image first",
            data.layout_dir().display()
        )
    })
}
