//! Stage 4: booting a real Linux kernel, the way Firecracker does.
//!
//! `linux-loader` puts the kernel into guest memory (a bzImage, as distributions ship it in
//! /boot, or an uncompressed ELF `vmlinux`); we place the initramfs at the top of RAM, write the
//! zero page with the command line and the e820 map, give the machine an in-kernel interrupt
//! controller and PIT, the UART with its interrupt, a CPUID table and boot MSRs, and enter the
//! kernel's 64-bit entry point. Shutdown: the kernel's `reboot=k` writes 0xfe to the i8042.
//!
//! On a PVM host this refuses to start (see [`crate::host`]) unless forced.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use kvm_bindings::kvm_fpu;
use linux_loader::loader::bootparam::setup_header;
use linux_loader::loader::{BzImage, Elf, KernelLoader};
use vm_memory::GuestAddress;

use crate::boot::{initrd_address, parse_cmdline, write_boot_params, BootInfo};
use crate::cpu::{setup_cpuid, setup_lapic, setup_long_mode, setup_msrs};
use crate::error::{kvm, Result, VmError};
use crate::host::{self, HostKvm};
use crate::layout::*;
use crate::memory::GuestRam;
use crate::vm::{create_parts, MicroVm};

/// The kernel command line we boot with: the serial console, reboot through the i8042, no PCI
/// bus to probe (we have none), and the i8042 driver told not to look for a mouse or a mux.
pub const DEFAULT_CMDLINE: &str =
    "console=ttyS0 reboot=k panic=1 pci=off nomodules i8042.noaux i8042.nomux i8042.dumbkbd";

/// A Linux machine.
#[derive(Debug, Clone)]
pub struct LinuxConfig {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
    pub mem_size: u64,
    /// Try even where [`host::detect`] says the kernel cannot run.
    pub force: bool,
    pub echo: bool,
}

impl LinuxConfig {
    pub fn new(kernel: impl Into<PathBuf>) -> LinuxConfig {
        LinuxConfig {
            kernel: kernel.into(),
            initrd: None,
            cmdline: DEFAULT_CMDLINE.into(),
            mem_size: LINUX_MEM_SIZE,
            force: false,
            echo: false,
        }
    }
}

/// Which kind of image a kernel file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelFormat {
    /// A bzImage: a real-mode setup part with the "HdrS" header, then the compressed kernel.
    BzImage,
    /// An ELF executable (a `vmlinux`, or our tiny guest's ELF).
    Elf,
}

/// Where the kernel ended up.
#[derive(Debug, Clone, Copy)]
pub struct LoadedKernel {
    pub format: KernelFormat,
    /// The 64-bit entry point.
    pub entry: u64,
    /// First byte after the kernel image.
    pub end: u64,
    pub setup_header: Option<setup_header>,
}

// ANCHOR: sniff
/// Tells a bzImage from an ELF by their magic numbers, before anything is loaded.
pub fn sniff(path: &Path) -> Result<KernelFormat> {
    let read_err = |e: std::io::Error| VmError::KernelRead {
        path: path.into(),
        reason: e.to_string(),
    };
    let mut head = Vec::with_capacity(1024);
    File::open(path)
        .map_err(read_err)?
        .take(1024)
        .read_to_end(&mut head)
        .map_err(read_err)?;
    let format_err = |reason: String| VmError::KernelFormat {
        path: path.into(),
        reason,
    };
    if head.starts_with(b"\x7fELF") {
        if head.len() < 64 || head[4] != 2 || head[18] != 62 {
            return Err(format_err(
                "an ELF file, but not a complete 64-bit x86-64 executable header".into(),
            ));
        }
        return Ok(KernelFormat::Elf);
    }
    let magic = head.get(BZIMAGE_HDR_MAGIC_OFFSET..BZIMAGE_HDR_MAGIC_OFFSET + 4);
    if magic == Some(&KERNEL_HDR_MAGIC.to_le_bytes()[..]) {
        return Ok(KernelFormat::BzImage);
    }
    Err(format_err(format!(
        "{} bytes with neither the ELF magic (7f 45 4c 46) at offset 0 nor the bzImage magic 'HdrS' at offset {BZIMAGE_HDR_MAGIC_OFFSET:#x}",
        fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    )))
}
// ANCHOR_END: sniff

