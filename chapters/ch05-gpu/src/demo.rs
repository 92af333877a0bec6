//! The chapter's demo: a container given one GPU sees that GPU, and nothing of the others.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use ch01_process::exec::Program;
use ch02_namespaces::Isolation;
use ch03_cgroups::args::ResolvedLimits;
use ch03_cgroups::run::run_limited_with;
use ch04_rootfs::pivot::{DeviceNode, RootfsSpec};
use ch04_rootfs::with_rootfs_spec;
use ch05_gpu::devices::{Applied, Program as DeviceProgram};
use ch05_gpu::discover::{build_fake_host, discover, Discovery, FakeGpu, FakeNodes, HostRoots};
use ch05_gpu::expose::{build_plan, PlanOptions};
use ch05_gpu::gpu_container::{apply_rules, rules_for_plan, StateDir};
use ch05_gpu::select::parse_gpus_flag;
use labkit::{busybox_rootfs, ScratchDir};

use crate::base_env;
use ch05_gpu::libraries::host_driver_files;

pub fn run() -> Result<i32> {
    println!("boxlab chapter 5: GPUs in a container\n");
    println!("A GPU reaches a container as three things: device nodes in its /dev, the driver's");
    println!("libraries bound in, and a devices cgroup that lets it open exactly those nodes.\n");
    if !nix::unistd::geteuid().is_root() {
        println!("This demo makes device nodes, cgroups and mounts: run it with sudo.");
        return Ok(0);
    }
    let scratch = ScratchDir::new("ch05-demo").context("making a scratch directory")?;

    println!(
        "Step 1. Find the NVIDIA devices (/dev/nvidia*, /proc/driver/nvidia/gpus/*/information)"
    );
    let real = discover(&HostRoots::default())?;
    let (discovery, real_gpus) = if real.gpus.is_empty() {
        println!(
            "  no NVIDIA GPU on this host: making a fake one under {}",
            scratch.path().display()
        );
        println!("  (mknod character devices with NVIDIA's numbers: major 195, minor = GPU, 255 = nvidiactl)");
        let roots = build_fake_host(
            &scratch.join("host"),
            &[FakeGpu::h200(0), FakeGpu::h200(1)],
            FakeNodes::Real,
        )?;
        (discover(&roots)?, false)
    } else {
        (real, true)
    };
    show_discovery(&discovery);

    let chosen = if discovery.gpus.len() > 1 { 1 } else { 0 };
    let spec = format!("\"device={chosen}\"");
    println!("\nStep 2. docker run --gpus '{spec}': the plan for GPU {chosen} only");
    let selection = parse_gpus_flag(&spec)?;
    let driver = host_driver_files(&selection.effective_capabilities());
    let plan = build_plan(&discovery, &selection, &driver, &PlanOptions::default())?;
    for device in &plan.devices {
        println!(
            "  device  /dev/{}  (bind-mounted from {})",
            device.name.display(),
            device.host.display()
        );
    }
    println!(
        "  driver  {} libraries and {} programs bound read-only",
        driver.libraries.len(),
        driver.binaries.len()
    );
    for pair in &plan.env {
        println!("  env     {pair}");
    }
    for note in &plan.notes {
        println!("  note    {note}");
    }

    println!(
        "\nStep 3. The devices cgroup: deny everything, then allow the standard set and these GPUs"
    );
    let rules = rules_for_plan(&plan);
    for rule in &rules {
        println!("  allow   {rule}");
    }
    let program = DeviceProgram::build(&rules);
    println!("  on cgroup v2 the same rules are a BPF_PROG_TYPE_CGROUP_DEVICE program of {} instructions;", program.insns().len());
    println!("  its first lines (r2 = device type, r3 = access, r4 = major, r5 = minor):");
    for line in program.listing().lines().take(8) {
        println!("    {line}");
    }

    println!("\nStep 4. A container with that plan");
    let state = StateDir::create()?;
    let (root, script) = if real_gpus {
        (
            PathBuf::from("/"),
            "ls /dev | grep nvidia; echo CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES; nvidia-smi -L"
                .to_string(),
        )
    } else {
        (
            busybox_rootfs(&scratch.join("rootfs"))?,
            fake_script(chosen),
        )
    };
    let mut spec = RootfsSpec {
        path: root,
        ..RootfsSpec::default()
    };
    plan.extend_spec(&mut spec, state.path())?;
    if !real_gpus {
        // A node that got into the container without being allowed: the cgroup still says no.
        let other = discovery
            .gpus
            .iter()
            .find(|g| g.index != chosen)
            .context("the fake host has two GPUs")?;
        spec.devices.push(DeviceNode {
            host: other.node.host.clone(),
            name: "smuggled-nvidia".into(),
        });
    }
    let isolation = with_rootfs_spec(Isolation::container_defaults().hostname("boxlab-gpu"), spec)?;
    let program = Program::new(&["sh", "-c", &script])?.with_env(&plan.env_over(&base_env()))?;
    let applied: Arc<Mutex<Option<Applied>>> = Arc::default();
    let record = Arc::clone(&applied);
    let exit = run_limited_with(
        isolation,
        &ResolvedLimits::default(),
        None,
        &program,
        "ch05",
        move |cgroup| {
            let done = apply_rules(cgroup, &rules)?;
            *record.lock().unwrap_or_else(|e| e.into_inner()) = Some(done);
            Ok(())
        },
    )?;
    if let Some(applied) = applied.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        let v1 = applied
            .v1
            .first()
            .map(|w| w.file.display().to_string())
            .unwrap_or_else(|| "(none: v2 host)".into());
        println!(
            "  (v1 rules written to {}; eBPF program attached: {})",
            v1,
            applied
                .ebpf
                .as_ref()
                .map_or("no".into(), |e| e.dir.display().to_string())
        );
    }
    println!("  the container {exit}");
    drop(state);
    println!("\nDone. On a GPU host, scripts/gpu-check.sh runs the same with the real devices and nvidia-smi.");
    Ok(0)
}

