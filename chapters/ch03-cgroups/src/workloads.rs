//! The demo's workloads, built into the binary (it re-executes itself), so no rootfs or compiler
//! is needed: a memory hog, a CPU burner and a fork bomb.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::unistd::{fork, pause, ForkResult};

/// Never allocate more than this, limit or not: the hog must not hurt a host it runs on unlimited.
const HOG_CEILING_MIB: usize = 1024;
/// Nor fork more than this.
const FORK_BOMB_CEILING: usize = 5000;

// ANCHOR: hog
/// Allocates `step_mib` MiB at a time and touches every page (untouched pages cost nothing),
/// saying how much it holds, until the OOM killer stops it.
pub fn memory_hog(step_mib: usize) -> ExitCode {
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut out = std::io::stdout();
    while held.len() * step_mib < HOG_CEILING_MIB {
        held.push(vec![1u8; step_mib << 20]); // vec![1; n] writes every byte: real, resident memory
        let _ = writeln!(out, "    hog: holding {} MiB", held.len() * step_mib);
        let _ = out.flush();
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = writeln!(
        out,
        "    hog: reached {HOG_CEILING_MIB} MiB without being stopped; giving up"
    );
    ExitCode::SUCCESS
}
// ANCHOR_END: hog

/// Keeps one CPU busy for `seconds` of wall-clock time.
pub fn cpu_burner(seconds: f64) -> ExitCode {
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let mut x: u64 = 1;
    while Instant::now() < until {
        for _ in 0..10_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
        }
        std::hint::black_box(x);
    }
    ExitCode::SUCCESS
}

/// Forks children that only sleep, until `fork` fails; reports how many it made and why it
/// stopped. The children die with the container (its PID 1 exits) or with its cgroup.
pub fn fork_bomb() -> ExitCode {
    let mut children = 0;
    loop {
        if children >= FORK_BOMB_CEILING {
            println!(
                "    bomb: {children} children and fork still works; stopping (no pids limit?)"
            );
            return ExitCode::SUCCESS;
        }
        // SAFETY: the child only calls pause(2) in a loop, touching no shared state.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => loop {
                pause();
            },
            Ok(ForkResult::Parent { .. }) => children += 1,
            Err(errno) => {
                let why = if errno == Errno::EAGAIN {
                    "EAGAIN: the pids limit"
                } else {
                    errno.desc()
                };
                println!("    bomb: fork() failed after {children} children: {why}");
                return ExitCode::SUCCESS;
            }
        }
    }
}
