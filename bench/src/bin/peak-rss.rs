//! `peak-rss CMD ARGS…`: runs the command, waits for it with `wait4`, and prints its peak
//! resident set (`ru_maxrss`, KiB) on stdout — `/usr/bin/time -f %M` without the package.
//!
//! Why a separate, small process: Linux counts into a child's `ru_maxrss` the resident set of
//! the memory it had *before* `exec` — a copy of (or, with `vfork`, the very) memory of whoever
//! spawned it. Spawned straight from a benchmark (several MiB of criterion), every runtime would
//! show at least the benchmark's size. From this program the floor is its own size, printed
//! for `/bin/true` by the oci bench so that a reader can see it.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let Some((program, args)) = args.split_first() else {
        eprintln!("usage: peak-rss CMD ARGS...");
        return ExitCode::from(2);
    };
    match bench::peers::peak_rss_kib(std::path::Path::new(program), args) {
        Ok((kib, status)) => {
            println!("{kib}");
            ExitCode::from(status.code().map_or(125, |code| code as u8))
        }
        Err(e) => {
            eprintln!("peak-rss: {}: {e}", program.to_string_lossy());
            ExitCode::from(127)
        }
    }
}
