//! Discovery on fake host trees: real character devices (as root) and plain files (without),
//! the driver's `information` files, and PCI bus order.

use std::fs;
use std::path::Path;

use ch05_gpu::discover::{
    build_fake_host, discover, parse_information, FakeGpu, FakeNodes, HostRoots, FAKE_CAPS_MAJOR,
    FAKE_UVM_MAJOR, NVIDIA_MAJOR,
};
use labkit::{require_root, ScratchDir};

const INFORMATION: &str = "Model: \t\t NVIDIA H200\nIRQ:   \t\t 138\nGPU UUID: \t GPU-1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901\nVideo BIOS: \t 96.00.74.00.01\nBus Type: \t PCIe\nDMA Size: \t 52 bits\nDMA Mask: \t 0xfffffffffffff\nBus Location: \t 0000:19:00.0\nDevice Minor: \t 0\nGPU Firmware: \t 550.54.15\nGPU Excluded:\t No\n";

#[test]
fn the_information_file_gives_model_uuid_bus_and_minor() {
    let info = parse_information(INFORMATION);
    assert_eq!(info.model.as_deref(), Some("NVIDIA H200"));
    assert_eq!(
        info.uuid.as_deref(),
        Some("GPU-1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901")
    );
    assert_eq!(info.bus_location.as_deref(), Some("0000:19:00.0"));
    assert_eq!(info.device_minor, Some(0));
}

#[test]
fn a_garbled_information_file_yields_what_it_can() {
    let info = parse_information("Model: Tesla T4\nDevice Minor: many\njunk without colon\n");
    assert_eq!(info.model.as_deref(), Some("Tesla T4"));
    assert_eq!(info.device_minor, None);
    assert_eq!(info.uuid, None);
}

