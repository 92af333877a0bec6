//! `peak-rss CMD ARGS…`: runs the command, waits for it with `wait4`, and prints its peak
//! resident set (`ru_maxrss`, KiB) on stdout — `/usr/bin/time -f %M` without the package.
//!
//! Why a separate, small process: Linux counts into a child's `ru_maxrss` the resident set of
//! the memory it had *before* `exec` — a copy of (or, with `vfork`, the very) memory of whoever
//! spawned it. Spawned straight from a benchmark (several MiB of criterion), every runtime would
//! show at least the benchmark's size. From this program the floor is its own size, printed
//! for `/bin/true` by the oci bench so that a reader can see it.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(program) = args.next() else {
        eprintln!("usage: peak-rss CMD ARGS...");
        return ExitCode::from(2);
    };
    // Reaped below by wait4: std's `Child` gives no rusage.
    let pid = match Command::new(&program).args(args).spawn() {
        Ok(child) => child.id() as libc::pid_t,
        Err(e) => {
            eprintln!("peak-rss: {}: {e}", program.to_string_lossy());
            return ExitCode::from(127);
        }
    };
    let mut status = 0;
    // SAFETY: all-zero bytes are a valid `rusage` (plain integers) for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child with pointers to live locals; std's `Child` is dropped
    // without waiting (it never reaps on drop), so nothing else reaps this pid.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if reaped != pid {
        eprintln!("peak-rss: wait4: {}", std::io::Error::last_os_error());
        return ExitCode::from(125);
    }
    println!("{}", usage.ru_maxrss);
    if libc::WIFEXITED(status) {
        ExitCode::from(libc::WEXITSTATUS(status) as u8)
    } else {
        ExitCode::from(125)
    }
}
