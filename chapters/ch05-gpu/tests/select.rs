//! `--gpus` and `NVIDIA_VISIBLE_DEVICES` in every form docker and the toolkit accept, the bad
//! ones refused with a useful message, and resolution against a two-GPU host.

use std::path::PathBuf;

use ch05_gpu::discover::{DeviceInfo, Discovery, Gpu, NVIDIA_MAJOR};
use ch05_gpu::select::{
    parse_gpus_flag, parse_visible_devices, resolve, DeviceId, GpuRequest, GpuSelection,
    SelectError,
};

const UUID0: &str = "GPU-00000000-1b2c-3d4e-5f60-718293a4b5c6";
const UUID1: &str = "GPU-00000001-1b2c-3d4e-5f60-718293a4b5c6";

fn host(count: u32) -> Discovery {
    let uuids = [UUID0, UUID1, "GPU-2", "GPU-3"];
    Discovery {
        gpus: (0..count)
            .map(|i| Gpu {
                index: i,
                node: DeviceInfo {
                    host: PathBuf::from(format!("/dev/nvidia{i}")),
                    name: PathBuf::from(format!("nvidia{i}")),
                    major: NVIDIA_MAJOR,
                    minor: i,
                    mode: 0o666,
                },
                model: Some("NVIDIA H200".into()),
                bus_id: None,
                uuid: Some(uuids[i as usize].into()),
            })
            .collect(),
        ..Discovery::default()
    }
}

fn request(flag: &str) -> GpuRequest {
    parse_gpus_flag(flag)
        .unwrap_or_else(|e| panic!("{flag}: {e}"))
        .request
}

fn chosen(selection: &GpuSelection, count: u32) -> Result<Vec<u32>, SelectError> {
    let discovery = host(count);
    Ok(resolve(selection, &discovery)?
        .iter()
        .map(|g| g.index)
        .collect())
}

#[test]
fn every_gpus_form_docker_accepts() {
    assert_eq!(request("all"), GpuRequest::All);
    assert_eq!(request("2"), GpuRequest::Count(2));
    assert_eq!(request("count=2"), GpuRequest::Count(2));
    assert_eq!(request("count=all"), GpuRequest::All);
    assert_eq!(
        request("\"device=0,1\""),
        GpuRequest::Devices(vec![DeviceId::Index(0), DeviceId::Index(1)])
    );
    assert_eq!(
        request("device=1"),
        GpuRequest::Devices(vec![DeviceId::Index(1)])
    );
    assert_eq!(
        request(&format!("device={UUID1}")),
        GpuRequest::Devices(vec![DeviceId::Uuid(UUID1.into())])
    );
    assert_eq!(request("driver=nvidia,all"), GpuRequest::All);
    // docker: capabilities alone mean one GPU.
    assert_eq!(request("capabilities=utility"), GpuRequest::Count(1));
}

#[test]
fn capabilities_are_carried_and_default_to_compute_and_utility() {
    let selection = parse_gpus_flag("2,\"capabilities=compute,video\"").unwrap();
    assert_eq!(selection.request, GpuRequest::Count(2));
    assert_eq!(
        selection.capabilities,
        Some(vec!["compute".into(), "video".into()])
    );
    assert_eq!(
        parse_gpus_flag("all").unwrap().effective_capabilities(),
        ["compute", "utility"]
    );
    assert_eq!(
        parse_gpus_flag("\"capabilities=all,gpu\"")
            .unwrap()
            .effective_capabilities()
            .len(),
        7
    );
}

#[test]
fn bad_gpus_values_say_what_to_write() {
    let cases: &[(&str, &str)] = &[
        ("", "empty"),
        ("0", "count of 0"),
        ("count=0", "count of 0"),
        ("-1", "not a GPU count"),
        ("lots", "not a GPU count"),
        ("device=0,1", "quote it"),
        ("2,3", "given twice"),
        ("\"device=0,1", "not closed"),
        ("device=", "empty entry"),
        ("device=gpu0", "not a GPU index"),
        ("device=GPU-xyz", "not a GPU index"),
        ("color=red", "unknown key `color`"),
        ("driver=amd", "only `nvidia`"),
        (
            "\"capabilities=compute,telepathy\"",
            "unknown capability `telepathy`",
        ),
        ("capabilities=compute,utility", "needs double quotes"),
    ];
    for (flag, expected) in cases {
        let err = parse_gpus_flag(flag)
            .map(|s| format!("accepted: {s:?}"))
            .unwrap_or_else(|e| e.to_string());
        assert!(err.contains(expected), "--gpus {flag:?}: {err}");
    }
}