#[test]
fn plain_files_are_skipped_as_not_char_devices() {
    let scratch = ScratchDir::new("gpu-discover-plain").unwrap();
    let roots = build_fake_host(
        scratch.path(),
        &[FakeGpu::h200(0), FakeGpu::h200(1)],
        FakeNodes::PlainFiles,
    )
    .unwrap();
    let found = discover(&roots).unwrap();
    assert!(found.gpus.is_empty(), "{found:?}");
    assert!(found.control.is_empty(), "{found:?}");
    let skipped: Vec<String> = found
        .skipped
        .iter()
        .map(|s| s.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for name in [
        "nvidia0",
        "nvidia1",
        "nvidiactl",
        "nvidia-uvm",
        "nvidia-uvm-tools",
        "nvidia-modeset",
        "nvidia-cap1",
    ] {
        assert!(skipped.contains(&name.to_string()), "{name}: {skipped:?}");
    }
    assert!(
        found
            .skipped
            .iter()
            .all(|s| s.reason.contains("not a char device")),
        "{:?}",
        found.skipped
    );
}

#[test]
fn a_host_without_nvidia_devices_is_empty_not_an_error() {
    let scratch = ScratchDir::new("gpu-discover-none").unwrap();
    fs::create_dir_all(scratch.join("dev")).unwrap();
    fs::write(scratch.join("dev/null-ish"), "").unwrap();
    let found = discover(&HostRoots::under(scratch.path())).unwrap();
    assert!(found.gpus.is_empty() && found.control.is_empty() && found.skipped.is_empty());
}

#[test]
fn a_missing_dev_root_is_a_clear_error() {
    let roots = HostRoots::under(Path::new("/nonexistent-boxlab-root"));
    let err = discover(&roots).unwrap_err().to_string();
    assert!(
        err.contains("/nonexistent-boxlab-root/dev") && err.contains("--dev"),
        "{err}"
    );
}

#[test]
fn names_that_only_look_like_gpus_are_ignored() {
    if !require_root("names_that_only_look_like_gpus_are_ignored") {
        return;
    }
    let scratch = ScratchDir::new("gpu-discover-names").unwrap();
    let roots = build_fake_host(scratch.path(), &[FakeGpu::h200(0)], FakeNodes::Real).unwrap();
    // Not GPUs: no digits, digits then letters, another driver's node.
    for name in ["nvidia", "nvidia0x", "nvidia-foo"] {
        fs::write(roots.dev.join(name), "").unwrap();
    }
    let found = discover(&roots).unwrap();
    assert_eq!(found.gpus.len(), 1);
    assert!(found.skipped.is_empty(), "{:?}", found.skipped);
}

#[test]
fn real_nodes_give_gpus_control_devices_and_caps() {
    if !require_root("real_nodes_give_gpus_control_devices_and_caps") {
        return;
    }
    let scratch = ScratchDir::new("gpu-discover-real").unwrap();
    let roots = build_fake_host(
        scratch.path(),
        &[FakeGpu::h200(0), FakeGpu::h200(1)],
        FakeNodes::Real,
    )
    .unwrap();
    let found = discover(&roots).unwrap();
    assert!(found.skipped.is_empty(), "{:?}", found.skipped);
    assert_eq!(found.gpus.len(), 2);
    for (i, gpu) in found.gpus.iter().enumerate() {
        let fake = FakeGpu::h200(i as u32);
        assert_eq!(gpu.index, i as u32);
        assert_eq!(gpu.node.host, roots.dev.join(format!("nvidia{i}")));
        assert_eq!(gpu.node.name, Path::new(&format!("nvidia{i}")));
        assert_eq!((gpu.node.major, gpu.node.minor), (NVIDIA_MAJOR, i as u32));
        assert_eq!(gpu.node.mode, 0o666);
        assert_eq!(gpu.model.as_deref(), Some("NVIDIA H200"));
        assert_eq!(gpu.uuid.as_deref(), Some(fake.uuid.as_str()));
        assert_eq!(gpu.bus_id.as_deref(), Some(fake.bus_id.as_str()));
    }
    let control: Vec<(String, u32, u32)> = found
        .control
        .iter()
        .map(|d| (d.name.display().to_string(), d.major, d.minor))
        .collect();
    assert_eq!(
        control,
        [
            ("nvidiactl".to_string(), NVIDIA_MAJOR, 255),
            ("nvidia-uvm".to_string(), FAKE_UVM_MAJOR, 0),
            ("nvidia-uvm-tools".to_string(), FAKE_UVM_MAJOR, 1),
            ("nvidia-modeset".to_string(), NVIDIA_MAJOR, 254),
        ]
    );
    assert_eq!(found.caps.len(), 1);
    assert_eq!(found.caps[0].name, Path::new("nvidia-caps/nvidia-cap1"));
    assert_eq!(
        (found.caps[0].major, found.caps[0].minor),
        (FAKE_CAPS_MAJOR, 1)
    );
}

#[test]
fn indexes_follow_pci_bus_order_not_minor_numbers() {
    if !require_root("indexes_follow_pci_bus_order_not_minor_numbers") {
        return;
    }
    let scratch = ScratchDir::new("gpu-discover-order").unwrap();
    // /dev/nvidia0 sits on the *later* bus: NVML (and docker) call it GPU 1.
    let mut first = FakeGpu::h200(0);
    first.bus_id = "0000:9A:00.0".into();
    let mut second = FakeGpu::h200(1);
    second.bus_id = "0000:1b:00.0".into();
    let roots = build_fake_host(scratch.path(), &[first, second], FakeNodes::Real).unwrap();
    let found = discover(&roots).unwrap();
    let order: Vec<(u32, u32)> = found.gpus.iter().map(|g| (g.index, g.node.minor)).collect();
    assert_eq!(order, [(0, 1), (1, 0)]);
}

#[test]
fn a_gpu_the_driver_does_not_describe_still_counts() {
    if !require_root("a_gpu_the_driver_does_not_describe_still_counts") {
        return;
    }
    let scratch = ScratchDir::new("gpu-discover-noinfo").unwrap();
    let roots = build_fake_host(scratch.path(), &[FakeGpu::h200(0)], FakeNodes::Real).unwrap();
    fs::remove_dir_all(&roots.proc_nvidia).unwrap();
    let found = discover(&roots).unwrap();
    assert_eq!(found.gpus.len(), 1);
    assert_eq!(found.gpus[0].uuid, None);
    assert_eq!(found.gpus[0].id(), "0");
}