// ANCHOR: load_kernel
/// Loads the kernel at [`HIMEM_START`] with `linux-loader`.
pub fn load_kernel(ram: &GuestRam, path: &Path) -> Result<LoadedKernel> {
    let format = sniff(path)?;
    let mut file = File::open(path).map_err(|e| VmError::KernelRead {
        path: path.into(),
        reason: e.to_string(),
    })?;
    let himem = Some(GuestAddress(HIMEM_START));
    let loaded = match format {
        KernelFormat::Elf => Elf::load(ram.memory(), None, &mut file, himem),
        KernelFormat::BzImage => BzImage::load(ram.memory(), None, &mut file, himem),
    }
    .map_err(|e| VmError::KernelLoad {
        path: path.into(),
        reason: format!(
            "{e} (a truncated or corrupted image, or one larger than the guest's {} MiB)",
            ram.size() >> 20
        ),
    })?;
    let entry = match format {
        // ELF: the entry point is in the header (a vmlinux's is startup_64).
        KernelFormat::Elf => loaded.kernel_load.0,
        // bzImage: the protected-mode kernel is loaded at 1 MiB; its 64-bit entry is 0x200 in.
        KernelFormat::BzImage => loaded.kernel_load.0 + BZIMAGE_64BIT_ENTRY_OFFSET,
    };
    Ok(LoadedKernel {
        format,
        entry,
        end: loaded.kernel_end,
        setup_header: loaded.setup_header,
    })
}
// ANCHOR_END: load_kernel

// ANCHOR: initrd
/// Puts the initramfs at the top of RAM, above the kernel. Returns (address, size).
pub fn load_initrd(ram: &GuestRam, path: &Path, kernel_end: u64) -> Result<(u64, u64)> {
    let read_err = |e: std::io::Error| VmError::InitrdRead {
        path: path.into(),
        reason: e.to_string(),
    };
    let size = fs::metadata(path).map_err(read_err)?.len();
    let mem_end = ram.base() + ram.size();
    let lowest = (kernel_end + 0xfff) & !0xfff;
    let addr = initrd_address(mem_end, lowest, size).ok_or(VmError::InitrdTooLarge {
        path: path.into(),
        size,
        room: mem_end.saturating_sub(lowest),
        mem_size: ram.size(),
    })?;
    ram.write(addr, &fs::read(path).map_err(read_err)?)?;
    Ok((addr, size))
}
// ANCHOR_END: initrd

impl MicroVm {
    // ANCHOR: stage4
    /// Stage 4: a Linux machine.
    pub fn linux(config: &LinuxConfig) -> Result<MicroVm> {
        let started = Instant::now();
        // Cheap checks first, so that a typo in a path is reported as such on any host.
        sniff(&config.kernel)?;
        parse_cmdline(&config.cmdline)?;
        if let Some(initrd) = &config.initrd {
            let size = fs::metadata(initrd)
                .map_err(|e| VmError::InitrdRead {
                    path: initrd.clone(),
                    reason: e.to_string(),
                })?
                .len();
            if size >= config.mem_size.saturating_sub(HIMEM_START) {
                return Err(VmError::InitrdTooLarge {
                    path: initrd.clone(),
                    size,
                    room: config.mem_size.saturating_sub(HIMEM_START),
                    mem_size: config.mem_size,
                });
            }
        }
        if !(16 << 20..=MAX_MEM_SIZE).contains(&config.mem_size) {
            return Err(VmError::Config(format!(
                "--mem {} MiB: give between 16 and {} MiB",
                config.mem_size >> 20,
                MAX_MEM_SIZE >> 20
            )));
        }
        let host = host::detect();
        if !config.force && !host.can_boot_linux() {
            return Err(VmError::NoHardwareVirt {
                reason: host.describe(),
            });
        }

        let parts = create_parts(true)?;
        let ram = GuestRam::anonymous(0, config.mem_size)?;
        let kernel = load_kernel(&ram, &config.kernel)?;
        let initrd = match &config.initrd {
            Some(path) => Some(load_initrd(&ram, path, kernel.end)?),
            None => None,
        };
        write_boot_params(
            &ram,
            &BootInfo {
                cmdline: &config.cmdline,
                initrd,
                setup_header: kernel.setup_header,
            },
        )?;
        let vm = MicroVm::assemble(parts, ram, true, config.echo, started)?;
        setup_cpuid(&vm.kvm, &vm.vcpu)?;
        setup_msrs(&vm.vcpu)?;
        setup_long_mode(&vm.vcpu, &vm.ram, kernel.entry)?;
        // x87 control word and SSE control/status at their reset values, as the kernel expects.
        let fpu = kvm_fpu {
            fcw: 0x37f,
            mxcsr: 0x1f80,
            ..Default::default()
        };
        vm.vcpu
            .set_fpu(&fpu)
            .map_err(kvm("KVM_SET_FPU", "FPU reset state"))?;
        setup_lapic(&vm.vcpu)?;
        Ok(vm)
    }
    // ANCHOR_END: stage4
}

/// The variable that tells `scripts/fetch-kernel` where to write, and us where to look.
pub const KERNEL_DIR_VAR: &str = "BOXLAB_KERNEL_DIR";

