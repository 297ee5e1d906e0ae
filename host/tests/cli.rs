//! The `hookbox` binary itself: bad configuration is refused with exit code
//! 64 before anything binds, and `serve --dev` serves the embedded reference
//! plugin and announces where.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use hookbox_tests::{Client, Pki, sample_request};

fn hookbox() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookbox"));
    cmd.env_remove("HOOKBOX_CONFIG")
        .env_remove("HOOKBOX_LISTEN")
        .env("HOOKBOX_LOG", "warn");
    cmd
}

#[test]
fn bad_configuration_exits_64_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let unknown_key = dir.path().join("unknown.toml");
    std::fs::write(
        &unknown_key,
        "[server]\nlisten = \"127.0.0.1:0\"\nlisen = 1\n",
    )
    .unwrap();
    let no_tenants = dir.path().join("empty.toml");
    std::fs::write(&no_tenants, "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n").unwrap();
    let cases = [
        (
            vec!["serve", "--config", "/nonexistent/hookbox.toml"],
            "cannot read config file",
        ),
        (
            vec!["serve", "--config", unknown_key.to_str().unwrap()],
            "lisen",
        ),
        (
            vec!["serve", "--config", no_tenants.to_str().unwrap()],
            "no [[tenants]]",
        ),
        (vec!["serve"], "--config"),
        (
            vec!["serve", "--dev", "--listen", "nowhere"],
            "listen address",
        ),
        (
            vec!["serve", "--dev", "--plugin", "/nonexistent.wasm"],
            "--plugin",
        ),
    ];
    for (args, needle) in cases {
        let out = hookbox().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: expected '{needle}' in {stderr}"
        );
    }
}

#[test]
fn dev_mode_serves_the_embedded_reference_plugin() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), &pki.server_cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &pki.server_key_pem).unwrap();
    let mut child = hookbox()
        .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--cert"])
        .arg(dir.path().join("cert.pem"))
        .arg("--key")
        .arg(dir.path().join("key.pem"))
        .env("HOOKBOX_DEV_SECRET", "dev-secret")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The server announces its bound address once it listens: wait for that line, not a timer.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("hookbox exited before listening")
            .unwrap();
        if let Some(url) = line.strip_prefix("hookbox listening on https://") {
            break url.trim().parse().unwrap();
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reply = runtime.block_on(Client::new(addr, &pki.ca_der).hook(
        "dev",
        "dev-secret",
        &sample_request(),
    ));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.new_login().as_deref(),
        Some("sally2.admin2.272ed9@clouditude.net")
    );
}
