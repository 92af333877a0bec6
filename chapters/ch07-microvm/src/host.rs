//! Can this host's KVM run a Linux kernel?
//!
//! KVM normally runs guest code directly on the CPU, using hardware virtualization (Intel VT-x,
//! "vmx"; AMD-V, "svm"). Some cloud machines have neither: the hypervisor they run on does not
//! pass it through. PVM ("pagetable-based virtual machine", the `kvm_pvm` module) is a KVM
//! flavour for such machines: it runs guests that were built for it (a PVM-aware kernel) at
//! full speed, and *any other* guest through KVM's instruction emulator, one instruction at a
//! time. That is enough for our tiny guest, and not for a stock kernel, which soon executes an
//! instruction the emulator does not know (xrstor, cmpxchg16b, SSE). Better to say so up front
//! than to show a student an "emulation failure" deep in early boot.

use std::fs;
use std::path::Path;

/// What we found out about the host's virtualization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKvm {
    /// The CPU has vmx or svm, and kvm_pvm is not loaded: KVM runs guests natively.
    Hardware { flag: &'static str },
    /// The `kvm_pvm` module is loaded: a non-PVM guest is emulated.
    Pvm,
    /// No vmx/svm flag and no PVM: KVM here is emulated or nested in an unusual way.
    NoVirtFlags,
}

impl HostKvm {
    /// One line, for the refusal message and the demo.
    pub fn describe(&self) -> String {
        match self {
            HostKvm::Hardware { flag } => {
                format!("hardware virtualization ({flag} in /proc/cpuinfo): KVM runs guests natively")
            }
            HostKvm::Pvm => "/dev/kvm is PVM (the kvm_pvm module is loaded, no vmx/svm): a stock kernel would run in KVM's instruction emulator, far too slowly, until an instruction it cannot emulate".into(),
            HostKvm::NoVirtFlags => "the CPU shows neither vmx nor svm in /proc/cpuinfo: KVM cannot run a kernel natively here".into(),
        }
    }

    pub fn can_boot_linux(&self) -> bool {
        matches!(self, HostKvm::Hardware { .. })
    }
}

// ANCHOR: detect
/// Reads `/proc/cpuinfo` and `/sys/module`.
pub fn detect() -> HostKvm {
    detect_at(Path::new("/proc/cpuinfo"), Path::new("/sys/module"))
}

/// The same, on any files (for tests).
pub fn detect_at(cpuinfo: &Path, sys_module: &Path) -> HostKvm {
    if sys_module.join("kvm_pvm").exists() {
        return HostKvm::Pvm;
    }
    let flags = fs::read_to_string(cpuinfo).unwrap_or_default();
    let has = |flag: &str| {
        flags
            .lines()
            .filter(|l| l.starts_with("flags"))
            .any(|l| l.split_whitespace().any(|w| w == flag))
    };
    if has("vmx") {
        HostKvm::Hardware { flag: "vmx" }
    } else if has("svm") {
        HostKvm::Hardware { flag: "svm" }
    } else {
        HostKvm::NoVirtFlags
    }
}
// ANCHOR_END: detect

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(cpu_flags: &str, pvm: bool) -> HostKvm {
        let dir = labkit::ScratchDir::new("ch07-host").unwrap();
        let module = dir.join("module");
        fs::create_dir_all(&module).unwrap();
        if pvm {
            fs::create_dir_all(module.join("kvm_pvm")).unwrap();
        }
        fs::write(
            dir.join("cpuinfo"),
            format!("processor\t: 0\nflags\t\t: {cpu_flags}\n"),
        )
        .unwrap();
        detect_at(&dir.join("cpuinfo"), &module)
    }

    #[test]
    fn vmx_or_svm_means_hardware_and_pvm_wins() {
        assert_eq!(
            fake("fpu vme vmx sse", false),
            HostKvm::Hardware { flag: "vmx" }
        );
        assert_eq!(fake("fpu svm", false), HostKvm::Hardware { flag: "svm" });
        assert_eq!(fake("fpu sse2 hypervisor", false), HostKvm::NoVirtFlags);
        assert_eq!(fake("fpu sse2 hypervisor", true), HostKvm::Pvm);
        assert!(!HostKvm::Pvm.can_boot_linux());
    }
}
