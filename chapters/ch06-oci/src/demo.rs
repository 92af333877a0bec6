//! The chapter's demo: a bundle from the host's busybox, taken through the runc verbs one by
//! one, each run as the command a student (or containerd) would type.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use labkit::{busybox_rootfs, ScratchDir};

pub fn run() -> Result<i32> {
    println!("boxlab chapter 6: an OCI runtime\n");
    println!(
        "containerd, podman and docker do not make containers themselves: they write a bundle"
    );
    println!("(config.json + a root filesystem) and call a runtime with runc's command line. This is one,");
    println!("built from chapters 2–5. Every step below is this binary run as containerd would run it.\n");
    if !nix::unistd::geteuid().is_root() {
        println!("This demo creates namespaces, cgroups and mounts: run it with sudo.");
        return Ok(0);
    }
    let scratch = ScratchDir::new("ch06-demo").context("making a scratch directory")?;
    let bundle = scratch.join("bundle");
    busybox_rootfs(&bundle.join("rootfs"))?;
    let state_root = scratch.join("state");
    let me = std::env::current_exe().context("finding this binary")?;
    let root_arg = state_root.display().to_string();
    let bundle_arg = bundle.display().to_string();
    let log_out = scratch.join("verb.out");
    let log_err = scratch.join("verb.err");
    let step = |words: &[&str]| -> Result<String> {
        println!("$ ch06-oci --root $STATE {}", words.join(" "));
        // Files, not pipes: a created container inherits the runtime's stdout and stderr (as
        // with runc), and would hold a pipe open long after `create` has returned.
        let status = Command::new(&me)
            .arg("--root")
            .arg(&root_arg)
            .args(words)
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&log_out)?)
            .stderr(std::fs::File::create(&log_err)?)
            .status()?;
        let text = std::fs::read_to_string(&log_out).unwrap_or_default();
        for line in text.lines().chain(
            std::fs::read_to_string(&log_err)
                .unwrap_or_default()
                .lines(),
        ) {
            println!("  {line}");
        }
        if !status.success() {
            bail!("`{}` failed", words.join(" "));
        }
        Ok(text)
    };
    // Whatever happens below, nothing of the demo container outlives it.
    let _cleanup = DeleteOnDrop {
        me: me.clone(),
        root: root_arg.clone(),
    };

    println!("Step 1. A bundle: {bundle_arg}/rootfs (busybox) and a config.json");
    step(&["spec", "--bundle", &bundle_arg])?;
    edit_config(&bundle.join("config.json"))?;
    println!("  (edited: process.args writes what it sees to /tmp/out, hostname = boxlab-oci, root writable,");
    println!("   memory limit 64 MiB, pids 32)");

    println!("\nStep 2. create: namespaces, cgroup, root filesystem — and the command waits at exec.fifo");
    step(&["create", "--bundle", &bundle_arg, "demo"])?;
    step(&["state", "demo"])?;
    println!("  (the status is \"created\": PID 1 exists, set up and waiting at the gate; the command has not run)");

    println!("\nStep 3. start: open exec.fifo for reading; the command goes on to exec");
    step(&["start", "demo"])?;
    std::thread::sleep(std::time::Duration::from_millis(300));
    let output = std::fs::read_to_string(bundle.join("rootfs/tmp/out")).unwrap_or_default();
    for line in output.lines() {
        println!("  container wrote: {line}");
    }
    step(&["state", "demo"])?;

    println!("\nStep 4. kill and delete: the processes, the cgroup and the state go");
    step(&["kill", "demo", "KILL"])?;
    std::thread::sleep(std::time::Duration::from_millis(200));
    step(&["delete", "demo"])?;
    step(&["list"])?;
    println!("\nDone. With containerd: ctr run --runc-binary $(which ch06-oci) …; with podman: podman --runtime …");
    Ok(0)
}

/// Sets the demo's command, hostname and limits in the generated config.
fn edit_config(path: &Path) -> Result<()> {
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    config["process"]["args"] = serde_json::json!([
        "sh",
        "-c",
        "echo \"hello from PID $$ on $(hostname), in cgroup $(cut -d: -f3 /proc/self/cgroup | head -1)\" > /tmp/out; ls / | tr '\\n' ' ' >> /tmp/out; echo >> /tmp/out; sleep 30"
    ]);
    config["hostname"] = serde_json::json!("boxlab-oci");
    config["root"]["readonly"] = serde_json::json!(false); // so the command can leave /tmp/out behind
    config["linux"]["resources"]["memory"] = serde_json::json!({"limit": 67108864});
    config["linux"]["resources"]["pids"] = serde_json::json!({"limit": 32});
    std::fs::write(path, serde_json::to_vec_pretty(&config)?)?;
    Ok(())
}

/// Force-deletes the demo container when the demo ends, also on an error.
struct DeleteOnDrop {
    me: std::path::PathBuf,
    root: String,
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        let _ = Command::new(&self.me)
            .args(["--root", &self.root, "delete", "--force", "demo"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}