fn show_discovery(discovery: &Discovery) {
    for gpu in &discovery.gpus {
        println!(
            "  GPU {}  {}  {}  bus {}  /dev/{} = c {}:{}",
            gpu.index,
            gpu.model.as_deref().unwrap_or("?"),
            gpu.uuid.as_deref().unwrap_or("(no uuid)"),
            gpu.bus_id.as_deref().unwrap_or("?"),
            gpu.node.name.display(),
            gpu.node.major,
            gpu.node.minor
        );
    }
    for control in &discovery.control {
        println!(
            "  control /dev/{} = c {}:{}",
            control.name.display(),
            control.major,
            control.minor
        );
    }
}

// ANCHOR: fake_script
/// What the container tries on the fake host, each line saying what it shows.
fn fake_script(chosen: u32) -> String {
    let other = if chosen == 0 { 1 } else { 0 };
    format!(
        "echo \"  inside: /dev holds: $(ls /dev | grep nvidia | tr '\\n' ' ')\"; \
         echo \"  inside: CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES NVIDIA_VISIBLE_DEVICES=$NVIDIA_VISIBLE_DEVICES\"; \
         head -c1 /dev/nvidia{chosen} 2>&1 | sed 's/^/  inside: allowed by the cgroup, but no driver behind a fake node: /'; \
         test -e /dev/nvidia{other} || echo '  inside: /dev/nvidia{other} is not here'; \
         mknod /tmp/nvidia{other} c 195 {other} && echo '  inside: mknod /tmp/nvidia{other} c 195 {other} worked (runc allows mknod of any node)'; \
         head -c1 /tmp/nvidia{other} 2>&1 | sed 's/^/  inside: but opening the node it made: /'; \
         head -c1 /dev/smuggled-nvidia 2>&1 | sed 's/^/  inside: opening a smuggled node of GPU {other}: /'; true"
    )
}
// ANCHOR_END: fake_script
