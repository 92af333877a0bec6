//! The driver's userspace half: `libcuda.so`, `libnvidia-ml.so`, `nvidia-smi`, … must come from
//! the *host*, because they have to match the kernel module exactly (same version). They are
//! found through the host's dynamic linker cache (`ldconfig -p`, then `LD_LIBRARY_PATH`) and
//! `PATH`, and bind-mounted read-only at the same paths inside.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::discover::sorted_file_names;

/// Where `ldconfig` lives on Debian, Ubuntu, Fedora and friends.
pub const LDCONFIG: &str = "/sbin/ldconfig";

/// The NVIDIA userspace libraries and the capability that needs each, by file name prefix (the
/// part before the version: `libcuda.so` matches `libcuda.so.1` and `libcuda.so.550.54.15`).
///
/// Taken from the NVIDIA Container Toolkit's list (`libnvidia-container`, `src/nvc_info.c`:
/// `utility_libs`, `compute_libs`, `video_libs`, `graphics_libs`, `ngx_libs`), trimmed to what
/// current drivers ship.
pub const NVIDIA_LIBRARIES: &[(&str, &str)] = &[
    // utility: NVML, what nvidia-smi and monitoring use
    ("libnvidia-ml.so", "utility"),
    ("libnvidia-cfg.so", "utility"),
    // compute: CUDA's driver API and the JIT compilers behind it
    ("libcuda.so", "compute"),
    ("libcudadebugger.so", "compute"),
    ("libnvidia-opencl.so", "compute"),
    ("libnvidia-gpucomp.so", "compute"),
    ("libnvidia-ptxjitcompiler.so", "compute"),
    ("libnvidia-fatbinaryloader.so", "compute"),
    ("libnvidia-allocator.so", "compute"),
    ("libnvidia-compiler.so", "compute"),
    ("libnvidia-nvvm.so", "compute"),
    // video: encode and decode
    ("libvdpau_nvidia.so", "video"),
    ("libnvidia-encode.so", "video"),
    ("libnvidia-opticalflow.so", "video"),
    ("libnvcuvid.so", "video"),
    // graphics: OpenGL, EGL, Vulkan, ray tracing
    ("libnvidia-eglcore.so", "graphics"),
    ("libnvidia-glcore.so", "graphics"),
    ("libnvidia-tls.so", "graphics"),
    ("libnvidia-glsi.so", "graphics"),
    ("libnvidia-fbc.so", "graphics"),
    ("libnvidia-ifr.so", "graphics"),
    ("libnvidia-rtcore.so", "graphics"),
    ("libnvoptix.so", "graphics"),
    ("libGLX_nvidia.so", "graphics"),
    ("libEGL_nvidia.so", "graphics"),
    ("libGLESv2_nvidia.so", "graphics"),
    ("libGLESv1_CM_nvidia.so", "graphics"),
    ("libnvidia-glvkspirv.so", "graphics"),
    // ngx: DLSS
    ("libnvidia-ngx.so", "ngx"),
];

/// The driver's programs, by capability (the toolkit's `utility_bins` and `compute_bins`).
pub const NVIDIA_BINARIES: &[(&str, &str)] = &[
    ("nvidia-smi", "utility"),
    ("nvidia-debugdump", "utility"),
    ("nvidia-persistenced", "utility"),
    ("nvidia-cuda-mps-control", "compute"),
    ("nvidia-cuda-mps-server", "compute"),
];

/// One line of `ldconfig -p` (indented with a tab):
/// `libcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedLibrary {
    /// `libcuda.so.1`
    pub name: String,
    /// What is in the parentheses: `libc6,x86-64` (64-bit x86), `libc6` (32-bit x86),
    /// `libc6,AArch64`, possibly followed by `, OS ABI: …` or `, hwcap: …`.
    pub flags: String,
    pub path: PathBuf,
}

/// The driver files to expose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriverFiles {
    /// Libraries, by the path the cache gives (bound at the same path inside).
    pub libraries: Vec<PathBuf>,
    /// Programs found in `PATH`.
    pub binaries: Vec<PathBuf>,
}

impl DriverFiles {
    /// The directories that hold the libraries, each once, in first-seen order: what
    /// `LD_LIBRARY_PATH` and the container's `ld.so.conf.d` entry list.
    pub fn library_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for lib in &self.libraries {
            if let Some(dir) = lib.parent() {
                if !dirs.iter().any(|d| d == dir) {
                    dirs.push(dir.to_path_buf());
                }
            }
        }
        dirs
    }

    /// The directories of the driver's programs that are not among `usual` (the container's
    /// default `PATH`), each once, in order.
    pub fn program_dirs_outside(&self, usual: &[&str]) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for program in &self.binaries {
            if let Some(dir) = program.parent() {
                let is_usual = usual.iter().any(|u| Path::new(u) == dir);
                if !is_usual && !dirs.iter().any(|d| d == dir) {
                    dirs.push(dir.to_path_buf());
                }
            }
        }
        dirs
    }
}

