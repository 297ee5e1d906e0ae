//! The `hookbox` binary itself: bad configuration is refused with exit code
//! 64 before anything binds, and `serve --dev` serves the embedded reference
//! plugin and announces where.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use hookbox_tests::{
    Client, Pki, fixture_path, login_conflict_languages, login_conflict_wasm, misbehave_wasm,
    sample_request, wrong_world_wasm,
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
fn dev_mode_serves_the_embedded_reference_plugin_in_either_instance_mode() {
    let pki = Pki::new();
    let dir = server_files(&pki);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for mode in ["fresh", "reuse"] {
        let mut child = hookbox()
            .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--cert"])
            .arg(dir.path().join("cert.pem"))
            .arg("--key")
            .arg(dir.path().join("key.pem"))
            .args(["--instance-mode", mode])
            .env("HOOKBOX_DEV_SECRET", "dev-secret")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // The server announces its bound address once it listens: wait for that line, not a timer.
        let addr = wait_for_listening(&mut child);
        // Several requests, so a reused instance answers the later ones.
        let replies: Vec<_> = (0..3)
            .map(|_| {
                runtime.block_on(Client::new(addr, &pki.ca_der).hook(
                    "dev",
                    "dev-secret",
                    &sample_request(),
                ))
            })
            .collect();
        child.kill().unwrap();
        child.wait().unwrap();
        for reply in replies {
            assert_eq!(reply.status, 200, "{mode}");
            assert_eq!(
                reply.new_login().as_deref(),
                Some("sally2.admin2.272ed9@clouditude.net"),
                "{mode}"
            );
        }
    }
    let out = hookbox()
        .args(["serve", "--dev", "--instance-mode", "shared"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(64),
        "an unknown mode is a usage error"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("fresh, reuse"));
}

fn output(cmd: &mut Command) -> (Option<i32>, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_names_the_world_and_the_imports() {
    let (code, out, _) = output(hookbox().arg("check").arg(login_conflict_wasm()));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("implements: hookbox:okta-import/import-hook@0.1.0"),
        "{out}"
    );
    assert!(
        out.contains("hookbox:okta-import/host@0.1.0: granted"),
        "{out}"
    );
    assert!(out.contains("hookbox can load this plugin"), "{out}");
}

#[test]
fn check_refuses_another_world_and_non_components_in_plain_sentences() {
    let (code, out, _) = output(hookbox().arg("check").arg(wrong_world_wasm()));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("does not implement hookbox:okta-import/import-hook"),
        "{out}"
    );
    assert!(out.contains("greet"), "names what it does export: {out}");

    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("module.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    let (code, out, _) = output(hookbox().arg("check").arg(&module));
    assert_eq!(code, Some(1));
    assert!(
        out.contains("core WebAssembly module, not a component"),
        "{out}"
    );
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"definitely not wasm").unwrap();
    let (code, out, _) = output(hookbox().arg("check").arg(&junk));
    assert_eq!(code, Some(1));
    assert!(out.contains("not a WebAssembly file"), "{out}");
}

#[test]
fn run_prints_the_okta_answer_and_its_cost_in_every_language() {
    let sample = fixture_path("fixtures/sample-request.json");
    for (language, plugin) in login_conflict_languages() {
        run_prints_the_okta_answer_and_its_cost(language, &plugin, &sample);
    }
}

fn run_prints_the_okta_answer_and_its_cost(
    language: &str,
    plugin: &std::path::Path,
    sample: &std::path::Path,
) {
    let (code, out, err) = output(hookbox().arg("run").arg(plugin).arg(sample));
    assert_eq!(code, Some(0), "{language}: {err}");
    let body: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        body["commands"][0]["value"]["login"],
        "sally2.admin2.272ed9@clouditude.net"
    );
    for needle in [
        "answered 1 command(s)",
        "ms of 500 ms deadline",
        "fuel:",
        "bytes peak of 33554432",
        "of 262144",
    ] {
        assert!(
            err.contains(needle),
            "{language}: expected '{needle}' in {err}"
        );
    }
    assert!(
        !err.contains("fuel:     0 "),
        "{language}: the plugin ran, so it burnt fuel: {err}"
    );
    assert!(
        err.contains("debug: no middle name"),
        "{language}: plugin log lines are shown: {err}"
    );
}

