//! A program with an environment and a working directory of its own (what an image's config
//! asks for).

use ch01_process::cold;
use ch01_process::exec::Program;
use ch01_process::Exit;

#[test]
fn the_program_gets_exactly_the_given_environment_and_directory() {
    let program = Program::new(&[
        "sh",
        "-c",
        r#"test "$FOO" = bar && test -z "$HOME" && test "$(pwd)" = /tmp"#,
    ])
    .unwrap()
    .with_env(&["FOO=bar", "PATH=/usr/bin:/bin"])
    .unwrap()
    .with_cwd("/tmp")
    .unwrap();
    assert_eq!(cold::run(&program).unwrap().exit, Exit::Code(0));
}

#[test]
fn the_program_is_looked_up_in_its_own_path() {
    // `sh` is in /bin and /usr/bin, not in /nonexistent: with that PATH it is not found.
    let program = Program::new(&["sh", "-c", "true"])
        .unwrap()
        .with_env(&["PATH=/nonexistent"])
        .unwrap();
    let err = cold::run(&program).unwrap_err().to_string();
    assert!(err.contains("cannot execute 'sh'"), "{err}");
    let program = Program::new(&["sh", "-c", "true"])
        .unwrap()
        .with_env(&["NOPATH=1"])
        .unwrap();
    assert_eq!(
        cold::run(&program).unwrap().exit,
        Exit::Code(0),
        "no PATH: the default path finds sh"
    );
}

#[test]
fn a_missing_directory_is_an_error() {
    let program = Program::new(&["true"])
        .unwrap()
        .with_cwd("/nonexistent/boxlab")
        .unwrap();
    assert!(cold::run(&program).is_err());
}
