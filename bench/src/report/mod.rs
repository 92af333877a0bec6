//! The report: the seed's comparison table, measured on this machine.
//!
//! Each column is measured by its own module through the chapter's library (`process`: ch01,
//! `container`: ch06, `vm`: ch07); `sizes`, `gpu` and `peers` add the other rows; `table`
//! turns the figures into the seed's rows with a verdict each; `charts` draws them; `machine`
//! says where and when.

pub mod charts;
pub mod container;
pub mod gpu;
pub mod machine;
pub mod measured;
pub mod peers;
pub mod process;
pub mod progress;
pub use bench::stats;
pub mod sizes;
pub mod table;
pub mod vm;

/// Everything measured in one run.
pub struct Results {
    pub machine: machine::Machine,
    pub process: process::ProcessColumn,
    pub container: container::ContainerColumn,
    pub vm: vm::VmColumn,
    pub sizes: sizes::Sizes,
    pub gpu: Result<String, String>,
    pub peers: peers::Peers,
}
