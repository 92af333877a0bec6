//! Fields of `/proc/<pid>/stat`, for tests that check who a process's parent is or what state
//! it is in.
//!
//! The second field is the command name in parentheses, and that name may itself hold spaces and
//! `)`: splitting the whole line on spaces miscounts. The name ends at the *last* `)`.

use std::fs;
use std::io;

/// Why a field of `/proc/<pid>/stat` could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ProcStatError {
    /// The file could not be read: most often the process is gone (`NotFound`).
    #[error("cannot read /proc/{pid}/stat: {source}")]
    Read { pid: i32, source: io::Error },

    /// The line has no such field (proc(5) numbers them from 1: pid, comm, state, ppid, …).
    #[error("/proc/{pid}/stat has no field {n} (numbered from 1 as in proc(5)): '{stat}'")]
    NoField { pid: i32, n: usize, stat: String },

    /// The field is there but is not the number it should be.
    #[error("field {n} of /proc/{pid}/stat is '{value}', not a number")]
    NotANumber { pid: i32, n: usize, value: String },
}

/// Field `n` of `/proc/<pid>/stat`, numbered from 1 as in proc(5): 1 is the pid, 2 the command
/// name (without its parentheses), 3 the state (`R`, `S`, `Z`, …), 4 the parent's pid.
pub fn proc_stat_field(pid: i32, n: usize) -> Result<String, ProcStatError> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|source| ProcStatError::Read { pid, source })?;
    field_of(&stat, n).ok_or_else(|| ProcStatError::NoField {
        pid,
        n,
        stat: stat.trim_end().to_string(),
    })
}

/// The parent's pid of process `pid` (field 4 of its `/proc/<pid>/stat`), as the kernel sees
/// it now: after a re-parenting, the subreaper or init that adopted it.
pub fn ppid(pid: i32) -> Result<i32, ProcStatError> {
    const PPID: usize = 4;
    let value = proc_stat_field(pid, PPID)?;
    value.parse().map_err(|_| ProcStatError::NotANumber {
        pid,
        n: PPID,
        value,
    })
}

/// Field `n` (from 1) of a stat line; the name is whatever lies between the first `(` and the
/// last `)`.
fn field_of(stat: &str, n: usize) -> Option<String> {
    let (head, rest) = stat.rsplit_once(')')?;
    let (pid, comm) = head.split_once(" (")?;
    match n {
        0 => None,
        1 => Some(pid.to_string()),
        2 => Some(comm.to_string()),
        _ => rest.split_whitespace().nth(n - 3).map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_with_spaces_and_parentheses_does_not_shift_the_fields() {
        let stat = "4242 (we (ird) S) Z 17 4242 4242 0 -1\n";
        assert_eq!(field_of(stat, 1).as_deref(), Some("4242"));
        assert_eq!(field_of(stat, 2).as_deref(), Some("we (ird) S"));
        assert_eq!(field_of(stat, 3).as_deref(), Some("Z"));
        assert_eq!(field_of(stat, 4).as_deref(), Some("17"));
        assert_eq!(field_of(stat, 0), None);
        assert_eq!(field_of(stat, 99), None);
    }

    #[test]
    fn reads_this_process_and_says_which_pid_and_field_failed() {
        let me = std::process::id() as i32;
        assert_eq!(
            ppid(me).unwrap(),
            std::os::unix::process::parent_id() as i32
        );
        assert_eq!(proc_stat_field(me, 1).unwrap(), me.to_string());

        let err = proc_stat_field(me, 999).unwrap_err().to_string();
        assert!(
            err.contains(&format!("/proc/{me}/stat has no field 999")),
            "{err}"
        );
        // No pid is this large (pid_max is at most 2^22).
        let err = ppid(i32::MAX).unwrap_err();
        assert!(
            matches!(&err, ProcStatError::Read { source, .. } if source.kind() == io::ErrorKind::NotFound),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains(&format!("/proc/{}/stat", i32::MAX)),
            "{err}"
        );
    }
}
