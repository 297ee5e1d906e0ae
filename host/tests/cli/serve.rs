//! `hookbox serve`: configuration refused before binding, `--dev`, SIGHUP,
//! JSON logs and environment overrides, smoke requests at start.

use super::*;

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
    let tenant = format!(
        "[[tenants]]\nid = \"t\"\nplugin = {:?}\nauth = {{ secrets_env = [\"HOME\"] }}\n",
        login_conflict_wasm().display().to_string()
    );
    let bad_store = dir.path().join("bad-store.toml");
    std::fs::write(
        &bad_store,
        format!(
            "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n[store]\nbackend = \"sqlite\"\n{tenant}"
        ),
    )
    .unwrap();
    // A URL the store refuses when it opens (TLS to Redis is not built in).
    let bad_redis = dir.path().join("bad-redis.toml");
    std::fs::write(
        &bad_redis,
        format!(
            "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n[store]\nbackend = \"redis\"\n\
             url = \"rediss://127.0.0.1:1/0\"\n{tenant}"
        ),
    )
    .unwrap();
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
        (
            vec!["serve", "--config", bad_store.to_str().unwrap()],
            "backend",
        ),
        (
            vec!["serve", "--config", bad_redis.to_str().unwrap()],
            "[store] redis",
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
        let (addr, printed) = wait_for_listening_lines(&mut child);
        let data_dir = printed
            .iter()
            .find_map(|l| l.strip_prefix("dev data directory: "))
            .unwrap_or_else(|| panic!("the dev data directory is printed: {printed:?}"));
        let data_dir = std::path::PathBuf::from(data_dir.split(" (").next().unwrap());
        assert!(data_dir.join("store.redb").is_file(), "{data_dir:?}");
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
        let _ = std::fs::remove_dir_all(&data_dir);
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
