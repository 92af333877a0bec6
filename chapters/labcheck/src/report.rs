//! One check, one line: `ok   …` or `FAIL …`, and the closing `N passed, N failed`.

use std::fmt;

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked, in a few words (`memory limit`, `PID namespace`).
    pub name: String,
    /// True when the running system is what the lab asked for.
    pub passed: bool,
    /// What was found (passed), or `expected …, found …` (failed).
    pub detail: String,
    /// What to do about a failure.
    pub hint: Option<String>,
}

impl Check {
    /// A check that passed, with what was found.
    pub fn ok(name: impl Into<String>, found: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            passed: true,
            detail: found.into(),
            hint: None,
        }
    }

    /// A check that failed: what the lab asked for, what the system has, and what to do.
    pub fn fail(
        name: impl Into<String>,
        expected: impl fmt::Display,
        found: impl fmt::Display,
        hint: impl Into<String>,
    ) -> Self {
        Check {
            name: name.into(),
            passed: false,
            detail: format!("expected {expected}, found {found}"),
            hint: Some(hint.into()),
        }
    }

    /// A check that could not run because an earlier one failed; it counts as failed.
    pub fn not_checked(name: impl Into<String>, because: impl fmt::Display) -> Self {
        Check {
            name: name.into(),
            passed: false,
            detail: format!("not checked: {because}"),
            hint: None,
        }
    }

    /// Every check named in `names`, not checked because of `because` (an earlier failure).
    pub fn none_of(names: &[&str], because: impl fmt::Display) -> Vec<Check> {
        names
            .iter()
            .map(|n| Check::not_checked(*n, &because))
            .collect()
    }

    /// Ends a run of checks early: `checks`, made in the order of `names` (the last of them
    /// the failure that makes the rest pointless), then every later name, not checked
    /// `because`. The count of checks stays the same whichever step failed.
    pub fn stop_after(
        mut checks: Vec<Check>,
        names: &[&str],
        because: impl fmt::Display,
    ) -> Vec<Check> {
        let done = checks.len().min(names.len());
        checks.extend(Check::none_of(&names[done..], because));
        checks
    }

    /// `ok` if `passed`, otherwise [`Check::fail`].
    pub fn expect(
        name: impl Into<String>,
        passed: bool,
        expected: impl fmt::Display,
        found: impl fmt::Display,
        hint: impl Into<String>,
    ) -> Self {
        if passed {
            Check::ok(name, found.to_string())
        } else {
            Check::fail(name, expected, found, hint)
        }
    }
}

impl fmt::Display for Check {
    /// `ok   NAME: DETAIL` or `FAIL NAME: DETAIL (hint: HINT)`, always one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = if self.passed { "ok  " } else { "FAIL" };
        write!(f, "{tag} {}: {}", self.name, one_line(&self.detail))?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {})", one_line(hint))?;
        }
        Ok(())
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every check of one run.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn passed(&self) -> usize {
        self.checks.iter().filter(|c| c.passed).count()
    }

    pub fn failed(&self) -> usize {
        self.checks.len() - self.passed()
    }

    /// The last line the checker prints: `N passed, N failed`.
    pub fn summary(&self) -> String {
        format!("{} passed, {} failed", self.passed(), self.failed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_summary() {
        let report = Report {
            checks: vec![
                Check::ok("cgroup", "/sys/fs/cgroup/boxlab/lab"),
                Check::fail(
                    "memory limit",
                    "64 MiB",
                    "128 MiB",
                    "start it with\n --memory 64m",
                ),
                Check::not_checked("processes", "no cgroup"),
            ],
        };
        assert_eq!(
            report.checks[0].to_string(),
            "ok   cgroup: /sys/fs/cgroup/boxlab/lab"
        );
        assert_eq!(
            report.checks[1].to_string(),
            "FAIL memory limit: expected 64 MiB, found 128 MiB (hint: start it with --memory 64m)"
        );
        assert_eq!(
            report.checks[2].to_string(),
            "FAIL processes: not checked: no cgroup"
        );
        assert_eq!(report.summary(), "1 passed, 2 failed");
    }

    #[test]
    fn stopping_early_keeps_the_count_and_names_the_rest() {
        let names = ["files", "parse", "run"];
        let checks = Check::stop_after(
            vec![Check::fail("files", "two files", "none", "make them")],
            &names,
            "no files",
        );
        let lines: Vec<String> = checks.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "FAIL files: expected two files, found none (hint: make them)",
                "FAIL parse: not checked: no files",
                "FAIL run: not checked: no files",
            ]
        );
    }
}
