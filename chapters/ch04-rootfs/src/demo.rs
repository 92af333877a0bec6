//! The chapter's demo, and the `unpack` verb's output.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ch02_namespaces::Isolation;
use ch04_rootfs::build::{build, BuildOptions, BuildReport, StepEvent};
use ch04_rootfs::image_run::prepare_image_container;
use ch04_rootfs::store::DataDir;
use ch04_rootfs::unpack::{unpack_layer, UnpackOptions};
use labkit::ScratchDir;

/// The demo's Boxfile: an image from nothing but the host's static busybox.
const DEMO_BOXFILE: &str = r#"# A tiny image, built from the host's static busybox: no download.
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV GREETING="hello from an image built by boxlab"
WORKDIR /srv
RUN echo "the last line, version 1" > /srv/message
CMD ["sh", "-c", "echo $GREETING; cat /srv/message; echo \"PID $$, / holds: $(ls / | tr '\\n' ' ')\"; test -e /etc/os-release || echo 'no trace of the host'"]
"#;

pub fn run() -> Result<i32> {
    println!("boxlab chapter 4: a root filesystem from image layers\n");
    println!("Chapters 2 and 3 isolated and limited a process, but it still saw the host's files.");
    println!("Now it gets its own '/': image layers, stacked with overlayfs, switched to with pivot_root.\n");
    if !nix::unistd::geteuid().is_root() {
        println!("This demo runs build steps in containers and mounts overlays: run it with sudo.");
        println!("Without root you can still unpack layers: cargo run -p ch04-rootfs -- unpack LAYER DIR");
        return Ok(0);
    }
    let scratch = ScratchDir::new("ch04-demo").context("making a scratch directory")?;
    let (context, data) = (scratch.join("context"), DataDir::new(scratch.join("data")));
    std::fs::create_dir_all(&context)?;
    std::fs::copy(labkit::find_static_busybox()?, context.join("busybox"))?;
    std::fs::write(context.join("Boxfile"), DEMO_BOXFILE)?;

    println!(
        "Step 1. The Boxfile ({}):",
        context.join("Boxfile").display()
    );
    for line in DEMO_BOXFILE.lines() {
        println!("    {line}");
    }

    println!("\nStep 2. Build it: each step is a layer, cached by (parent, instruction, inputs)");
    let first = build_image(&data, &context, None, Some("demo:1".into()))?;
    show_layers(&data, "demo:1")?;

    println!(
        "\nStep 3. Run it: its layers stacked read-only, a fresh writable layer on top, pivot_root"
    );
    run_image(&data, "demo:1")?;

    println!("\nStep 4. Change the last RUN line and build again: only what follows the change is rebuilt");
    let changed = DEMO_BOXFILE.replace("version 1", "version 2");
    std::fs::write(context.join("Boxfile"), changed)?;
    let second = build_image(&data, &context, None, Some("demo:2".into()))?;
    let cached = second.steps.iter().filter(|s| s.cached).count();
    println!(
        "  {cached} of {} steps came from the cache; the image's digest changed:",
        second.steps.len()
    );
    println!(
        "    demo:1 {}\n    demo:2 {}",
        first.manifest_digest, second.manifest_digest
    );
    run_image(&data, "demo:2")?;

    println!(
        "\nDone. The scratch directory (context, images, layers, cache) is removed. Try your own:"
    );
    println!("  sudo cargo run -p ch04-rootfs -- build -t mine:1 DIR     # DIR/Boxfile");
    println!("  sudo cargo run -p ch04-rootfs -- run mine:1 -- sh");
    Ok(0)
}

/// Builds `context` into the image store under `data`, printing each step as it happens.
pub fn build_image(
    data: &DataDir,
    context: &Path,
    boxfile: Option<PathBuf>,
    tag: Option<String>,
) -> Result<BuildReport> {
    let layout = data.create_layout()?;
    let store = data.store()?;
    let mut on_step = |event: &StepEvent| {
        if let StepEvent::Finished { .. } = event {
            println!("  {event}");
        }
    };
    let options = BuildOptions {
        context: context.to_path_buf(),
        boxfile,
        tag,
        layout: &layout,
        store: &store,
        cache_dir: data.cache_dir(),
        on_step: Some(&mut on_step),
    };
    Ok(build(options)?)
}

fn show_layers(data: &DataDir, reference: &str) -> Result<()> {
    let layout = data.open_layout()?;
    let image = layout.resolve(reference)?;
    println!("  {reference} = manifest {}", image.manifest_digest);
    for (n, (layer, _diff_id)) in image.layers().enumerate() {
        println!(
            "    layer {}: {} ({})",
            n + 1,
            layer.digest(),
            ch03_cgroups::quantity::human_bytes(layer.size())
        );
    }
    Ok(())
}

fn run_image(data: &DataDir, reference: &str) -> Result<()> {
    let layout = data.open_layout()?;
    let store = data.store()?;
    let (isolation, program, dir) = prepare_image_container(
        &layout,
        &store,
        reference,
        &[],
        Isolation::container_defaults().hostname("boxlab-ch04"),
        false,
        |_, _| {},
    )?;
    let child = isolation.spawn(&program)?;
    drop(isolation);
    let status = child.wait()?;
    drop(dir);
    println!("  the container {status}");
    Ok(())
}

pub fn unpack_verb(layer: &Path, dir: &Path, digest: Option<String>, devices: bool) -> Result<i32> {
    let root = nix::unistd::geteuid().is_root();
    let options = UnpackOptions {
        allow_devices: devices && root,
        preserve_ownership: root,
        expected_digest: digest,
    };
    let report = unpack_layer(layer, dir, &options)?;
    println!(
        "unpacked {} ({:?}, {} bytes) onto {}",
        layer.display(),
        report.compression,
        report.size,
        dir.display()
    );
    println!(
        "  digest   {}  (the blob, as a registry names it)",
        report.digest
    );
    println!(
        "  diff_id  {}  (the uncompressed tar, as the image config lists it)",
        report.diff_id
    );
    println!(
        "  {} entries, {} bytes of file content, {} whiteouts, {} opaque directories",
        report.entries, report.bytes, report.whiteouts, report.opaque_dirs
    );
    for (path, why) in &report.skipped {
        println!("  skipped {}: {why}", path.display());
    }
    Ok(0)
}