/// Finding the driver files failed.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("running `{program} -p` to read the host's library cache failed: {source}; install libc-bin, or pass the cache text yourself")]
    Ldconfig {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("`{program} -p` exited with {status}: {stderr}")]
    LdconfigStatus {
        program: PathBuf,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

/// Runs `<ldconfig> -p` and returns its output (the host's cache, as text).
pub fn read_ldconfig_cache(ldconfig: &Path) -> Result<String, LibraryError> {
    let out = Command::new(ldconfig)
        .arg("-p")
        .output()
        .map_err(|source| LibraryError::Ldconfig {
            program: ldconfig.into(),
            source,
        })?;
    if !out.status.success() {
        return Err(LibraryError::LdconfigStatus {
            program: ldconfig.into(),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

// ANCHOR: ldconfig
/// Parses `ldconfig -p`. The header (`N libs found in cache …`), the trailer (`Cache generated
/// by: …`) and any line not of the form `name (flags) => path` are skipped.
pub fn parse_ldconfig_cache(text: &str) -> Vec<CachedLibrary> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let (name, rest) = line.split_once(" (")?;
            let (flags, path) = rest.split_once(") => ")?;
            let path = path.trim();
            if name.is_empty() || name.contains(' ') || !path.starts_with('/') {
                return None;
            }
            Some(CachedLibrary {
                name: name.to_string(),
                flags: flags.to_string(),
                path: PathBuf::from(path),
            })
        })
        .collect()
}

/// The `ldconfig -p` flag of this machine's native libraries (`x86-64`, `AArch64`, …); 32-bit
/// libraries (`libc6` alone on x86) would need the `compat32` capability, which boxlab does not
/// expose.
pub fn native_arch_flag() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x86-64",
        "aarch64" => "AArch64",
        "powerpc64" => "64bit",
        "riscv64" => "RISC-V",
        other => other,
    }
}

/// The NVIDIA libraries in a parsed cache that the given capabilities need, native
/// architecture only, each path once, in cache order.
pub fn select_libraries(
    cache: &[CachedLibrary],
    capabilities: &[String],
    arch_flag: &str,
) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for lib in cache {
        let native = lib.flags.split(',').map(str::trim).any(|f| f == arch_flag);
        let wanted = is_wanted_library(&lib.name, capabilities);
        if native && wanted && !paths.contains(&lib.path) {
            paths.push(lib.path.clone());
        }
    }
    paths
}
// ANCHOR_END: ldconfig

/// `name` is one of the NVIDIA libraries that one of `capabilities` needs.
fn is_wanted_library(name: &str, capabilities: &[String]) -> bool {
    NVIDIA_LIBRARIES
        .iter()
        .any(|(prefix, cap)| capabilities.iter().any(|c| c == cap) && is_library(name, prefix))
}

/// `name` is `prefix` or `prefix.<version>` (`libcuda.so`, `libcuda.so.1`), not a longer
/// name that happens to start the same way.
fn is_library(name: &str, prefix: &str) -> bool {
    name == prefix
        || name
            .strip_prefix(prefix)
            .is_some_and(|v| v.starts_with('.'))
}

/// The NVIDIA programs the capabilities need that exist (and are files) in one of `path_dirs`;
/// the first directory that has a program wins, as in a shell.
pub fn find_binaries(path_dirs: &[PathBuf], capabilities: &[String]) -> Vec<PathBuf> {
    NVIDIA_BINARIES
        .iter()
        .filter(|(_, cap)| capabilities.iter().any(|c| c == cap))
        .filter_map(|(name, _)| {
            path_dirs
                .iter()
                .map(|dir| dir.join(name))
                .find(|candidate| candidate.is_file())
        })
        .collect()
}

