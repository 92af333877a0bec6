//! A cold run reports what the program really did: its exit status, the signal that killed it,
//! or a clear error when it could not be started at all.

use ch01_process::{cold, ColdError, ExecError, Exit, Program};
use nix::sys::signal::Signal;

#[test]
fn returns_the_programs_exit_status() {
    let run = cold::run(&Program::new(&["sh", "-c", "exit 7"]).unwrap()).unwrap();
    assert_eq!(run.exit, Exit::Code(7));
    assert_eq!(run.exit.shell_code(), 7);
    assert!(run.to_exec <= run.total);
}

#[test]
fn true_succeeds() {
    let run = cold::run(&Program::new(&["/bin/true"]).unwrap()).unwrap();
    assert!(run.exit.success());
    assert_eq!(run.exit.to_string(), "exited with status 0");
}

#[test]
fn reports_the_signal_that_killed_it() {
    let run = cold::run(&Program::new(&["sh", "-c", "kill -9 $$"]).unwrap()).unwrap();
    assert_eq!(run.exit, Exit::Signal(Signal::SIGKILL));
    assert_eq!(run.exit.shell_code(), 128 + 9);
    assert_eq!(run.exit.to_string(), "was killed by signal SIGKILL");
}

#[test]
fn a_missing_program_is_an_error_naming_it_not_status_127() {
    let err =
        cold::run(&Program::new(&["/nonexistent/boxlab-no-such-program"]).unwrap()).unwrap_err();
    assert!(
        matches!(
            err,
            ColdError::Exec(ExecError::Exec {
                errno: nix::errno::Errno::ENOENT,
                ..
            })
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("/nonexistent/boxlab-no-such-program"),
        "{message}"
    );
    assert!(message.contains("no such file"), "{message}");

    let err = cold::run(&Program::new(&["boxlab-no-such-command"]).unwrap()).unwrap_err();
    assert!(
        err.to_string()
            .contains("'boxlab-no-such-command': command not found in PATH"),
        "{err}"
    );
}

#[test]
fn a_file_that_is_not_executable_is_an_error() {
    // A device node is never executable, not even by root.
    let err = cold::run(&Program::new(&["/dev/null"]).unwrap()).unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
}

#[test]
fn bad_commands_are_refused_before_any_fork() {
    let empty: [&str; 0] = [];
    assert!(matches!(Program::new(&empty), Err(ExecError::Empty)));
    let err = Program::new(&["echo", "a\0b"]).unwrap_err();
    assert!(
        err.to_string()
            .contains("argument 1 of 'echo' contains a NUL byte"),
        "{err}"
    );
}

#[test]
fn arguments_reach_the_program_unchanged() {
    // sh exits 0 only if it got exactly the two arguments, spaces and dashes kept.
    let program = Program::new(&[
        "sh",
        "-c",
        r#"[ "$1" = "a b" ] && [ "$2" = "-n" ]"#,
        "sh",
        "a b",
        "-n",
    ])
    .unwrap();
    assert!(cold::run(&program).unwrap().exit.success());
}
