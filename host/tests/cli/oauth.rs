//! `hookbox check-auth` (a tenant's OAuth setup checked step by step) and
//! `serve` refusing to start when an OAuth issuer cannot be reached, both
//! against a real fake issuer on loopback.

use super::*;

/// Runs the binary off the async workers (the fake issuer serves on them).
async fn run_blocking(mut cmd: Command, stdin: Option<String>) -> (Option<i32>, String, String) {
    tokio::task::spawn_blocking(move || {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(text) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_auth_reports_each_step_and_an_unreachable_issuer_refuses_to_start() {
    use hookbox_oauth::testing::FakeIssuer;
    let issuer = FakeIssuer::start().await.unwrap();
    let pki = Pki::new();
    let dir = server_files(&pki);
    std::fs::write(dir.path().join("issuer-ca.pem"), issuer.ca_pem()).unwrap();
    let config = dir.path().join("hookbox.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\
             [[tenants]]\nid = \"acme\"\nplugin = {:?}\n\
             auth = {{ oauth = {{ issuer = {:?}, audience = \"api://default\", ca_file = \"issuer-ca.pem\" }} }}\n\
             [[tenants]]\nid = \"plain\"\nplugin = {:?}\nauth = {{ secrets_file = [\"secret\"] }}\n",
            login_conflict_wasm().display().to_string(),
            issuer.issuer(),
            login_conflict_wasm().display().to_string(),
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let check = |tenant: &str, token: Option<&str>| {
        let mut cmd = hookbox();
        cmd.args([
            "check-auth",
            "--config",
            config.as_str(),
            "--tenant",
            tenant,
        ]);
        if let Some(t) = token {
            cmd.arg(t);
        }
        cmd
    };

    let (code, stdout, stderr) = run_blocking(check("acme", None), None).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("pass  metadata"), "{stdout}");
    assert!(stdout.contains("pass  jwks"), "{stdout}");

    let valid = issuer.mint(&issuer.claims(), &issuer.current_kid());
    let (code, stdout, _) = run_blocking(check("acme", Some(&valid)), None).await;
    assert_eq!(code, Some(0), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
    assert!(!stdout.contains(&valid), "the token is never printed");

    let mut claims = issuer.claims();
    claims["aud"] = "api://other".into();
    let wrong = issuer.mint(&claims, &issuer.current_kid());
    let (code, stdout, _) = run_blocking(check("acme", Some("-")), Some(wrong)).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("FAIL  token.aud"), "{stdout}");

    for tenant in ["nobody", "plain"] {
        let (code, _, stderr) = run_blocking(check(tenant, None), None).await;
        assert_eq!(code, Some(64), "{tenant}: {stderr}");
    }

    // The issuer down at start: refused before binding, naming the tenant and the step.
    issuer.set_down(true);
    let mut serve = hookbox();
    serve.args(["serve", "--config", &config]);
    let (code, stdout, stderr) = run_blocking(serve, None).await;
    assert_eq!(code, Some(64), "{stdout}{stderr}");
    assert!(stderr.contains("tenant 'acme'"), "{stderr}");
    assert!(stderr.contains("auth.oauth: issuer metadata"), "{stderr}");
    assert!(!stdout.contains("listening"), "{stdout}");
}
