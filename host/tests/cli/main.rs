//! The `hookbox` binary itself: bad configuration is refused with exit code
//! 64 before anything binds, and `serve --dev` serves the embedded reference
//! plugin and announces where (`serve`); `check` and `run`, a plugin author's
//! tools (`tools`); `check-auth` and an unreachable OAuth issuer at start
//! (`oauth`). One test binary, a module per command.

#![allow(clippy::unwrap_used)]

mod claims;
mod oauth;
mod serve;
mod tools;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use hookbox_tests::{
    Client, Pki, events_only_wasm, fixture_path, legacy_wasm, login_conflict_languages,
    login_conflict_wasm, misbehave_wasm, sample_request, wrong_world_wasm,
};

/// A temporary directory with the server's `cert.pem` and `key.pem` from
/// `pki`, and a `secret` file holding `s3cret`.
fn server_files(pki: &Pki) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), &pki.server_cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &pki.server_key_pem).unwrap();
    std::fs::write(dir.path().join("secret"), "s3cret\n").unwrap();
    dir
}

fn hookbox() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookbox"));
    cmd.env_remove("HOOKBOX_CONFIG")
        .env_remove("HOOKBOX_LISTEN")
        .env("HOOKBOX_LOG", "warn");
    cmd
}

fn output(cmd: &mut Command) -> (Option<i32>, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Reads stdout until the "listening" line and returns the bound address.
fn wait_for_listening(child: &mut std::process::Child) -> std::net::SocketAddr {
    wait_for_listening_lines(child).0
}

/// [`wait_for_listening`], with the lines printed before it.
fn wait_for_listening_lines(
    child: &mut std::process::Child,
) -> (std::net::SocketAddr, Vec<String>) {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut before = Vec::new();
    loop {
        let line = lines
            .next()
            .expect("hookbox exited before listening")
            .unwrap();
        if let Some(url) = line.strip_prefix("hookbox listening on https://") {
            return (url.trim().parse().unwrap(), before);
        }
        before.push(line);
    }
}
