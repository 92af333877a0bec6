//! CDI specs: YAML and JSON as `nvidia-ctk cdi generate` writes them, fully qualified names,
//! directory priority and conflicts, malformed files named in the error, and the edits turned
//! into the same plan `--gpus` gives.

use std::fs;
use std::path::{Path, PathBuf};

use ch05_gpu::cdi::{parse_qualified_name, parse_spec, CdiRegistry};
use labkit::ScratchDir;

/// What `nvidia-ctk cdi generate` writes for a two-GPU host (shortened).
const NVIDIA_YAML: &str = r#"---
cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
- name: "0"
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
      major: 195
      minor: 0
- name: GPU-00000000-1b2c-3d4e-5f60-718293a4b5c6
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
      major: 195
      minor: 0
- name: "1"
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia1
      major: 195
      minor: 1
- name: all
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
      major: 195
      minor: 0
    - path: /dev/nvidia1
      major: 195
      minor: 1
containerEdits:
  env:
  - NVIDIA_VISIBLE_DEVICES=void
  deviceNodes:
  - path: /dev/nvidiactl
    major: 195
    minor: 255
  - path: /dev/nvidia-uvm
    hostPath: /dev/nvidia-uvm
    type: c
    major: 511
    minor: 0
  hooks:
  - hookName: createContainer
    path: /usr/bin/nvidia-cdi-hook
    args:
    - nvidia-cdi-hook
    - create-symlinks
    - --link
    - libcuda.so.1::/usr/lib/x86_64-linux-gnu/libcuda.so
  - hookName: createContainer
    path: /usr/bin/nvidia-cdi-hook
    args:
    - nvidia-cdi-hook
    - update-ldcache
    - --folder
    - /usr/lib/x86_64-linux-gnu
  mounts:
  - hostPath: /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15
    containerPath: /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15
    options:
    - ro
    - nosuid
    - nodev
    - bind
  - hostPath: /usr/bin/nvidia-smi
    containerPath: /usr/bin/nvidia-smi
    options: [ro, nosuid, nodev, bind]
"#;

const OTHER_JSON: &str = r#"{
  "cdiVersion": "0.6.0",
  "kind": "vendor.example/fpga",
  "devices": [
    {"name": "card-a", "containerEdits": {
      "deviceNodes": [{"path": "/dev/fpga0", "hostPath": "/dev/fpga0", "major": 240, "minor": 3}],
      "env": ["FPGA=a"]
    }},
    {"name": "card-b", "containerEdits": {
      "deviceNodes": [{"path": "/opt/fpga/ctl", "hostPath": "/dev/fpga-ctl", "major": 240, "minor": 9}],
      "env": ["FPGA=b"]
    }}
  ]
}"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

fn registry(scratch: &ScratchDir) -> CdiRegistry {
    CdiRegistry::load(&[scratch.join("etc/cdi"), scratch.join("var/run/cdi")])
}

