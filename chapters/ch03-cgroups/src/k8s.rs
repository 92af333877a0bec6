//! Kubernetes resource requests and limits, turned into the cgroup values the kubelet writes.
//!
//! The course's pod spec asks for `requests: {cpu: "4", memory: "16Gi"}` and the same limits.
//! The kubelet (with the cgroupfs driver) turns that into exactly the files of this chapter:
//! requests become a CPU *weight* (who wins under contention), limits become a CPU *quota* and a
//! memory limit (hard caps), and the pair decides the pod's QoS class and how eagerly the OOM
//! killer picks it.

use std::fmt;

use crate::limits::{quota_for, shares_to_weight};
use crate::quantity::{human_bytes, parse_k8s_bytes, parse_millicpus};
use crate::{CgroupError, Limits};

/// One container's `resources`: each field optional, as in a pod spec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
}

impl Resources {
    /// Parses `cpu=500m,memory=1Gi` (either part optional).
    pub fn parse(text: &str) -> Result<Self, CgroupError> {
        let mut resources = Resources::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = |reason: &str| CgroupError::BadValue {
                what: "Kubernetes resources",
                value: text.into(),
                reason: reason.into(),
            };
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| bad("expected cpu=QUANTITY,memory=QUANTITY"))?;
            match key.trim() {
                "cpu" => resources.cpu_millis = Some(parse_millicpus(value)?),
                "memory" => resources.memory_bytes = Some(parse_k8s_bytes(value)?),
                other => {
                    return Err(bad(&format!(
                        "unknown resource '{other}'; this chapter knows cpu and memory"
                    )))
                }
            }
        }
        Ok(resources)
    }
}

/// Kubernetes' three quality-of-service classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosClass {
    /// Requests equal limits for both CPU and memory: last to be OOM-killed.
    Guaranteed,
    /// Some request or limit set, but not Guaranteed.
    Burstable,
    /// Nothing set: first to go.
    BestEffort,
}

impl fmt::Display for QosClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        })
    }
}

/// One row of the translation: a cgroup file, its value, and the rule that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub v1_file: &'static str,
    pub v1_value: String,
    pub v2_file: &'static str,
    pub v2_value: String,
    pub rule: &'static str,
}

/// The result: the limits to apply, the class, and `oom_score_adj` for the processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    pub limits: Limits,
    pub qos: QosClass,
    pub oom_score_adj: i32,
    pub rows: Vec<Row>,
}

/// The kubelet's floor for `cpu.shares` (a container with no CPU request still gets 2).
const MIN_SHARES: u64 = 2;

// ANCHOR: translate
/// Translates a container's requests and limits the way the kubelet does.
///
/// `node_memory` is the node's memory capacity, which the Burstable OOM score is relative to.
pub fn translate(requests: Resources, limits: Resources, node_memory: u64) -> Translation {
    // The API server defaults a missing request to the limit.
    let requests = Resources {
        cpu_millis: requests.cpu_millis.or(limits.cpu_millis),
        memory_bytes: requests.memory_bytes.or(limits.memory_bytes),
    };
    let shares = requests
        .cpu_millis
        .map_or(MIN_SHARES, |m| (m * 1024 / 1000).max(MIN_SHARES));
    let quota = limits.cpu_millis.map(quota_for);

    let qos = if requests == Resources::default() && limits == Resources::default() {
        QosClass::BestEffort
    } else if limits.cpu_millis.is_some() && limits.memory_bytes.is_some() && requests == limits {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    };
    let oom_score_adj = match qos {
        QosClass::Guaranteed => -997,
        QosClass::BestEffort => 1000,
        QosClass::Burstable => {
            let request = requests.memory_bytes.unwrap_or(0) as i128;
            let adj = 1000 - (1000 * request / node_memory.max(1) as i128);
            adj.clamp(2, 999) as i32
        }
    };

    let mut rows = vec![Row {
        v1_file: "cpu.shares",
        v1_value: shares.to_string(),
        v2_file: "cpu.weight",
        v2_value: shares_to_weight(shares).to_string(),
        rule:
            "requests.cpu × 1024 / 1000 (at least 2); v2 weight = 1 + (shares − 2) × 9999 / 262142",
    }];
    if let Some(q) = quota {
        rows.push(Row {
            v1_file: "cpu.cfs_quota_us / cpu.cfs_period_us",
            v1_value: format!("{} / {}", q.quota_us, q.period_us),
            v2_file: "cpu.max",
            v2_value: format!("{} {}", q.quota_us, q.period_us),
            rule: "limits.cpu × period (100 ms)",
        });
    }
    if let Some(bytes) = limits.memory_bytes {
        rows.push(Row {
            v1_file: "memory.limit_in_bytes",
            v1_value: bytes.to_string(),
            v2_file: "memory.max",
            v2_value: bytes.to_string(),
            rule:
                "limits.memory; requests.memory sets no limit, it only schedules (and scores OOM)",
        });
    }
    let limits = Limits {
        memory: limits.memory_bytes,
        cpu_millis: limits.cpu_millis,
        cpu_shares: Some(shares),
        ..Limits::default()
    };
    Translation {
        limits,
        qos,
        oom_score_adj,
        rows,
    }
}
// ANCHOR_END: translate

