//! hookbox as a process of its own, for the tests that kill a server
//! (SIGKILL: no drain, no goodbye) or run the operator commands.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

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
pub(crate) fn hookbox_command(args: &[impl AsRef<str>]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--ignored",
        "--exact",
        "process::hookbox_process",
        "--nocapture",
        // Not `--test-threads=1`: the harness would then write "test NAME ... "
        // ahead of hookbox's first line of output.
    ])
    .env(
        "HOOKBOX_TEST_ARGS",
        args.iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join("\n"),
    )
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
    let (child, addr, _) = spawn(hookbox_command(&serve_args(config)));
    (child, addr)
}

/// [`spawn_server`] with the child's files capped at `max_file_bytes`
/// (the soft `RLIMIT_FSIZE`, which `prlimit` may lift later, with `SIGXFSZ`
/// ignored): past it a write fails with
/// `EFBIG`, which is how a full disk looks to the process (a write refused,
/// everything else working). Also returns what it writes to stderr so far.
pub(crate) fn spawn_server_with_file_limit(
    config: &Path,
    max_file_bytes: u64,
) -> (Child, SocketAddr, Arc<Mutex<String>>) {
    let inner = hookbox_command(&serve_args(config));
    // `sh` counts `ulimit -f` in 512-byte blocks (POSIX, and bash as `sh`).
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -S -f {}; exec \"$0\" \"$@\"",
            max_file_bytes.div_ceil(512)
        ))
        .arg(inner.get_program())
        .args(inner.get_args());
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    spawn(cmd)
}

fn serve_args(config: &Path) -> Vec<String> {
    [
        "serve",
        "--config",
        &config.display().to_string(),
        "--listen",
        "127.0.0.1:0",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn spawn(mut cmd: Command) -> (Child, SocketAddr, Arc<Mutex<String>>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = Arc::new(Mutex::new(String::new()));
    let errors = BufReader::new(child.stderr.take().unwrap());
    let sink = stderr.clone();
    std::thread::spawn(move || {
        for line in errors.lines().map_while(Result::ok) {
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let Some(line) = lines.next() else {
            panic!(
                "the server exited before listening: {}",
                stderr.lock().unwrap()
            )
        };
        let line = line.unwrap();
        // Not at the start of the line: the test harness may have written
        // "test process::hookbox_process ... " before it.
        if let Some((_, rest)) = line.split_once("hookbox listening on https://") {
            break rest.trim().parse().unwrap();
        }
    };
    // Keep reading so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr, stderr)
}