#[test]
fn nvidia_visible_devices_forms() {
    let req = |v: Option<&str>| parse_visible_devices(v, None).unwrap().request;
    assert_eq!(req(Some("all")), GpuRequest::All);
    assert_eq!(req(Some("none")), GpuRequest::DriverOnly);
    assert_eq!(req(Some("void")), GpuRequest::Nothing);
    assert_eq!(req(Some("")), GpuRequest::Nothing);
    assert_eq!(req(None), GpuRequest::Nothing);
    assert_eq!(
        req(Some(&format!("1, {UUID0}"))),
        GpuRequest::Devices(vec![DeviceId::Index(1), DeviceId::Uuid(UUID0.into())])
    );
    assert_eq!(
        req(Some("MIG-4b9f1b7e-5c9a-5f1b-9d3e-0a1b2c3d4e5f,0:1")),
        GpuRequest::Devices(vec![
            DeviceId::Mig("MIG-4b9f1b7e-5c9a-5f1b-9d3e-0a1b2c3d4e5f".into()),
            DeviceId::Mig("0:1".into())
        ])
    );
    let with_caps = parse_visible_devices(Some("0"), Some("utility")).unwrap();
    assert_eq!(with_caps.capabilities, Some(vec!["utility".to_string()]));

    let err = parse_visible_devices(Some("0,,1"), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("NVIDIA_VISIBLE_DEVICES") && err.contains("empty entry"),
        "{err}"
    );
    let err = parse_visible_devices(Some("first"), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`first` is not a GPU index"), "{err}");
    let err = parse_visible_devices(Some("all"), Some("everything"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("NVIDIA_DRIVER_CAPABILITIES") && err.contains("everything"),
        "{err}"
    );
}

#[test]
fn resolution_on_a_two_gpu_host() {
    let sel = |flag: &str| parse_gpus_flag(flag).unwrap();
    assert_eq!(chosen(&sel("all"), 2).unwrap(), [0, 1]);
    assert_eq!(chosen(&sel("1"), 2).unwrap(), [0]);
    assert_eq!(chosen(&sel("device=1"), 2).unwrap(), [1]);
    // Asked out of order and twice (by index and by UUID): once each, in index order.
    assert_eq!(
        chosen(&sel(&format!("\"device=1,0,{UUID1}\"")), 2).unwrap(),
        [0, 1]
    );
    assert_eq!(
        chosen(&sel(&format!("device={}", UUID1.to_lowercase())), 2).unwrap(),
        [1]
    );
    let none = parse_visible_devices(Some("none"), None).unwrap();
    assert_eq!(chosen(&none, 2).unwrap(), Vec::<u32>::new());
    assert_eq!(chosen(&none, 0).unwrap(), Vec::<u32>::new());
}

#[test]
fn requests_the_host_cannot_meet_are_clear_errors() {
    let sel = |flag: &str| parse_gpus_flag(flag).unwrap();
    let err = chosen(&sel("device=7"), 2).unwrap_err().to_string();
    assert!(
        err.contains("GPU 7") && err.contains("2 GPU(s), numbered 0 to 1"),
        "{err}"
    );
    let err = chosen(&sel("device=GPU-deadbeef"), 2)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no GPU has UUID GPU-deadbeef"), "{err}");
    let err = chosen(&sel("3"), 2).unwrap_err().to_string();
    assert!(err.contains("3 GPU(s) were asked for"), "{err}");
    let err = chosen(&sel("all"), 0).unwrap_err().to_string();
    assert!(err.contains("no NVIDIA GPU was found"), "{err}");
    let mig = parse_visible_devices(Some("0:1"), None).unwrap();
    let err = chosen(&mig, 2).unwrap_err().to_string();
    assert!(err.contains("MIG device 0:1"), "{err}");
}