#[test]
fn run_explains_limits_and_traps_with_the_guests_function_names() {
    let sample = fixture_path("fixtures/sample-request.json");
    let run = |mode: &str, extra: &[&str]| {
        output(
            hookbox()
                .arg("run")
                .arg(misbehave_wasm())
                .arg(&sample)
                .arg("--settings")
                .arg(format!("mode={mode}"))
                .args(extra),
        )
    };
    let (code, out, err) = run("loop", &["--deadline", "100ms"]);
    assert_eq!(code, Some(1));
    assert!(
        out.contains("exceeded its deadline") && err.contains("ran past its deadline"),
        "{out}{err}"
    );
    assert!(
        err.contains("fuel:     at least ") && err.contains("not counted"),
        "after a deadline the fuel figure is a lower bound, and says so: {err}"
    );
    let (code, _, err) = run("loop", &["--fuel", "1000000"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("used up limits.fuel"), "{err}");
    let (code, _, err) = run("memory-bomb", &["--memory", "8MiB"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("past limits.memory"), "{err}");
    let (code, _, err) = run("trap", &[]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("the plugin trapped") && err.contains("misbehave::Misbehave"),
        "backtrace names the guest function: {err}"
    );
    let (code, _, err) = run("unpaired-link", &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("breaks Okta's rules: LINK_USER"), "{err}");
}

/// Reads stdout until the "listening" line and returns the bound address.
fn wait_for_listening(child: &mut std::process::Child) -> std::net::SocketAddr {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines
            .next()
            .expect("hookbox exited before listening")
            .unwrap();
        if let Some(url) = line.strip_prefix("hookbox listening on https://") {
            return url.trim().parse().unwrap();
        }
    }
}

#[test]
fn sighup_reloads_the_config_file() {
    let pki = Pki::new();
    let dir = server_files(&pki);
    let tenant = |id: &str| {
        format!(
            "[[tenants]]\nid = \"{id}\"\nplugin = {:?}\nauth = {{ secrets_file = [\"secret\"] }}\n",
            login_conflict_wasm().display().to_string()
        )
    };
    let head =
        "[server]\nlisten = \"127.0.0.1:0\"\n[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n";
    let config = dir.path().join("hookbox.toml");
    std::fs::write(&config, format!("{head}{}", tenant("first"))).unwrap();
    let mut child = hookbox()
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = wait_for_listening(&mut child);
    let client = Client::new(addr, &pki.ca_der);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = |id: &str| {
        runtime
            .block_on(client.hook(id, "s3cret", &sample_request()))
            .status
            .as_u16()
    };
    assert_eq!((status("first"), status("second")), (200, 404));

    std::fs::write(&config, format!("{head}{}", tenant("second"))).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    // Poll the observable effect (the reload runs in the background), bounded in time.
    let start = std::time::Instant::now();
    let mut seen = (status("first"), status("second"));
    while seen != (404, 200) && start.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::yield_now();
        seen = (status("first"), status("second"));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        seen,
        (404, 200),
        "after SIGHUP the removed tenant is gone and the added one serves"
    );
}

/// `HOOKBOX_LOG_FORMAT=json` (like `--log-format json`) writes one JSON object
/// per line, with the request's span fields; `HOOKBOX_LISTEN` stands in for `--listen`.
#[test]
fn json_logs_and_environment_overrides() {
    let pki = Pki::new();
    let dir = server_files(&pki);
    let mut child = hookbox()
        .args(["serve", "--dev"])
        .env("HOOKBOX_LISTEN", "127.0.0.1:0")
        .env("HOOKBOX_TLS_CERT", dir.path().join("cert.pem"))
        .env("HOOKBOX_TLS_KEY", dir.path().join("key.pem"))
        .env("HOOKBOX_LOG_FORMAT", "json")
        .env("HOOKBOX_LOG", "info")
        .env("HOOKBOX_DEV_SECRET", "dev-secret")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = wait_for_listening(&mut child);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reply = runtime.block_on(Client::new(addr, &pki.ca_der).hook(
        "dev",
        "dev-secret",
        &sample_request(),
    ));
    assert_eq!(
        reply.status, 200,
        "the certificate from HOOKBOX_TLS_* is served"
    );
    // SIGTERM: a graceful stop, after which stderr ends.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    child.wait().unwrap();
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let answered = lines
        .iter()
        .find(|l| l["fields"]["message"] == "hook answered")
        .unwrap_or_else(|| panic!("no 'hook answered' line in {stderr}"));
    assert_eq!(answered["fields"]["status"], 200);
    assert_eq!(answered["span"]["tenant"], "dev");
    assert_eq!(answered["span"]["event_id"], "JUGOUiYZTaKPmH6db0nDag");
}

/// A plugin that fails its tenant's smoke request is refused at start as it
/// would be by a reload: exit 64 naming the tenant, before anything binds.
#[test]
fn a_plugin_failing_its_smoke_request_is_refused_at_start() {
    let pki = Pki::new();
    let dir = server_files(&pki);
    let sample = fixture_path("fixtures/sample-request.json");
    let config = |plugin: &std::path::Path, mode: &str| {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\
             [[tenants]]\nid = \"acme\"\nplugin = {:?}\nsmoke = {:?}\n\
             auth = {{ secrets_file = [\"secret\"] }}\nsettings = {{ mode = \"{mode}\" }}\n",
            plugin.display().to_string(),
            sample.display().to_string(),
        )
    };
    let path = dir.path().join("hookbox.toml");
    std::fs::write(&path, config(&misbehave_wasm(), "trap")).unwrap();
    let (code, _, err) = output(hookbox().args(["serve", "--config"]).arg(&path));
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("tenant acme: smoke:"), "{err}");
    assert!(err.contains("trap"), "{err}");

    // The same configuration with a plugin that answers its smoke request starts.
    std::fs::write(&path, config(&login_conflict_wasm(), "unused")).unwrap();
    let mut child = hookbox()
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = wait_for_listening(&mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(addr.port() > 0);
}

/// `HOOKBOX_PERFMAP=1` leaves `/tmp/perf-<pid>.map` naming the plugin's own
/// functions, for `perf report`; without it nothing is written.
#[test]
fn perfmap_names_the_plugins_functions_for_perf() {
    let sample = fixture_path("fixtures/sample-request.json");
    for on in [true, false] {
        let mut cmd = hookbox();
        cmd.arg("run").arg(login_conflict_wasm()).arg(&sample);
        if on {
            cmd.env("HOOKBOX_PERFMAP", "1");
        }
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let map = std::path::PathBuf::from(format!("/tmp/perf-{}.map", child.id()));
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let text = std::fs::read_to_string(&map).unwrap_or_default();
        let _ = std::fs::remove_file(&map);
        assert_eq!(
            text.contains("login_conflict::resolve"),
            on,
            "HOOKBOX_PERFMAP={on}: {}",
            text.lines().take(3).collect::<Vec<_>>().join("\n")
        );
    }
}

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
            child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
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
        cmd.args(["check-auth", "--config", config.as_str(), "--tenant", tenant]);
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
