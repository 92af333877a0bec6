//! Is there a GPU here? Checked on the host, not assumed: chapter 5's discovery (the NVIDIA
//! device nodes, and what the driver says about each GPU).

use ch05_gpu::discover::{discover, Discovery, HostRoots};

/// The GPUs chapter 5 finds on this host (index, model, node) and the control devices, or why
/// there are none.
pub fn host_gpus() -> Result<String, String> {
    let found = discover(&HostRoots::default()).map_err(|e| e.to_string())?;
    describe(&found)
}

fn describe(found: &Discovery) -> Result<String, String> {
    if found.gpus.is_empty() {
        let mut why = format!(
            "no GPU on this host (no {}/nvidiaN device node",
            found.roots.dev.display()
        );
        // What discovery saw and could not use says more than "none".
        for skipped in &found.skipped {
            why.push_str(&format!("; {}: {}", skipped.path.display(), skipped.reason));
        }
        why.push(')');
        return Err(why);
    }
    let gpus: Vec<String> = found
        .gpus
        .iter()
        .map(|gpu| {
            format!(
                "GPU {} {} ({})",
                gpu.index,
                gpu.model
                    .as_deref()
                    .unwrap_or("(model not reported by the driver)"),
                gpu.node.host.display()
            )
        })
        .collect();
    let control: Vec<String> = found
        .control
        .iter()
        .map(|d| d.name.display().to_string())
        .collect();
    Ok(format!(
        "{} NVIDIA GPU(s): {}; control devices: {}",
        gpus.len(),
        gpus.join(", "),
        if control.is_empty() {
            "none".to_string()
        } else {
            control.join(" ")
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever this host has: a GPU named with its model, or the reason there is none.
    #[test]
    fn the_hosts_gpus_are_named_or_their_absence_is_explained() {
        let found = discover(&HostRoots::default()).unwrap();
        match host_gpus() {
            Ok(text) => {
                assert!(!found.gpus.is_empty(), "{text}");
                assert!(
                    text.starts_with(&format!("{} NVIDIA GPU(s): GPU 0 ", found.gpus.len())),
                    "{text}"
                );
                for gpu in &found.gpus {
                    if let Some(model) = &gpu.model {
                        assert!(text.contains(model.as_str()), "{text}");
                    }
                }
                eprintln!("{text}");
            }
            Err(why) => {
                assert!(found.gpus.is_empty(), "{why}");
                assert!(
                    why.starts_with("no GPU on this host (no /dev/nvidiaN"),
                    "{why}"
                );
            }
        }
    }

    #[test]
    fn no_gpu_is_a_reason_not_an_empty_list() {
        let why = describe(&Discovery::default()).unwrap_err();
        assert!(why.starts_with("no GPU on this host"), "{why}");
    }
}