/// Where `scripts/fetch-kernel` puts the kernel and initramfs: `$BOXLAB_KERNEL_DIR`, else
/// `target/boxlab-kernel` at the top of this workspace (the script's own rule).
pub fn kernel_dir() -> PathBuf {
    std::env::var_os(KERNEL_DIR_VAR)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // chapters/ch07-microvm -> the workspace.
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
            let workspace = manifest.ancestors().nth(2).unwrap_or(manifest);
            workspace.join("target/boxlab-kernel")
        })
}

/// The kernel (`vmlinuz`) and initramfs (`initramfs.cpio`) that `scripts/fetch-kernel` wrote,
/// or which of them is missing.
pub fn fetched_kernel() -> Result<(PathBuf, PathBuf)> {
    fetched_kernel_in(&kernel_dir())
}

/// The same, in `dir`.
pub fn fetched_kernel_in(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let (kernel, initrd) = (dir.join("vmlinuz"), dir.join("initramfs.cpio"));
    for path in [&kernel, &initrd] {
        if !path.is_file() {
            return Err(VmError::NoKernelFetched { path: path.clone() });
        }
    }
    Ok((kernel, initrd))
}

/// The host, in one line (for the demo).
pub fn host_summary() -> (HostKvm, String) {
    let host = host::detect();
    let line = host.describe();
    (host, line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::TINY_GUEST_ELF;

    use labkit::ScratchDir;

    /// `bytes` in a file of a scratch directory, removed when dropped (also when the test
    /// fails).
    struct Scratch {
        path: PathBuf,
        /// Kept for its `Drop`.
        _dir: ScratchDir,
    }

    fn scratch(name: &str, bytes: &[u8]) -> Scratch {
        let dir = ScratchDir::new(&format!("ch07-{name}")).unwrap();
        let path = dir.join(name);
        fs::write(&path, bytes).unwrap();
        Scratch { path, _dir: dir }
    }

    #[test]
    fn a_fetched_kernel_needs_both_files() {
        let dir = labkit::ScratchDir::new("ch07-fetched").unwrap();
        let err = fetched_kernel_in(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("{}/vmlinuz is missing", dir.path().display())),
            "{err}"
        );
        assert!(err.contains("scripts/fetch-kernel"), "{err}");
        fs::write(dir.join("vmlinuz"), b"k").unwrap();
        let err = fetched_kernel_in(dir.path()).unwrap_err().to_string();
        assert!(err.contains("initramfs.cpio is missing"), "{err}");
        fs::write(dir.join("initramfs.cpio"), b"i").unwrap();
        assert_eq!(
            fetched_kernel_in(dir.path()).unwrap(),
            (dir.join("vmlinuz"), dir.join("initramfs.cpio"))
        );
    }

    #[test]
    fn garbage_is_neither_elf_nor_bzimage() {
        let path = scratch("garbage", &[0x55; 4096]);
        let err = sniff(&path.path).unwrap_err().to_string();
        assert!(err.contains("neither the ELF magic"), "{err}");
    }

    #[test]
    fn a_truncated_elf_is_refused_by_the_loader() {
        let ram = GuestRam::anonymous(0, 16 << 20).unwrap();
        let path = scratch("truncated-elf", &TINY_GUEST_ELF[..200]);
        let err = load_kernel(&ram, &path.path).unwrap_err();
        assert!(matches!(err, VmError::KernelLoad { .. }), "{err}");
    }

    #[test]
    fn a_bzimage_header_over_garbage_is_refused() {
        let mut fake = vec![0u8; 8192];
        fake[BZIMAGE_HDR_MAGIC_OFFSET..BZIMAGE_HDR_MAGIC_OFFSET + 4].copy_from_slice(b"HdrS");
        let path = scratch("fake-bzimage", &fake);
        let ram = GuestRam::anonymous(0, 16 << 20).unwrap();
        let err = load_kernel(&ram, &path.path).unwrap_err();
        assert!(matches!(err, VmError::KernelLoad { .. }), "{err}");
    }

    #[test]
    fn the_tiny_guest_elf_loads_like_a_vmlinux() {
        let ram = GuestRam::anonymous(0, 16 << 20).unwrap();
        let path = scratch("guest-elf", TINY_GUEST_ELF);
        let kernel = load_kernel(&ram, &path.path).unwrap();
        assert_eq!(
            (kernel.format, kernel.entry),
            (KernelFormat::Elf, HIMEM_START)
        );
        // 15 MiB - 1 byte passes `MicroVm::linux`'s quick check (smaller than RAM above 1 MiB),
        // but not the placement above the kernel: page-aligned at the top of 16 MiB it would
        // start at 1 MiB, on top of the kernel.
        let big = scratch("big-initrd", &vec![0u8; (15 << 20) - 1]);
        let err = load_initrd(&ram, &big.path, kernel.end).unwrap_err();
        assert!(matches!(err, VmError::InitrdTooLarge { .. }), "{err}");
    }
}
