//! The Boxfile: a Dockerfile-like list of instructions, one per line.
//!
//! ```text
//! # a comment
//! FROM scratch AS builder          FROM <image in the layout> | scratch, optionally AS <alias>
//! COPY busybox /bin/busybox        COPY [--from=<stage>] <src>... <dest>
//! RUN ["/bin/busybox", "--install", "-s", "/bin"]      exec form: a JSON array
//! ENV GREETING="hello there" N=1   ENV KEY=value ... | ENV KEY value with spaces
//! WORKDIR /app                     relative to the previous WORKDIR; created if missing
//! RUN echo "$GREETING" > greeting \
//!     && cat greeting              shell form: /bin/sh -c "<the rest of the line>"
//! CMD ["cat", "/app/greeting"]
//! ```
//!
//! A `\` at the end of a line continues the instruction on the next one; comment lines inside a
//! continued instruction are skipped. Keywords are case-insensitive. Variables (`$VAR`) are not
//! expanded by the builder (the shell of a shell-form RUN expands them, as usual).

use serde::Serialize;

use super::BuildError;

/// A parsed Boxfile: one or more stages; the last one is the image the build produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boxfile {
    /// The stages, in order.
    pub stages: Vec<Stage>,
}

/// One `FROM` and the instructions after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// What it starts from.
    pub base: Base,
    /// `FROM … AS alias` (lowercased, as Docker does).
    pub alias: Option<String>,
    /// The line of its `FROM`.
    pub line: usize,
    /// The `FROM` line as written.
    pub text: String,
    /// The instructions after the `FROM`.
    pub instructions: Vec<Instruction>,
}

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Base {
    /// Nothing: an empty filesystem and config.
    Scratch,
    /// An image in the layout, by ref name or digest.
    Image(String),
}

/// One instruction of a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The line it starts on (1-based).
    pub line: usize,
    /// As written (continuations joined), for messages and the image history.
    pub text: String,
    /// What it says.
    pub kind: InstructionKind,
}

/// What an instruction says, parsed. Its JSON form is the *normalized* instruction that goes
/// into the cache key: `RUN echo hi` and `run   echo hi` give the same key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InstructionKind {
    /// `COPY [--from=stage] src... dest`.
    Copy {
        /// `--from=`: an earlier stage's alias or number, or an image.
        from: Option<String>,
        /// Paths in the context (or the stage).
        sources: Vec<String>,
        /// Where they go in the image.
        dest: String,
    },
    /// `RUN`.
    Run(Command),
    /// `CMD`.
    Cmd(Command),
    /// `ENV` (one or more pairs, in order).
    Env(Vec<(String, String)>),
    /// `WORKDIR`.
    Workdir(String),
}

impl InstructionKind {
    /// The keyword.
    pub fn keyword(&self) -> &'static str {
        match self {
            InstructionKind::Copy { .. } => "COPY",
            InstructionKind::Run(_) => "RUN",
            InstructionKind::Cmd(_) => "CMD",
            InstructionKind::Env(_) => "ENV",
            InstructionKind::Workdir(_) => "WORKDIR",
        }
    }
}

/// A command of `RUN` or `CMD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Command {
    /// `RUN echo hi`: run by `/bin/sh -c`.
    Shell(String),
    /// `RUN ["echo", "hi"]`: exec'd as is.
    Exec(Vec<String>),
}

impl Command {
    /// The argv to exec.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Command::Shell(line) => vec!["/bin/sh".into(), "-c".into(), line.clone()],
            Command::Exec(argv) => argv.clone(),
        }
    }
}

/// The instructions we know, for the "unknown instruction" message.
const KNOWN: &str = "FROM, COPY, RUN, CMD, ENV, WORKDIR";

