//! cgroup v2 cpuset controller: `cpuset.cpus` as in v1. Unlike v1, an empty `cpuset.cpus` in a
//! new cgroup means "inherit the parent's", so there is nothing to copy first.

pub use crate::v1::cpuset::apply;
