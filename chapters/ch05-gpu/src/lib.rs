//! Chapter 5: GPUs in a container — the container sees exactly the GPUs it was given.
//!
//! [`discover`] finds the host's NVIDIA devices (and [`cdi`] reads CDI specs); [`select`] parses
//! `--gpus` and `NVIDIA_VISIBLE_DEVICES`; [`libraries`] finds the driver's files; [`expose`]
//! turns all of it into a plan of device nodes, bind mounts and environment for chapter 4's
//! root filesystem; [`devices`] writes the devices cgroup (a v1 list, a v2 eBPF program) that
//! lets the container open exactly those devices.
pub mod cdi;
pub mod devices;
pub mod discover;
pub mod expose;
pub mod gpu_container;
pub mod libraries;
pub mod mps;
pub mod select;