// ANCHOR: parse
/// Parses a Boxfile. Errors name the line (1-based) and say what to write instead; the file
/// is called `Boxfile` in them ([`super::build`] puts in the real path).
pub fn parse_boxfile(text: &str) -> Result<Boxfile, BuildError> {
    let mut stages: Vec<Stage> = Vec::new();
    for (line, logical) in logical_lines(text)? {
        let (word, rest) = split_keyword(&logical);
        let keyword = word.to_ascii_uppercase();
        let fail = |problem: String| BuildError::Parse {
            file: "Boxfile".into(),
            line,
            instruction: keyword.clone(),
            problem,
        };
        if keyword == "FROM" {
            let (base, alias) = parse_from(rest).map_err(&fail)?;
            if let Some(alias) = &alias {
                if stages.iter().any(|s| s.alias.as_ref() == Some(alias)) {
                    return Err(fail(format!(
                        "FROM: a stage is already called {alias:?}; give each stage its own name"
                    )));
                }
            }
            stages.push(Stage {
                base,
                alias,
                line,
                text: logical.clone(),
                instructions: Vec::new(),
            });
            continue;
        }
        let kind = match keyword.as_str() {
            "COPY" => parse_copy(rest),
            "RUN" => parse_command("RUN", rest).map(InstructionKind::Run),
            "CMD" => parse_command("CMD", rest).map(InstructionKind::Cmd),
            "ENV" => parse_env(rest).map(InstructionKind::Env),
            "WORKDIR" => parse_workdir(rest),
            _ => Err(format!(
                "unknown instruction `{word}`; a Boxfile knows {KNOWN} (one per line, `#` for comments)"
            )),
        }
        .map_err(&fail)?;
        let Some(stage) = stages.last_mut() else {
            return Err(fail(format!(
                "{keyword} before any FROM; start the Boxfile with `FROM scratch` or `FROM <image>`"
            )));
        };
        stage.instructions.push(Instruction {
            line,
            text: logical.clone(),
            kind,
        });
    }
    if stages.is_empty() {
        return Err(BuildError::Parse {
            file: "Boxfile".into(),
            line: 1,
            instruction: String::new(),
            problem:
                "the Boxfile has no instructions; start it with `FROM scratch` or `FROM <image>`"
                    .into(),
        });
    }
    Ok(Boxfile { stages })
}
// ANCHOR_END: parse

/// The instructions of `text` with the line each starts on: comments and blank lines dropped,
/// `\`-continued lines joined.
fn logical_lines(text: &str) -> Result<Vec<(usize, String)>, BuildError> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let trimmed = raw.trim();
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        let (body, continues) = match raw.trim_end().strip_suffix('\\') {
            Some(body) => (body, true),
            None => (raw, false),
        };
        let (start, mut joined) = pending.take().unwrap_or((number, String::new()));
        joined.push_str(body);
        if continues {
            pending = Some((start, joined));
        } else if !joined.trim().is_empty() {
            out.push((start, joined.trim().to_string()));
        }
    }
    if let Some((start, _)) = pending {
        return Err(BuildError::Parse {
            file: "Boxfile".into(),
            line: start,
            instruction: String::new(),
            problem: "the instruction ends with `\\` but no line follows; remove the last `\\`"
                .into(),
        });
    }
    Ok(out)
}

fn split_keyword(line: &str) -> (&str, &str) {
    match line.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim()),
        None => (line, ""),
    }
}

