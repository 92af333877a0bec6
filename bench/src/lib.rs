//! boxlab's benchmark harness. The criterion benches live in `benches/`; the comparison-table
//! report is the package's binary (`src/main.rs`, modules in `src/report/`).

pub mod peers;
