//! `--log FILE --log-format text|json`: where the runtime reports what went wrong.
//!
//! containerd's shim runs the runtime with `--log <bundle>/log.json --log-format json` and, when
//! a verb fails, reads the last `{"level":"error","msg":...}` line from that file: it does not
//! see our stderr. So every error goes to both: one line on stderr for a person, one line in the
//! log file for containerd. `--debug` adds the set-up steps at level `debug`.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The two formats runc's `--log-format` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format '{other}': use text or json")),
        }
    }
}

/// Where and how to log; set once by `main`.
#[derive(Debug, Clone, Default)]
pub struct LogConfig {
    pub file: Option<PathBuf>,
    pub format: LogFormat,
    pub debug: bool,
}

static CONFIG: OnceLock<LogConfig> = OnceLock::new();

/// Sets the log destination for this process (the first call wins).
pub fn init(config: LogConfig) {
    let _ = CONFIG.set(config);
}

/// Whether `--debug` was given.
pub fn debug_enabled() -> bool {
    CONFIG.get().is_some_and(|c| c.debug)
}

/// Logs a set-up step (only with `--debug`): to the log file if there is one, else to stderr.
pub fn debug(msg: &str) {
    let Some(config) = CONFIG.get() else { return };
    if !config.debug {
        return;
    }
    if config.file.is_some() {
        write_line(config, "debug", msg);
    } else {
        eprintln!("debug: {msg}");
    }
}

/// Logs a warning (something in the config skipped): to the log file if there is one, else to
/// stderr.
pub fn warn(msg: &str) {
    match CONFIG.get() {
        Some(config) if config.file.is_some() => write_line(config, "warning", msg),
        _ => eprintln!("warning: {msg}"),
    }
}

/// Logs an error: one line on stderr, and one line in the log file if there is one.
pub fn error(msg: &str) {
    eprintln!("error: {msg}");
    if let Some(config) = CONFIG.get() {
        write_line(config, "error", msg);
    }
}

fn write_line(config: &LogConfig, level: &str, msg: &str) {
    let Some(file) = &config.file else { return };
    let line = format_line(config.format, level, msg, SystemTime::now());
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(file) {
        // One write per line: lines of concurrent runtimes do not interleave.
        let _ = f.write_all(line.as_bytes());
    }
}

// ANCHOR: log_line
/// One log line, as runc (logrus) writes it: `{"level":"error","msg":"...","time":"..."}` in
/// JSON, `time="..." level=error msg="..."` in text.
pub fn format_line(format: LogFormat, level: &str, msg: &str, now: SystemTime) -> String {
    let time = rfc3339(now);
    match format {
        LogFormat::Json => {
            let value = serde_json::json!({ "level": level, "msg": msg, "time": time });
            format!("{value}\n")
        }
        LogFormat::Text => format!(
            "time={:?} level={level} msg={}\n",
            time,
            serde_json::Value::String(msg.to_string())
        ),
    }
}
// ANCHOR_END: log_line

/// `2024-05-01T12:34:56.789012345Z` (UTC): chapter 4's RFC 3339 date (the builder's history
/// timestamps) with the nanoseconds added.
pub fn rfc3339(now: SystemTime) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = ch04_rootfs::build::diff::rfc3339(since.as_secs());
    format!(
        "{}.{:09}Z",
        seconds.trim_end_matches('Z'),
        since.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn json_lines_are_what_containerd_parses() {
        let t = UNIX_EPOCH + Duration::new(1_714_566_896, 5);
        let line = format_line(LogFormat::Json, "error", "no \"such\" file", t);
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "no \"such\" file");
        assert_eq!(v["time"], "2024-05-01T12:34:56.000000005Z");
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
    }

    #[test]
    fn dates_convert_across_leap_years() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert!(rfc3339(leap).starts_with("2000-02-29T00:00:00"));
    }

    #[test]
    fn text_lines_quote_the_message() {
        let line = format_line(LogFormat::Text, "error", "a b", UNIX_EPOCH);
        assert_eq!(
            line,
            "time=\"1970-01-01T00:00:00.000000000Z\" level=error msg=\"a b\"\n"
        );
    }
}