/// Everything in one call: the libraries from `ldconfig_text` that exist on the host (a cache
/// can be stale) and the programs from `path_dirs`.
pub fn driver_files(
    ldconfig_text: &str,
    path_dirs: &[PathBuf],
    capabilities: &[String],
) -> DriverFiles {
    let cache = parse_ldconfig_cache(ldconfig_text);
    let mut libraries: Vec<PathBuf> = Vec::new();
    for path in select_libraries(&cache, capabilities, native_arch_flag()) {
        let path = in_real_dir(&path);
        if path.exists() && !libraries.contains(&path) {
            libraries.push(path);
        }
    }
    let mut binaries: Vec<PathBuf> = Vec::new();
    for path in find_binaries(path_dirs, capabilities) {
        let path = in_real_dir(&path);
        if !binaries.contains(&path) {
            binaries.push(path);
        }
    }
    DriverFiles {
        libraries,
        binaries,
    }
}

// ANCHOR: real_dir
/// `path` with its directory's symbolic links resolved, its own name kept: `/lib/libcuda.so.1`
/// on a merged-/usr host is `/usr/lib/libcuda.so.1`. A bind mount's target must be a real
/// directory inside the container (`/lib` there is a link, or not there at all), and the name
/// must stay the soname the linker asks for, not the versioned file the link points to.
/// A path whose directory cannot be resolved is returned as it is.
pub fn in_real_dir(path: &Path) -> PathBuf {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir)
            .map(|real| real.join(name))
            .unwrap_or_else(|_| path.to_path_buf()),
        _ => path.to_path_buf(),
    }
}
// ANCHOR_END: real_dir

/// `PATH` split into directories (the caller's own `PATH`, or `/usr/bin:/bin` without one).
pub fn path_dirs(path: Option<&str>) -> Vec<PathBuf> {
    path.unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .split(':')
        .filter(|d| d.starts_with('/'))
        .map(PathBuf::from)
        .collect()
}

/// The NVIDIA libraries the capabilities need that sit in `dirs`, in the order of `dirs`, each
/// path once. A directory carries no architecture flag, unlike the cache, so each file's ELF
/// header is read: NVIDIA's images list a 32-bit `/usr/local/nvidia/lib` beside `lib64`, and a
/// 32-bit `libcuda.so.1` bound for a 64-bit program fails with "wrong ELF class".
/// Directories that cannot be read are passed over.
pub fn libraries_in_dirs(dirs: &[PathBuf], capabilities: &[String]) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        let Some(names) = sorted_file_names(dir) else {
            continue;
        };
        for name in names {
            let path = in_real_dir(&dir.join(&name));
            if is_wanted_library(&name, capabilities)
                && is_native_elf(&path)
                && !found.contains(&path)
            {
                found.push(path);
            }
        }
    }
    found
}

/// Whether `path` is an ELF file of this machine: 64-bit, and this architecture (`e_machine`).
pub fn is_native_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut header = [0u8; 20];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut header));
    if read.is_err() || header[..4] != *b"\x7fELF" || header[4] != 2 {
        return false; // not ELF, or not ELFCLASS64
    }
    let machine = if header[5] == 2 {
        u16::from_be_bytes([header[18], header[19]])
    } else {
        u16::from_le_bytes([header[18], header[19]])
    };
    let native = match std::env::consts::ARCH {
        "x86_64" => 62,
        "aarch64" => 183,
        "powerpc64" => 21,
        "riscv64" => 243,
        _ => return true, // an architecture this list does not know: trust the class alone
    };
    machine == native
}

/// The driver's libraries and programs on this host, from the ldconfig cache and PATH (none
/// on a host without the driver).
///
/// Some hosts keep the driver outside the cache — a driver directory such as
/// `/usr/local/nvidia/lib64` reached through `LD_LIBRARY_PATH`, as GPU cloud images and
/// Kubernetes device plugins set it up — so the directories in the caller's `LD_LIBRARY_PATH`
/// are searched too, and first, as the dynamic linker searches them: where the cache holds an
/// older copy, the container's `LD_LIBRARY_PATH` then finds the same one the host's programs do.
pub fn host_driver_files(capabilities: &[String]) -> DriverFiles {
    let cache = read_ldconfig_cache(Path::new(LDCONFIG)).unwrap_or_default();
    let mut files = driver_files(
        &cache,
        &path_dirs(std::env::var("PATH").ok().as_deref()),
        capabilities,
    );
    let library_path = std::env::var("LD_LIBRARY_PATH").unwrap_or_default();
    let first_dirs: Vec<PathBuf> = library_path
        .split(':')
        .filter(|d| d.starts_with('/'))
        .map(PathBuf::from)
        .collect();
    let mut libraries = libraries_in_dirs(&first_dirs, capabilities);
    for path in files.libraries {
        if !libraries.contains(&path) {
            libraries.push(path);
        }
    }
    files.libraries = libraries;
    files
}
