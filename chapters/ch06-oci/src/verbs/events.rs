//! `events <id> [--stats] [--interval 5s]`: the container's cgroup statistics, as runc prints
//! them — one JSON object with `--stats`, else one every interval until the container stops.
//!
//! ```text
//! {"type":"stats","id":ID,"data":{"cpu":{"usage":{"total":NS}},
//!   "memory":{"usage":{"usage":B,"max":B,"limit":B},"raw":{memory.stat...}},
//!   "pids":{"current":N,"limit":N}}}
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use ch03_cgroups::files::read_u64;
use ch03_cgroups::{detect, Cgroup, CgroupPath, V1Controller};
use oci_spec::runtime::ContainerState;
use serde_json::{json, Value};

use crate::state::{Container, Store};
use crate::OciError;

/// One `{"type":"stats",...}` object for container `id`.
pub fn stats(store: &Store, id: &str) -> Result<Value, OciError> {
    let container = store.load(id)?;
    if container.status() == ContainerState::Stopped {
        return Err(OciError::WrongState {
            id: id.into(),
            status: "stopped".into(),
            hint: "a stopped container has no statistics left",
        });
    }
    stats_of(&container)
}

fn stats_of(container: &Container) -> Result<Value, OciError> {
    let cgroup = Cgroup::observe(&detect()?, &CgroupPath::new(&container.record.cgroup)?)?;
    let usage = cgroup.usage()?;
    // v1: per controller; v2: the one directory has every file.
    let v2 = cgroup
        .unified_dir()
        .filter(|d| d.join("cgroup.controllers").exists());
    let memory_dir = cgroup.v1_dir(V1Controller::Memory).or(v2);
    let pids_dir = cgroup.v1_dir(V1Controller::Pids).or(v2);
    // `max` (no limit) and a file this host lacks both read as no limit.
    let read_number = |dir: &Path, file: &str| read_u64(dir, file).ok().flatten();
    let (memory_limit, raw) = match memory_dir {
        Some(dir) => (
            read_number(dir, "memory.limit_in_bytes").or_else(|| read_number(dir, "memory.max")),
            memory_stat(dir),
        ),
        None => (None, BTreeMap::new()),
    };
    let pids_limit = pids_dir.and_then(|d| read_number(d, "pids.max"));
    let nanos = usage.cpu_time.map(|d| d.as_nanos() as u64);
    Ok(json!({
        "type": "stats",
        "id": container.record.id,
        "data": {
            "cpu": { "usage": { "total": nanos.unwrap_or(0) } },
            "memory": {
                "usage": {
                    "usage": usage.memory.unwrap_or(0),
                    "max": usage.memory_peak.unwrap_or(0),
                    "limit": memory_limit.unwrap_or(0),
                },
                "raw": raw,
            },
            "pids": {
                "current": usage.pids.unwrap_or(0),
                "limit": pids_limit.unwrap_or(0),
            },
        }
    }))
}

/// `memory.stat` as a map.
fn memory_stat(dir: &Path) -> BTreeMap<String, u64> {
    std::fs::read_to_string(dir.join("memory.stat"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// Prints `stats` every `interval` until the container stops (one line each).
pub fn watch(store: &Store, id: &str, interval: Duration) -> Result<(), OciError> {
    let container = store.load(id)?;
    while container.status() != ContainerState::Stopped {
        match stats_of(&container) {
            Ok(value) => println!("{value}"),
            Err(_) if container.status() == ContainerState::Stopped => break,
            Err(e) => return Err(e),
        }
        std::thread::sleep(interval);
    }
    Ok(())
}

/// `5s`, `500ms`, `1m`, or plain seconds.
pub fn parse_interval(text: &str) -> Result<Duration, OciError> {
    let bad = || OciError::BadOption {
        option: "--interval".into(),
        value: text.into(),
        hint: "use a duration like 5s, 500ms or 1m",
    };
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |i| text.split_at(i));
    let n: u64 = number.parse().map_err(|_| bad())?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        _ => return Err(bad()),
    };
    if d.is_zero() {
        return Err(bad());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_interval("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_interval("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_interval("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_interval("0s").is_err());
        let err = parse_interval("soon").unwrap_err().to_string();
        assert!(
            err.starts_with("option --interval = soon:") && !err.contains("config.json"),
            "{err}"
        );
    }
}
