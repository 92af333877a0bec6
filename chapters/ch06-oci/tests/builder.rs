//! The builder API (the seed's `client.containers.run(...)`): an image from chapter 4's store,
//! options written into config.json, GPUs from chapter 5 (a fake host here), and the runtime's
//! `run` — observed from the host and from inside.

mod common;

use std::fs;
use std::path::Path;

use ch05_gpu::discover::{build_fake_host, FakeGpu, FakeNodes};
use ch06_oci::builder::{Container, Run, BUNDLES_DIR};
use common::{busybox_image, cgroup_dirs, cgroup_value, Lab};
use labkit::require_root;

const IMAGE: &str = "boxlab-builder:1";

/// Removes the bundle the builder made for `id` even when the test fails half-way.
struct BundleGuard(String);

impl Drop for BundleGuard {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(Path::new(BUNDLES_DIR).join(&self.0));
        let _ = fs::remove_dir(BUNDLES_DIR);
    }
}

#[test]
fn builder_runs_an_image_in_the_foreground_with_env_and_exit_status() {
    if !require_root("builder_runs_an_image_in_the_foreground_with_env_and_exit_status") {
        return;
    }
    let lab = Lab::new("ch06-builder-fg");
    let data = busybox_image(&lab.scratch, IMAGE);
    let id = lab.id("builder-fg");
    let run = Container::builder(IMAGE)
        .images(&data)
        .root(&lab.root)
        .name(&id)
        .env("BATCH_SIZE", "32")
        .command(["sh", "-c", "exit $((BATCH_SIZE + 1))"])
        .run()
        .unwrap();
    assert!(matches!(run, Run::Exited(33)), "{run:?}");
    assert!(!Path::new(BUNDLES_DIR).join(&id).exists(), "bundle left");
    assert!(cgroup_dirs(&id).is_empty());
}

