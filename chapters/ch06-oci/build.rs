//! Builds `oci-check`, the small static program the conformance tests copy into a container's
//! root filesystem (see `checker/oci-check.c`), with the host's gcc: no toolchain download.
//! Its path reaches the tests as `env!("BOXLAB_OCI_CHECK")`.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=checker/oci-check.c");
    println!("cargo:rerun-if-env-changed=CC");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let binary = out.join("oci-check");
    let cc = std::env::var("CC").unwrap_or_else(|_| "gcc".into());
    let status = Command::new(&cc)
        .args(["-static", "-O2", "-Wall", "-o"])
        .arg(&binary)
        .arg("checker/oci-check.c")
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "{cc} -static checker/oci-check.c failed ({s}): is libc6-dev (libc.a) installed?"
        ),
        Err(e) => panic!("running {cc} for checker/oci-check.c: {e}; install gcc"),
    }
    println!("cargo:rustc-env=BOXLAB_OCI_CHECK={}", binary.display());
}