#[test]
fn qualified_names_are_checked() {
    let name = parse_qualified_name("nvidia.com/gpu=0").unwrap();
    assert_eq!(
        (
            name.vendor.as_str(),
            name.class.as_str(),
            name.name.as_str()
        ),
        ("nvidia.com", "gpu", "0")
    );
    assert!(parse_qualified_name("nvidia.com/gpu=GPU-1b2c3d4e-aa").is_ok());
    assert!(parse_qualified_name("nvidia.com/mig=0:1").is_ok());
    for (bad, expected) in [
        ("gpu0", "no '='"),
        ("nvidia.com=0", "no '/'"),
        ("nvidia.com/gpu=", "device name is empty"),
        ("nvidia.com/gpu=-1", "must start with a letter or digit"),
        ("nvidia.com/gpu=0-", "must end with a letter or digit"),
        ("1vendor/gpu=0", "must start with a letter"),
        ("nvidia.com/g.pu=0", "holds '.'"),
        ("nvidia.com/gpu=a b", "holds ' '"),
    ] {
        let err = parse_qualified_name(bad).unwrap_err().to_string();
        assert!(
            err.contains(expected) && err.contains("vendor/class=name"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn yaml_and_json_specs_parse() {
    let spec = parse_spec(NVIDIA_YAML, Path::new("/etc/cdi/nvidia.yaml")).unwrap();
    assert_eq!(spec.kind, "nvidia.com/gpu");
    assert_eq!(spec.devices.len(), 4);
    assert_eq!(spec.container_edits.device_nodes.len(), 2);
    assert_eq!(spec.container_edits.hooks.len(), 2);
    assert_eq!(spec.container_edits.mounts[1].options[0], "ro");
    let spec = parse_spec(OTHER_JSON, Path::new("/etc/cdi/fpga.json")).unwrap();
    assert_eq!(
        spec.devices[1].container_edits.device_nodes[0].minor,
        Some(9)
    );
}

#[test]
fn malformed_specs_are_rejected_naming_the_file() {
    let cases: &[(&str, &str, &str)] = &[
        ("bad.yaml", "cdiVersion: 0.5.0\nkind: [unclosed\n", "not valid YAML"),
        ("bad.json", "{\"cdiVersion\": \"0.5.0\",", "not valid JSON"),
        (
            "nokind.yaml",
            "cdiVersion: 0.5.0\ndevices:\n- name: \"0\"\n",
            "missing field `kind`",
        ),
        (
            "kind.yaml",
            "cdiVersion: 0.5.0\nkind: gpu\ndevices:\n- name: \"0\"\n",
            "kind \"gpu\" is invalid",
        ),
        (
            "version.yaml",
            "cdiVersion: latest\nkind: nvidia.com/gpu\ndevices:\n- name: \"0\"\n",
            "cdiVersion \"latest\"",
        ),
        (
            "name.yaml",
            "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n- name: \"gpu#0\"\n",
            "device name \"gpu#0\" is invalid",
        ),
        (
            "dup.yaml",
            "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n- name: \"0\"\n- name: \"0\"\n",
            "defines device \"0\" twice",
        ),
        (
            "empty.yaml",
            "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices: []\n",
            "defines no devices",
        ),
        (
            "relative.yaml",
            "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n- name: \"0\"\n  containerEdits:\n    deviceNodes:\n    - path: dev/nvidia0\n",
            "must be an absolute path",
        ),
    ];
    for (name, text, expected) in cases {
        let path = PathBuf::from("/etc/cdi").join(name);
        let err = parse_spec(text, &path).unwrap_err().to_string();
        assert!(
            err.contains(expected) && err.contains(&path.display().to_string()),
            "{name}: {err}"
        );
    }
}

#[test]
fn names_resolve_to_their_edits_and_all_uses_the_specs_all_device() {
    let scratch = ScratchDir::new("cdi-resolve").unwrap();
    write(&scratch.join("etc/cdi"), "nvidia.yaml", NVIDIA_YAML);
    write(&scratch.join("etc/cdi"), "fpga.json", OTHER_JSON);
    write(
        &scratch.join("etc/cdi"),
        "README.txt",
        "not a spec: ignored",
    );
    let reg = registry(&scratch);
    assert!(reg.errors.is_empty(), "{:?}", reg.errors);
    assert_eq!(reg.specs.len(), 2);
    assert!(reg
        .device_names()
        .contains(&"nvidia.com/gpu=GPU-00000000-1b2c-3d4e-5f60-718293a4b5c6".to_string()));

    let one = reg.resolve(&["nvidia.com/gpu=1"]).unwrap();
    assert_eq!(one.devices, ["nvidia.com/gpu=1"]);
    let paths: Vec<&str> = one
        .edits
        .device_nodes
        .iter()
        .map(|n| n.path.as_str())
        .collect();
    // The spec's own edits first, then the device's.
    assert_eq!(paths, ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia1"]);

    let all = reg.resolve(&["nvidia.com/gpu=all"]).unwrap();
    assert_eq!(all.devices, ["nvidia.com/gpu=all"]);
    assert_eq!(all.edits.device_nodes.len(), 4);

    // A kind without an `all` device: every device of the kind.
    let fpgas = reg.resolve(&["vendor.example/fpga=all"]).unwrap();
    assert_eq!(
        fpgas.devices,
        ["vendor.example/fpga=card-a", "vendor.example/fpga=card-b"]
    );

    // Two kinds at once; the same device twice counts once.
    let both = reg
        .resolve(&[
            "nvidia.com/gpu=0",
            "vendor.example/fpga=card-a",
            "nvidia.com/gpu=0",
        ])
        .unwrap();
    assert_eq!(both.devices.len(), 2);
    assert_eq!(both.sources.len(), 2);
}

#[test]
fn unknown_names_list_what_exists() {
    let scratch = ScratchDir::new("cdi-unknown").unwrap();
    write(&scratch.join("etc/cdi"), "nvidia.yaml", NVIDIA_YAML);
    let reg = registry(&scratch);
    let err = reg.resolve(&["nvidia.com/gpu=7"]).unwrap_err().to_string();
    assert!(
        err.contains("nvidia.com/gpu=7 is not defined") && err.contains("0, 1, GPU-"),
        "{err}"
    );
    let err = reg.resolve(&["amd.com/gpu=0"]).unwrap_err().to_string();
    assert!(
        err.contains("no CDI spec defines kind amd.com/gpu") && err.contains("nvidia.com/gpu"),
        "{err}"
    );
    let err = reg.resolve(&["gpu=0"]).unwrap_err().to_string();
    assert!(err.contains("not a CDI device name"), "{err}");
}

#[test]
fn one_bad_file_does_not_spoil_the_directory() {
    let scratch = ScratchDir::new("cdi-badfile").unwrap();
    write(&scratch.join("etc/cdi"), "nvidia.yaml", NVIDIA_YAML);
    let bad = write(&scratch.join("etc/cdi"), "broken.yaml", "kind: [\n");
    let reg = registry(&scratch);
    assert_eq!(reg.specs.len(), 1);
    assert_eq!(reg.errors.len(), 1);
    assert!(reg.errors[0]
        .to_string()
        .contains(&bad.display().to_string()));
    // The good spec's devices still resolve...
    reg.resolve(&["nvidia.com/gpu=0"]).unwrap();
    // ...and a device that is missing points at the file that might have held it.
    let err = reg
        .resolve(&["vendor.example/fpga=card-a"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("could not be read") && err.contains("broken.yaml"),
        "{err}"
    );
}

#[test]
fn var_run_overrides_etc_and_a_same_directory_duplicate_conflicts() {
    let scratch = ScratchDir::new("cdi-priority").unwrap();
    write(&scratch.join("etc/cdi"), "nvidia.yaml", NVIDIA_YAML);
    let newer = NVIDIA_YAML.replace("minor: 1\n", "minor: 101\n");
    write(&scratch.join("var/run/cdi"), "nvidia.yaml", &newer);
    let reg = registry(&scratch);
    let one = reg.resolve(&["nvidia.com/gpu=1"]).unwrap();
    assert!(one.sources[0].starts_with(scratch.join("var/run/cdi")));
    assert!(one
        .edits
        .device_nodes
        .iter()
        .any(|n| n.path == "/dev/nvidia1" && n.minor == Some(101)));

    let conflict = ScratchDir::new("cdi-conflict").unwrap();
    write(&conflict.join("etc/cdi"), "a.yaml", NVIDIA_YAML);
    write(&conflict.join("etc/cdi"), "b.yaml", NVIDIA_YAML);
    let reg = registry(&conflict);
    let err = reg.resolve(&["nvidia.com/gpu=0"]).unwrap_err().to_string();
    assert!(
        err.contains("more than one spec") && err.contains("a.yaml") && err.contains("b.yaml"),
        "{err}"
    );
    assert!(!reg.device_names().contains(&"nvidia.com/gpu=0".to_string()));
}

#[test]
fn cdi_edits_become_a_gpu_plan() {
    let scratch = ScratchDir::new("cdi-plan").unwrap();
    write(&scratch.join("etc/cdi"), "nvidia.yaml", NVIDIA_YAML);
    write(&scratch.join("etc/cdi"), "fpga.json", OTHER_JSON);
    let reg = registry(&scratch);
    let plan = reg
        .resolve(&["nvidia.com/gpu=1"])
        .unwrap()
        .to_plan()
        .unwrap();
    let devices: Vec<(String, String)> = plan
        .devices
        .iter()
        .map(|d| (d.host.display().to_string(), d.name.display().to_string()))
        .collect();
    assert_eq!(
        devices,
        [
            ("/dev/nvidiactl".to_string(), "nvidiactl".to_string()),
            ("/dev/nvidia-uvm".to_string(), "nvidia-uvm".to_string()),
            ("/dev/nvidia1".to_string(), "nvidia1".to_string()),
        ]
    );
    assert_eq!(plan.allow, [(195, 255), (511, 0), (195, 1)]);
    assert_eq!(plan.binds.len(), 2);
    assert!(plan
        .binds
        .iter()
        .all(|b| b.readonly && b.source == b.target));
    assert!(plan
        .env
        .contains(&"NVIDIA_VISIBLE_DEVICES=void".to_string()));
    assert!(plan
        .env
        .contains(&"LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu".to_string()));
    assert_eq!(plan.files.len(), 1);
    assert!(
        plan.notes.len() == 1 && plan.notes[0].contains("create-symlinks"),
        "{:?}",
        plan.notes
    );

    // A node outside /dev is bound at its path; its numbers are still allowed.
    let plan = reg
        .resolve(&["vendor.example/fpga=card-b"])
        .unwrap()
        .to_plan()
        .unwrap();
    assert!(plan.devices.is_empty());
    assert_eq!(plan.binds[0].target, Path::new("/opt/fpga/ctl"));
    assert_eq!(plan.allow, [(240, 9)]);
    assert_eq!(plan.env, ["FPGA=b"]);
}

#[test]
fn nodes_without_numbers_are_looked_up_and_must_be_char_devices() {
    let scratch = ScratchDir::new("cdi-stat").unwrap();
    let plain = write(&scratch.join("host"), "nvidia9", "");
    let spec = format!(
        "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n- name: \"9\"\n  containerEdits:\n    deviceNodes:\n    - path: /dev/nvidia9\n      hostPath: {}\n- name: blk\n  containerEdits:\n    deviceNodes:\n    - path: /dev/sda\n      type: b\n      major: 8\n      minor: 0\n- name: null\n  containerEdits:\n    deviceNodes:\n    - path: /dev/null\n",
        plain.display()
    );
    write(&scratch.join("etc/cdi"), "nvidia.yaml", &spec);
    let reg = registry(&scratch);
    assert!(reg.errors.is_empty(), "{:?}", reg.errors);
    let err = reg
        .resolve(&["nvidia.com/gpu=9"])
        .unwrap()
        .to_plan()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not a char device") && err.contains("nvidia9"),
        "{err}"
    );
    let err = reg
        .resolve(&["nvidia.com/gpu=blk"])
        .unwrap()
        .to_plan()
        .unwrap_err()
        .to_string();
    assert!(err.contains("block device"), "{err}");
    // /dev/null is a real char device on any host: its numbers come from stat.
    let plan = reg
        .resolve(&["nvidia.com/gpu=null"])
        .unwrap()
        .to_plan()
        .unwrap();
    assert_eq!(plan.allow, [(1, 3)]);
}