fn parse_from(rest: &str) -> Result<(Base, Option<String>), String> {
    let words: Vec<&str> = rest.split_whitespace().collect();
    if words.first().is_some_and(|w| w.starts_with("--")) {
        return Err(format!(
            "FROM: the option {} is not supported; write `FROM <image> [AS <name>]`",
            words[0]
        ));
    }
    let (image, alias) = match words.as_slice() {
        [image] => (*image, None),
        [image, as_word, alias] if as_word.eq_ignore_ascii_case("as") => {
            (*image, Some(alias.to_ascii_lowercase()))
        }
        [] => {
            return Err("FROM needs an image: `FROM scratch` or `FROM <image> [AS <name>]`".into())
        }
        _ => {
            return Err(format!(
                "FROM takes an image and an optional `AS <name>`, not {rest:?}"
            ))
        }
    };
    if let Some(alias) = &alias {
        if alias.parse::<usize>().is_ok() || !alias.chars().all(is_name_char) {
            return Err(format!(
                "FROM … AS {alias:?}: a stage name is letters, digits, `-`, `_` and `.`, and not only digits"
            ));
        }
    }
    let base = if image.eq_ignore_ascii_case("scratch") {
        Base::Scratch
    } else {
        Base::Image(image.to_string())
    };
    Ok((base, alias))
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

fn parse_command(keyword: &str, rest: &str) -> Result<Command, String> {
    if rest.is_empty() {
        return Err(format!(
            "{keyword} needs a command: `{keyword} echo hi` or `{keyword} [\"echo\", \"hi\"]`"
        ));
    }
    if rest.starts_with('[') {
        let argv = json_array(rest).map_err(|e| {
            format!("{keyword}: {e}; write the exec form as a JSON array of strings, `[\"echo\", \"hi\"]`, or drop the brackets for the shell form")
        })?;
        if argv.is_empty() {
            return Err(format!("{keyword} []: the command is empty"));
        }
        return Ok(Command::Exec(argv));
    }
    Ok(Command::Shell(rest.to_string()))
}

fn json_array(text: &str) -> Result<Vec<String>, String> {
    serde_json::from_str::<Vec<String>>(text)
        .map_err(|e| format!("{text} is not a JSON array of strings ({e})"))
}

fn parse_copy(rest: &str) -> Result<InstructionKind, String> {
    let mut from = None;
    let mut rest = rest;
    while let Some(flag) = rest.strip_prefix("--") {
        let (word, after) = split_keyword(flag);
        match word.split_once('=') {
            Some(("from", stage)) if !stage.is_empty() => from = Some(stage.to_string()),
            _ => {
                return Err(format!(
                    "COPY: the option --{word} is not supported; the only option is --from=<stage>"
                ))
            }
        }
        rest = after;
    }
    let mut args: Vec<String> = if rest.starts_with('[') {
        json_array(rest).map_err(|e| format!("COPY: {e}"))?
    } else {
        rest.split_whitespace().map(str::to_string).collect()
    };
    if args.len() < 2 {
        return Err("COPY needs a source and a destination: `COPY <src>... <dest>`".into());
    }
    let dest = args.pop().unwrap_or_default();
    if args.len() > 1 && !dest.ends_with('/') {
        return Err(format!(
            "COPY with several sources needs a directory destination ending in `/`, not {dest:?}"
        ));
    }
    Ok(InstructionKind::Copy {
        from,
        sources: args,
        dest,
    })
}

fn parse_env(rest: &str) -> Result<Vec<(String, String)>, String> {
    let usage = "write `ENV KEY=value [KEY2=value2 ...]` or `ENV KEY value`";
    let (first, after) = split_keyword(rest);
    if first.is_empty() {
        return Err(format!("ENV needs a variable; {usage}"));
    }
    let pairs = if !first.contains('=') {
        // ENV KEY value with spaces
        if after.is_empty() {
            return Err(format!("ENV {first}: no value; {usage}"));
        }
        vec![(first.to_string(), after.to_string())]
    } else {
        let mut pairs = Vec::new();
        for word in shell_words(rest)? {
            let Some((key, value)) = word.split_once('=') else {
                return Err(format!("ENV: {word:?} has no `=`; {usage}"));
            };
            pairs.push((key.to_string(), value.to_string()));
        }
        pairs
    };
    for (key, _) in &pairs {
        if key.is_empty()
            || key.starts_with(|c: char| c.is_ascii_digit())
            || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(format!(
                "ENV: {key:?} is not a variable name (letters, digits and `_`, not starting with a digit); {usage}"
            ));
        }
    }
    Ok(pairs)
}

/// Splits `KEY="a b" K2='c' K3=d\ e` into words, removing quotes and backslash escapes.
fn shell_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next());
            }
            '"' | '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some('\\') if c == '"' => word.extend(chars.next()),
                        Some(other) => word.push(other),
                        None => return Err(format!("ENV: the quote {c} is never closed")),
                    }
                }
            }
            other => {
                in_word = true;
                word.push(other);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

fn parse_workdir(rest: &str) -> Result<InstructionKind, String> {
    if rest.is_empty() {
        return Err("WORKDIR needs a directory: `WORKDIR /app`".into());
    }
    if rest.split_whitespace().count() > 1 {
        return Err(format!(
            "WORKDIR takes one directory, not {rest:?} (paths with spaces are not supported)"
        ));
    }
    Ok(InstructionKind::Workdir(rest.to_string()))
}
