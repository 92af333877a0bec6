//! boxlab's benchmark harness. The criterion benches live in `benches/`; the comparison-table
//! report is the package's binary (`src/main.rs`, modules in `src/report/`). What both need is
//! here: running the runtimes side by side (`peers`) and summing up timings (`stats`).

pub mod peers;
pub mod stats;
