//! A figure, or the reason there is none.
//!
//! The report never prints a blank or a guessed number. Every cell is either measured on this
//! machine now, or names why not ("needs root", "/dev/kvm is PVM", "crun is not installed").

/// `Ok(figure)`, or `Err(reason)` in words.
pub type Measured<T> = Result<T, String>;

/// The reason, as the table prints it.
pub fn not_measurable(reason: &str) -> String {
    format!("not measurable here: {reason}")
}

/// Whether this process may create containers and VMs (root), and the reason when not.
pub fn need_root() -> Result<(), String> {
    if labkit::is_root() {
        Ok(())
    } else {
        Err("needs root (namespaces, cgroups, mounts and /dev/kvm): run it with sudo".into())
    }
}
