//! This chapter's command-line flags as a reusable piece: later chapters flatten [`LimitArgs`]
//! into their own binaries, next to chapter 2's `IsolationArgs`.

use clap::Args;

use crate::k8s::{node_memory, translate, Resources, Translation};
use crate::quantity::{parse_docker_bytes, parse_millicpus};
use crate::{CgroupError, Limits};

/// The limits, spelled as `docker run` spells them.
#[derive(Debug, Clone, Default, Args)]
pub struct LimitArgs {
    /// Memory limit, e.g. 64m, 16g (docker's --memory).
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,

    /// Memory plus swap, e.g. 128m; equal to --memory means no swap (docker's --memory-swap).
    #[arg(long, value_name = "SIZE")]
    pub memory_swap: Option<String>,

    /// CPUs the command may keep busy, e.g. 0.5 or 2 (docker's --cpus).
    #[arg(long, value_name = "N")]
    pub cpus: Option<String>,

    /// Relative CPU weight under contention, 2..262144, default 1024 (docker's --cpu-shares).
    #[arg(long, value_name = "N")]
    pub cpu_shares: Option<u64>,

    /// Most processes and threads at once (docker's --pids-limit).
    #[arg(long, value_name = "N")]
    pub pids: Option<u64>,

    /// CPUs it may run on, e.g. 0 or 0-1 (docker's --cpuset-cpus).
    #[arg(long, value_name = "LIST")]
    pub cpuset_cpus: Option<String>,

    /// A Kubernetes container's requests, e.g. cpu=500m,memory=1Gi.
    #[arg(long, value_name = "RESOURCES")]
    pub k8s_requests: Option<String>,

    /// A Kubernetes container's limits, e.g. cpu=1,memory=2Gi.
    #[arg(long, value_name = "RESOURCES")]
    pub k8s_limits: Option<String>,

    /// The cgroup's path under each hierarchy (default: boxlab/ch03-<pid>-<n>).
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<String>,
}

/// The flags, resolved: the limits to apply and, for Kubernetes flags, the translation.
#[derive(Debug, Clone, Default)]
pub struct ResolvedLimits {
    pub limits: Limits,
    pub translation: Option<Translation>,
}

impl LimitArgs {
    /// True if Kubernetes requests or limits were given.
    pub fn has_k8s(&self) -> bool {
        self.k8s_requests.is_some() || self.k8s_limits.is_some()
    }

    /// Turns the flags into limits. Kubernetes flags come first; docker-style flags given as
    /// well override what they set.
    pub fn resolve(&self) -> Result<ResolvedLimits, CgroupError> {
        let mut resolved = ResolvedLimits::default();
        if self.has_k8s() {
            let requests = Resources::parse(self.k8s_requests.as_deref().unwrap_or(""))?;
            let limits = Resources::parse(self.k8s_limits.as_deref().unwrap_or(""))?;
            let translation = translate(requests, limits, node_memory());
            resolved.limits = translation.limits.clone();
            resolved.translation = Some(translation);
        }
        let limits = &mut resolved.limits;
        if let Some(size) = &self.memory {
            limits.memory = Some(parse_docker_bytes(size)?);
        }
        if let Some(size) = &self.memory_swap {
            limits.memory_swap = Some(parse_docker_bytes(size)?);
        }
        if let Some(cpus) = &self.cpus {
            limits.cpu_millis = Some(parse_millicpus(cpus)?);
        }
        if self.cpu_shares.is_some() {
            limits.cpu_shares = self.cpu_shares;
        }
        if self.pids.is_some() {
            limits.pids = self.pids;
        }
        if let Some(cpus) = &self.cpuset_cpus {
            limits.cpuset_cpus = Some(cpus.clone());
        }
        limits.validate()?;
        Ok(resolved)
    }
}