#[test]
fn builder_detached_sets_memory_cpus_and_gpus_and_removes_everything() {
    if !require_root("builder_detached_sets_memory_cpus_and_gpus_and_removes_everything") {
        return;
    }
    let lab = Lab::new("ch06-builder-bg");
    let data = busybox_image(&lab.scratch, IMAGE);
    let host = build_fake_host(
        &lab.scratch.join("gpu-host"),
        &[FakeGpu::h200(0), FakeGpu::h200(1)],
        FakeNodes::Real,
    )
    .unwrap();
    let id = lab.id("builder-bg");
    let _bundle = BundleGuard(id.clone());
    let run = Container::builder(IMAGE)
        .images(&data)
        .root(&lab.root)
        .name(&id)
        .mem_limit("64m")
        .cpus(0.5)
        .gpus("device=1")
        .gpu_host(host)
        // Chapter 5's renumbering wins over a stale value, and the variable appears once.
        .env("CUDA_VISIBLE_DEVICES", "5")
        .command(["sleep", "1000"])
        .detach(true)
        .run()
        .unwrap();
    let Run::Detached(container) = run else {
        panic!("not detached: {run:?}")
    };
    let state: serde_json::Value = serde_json::from_str(&container.state().unwrap()).unwrap();
    assert_eq!(state["status"], "running", "{state}");
    assert_eq!(
        cgroup_value(&id, "memory", "memory.limit_in_bytes", "memory.max"),
        (64u64 << 20).to_string()
    );
    let quota = cgroup_value(&id, "cpu", "cpu.cfs_quota_us", "cpu.max");
    assert!(quota == "50000" || quota == "50000 100000", "{quota}");
    // Only the chosen GPU's node is in the container's /dev, and the env says which.
    let pid = state["pid"].as_i64().unwrap();
    // `start` returns once the gate is open; the exec of `sleep` follows a moment later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default() != b"sleep\x001000\x00" {
        assert!(std::time::Instant::now() < deadline, "sleep never ran");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let dev = format!("/proc/{pid}/root/dev");
    assert!(Path::new(&dev).join("nvidia1").exists());
    assert!(!Path::new(&dev).join("nvidia0").exists());
    assert!(Path::new(&dev).join("nvidiactl").exists());
    let environ = fs::read(format!("/proc/{pid}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(
        environ
            .split('\0')
            .any(|e| e.starts_with("NVIDIA_VISIBLE_DEVICES=")),
        "{environ}"
    );
    let cuda: Vec<&str> = environ
        .split('\0')
        .filter(|e| e.starts_with("CUDA_VISIBLE_DEVICES="))
        .collect();
    assert_eq!(cuda, ["CUDA_VISIBLE_DEVICES=0"], "{environ}");

    container.remove().unwrap();
    assert!(!lab.state_dir(&id).exists());
    assert!(cgroup_dirs(&id).is_empty());
    assert!(!Path::new(BUNDLES_DIR).join(&id).exists(), "bundle left");
}

#[test]
fn builder_refuses_what_it_cannot_do_and_leaves_nothing() {
    if !require_root("builder_refuses_what_it_cannot_do_and_leaves_nothing") {
        return;
    }
    let lab = Lab::new("ch06-builder-bad");
    let data = busybox_image(&lab.scratch, IMAGE);
    let attempt = |label: &str,
                   edit: &dyn Fn(
        ch06_oci::builder::ContainerBuilder,
    ) -> ch06_oci::builder::ContainerBuilder| {
        let id = lab.id(label);
        let builder = Container::builder(IMAGE)
            .images(&data)
            .root(&lab.root)
            .name(&id)
            .command(["true"]);
        let err = edit(builder).run().unwrap_err().to_string();
        assert!(!lab.state_dir(&id).exists(), "{label}: state left");
        assert!(cgroup_dirs(&id).is_empty(), "{label}: cgroup left");
        assert!(
            !Path::new(BUNDLES_DIR).join(&id).exists(),
            "{label}: bundle left"
        );
        err
    };
    let err = attempt("ports", &|b| b.port("8080"));
    assert!(err.contains("8080") && err.contains("no ':'"), "{err}");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = format!("127.0.0.1:{}:80", taken.local_addr().unwrap().port());
    let err = attempt("busy-port", &|b| b.port(busy.as_str()));
    assert!(
        err.contains(&format!("{} is already in use", &busy[..busy.len() - 3])),
        "{err}"
    );
    let err = attempt("memory", &|b| b.mem_limit("lots"));
    assert!(err.contains("lots"), "{err}");
    let err = attempt("cpus", &|b| b.cpus(-1.0));
    assert!(err.contains("cpus"), "{err}");
    let empty_host = lab.scratch.join("no-gpus");
    fs::create_dir_all(empty_host.join("dev")).unwrap();
    let err = attempt("gpus", &|b| {
        b.gpus("device=0")
            .gpu_host(ch05_gpu::discover::HostRoots::under(&empty_host))
    });
    assert!(err.contains("gpus"), "{err}");
    let err = attempt("image", &|b| b.images(lab.scratch.join("nowhere")));
    assert!(err.contains(IMAGE), "{err}");
}

#[test]
fn builder_publishes_a_port_of_a_detached_container() {
    if !require_root("builder_publishes_a_port_of_a_detached_container") {
        return;
    }
    let lab = Lab::new("ch06-builder-port");
    let data = busybox_image(&lab.scratch, IMAGE);
    let id = lab.id("builder-port");
    let _bundle = BundleGuard(id.clone());
    let port = labkit::free_port();
    let run = Container::builder(IMAGE)
        .images(&data)
        .root(&lab.root)
        .name(&id)
        .port(format!("127.0.0.1:{port}:8080"))
        .command([
            "sh",
            "-c",
            "mkdir -p /www && echo hello-through-the-port > /www/index.html && exec httpd -f -p 8080 -h /www",
        ])
        .detach(true)
        .run()
        .unwrap();
    let Run::Detached(container) = run else {
        panic!("not detached: {run:?}")
    };
    // The server needs a moment to listen; the keeper accepts at once and connects through.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let reply = loop {
        let got = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut stream| {
            use std::io::{Read, Write};
            stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
            let mut reply = String::new();
            stream.read_to_string(&mut reply)?;
            Ok(reply)
        });
        match got {
            Ok(reply) if reply.contains("hello-through-the-port") => break reply,
            _ if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            other => panic!("no reply through 127.0.0.1:{port}: {other:?}"),
        }
    };
    assert!(reply.starts_with("HTTP/1."), "{reply}");
    container.remove().unwrap();
    // The keeper ends with the container and releases the port; the veth goes with the netns.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "port {port} never released"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!lab.state_dir(&id).exists());
    assert!(cgroup_dirs(&id).is_empty());
}
