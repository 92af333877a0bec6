//! Builds the guests with the host's gcc and binutils: no cross toolchain, no download.
//!
//! The guest code is freestanding C and assembly, compiled with its own flags (general-purpose
//! registers only, no PIC, linked at a fixed address), so the workspace's Rust flags never touch
//! it. The addresses it needs come from `src/layout.rs`, the one place they are written.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

#[allow(dead_code)]
mod layout {
    include!("src/layout.rs");
}

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let cc = env::var("BOXLAB_GUEST_CC").unwrap_or_else(|_| "gcc".into());
    let objcopy = env::var("BOXLAB_GUEST_OBJCOPY").unwrap_or_else(|_| "objcopy".into());
    for file in [
        "guest/real_mode.S",
        "guest/long_mode.S",
        "guest/entry.S",
        "guest/guest.c",
        "guest/linker.ld",
        "src/layout.rs",
    ] {
        println!("cargo:rerun-if-changed={file}");
    }
    println!("cargo:rerun-if-env-changed=BOXLAB_GUEST_CC");
    println!("cargo:rerun-if-env-changed=BOXLAB_GUEST_OBJCOPY");

    // Every port and address the guests use, as -D flags for the C and assembly sources.
    let defines: Vec<String> = [
        ("COM1_PORT", u64::from(layout::COM1_PORT)),
        ("READY_PORT", u64::from(layout::READY_PORT)),
        ("I8042_COMMAND_PORT", u64::from(layout::I8042_COMMAND_PORT)),
        ("I8042_RESET_CMD", u64::from(layout::I8042_RESET_CMD)),
        ("UNBACKED_PROBE_ADDR", layout::UNBACKED_PROBE_ADDR),
        ("UNMAPPED_VIRT_ADDR", layout::UNMAPPED_VIRT_ADDR),
    ]
    .iter()
    .map(|(name, value)| format!("-D{name}={value:#x}"))
    .collect();

    // Stages 1 and 2: a few instructions each, assembled and cut out as raw bytes.
    for name in ["real_mode", "long_mode"] {
        let obj = out.join(format!("{name}.o"));
        run(Command::new(&cc)
            .args(["-m64", "-c"])
            .args(&defines)
            .arg("-o")
            .arg(&obj)
            .arg(format!("guest/{name}.S")));
        run(Command::new(&objcopy)
            .args(["-O", "binary", "-j", ".text"])
            .arg(&obj)
            .arg(out.join(format!("{name}.bin"))));
    }

    // Stage 3: the tiny guest, an ELF linked at HIMEM_START and a flat copy of it.
    let elf = out.join("guest.elf");
    let mut gcc = Command::new(&cc);
    gcc.args([
        "-m64",
        "-march=x86-64",
        "-mgeneral-regs-only", // no SSE/x87: this host's KVM emulator cannot run them
        "-mno-red-zone",
        "-ffreestanding",
        "-fno-pic",
        "-fno-pie",
        "-no-pie",
        "-fno-stack-protector",
        "-fcf-protection=none", // no endbr64 either
        "-fno-asynchronous-unwind-tables",
        "-O2",
        "-nostdlib",
        "-static",
        "-Wall",
        "-Werror",
        "-Wl,--build-id=none",
        "-Wl,-z,noexecstack",
        "-Wl,--no-warn-rwx-segments",
    ]);
    gcc.args(&defines);
    gcc.arg(format!("-Wl,--defsym=LOAD_ADDR={:#x}", layout::HIMEM_START))
        .arg("-T")
        .arg(Path::new("guest/linker.ld"))
        .arg("-o")
        .arg(&elf)
        .args(["guest/entry.S", "guest/guest.c"]);
    run(&mut gcc);
    run(Command::new(&objcopy)
        .args(["-O", "binary"])
        .arg(&elf)
        .arg(out.join("guest.bin")));
}

fn run(cmd: &mut Command) {
    let status = cmd.status().unwrap_or_else(|e| {
        panic!(
            "building the guest: cannot run {:?}: {e} (install gcc and binutils: apt-get install gcc binutils)",
            cmd.get_program()
        )
    });
    assert!(
        status.success(),
        "building the guest: {cmd:?} failed with {status}"
    );
}
