//! `hookbox claims`: operators' view of the claim store.

use super::*;

/// `hookbox claims` against the configured (embedded) store, the way
/// `tests/conformance/run.py` seeds it; refused clearly while a server holds
/// the file.
#[test]
fn claims_command_claims_shows_lists_and_releases() {
    let pki = Pki::new();
    let dir = server_files(&pki);
    let config = dir.path().join("hookbox.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\
             [[tenants]]\nid = \"acme\"\nplugin = {:?}\nauth = {{ secrets_file = [\"secret\"] }}\n",
            login_conflict_wasm().display().to_string()
        ),
    )
    .unwrap();
    let claims = |args: &[&str]| {
        let mut cmd = hookbox();
        cmd.args(["claims", args[0], "--config"])
            .arg(&config)
            .args(["--tenant", "acme"])
            .args(&args[1..]);
        output(&mut cmd)
    };
    let (code, out, err) = claims(&["claim", "ada@example.com", "id:1"]);
    assert_eq!((code, out.trim()), (Some(0), "claimed"), "{err}");
    let (code, out, _) = claims(&["claim", "ada@example.com", "id:1"]);
    assert_eq!((code, out.trim()), (Some(0), "already-yours"));
    let (code, out, _) = claims(&["claim", "ada@example.com", "id:2"]);
    assert_eq!((code, out.trim()), (Some(1), "taken"));
    claims(&["claim", "bob@example.com", "id:2"]);
    let (code, out, _) = claims(&["show", "ada@example.com"]);
    assert_eq!((code, out.trim()), (Some(0), "id:1"));
    let (code, out, _) = claims(&["list", "--json"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap(),
        serde_json::json!({"ada@example.com": "id:1", "bob@example.com": "id:2"})
    );
    let (code, out, _) = claims(&["list", "--after", "ada@example.com"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("bob@example.com\tid:2\t"), "{out}");
    let (code, _, _) = claims(&["release", "ada@example.com", "--owner", "id:2"]);
    assert_eq!(code, Some(1), "only its owner releases it with --owner");
    let (code, out, _) = claims(&["release", "ada@example.com"]);
    assert_eq!(
        (code, out.trim()),
        (Some(0), "released ada@example.com (was id:1)")
    );
    let (code, _, err) = claims(&["show", "ada@example.com"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not claimed"), "{err}");
    let (code, _, err) = output(
        hookbox()
            .args(["claims", "list", "--config"])
            .arg(&config)
            .args(["--tenant", "nobody"]),
    );
    assert_eq!(code, Some(64));
    assert!(err.contains("no tenant 'nobody'"), "{err}");

    // While a server runs, the embedded file is its own: the command says so.
    let mut child = hookbox()
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = wait_for_listening(&mut child);
    let (code, _, err) = claims(&["list"]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("in use by another process"), "{err}");
    // The server answers from the claims the command made.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reply =
        runtime.block_on(Client::new(addr, &pki.ca_der).hook("acme", "s3cret", &sample_request()));
    assert_eq!(reply.status, 200);
    child.kill().unwrap();
    child.wait().unwrap();
    let (code, out, _) = claims(&["list", "--json"]);
    assert_eq!(code, Some(0));
    let held: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        held["sally2.admin2.272ed9@clouditude.net"], "id:user221",
        "the server's claim is there after it stopped: {held}"
    );
    assert!(dir.path().join("hookbox-data/store.redb").is_file());
}
