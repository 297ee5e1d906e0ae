//! The `hookbox` binary itself: bad configuration is refused with exit code
//! 64 before anything binds, and `serve --dev` serves the embedded reference
//! plugin and announces where.

#![allow(clippy::unwrap_used)]

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
        format!("[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n[store]\nbackend = \"sqlite\"\n{tenant}"),
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

fn output(cmd: &mut Command) -> (Option<i32>, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_names_the_world_the_version_the_exports_and_the_imports() {
    let (code, out, _) = output(hookbox().arg("check").arg(login_conflict_wasm()));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(
            "implements: hookbox:okta-import/import-and-event-hook@0.2.0 \
             (WIT 0.2.0; exports resolver + event-handler)"
        ),
        "{out}"
    );
    assert!(out.contains("event-handler@0.2.0: found; this hookbox does not call it yet"), "{out}");
    assert!(
        out.contains("hookbox:okta-import/host@0.2.0: granted"),
        "{out}"
    );
    assert!(
        out.contains("hookbox:okta-import/claims@0.2.0: granted (the tenant's claim store)"),
        "{out}"
    );
    assert!(out.contains("hookbox can load this plugin"), "{out}");

    let (code, out, _) = output(hookbox().arg("check").arg(legacy_wasm()));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("implements: hookbox:okta-import/import-hook@0.1.0 (WIT 0.1.0; exports resolver)"),
        "{out}"
    );
    assert!(out.contains("hookbox:okta-import/host@0.1.0: granted"), "{out}");
    assert!(out.contains("WIT 0.1.0 has no claim store"), "{out}");

    let (code, out, _) = output(hookbox().arg("check").arg(events_only_wasm()));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("implements: hookbox:okta-import/event-hook@0.2.0 (WIT 0.2.0; exports event-handler)"),
        "{out}"
    );
    assert!(out.contains("exports only hookbox:okta-import/event-handler@0.2.0"), "{out}");
}

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
    assert_eq!((code, out.trim()), (Some(0), "released ada@example.com (was id:1)"));
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
    let reply = runtime.block_on(Client::new(addr, &pki.ca_der).hook("acme", "s3cret", &sample_request()));
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

#[test]
fn check_refuses_another_world_and_non_components_in_plain_sentences() {
    let (code, out, _) = output(hookbox().arg("check").arg(wrong_world_wasm()));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("does not implement hookbox:okta-import/import-hook"),
        "{out}"
    );
    assert!(out.contains("serves WIT 0.1.0 and 0.2.0"), "{out}");
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
        "store:    3 claim-store call(s) of 64 per request, embedded store (a throwaway one",
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
