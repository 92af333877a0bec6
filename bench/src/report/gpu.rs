//! Is there a GPU here? Checked on the host, not assumed: NVIDIA's device nodes and driver.

use std::fs;

/// The NVIDIA device nodes on this host (`/dev/nvidia0`, `/dev/nvidiactl`, …) and the GPUs the
/// driver lists, or why there are none.
pub fn host_gpus() -> Result<String, String> {
    let nodes: Vec<String> = fs::read_dir("/dev")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("nvidia"))
                .collect()
        })
        .unwrap_or_default();
    let gpus = fs::read_dir("/proc/driver/nvidia/gpus")
        .map(|e| e.count())
        .unwrap_or(0);
    if nodes.is_empty() && gpus == 0 {
        Err("no GPU on this host (no /dev/nvidia*, no /proc/driver/nvidia/gpus)".into())
    } else {
        Ok(format!(
            "{gpus} NVIDIA GPU(s); device nodes: {}",
            nodes.join(" ")
        ))
    }
}