impl Translation {
    /// The translation as a table for people.
    pub fn table(&self) -> String {
        let mut out = format!(
            "QoS class {}, oom_score_adj {}\n",
            self.qos, self.oom_score_adj
        );
        for row in &self.rows {
            out.push_str(&format!(
                "  v1 {:<38} {:<16} v2 {:<12} {:<16} {}\n",
                row.v1_file, row.v1_value, row.v2_file, row.v2_value, row.rule
            ));
        }
        if let Some(memory) = self.limits.memory {
            out.push_str(&format!("  (memory limit {})\n", human_bytes(memory)));
        }
        out
    }
}

/// `MemTotal`: the node's memory capacity, which the Burstable OOM score is relative to.
pub fn node_memory() -> u64 {
    meminfo("MemTotal:")
}

/// A `/proc/meminfo` field in bytes (0 if missing).
pub fn meminfo(key: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: u64 = 64 << 30;

    #[test]
    fn the_course_pod_is_guaranteed() {
        // requests = limits = {cpu: 4, memory: 16Gi}
        let r = Resources::parse("cpu=4,memory=16Gi").unwrap();
        let t = translate(r, r, NODE);
        assert_eq!(t.qos, QosClass::Guaranteed);
        assert_eq!(t.oom_score_adj, -997);
        assert_eq!(t.limits.cpu_shares, Some(4096));
        assert_eq!(t.limits.cpu_millis, Some(4000));
        assert_eq!(t.limits.memory, Some(16 << 30));
        assert_eq!(t.rows[1].v2_value, "400000 100000");
        assert_eq!(t.rows[0].v2_value, shares_to_weight(4096).to_string());
    }

    #[test]
    fn requests_below_limits_are_burstable() {
        let t = translate(
            Resources::parse("cpu=500m,memory=1Gi").unwrap(),
            Resources::parse("cpu=1,memory=2Gi").unwrap(),
            NODE,
        );
        assert_eq!(t.qos, QosClass::Burstable);
        assert_eq!(t.limits.cpu_shares, Some(512));
        assert_eq!(t.limits.cpu_millis, Some(1000));
        assert_eq!(t.oom_score_adj, 1000 - 1000 / 64);
    }

    #[test]
    fn nothing_set_is_best_effort_with_minimum_shares() {
        let t = translate(Resources::default(), Resources::default(), NODE);
        assert_eq!(t.qos, QosClass::BestEffort);
        assert_eq!(t.oom_score_adj, 1000);
        assert_eq!(t.limits.cpu_shares, Some(2));
        assert_eq!(t.limits.cpu_millis, None);
    }

    #[test]
    fn limits_alone_default_the_requests() {
        let t = translate(
            Resources::default(),
            Resources::parse("cpu=2,memory=512Mi").unwrap(),
            NODE,
        );
        assert_eq!(t.qos, QosClass::Guaranteed);
        assert_eq!(t.limits.cpu_shares, Some(2048));
    }

    #[test]
    fn malformed_resources_are_refused() {
        assert!(Resources::parse("gpu=1")
            .unwrap_err()
            .to_string()
            .contains("unknown resource 'gpu'"));
        assert!(Resources::parse("cpu")
            .unwrap_err()
            .to_string()
            .contains("expected cpu="));
        assert!(Resources::parse("memory=1Zi").is_err());
    }
}
