//! cgroup v1: one hierarchy per controller, so one directory per controller per cgroup.

pub mod cpu;
pub mod cpuacct;
pub mod cpuset;
pub mod memory;
pub mod pids;
