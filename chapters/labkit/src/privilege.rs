//! The "needs root" guard shared by all privileged tests.

use nix::unistd::geteuid;

/// True when this process runs with effective uid 0.
pub fn is_root() -> bool {
    geteuid().is_root()
}

/// True when running under CI (`CI=true`, as CI systems set it).
pub fn in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
}

/// Guard for a test that needs root.
///
/// Returns `true` when the test may go on. Outside CI, without root, it prints one line saying
/// which test skipped and why, and returns `false`. Under `CI=true` a missing root is a failure,
/// never a skip: it panics, so the test fails loudly.
#[track_caller]
pub fn require_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    if in_ci() {
        panic!("{test}: needs root, and CI=true forbids skipping privileged tests; run the test command as root");
    }
    eprintln!("skipped {test}: needs root (run as root, or with CI=true to make this a failure)");
    false
}
