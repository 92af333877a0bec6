//! boxlab's benchmark harness. The criterion benches live in `benches/`; the comparison table
//! report grows here as the chapters it measures land.
