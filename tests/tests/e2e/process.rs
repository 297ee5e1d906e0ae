//! hookbox as a process of its own, for the tests that kill a server
//! (SIGKILL: no drain, no goodbye) or run the operator commands.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Runs `hookbox` with the arguments in `HOOKBOX_TEST_ARGS` (one per line):
/// the real command line, in a process of its own, for the tests that kill
/// a server or use the operator commands. Not a test by itself.
#[test]
#[ignore = "a helper process started by other tests"]
fn hookbox_process() {
    let Ok(args) = std::env::var("HOOKBOX_TEST_ARGS") else {
        return;
    };
    let args = std::iter::once("hookbox").chain(args.lines());
    let code = hookbox::cli::main_from(args);
    // Exit with hookbox's own code (the test harness would say 0 or 101).
    std::process::exit(if code == std::process::ExitCode::SUCCESS {
        0
    } else {
        1
    });
}

/// `hookbox ARGS…` in a child process (see [`hookbox_process`]).
pub(crate) fn hookbox_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--ignored",
        "--exact",
        "process::hookbox_process",
        "--nocapture",
        // Not `--test-threads=1`: the harness would then write "test NAME ... "
        // ahead of hookbox's first line of output.
    ])
    .env("HOOKBOX_TEST_ARGS", args.join("\n"))
    .env("HOOKBOX_LOG", "warn");
    cmd
}

/// `hookbox ARGS…` run to the end: (success, stdout).
pub(crate) fn hookbox_output(args: &[&str]) -> (bool, String) {
    let out = hookbox_command(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `hookbox serve --config <config>` in a child process; returns once it
/// says where it listens.
pub(crate) fn spawn_server(config: &Path) -> (Child, SocketAddr) {
    let config = config.display().to_string();
    let mut child = hookbox_command(&["serve", "--config", &config, "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the server exited before listening")
            .unwrap();
        // Not at the start of the line: the test harness may have written
        // "test process::hookbox_process ... " before it.
        if let Some((_, rest)) = line.split_once("hookbox listening on https://") {
            break rest.trim().parse().unwrap();
        }
    };
    // Keep reading so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}
