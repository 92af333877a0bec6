//! `ch01-process`: with no arguments, show what a plain process is and time how fast one starts,
//! cold and pre-warmed. With `CMD ARGS…`, run that command cold and report its start time.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ch01_process::demo::{Model, MODEL_WEIGHTS, REQUEST};
use ch01_process::exec::{ExecError, Program};
use ch01_process::inspect::{identify, Identity};
use ch01_process::{cold, ColdError, WarmError, Worker, Zygote};
use clap::{Parser, ValueEnum};
use nix::errno::Errno;
use nix::unistd::getpid;

/// A process, cold and pre-warmed: what it shares with the host, and what it costs to start.
///
/// With no CMD: the demo. It shows this process's PID, parent, namespaces and cgroup, then times
/// a cold start (fork+exec) against a zygote (fork per request) and a pre-warmed worker.
///
/// With CMD: runs CMD cold (fork + exec), prints its start time on stderr and exits with CMD's
/// exit status (128 + the signal number if a signal killed it).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Timed runs of each start-up path in the demo.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(5..=100_000))]
    runs: u32,

    /// Internal: load the model, answer TEXT and exit. The demo's cold start runs this.
    #[arg(long, hide = true, value_name = "TEXT")]
    handle_once: Option<String>,

    /// Start a worker or a zygote and send it each line of stdin as a request, until end of
    /// input. Try `kill -9` on its pid from another terminal and send one more line.
    #[arg(long, value_enum, value_name = "KIND", conflicts_with = "command")]
    serve: Option<ServeKind>,

    /// The command to run cold, and its arguments.
    #[arg(
        value_name = "CMD",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    command: Vec<OsString>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(text) = &args.handle_once {
        // The cold path of the demo: everything a fresh process must do before it can answer.
        let model = Model::load();
        std::hint::black_box(model.answer(text.as_bytes()));
        return ExitCode::SUCCESS;
    }
    let result = match (args.serve, args.command.is_empty()) {
        (Some(kind), _) => serve(kind),
        (None, true) => demo(args.runs).map(|()| 0),
        (None, false) => run_command(&args.command),
    };
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(error) => {
            eprintln!("ch01-process: error: {error:#}");
            ExitCode::from(failure_status(&error))
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ServeKind {
    /// One process answers every request.
    Worker,
    /// One process forks a child per request.
    Zygote,
}

/// The demo's handler, saying which process answered.
fn answer_with_pid(model: &mut Model, request: &[u8]) -> Vec<u8> {
    let mut reply = model.answer(request);
    reply.extend_from_slice(format!(" (answered by pid {})", getpid()).as_bytes());
    reply
}

/// A started worker or zygote, for `--serve`.
enum Served {
    Worker(Worker),
    Zygote(Zygote),
}

impl Served {
    fn request(&mut self, request: &[u8]) -> Result<Vec<u8>, WarmError> {
        match self {
            Served::Worker(worker) => worker.request(request),
            Served::Zygote(zygote) => zygote.request(request),
        }
    }
}

/// `--serve`: one request per line of stdin, to watch (and kill) a pre-started process.
fn serve(kind: ServeKind) -> Result<i32> {
    let (mut served, pid, load_time) = match kind {
        ServeKind::Worker => {
            let worker = Worker::start_with(Model::load, answer_with_pid)?;
            let (pid, load_time) = (worker.pid(), worker.load_time());
            (Served::Worker(worker), pid, load_time)
        }
        ServeKind::Zygote => {
            let zygote = Zygote::start_with(Model::load, answer_with_pid)?;
            let (pid, load_time) = (zygote.pid(), zygote.load_time());
            (Served::Zygote(zygote), pid, load_time)
        }
    };
    println!(
        "{kind:?} pid {pid} is ready: it loaded the model in {}, once.",
        fmt_duration(load_time)
    );
    println!("Type a line and press Enter: each line is one request. End with Ctrl-D.");
    println!("Try `kill -9 {pid}` from another terminal, then send another line.");
    for line in std::io::stdin().lines() {
        let line = line.context("reading a request from stdin")?;
        let started = Instant::now();
        match served.request(line.as_bytes()) {
            Ok(reply) => println!(
                "{} in {}",
                String::from_utf8_lossy(&reply),
                fmt_duration(started.elapsed())
            ),
            // One request's child died; the zygote itself serves the next line.
            Err(error @ WarmError::RequestDied { .. }) => eprintln!("ch01-process: error: {error}"),
            Err(error) => return Err(error.into()),
        }
    }
    Ok(0)
}

/// Shell conventions: 127 "command not found", 126 "found but cannot execute", 1 otherwise.
fn failure_status(error: &anyhow::Error) -> u8 {
    match error.downcast_ref::<ColdError>() {
        Some(ColdError::Exec(ExecError::Exec {
            errno: Errno::ENOENT,
            ..
        })) => 127,
        Some(ColdError::Exec(ExecError::Exec { .. })) => 126,
        _ => 1,
    }
}

/// Runs `command` cold and returns the status to exit with.
fn run_command(command: &[OsString]) -> Result<i32> {
    let program = Program::new(command)?;
    let run = cold::run(&program)?;
    eprintln!(
        "ch01-process: '{}' (pid {}) started in {} (fork → exec done), ran {} in all, and {}",
        program.display(),
        run.pid,
        fmt_duration(run.to_exec),
        fmt_duration(run.total),
        run.exit
    );
    Ok(run.exit.shell_code())
}

fn demo(runs: u32) -> Result<()> {
    println!("Chapter 1: a process, cold and pre-warmed\n");
    let me = identify().context("reading this process's identity from /proc")?;
    show_identity(&me);
    time_startups(runs as usize)?;
    Ok(())
}

fn show_identity(me: &Identity) {
    println!("Step 1. Who am I?");
    println!(
        "  getpid()  = {}: this process's id, unique on the host while it runs.",
        me.pid
    );
    let parent = me.parent_command.as_deref().unwrap_or("?");
    println!(
        "  getppid() = {} ({parent}): the process that started us, with fork() then exec(). When we\n  \
         exit, it is the one that reads our exit status with waitpid().\n",
        me.ppid
    );

    println!("Step 2. Which namespaces am I in?");
    println!("  readlink /proc/self/ns/<kind>: each link names a namespace by its inode number.");
    let init_readable = me.namespaces.iter().any(|ns| ns.init.is_ok());
    if init_readable {
        println!(
            "  The same number as /proc/1/ns/<kind> (PID 1, init) means: shared with the host."
        );
    } else {
        let why = me
            .namespaces
            .first()
            .and_then(|ns| ns.init.as_ref().err())
            .map_or("unreadable", String::as_str);
        println!("  /proc/1/ns/* (PID 1, init) cannot be read here: {why}.");
        println!(
            "  So we compare with our parent's, /proc/{}/ns/*, instead.",
            me.ppid
        );
    }
    for ns in &me.namespaces {
        let verdict = match (ns.shared_with_init(), ns.shared_with_parent()) {
            (Some(true), _) => "same as PID 1: shared with the host".to_string(),
            (Some(false), _) => "differs from PID 1: our own".to_string(),
            (None, Some(true)) => format!("same as our parent ({parent})"),
            (None, Some(false)) => format!("differs from our parent ({parent})"),
            (None, None) => "cannot compare".to_string(),
        };
        println!("    {:<18} {:<26} {verdict}", ns.kind, ns.ours);
    }
    println!(
        "  A plain process gets no namespace of its own: it sees the host's processes, network,\n  \
         mounts and hostname. Chapter 2 gives it its own.\n"
    );

    println!("Step 3. Which cgroups limit me?");
    println!("  cat /proc/self/cgroup: one line per hierarchy, 'id:controllers:path'.");
    let lines: Vec<String> = me
        .cgroups
        .iter()
        .map(|line| format!("{}:{}:{}", line.hierarchy, line.controllers, line.path))
        .collect();
    let width = lines
        .iter()
        .map(|line| line.chars().count())
        .max()
        .unwrap_or(0);
    for (text, line) in lines.iter().zip(&me.cgroups) {
        let which = if line.hierarchy == 0 {
            "cgroup v2 (unified) hierarchy".to_string()
        } else {
            format!("cgroup v1 hierarchy of '{}'", line.controllers)
        };
        println!("    {text:<width$}  {which}");
    }
    println!(
        "  We were put in our parent's cgroups at fork(); nothing was set up for us. Chapter 3\n  \
         makes a cgroup with limits.\n"
    );
}

fn time_startups(runs: usize) -> Result<()> {
    println!("Step 4. How long does a start take? ({runs} timed runs of each, median and 90th percentile)");
    let model_mib = (MODEL_WEIGHTS * std::mem::size_of::<u32>()) >> 20;
    println!(
        "  Each path does the same job: load a {model_mib} MiB \"model\", then answer the request\n  \
         \"{REQUEST}\"\n  by counting its words and scoring them with the model.\n"
    );

    let exe =
        std::env::current_exe().context("finding this program's own path (/proc/self/exe)")?;
    let true_program = Program::new(&["/bin/true"])?;
    let self_program =
        Program::new(&[exe.as_os_str(), "--handle-once".as_ref(), REQUEST.as_ref()])?;

    println!(
        "  a) cold, no work: fork(), execvp(\"/bin/true\") in the child, waitpid() in the parent."
    );
    let bare = measure(runs, || Ok(cold::run(&true_program)?.total))?;
    println!(
        "  b) cold, with the work: fork + exec this program again with --handle-once; the new"
    );
    println!("     process loads the model, answers, exits. A cold serverless start does this.");
    let cold_full = measure(runs, || {
        let run = cold::run(&self_program)?;
        anyhow::ensure!(
            run.exit.success(),
            "'{}' {}",
            self_program.display(),
            run.exit
        );
        Ok(run.total)
    })?;

    println!(
        "  c) zygote: a process that loaded the model once; per request it fork()s a child that"
    );
    println!("     answers over a Unix socket and exits.");
    let mut zygote = Zygote::start_with(Model::load, |model, request| model.answer(request))?;
    println!(
        "     (zygote pid {} loaded the model in {}, once)",
        zygote.pid(),
        fmt_duration(zygote.load_time())
    );
    let zygote_times = measure(runs, || timed(|| zygote.request(REQUEST.as_bytes())))?;

    println!(
        "  d) warm worker: a process that loaded the model once and answers every request itself:"
    );
    println!("     one message out, one back, over a Unix socket.");
    let mut worker = Worker::start_with(Model::load, |model, request| model.answer(request))?;
    println!(
        "     (worker pid {} loaded the model in {}, once)",
        worker.pid(),
        fmt_duration(worker.load_time())
    );
    let warm_times = measure(runs, || timed(|| worker.request(REQUEST.as_bytes())))?;

    // All paths must give the same answer, or the comparison means nothing.
    let expected = Model::load().answer(REQUEST.as_bytes());
    let from_worker = worker.request(REQUEST.as_bytes())?;
    let from_zygote = zygote.request(REQUEST.as_bytes())?;
    anyhow::ensure!(
        from_worker == expected && from_zygote == expected,
        "worker and zygote disagree"
    );
    println!(
        "\n  Every path answered: {}",
        String::from_utf8_lossy(&expected)
    );
    worker.stop()?;
    zygote.stop()?;

    let warm_median = warm_times.median;
    println!(
        "\n  {:<44} {:>10} {:>10} {:>10}",
        "start-up path", "median", "p90", "× warm"
    );
    for (name, stats) in [
        ("a) cold: fork+exec /bin/true", &bare),
        ("b) cold: fork+exec, load model, answer", &cold_full),
        ("c) zygote: fork per request, answer", &zygote_times),
        ("d) warm worker: request → reply", &warm_times),
    ] {
        let ratio = stats.median.as_secs_f64() / warm_median.as_secs_f64().max(1e-9);
        println!(
            "  {:<44} {:>10} {:>10} {:>9.0}×",
            name,
            fmt_duration(stats.median),
            fmt_duration(stats.p90),
            ratio
        );
    }
    println!(
        "\n  The table's \"serverless starts in milliseconds\" is true of a bare process (a). A cold\n  \
         start that must load its work first (b) takes as long as that load on top. A zygote (c)\n  \
         pays one fork() per request, dearer the more memory it has loaded (fork copies its page\n  \
         tables); only the warm worker (d) answers in microseconds: one round trip through the\n  \
         kernel, and no process is started at all."
    );
    if cfg!(debug_assertions) {
        println!("  (This is a debug build; `cargo run --release -p ch01-process` gives the real figures.)");
    }
    Ok(())
}

/// Median and 90th percentile of a set of timings.
struct Stats {
    median: Duration,
    p90: Duration,
}

/// Runs `once` `runs` times (after one untimed warm-up run), showing progress on stderr.
fn measure(runs: usize, mut once: impl FnMut() -> Result<Duration>) -> Result<Stats> {
    once()?;
    let started = Instant::now();
    let mut times = Vec::with_capacity(runs);
    let mut shown = false;
    // Progress only on a terminal, and only for a slow path, so a fast one prints nothing extra.
    let terminal = std::io::stderr().is_terminal();
    for i in 0..runs {
        times.push(once()?);
        if terminal && started.elapsed() > Duration::from_secs(1) && (i + 1) % 10 == 0 {
            eprint!("\r     … {}/{runs} runs", i + 1);
            shown = true;
        }
    }
    if shown {
        eprint!("\r{:30}\r", "");
    }
    times.sort();
    let stats = Stats {
        median: times[runs / 2],
        p90: times[(runs * 9 / 10).min(runs - 1)],
    };
    println!(
        "     median {}, p90 {}",
        fmt_duration(stats.median),
        fmt_duration(stats.p90)
    );
    Ok(stats)
}

/// Times one request, checking that it succeeded.
fn timed<T, E: std::error::Error + Send + Sync + 'static>(
    f: impl FnOnce() -> Result<T, E>,
) -> Result<Duration> {
    let started = Instant::now();
    f()?;
    Ok(started.elapsed())
}

fn fmt_duration(d: Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    if micros < 1000.0 {
        format!("{micros:.1} µs")
    } else {
        format!("{:.2} ms", micros / 1000.0)
    }
}
