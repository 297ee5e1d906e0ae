//! Operating the real `hookbox` binary: Prometheus metrics after a mix of
//! traffic, readiness while plugins load and from the first moment of a
//! drain, a drain that drops no request in flight, a second signal, and a
//! start as an unprivileged user with read-only configuration, and an engine
//! recycled to give back what its pool kept.
//!
//! Nothing here waits on a timer: each step waits for a line the server
//! prints, a port, or a value its own `/metrics` or `/readyz` reports.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use hookbox_tests::{
    Client, Pki, fresh_sample, login_conflict_wasm, misbehave_wasm, sample_request,
};

fn hookbox() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookbox"));
    cmd.env_remove("HOOKBOX_CONFIG")
        .env_remove("HOOKBOX_LISTEN")
        .env_remove("HOOKBOX_OPS_LISTEN")
        .env("HOOKBOX_LOG", "warn");
    cmd
}

/// A config directory: TLS files from `pki` and the config text `toml`
/// (with `[tls]` added), tenants' secrets `secret-{id}` in files `{id}.secret`.
fn config_dir(pki: &Pki, server: &str, tenants: &[(&str, &Path, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), &pki.server_cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &pki.server_key_pem).unwrap();
    write_config(dir.path(), server, tenants);
    dir
}

fn write_config(dir: &Path, server: &str, tenants: &[(&str, &Path, &str)]) {
    let mut toml = format!("[server]\n{server}\n[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n");
    for (id, plugin, extra) in tenants {
        std::fs::write(dir.join(format!("{id}.secret")), format!("secret-{id}\n")).unwrap();
        toml += &format!(
            "\n[[tenants]]\nid = {id:?}\nplugin = {:?}\nauth = {{ secrets_file = [\"{id}.secret\"] }}\n{extra}\n",
            plugin.display().to_string()
        );
    }
    std::fs::write(dir.join("hookbox.toml"), toml).unwrap();
}

/// The running server: its stdout, read line by line for the addresses it announces.
struct Server {
    child: Child,
    lines: std::io::Lines<BufReader<ChildStdout>>,
}

impl Server {
    fn start(mut cmd: Command) -> Server {
        let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Server { child, lines }
    }

    fn serve(config: &Path) -> Server {
        let mut cmd = hookbox();
        cmd.args(["serve", "--config"]).arg(config);
        Server::start(cmd)
    }

    /// Waits for the line starting with `prefix` and returns the address after it.
    fn announced(&mut self, prefix: &str) -> SocketAddr {
        loop {
            let line = self
                .lines
                .next()
                .unwrap_or_else(|| panic!("hookbox exited before printing {prefix:?}"))
                .unwrap();
            if let Some(addr) = line.strip_prefix(prefix) {
                return addr.trim().parse().unwrap();
            }
        }
    }

    fn ops(&mut self) -> SocketAddr {
        self.announced("hookbox ops listening on http://")
    }

    fn main(&mut self) -> SocketAddr {
        self.announced("hookbox listening on https://")
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn wait(mut self) -> Option<i32> {
        self.child.wait().unwrap().code()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET: (status, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    tcp.read_to_string(&mut text).unwrap();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    // Chunked bodies are fine for `contains`/line checks: chunk sizes are separate lines.
    (status, body.to_owned())
}

/// The scraped samples: `name{labels}` → value, from the OpenMetrics text.
fn scrape(ops: SocketAddr) -> BTreeMap<String, f64> {
    let (status, text) = get(ops, "/metrics");
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("# EOF"),
        "an OpenMetrics page ends with # EOF: {text}"
    );
    parse_metrics(&text)
}

fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| l.starts_with("hookbox_"))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn value(m: &BTreeMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

/// Polls `/metrics` until `done` holds (each poll is a real scrape; the
/// server answers between two of them). Gives up after many scrapes.
fn until(ops: SocketAddr, what: &str, done: impl Fn(&BTreeMap<String, f64>) -> bool) {
    for _ in 0..20_000 {
        if done(&scrape(ops)) {
            return;
        }
        std::thread::yield_now();
    }
    panic!("gave up waiting for {what}: {:#?}", scrape(ops));
}

fn requests(tenant: &str, status: &str, outcome: &str) -> String {
    format!(
        "hookbox_requests_total{{tenant=\"{tenant}\",route=\"import\",status=\"{status}\",outcome=\"{outcome}\"}}"
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn metrics_count_a_mix_of_traffic() {
    let pki = Pki::new();
    let misbehave = misbehave_wasm();
    let good = login_conflict_wasm();
    let tenants = [
        ("good", good.as_path(), "limits = { fuel = 1000000000 }"),
        (
            "trap",
            misbehave.as_path(),
            "[tenants.settings]\nmode = \"trap\"",
        ),
        (
            "slow",
            misbehave.as_path(),
            "limits = { deadline = \"1500ms\", max_concurrency = 1 }\n[tenants.settings]\nmode = \"loop\"",
        ),
    ];
    let server = "listen = \"127.0.0.1:0\"\nops_listen = \"127.0.0.1:0\"";
    let dir = config_dir(&pki, server, &tenants);
    let mut s = Server::serve(&dir.path().join("hookbox.toml"));
    let ops = s.ops();
    let addr = s.main();
    let client = Client::new(addr, &pki.ca_der);
    let rt = runtime();
    let body = sample_request();

    rt.block_on(async {
        // Three imports, then Okta's retry of the last: answered from the store.
        let mut last = body.clone();
        for _ in 0..3 {
            last = fresh_sample();
            let r = client.hook("good", "secret-good", &last).await;
            assert_eq!(r.status, 200);
            assert!(r.new_login().is_some(), "{:?}", r.body);
        }
        assert_eq!(client.hook("good", "secret-good", &last).await.status, 200);
        for _ in 0..2 {
            assert_eq!(client.hook("good", "wrong", &body).await.status, 401);
        }
        assert_eq!(client.hook("nobody", "x", &body).await.status, 404);
        let trapped = client.hook("trap", "secret-trap", &body).await;
        assert_eq!(
            trapped.status, 200,
            "a plugin failure is Okta's 200 with an error"
        );
        assert!(trapped.error_summary().unwrap().contains("trap"));

        // Overload: `slow` admits one request at a time. The first is in the
        // plugin once the pool shows a busy instance; the second is refused.
        let first = {
            let client = client.clone();
            let body = body.clone();
            tokio::spawn(async move { client.hook("slow", "secret-slow", &body).await })
        };
        tokio::task::spawn_blocking(move || {
            until(ops, "a busy instance", |m| {
                value(m, "hookbox_instances{state=\"busy\"}") >= 1.0
            })
        })
        .await
        .unwrap();
        let refused = client.hook("slow", "secret-slow", &body).await;
        assert_eq!(refused.status, 503);
        assert_eq!(first.await.unwrap().status, 200);
    });

    // Reload: add a tenant, SIGHUP, and wait for the reload to be counted.
    let mut more = tenants.to_vec();
    more.push(("extra", good.as_path(), ""));
    write_config(dir.path(), server, &more);
    s.signal("HUP");
    until(ops, "the reload", |m| {
        value(m, "hookbox_reloads_total{outcome=\"applied\"}") == 1.0
    });

    let m = scrape(ops);
    let expect = [
        (requests("good", "2xx", "commands"), 3.0),
        (requests("good", "2xx", "replay"), 1.0),
        (requests("good", "4xx", "unauthorized"), 2.0),
        (requests("(unknown)", "4xx", "unknown_tenant"), 1.0),
        (requests("trap", "2xx", "trap"), 1.0),
        (requests("slow", "2xx", "deadline"), 1.0),
        (requests("slow", "5xx", "overloaded"), 1.0),
        (
            "hookbox_request_duration_seconds_count{tenant=\"good\"}".into(),
            6.0,
        ),
        (
            "hookbox_request_duration_seconds_count{tenant=\"slow\"}".into(),
            2.0,
        ),
        (
            "hookbox_plugin_duration_seconds_count{tenant=\"good\"}".into(),
            3.0,
        ),
        (
            "hookbox_plugin_duration_seconds_count{tenant=\"trap\"}".into(),
            1.0,
        ),
        (
            "hookbox_plugin_duration_seconds_count{tenant=\"slow\"}".into(),
            1.0,
        ),
        (
            "hookbox_plugin_peak_memory_bytes_count{tenant=\"good\"}".into(),
            3.0,
        ),
        (
            "hookbox_plugin_fuel_consumed_count{tenant=\"good\"}".into(),
            3.0,
        ),
        ("hookbox_reloads_total{outcome=\"applied\"}".into(), 1.0),
        (
            "hookbox_reload_tenant_changes_total{tenant=\"extra\",change=\"added\"}".into(),
            1.0,
        ),
        ("hookbox_instances{state=\"busy\"}".into(), 0.0),
        ("hookbox_draining".into(), 0.0),
    ];
    let wrong: Vec<String> = expect
        .iter()
        .filter(|(series, want)| value(&m, series) != *want)
        .map(|(series, want)| format!("{series}: {} (want {want})", value(&m, series)))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}\n{m:#?}");
    // Every observation falls in the +Inf bucket, and no label carries URL text.
    let inf: Vec<f64> = m
        .iter()
        .filter(|(k, _)| {
            k.starts_with("hookbox_plugin_duration_seconds_bucket{")
                && k.contains("tenant=\"good\"")
                && k.contains("le=\"+Inf\"")
        })
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(inf, [3.0], "{m:#?}");
    assert!(m.keys().all(|k| !k.contains("nobody")), "{m:#?}");
    // Each tenant's live plugin digest (value 1), the new tenant's included.
    let digest = hex_sha256(&std::fs::read(&good).unwrap());
    let info: Vec<(&String, &f64)> = m
        .iter()
        .filter(|(k, _)| k.starts_with("hookbox_plugin_info{"))
        .collect();
    assert_eq!(info.len(), 4, "{info:#?}");
    assert!(info.iter().all(|(_, v)| **v == 1.0), "{info:#?}");
    assert!(
        m.contains_key(&format!(
            "hookbox_plugin_info{{tenant=\"extra\",digest=\"{digest}\"}}"
        )),
        "{info:#?}"
    );
    // The main listener faces the internet: with an ops listener, /metrics is not served there.
    let on_main = rt.block_on(async {
        let mut conn = client.connect(hookbox_tests::Proto::H1).await;
        conn.send(client.request(hyper::Method::GET, "/metrics", Default::default()))
            .await
    });
    assert_eq!(on_main.status, 404);
    s.signal("TERM");
    assert_eq!(s.wait(), Some(0));
}

#[test]
fn readiness_is_false_while_plugins_load() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    // The plugin file is a FIFO: loading blocks until the test writes the
    // plugin into it, so the server is caught mid-load for as long as needed.
    let fifo = dir.path().join("plugin.wasm");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let conf = config_dir(
        &pki,
        "listen = \"127.0.0.1:0\"\nops_listen = \"127.0.0.1:0\"",
        &[("acme", fifo.as_path(), "")],
    );
    let mut s = Server::serve(&conf.path().join("hookbox.toml"));
    let ops = s.ops();

    let (status, body) = get(ops, "/healthz");
    assert_eq!(status, 200, "alive while loading: {body}");
    let (status, body) = get(ops, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("loading"), "{body}");

    std::fs::write(&fifo, std::fs::read(login_conflict_wasm()).unwrap()).unwrap();
    let addr = s.main();
    let (status, body) = get(ops, "/readyz");
    assert_eq!(status, 200, "{body}");
    let client = Client::new(addr, &pki.ca_der);
    let reply = runtime().block_on(client.hook("acme", "secret-acme", &sample_request()));
    assert_eq!(reply.status, 200);
    s.signal("TERM");
    assert_eq!(s.wait(), Some(0));
}

#[test]
fn a_drain_fails_readiness_at_once_keeps_serving_and_a_second_signal_exits() {
    let pki = Pki::new();
    let good = login_conflict_wasm();
    // A delay far longer than the test: everything below happens inside it.
    let conf = config_dir(
        &pki,
        "listen = \"127.0.0.1:0\"\nops_listen = \"127.0.0.1:0\"\nshutdown_delay = \"10m\"",
        &[("acme", good.as_path(), "")],
    );
    let mut s = Server::serve(&conf.path().join("hookbox.toml"));
    let ops = s.ops();
    let addr = s.main();
    assert_eq!(get(ops, "/readyz").0, 200);

    s.signal("TERM");
    until(ops, "the drain", |m| value(m, "hookbox_draining") == 1.0);
    let (status, body) = get(ops, "/readyz");
    assert_eq!(status, 503);
    assert!(body.contains("draining"), "{body}");
    assert_eq!(get(ops, "/healthz").0, 200, "alive while draining");

    // Still accepting and serving on the main listener, /readyz failing there too.
    let client = Client::new(addr, &pki.ca_der);
    let rt = runtime();
    let reply = rt.block_on(client.hook("acme", "secret-acme", &sample_request()));
    assert_eq!(reply.status, 200);
    let readyz = rt.block_on(async {
        let mut conn = client.connect(hookbox_tests::Proto::H2).await;
        conn.send(client.request(hyper::Method::GET, "/readyz", Default::default()))
            .await
    });
    assert_eq!(readyz.status, 503);

    // The second signal does not wait for the delay.
    s.signal("TERM");
    assert_eq!(s.wait(), Some(143));
}

#[test]
fn a_drain_with_requests_in_flight_drops_none() {
    let pki = Pki::new();
    let misbehave = misbehave_wasm();
    let conf = config_dir(
        &pki,
        "listen = \"127.0.0.1:0\"\nops_listen = \"127.0.0.1:0\"\nshutdown_delay = \"0s\"\nshutdown_grace = \"30s\"",
        &[(
            "slow",
            misbehave.as_path(),
            "limits = { deadline = \"2s\", max_concurrency = 8 }\n[tenants.settings]\nmode = \"loop\"",
        )],
    );
    let mut s = Server::serve(&conf.path().join("hookbox.toml"));
    let ops = s.ops();
    let addr = s.main();
    let client = Client::new(addr, &pki.ca_der);
    let rt = runtime();
    const IN_FLIGHT: usize = 4;
    let replies = rt.block_on(async {
        let handles: Vec<_> = (0..IN_FLIGHT)
            .map(|_| {
                let client = client.clone();
                tokio::spawn(
                    async move { client.hook("slow", "secret-slow", &sample_request()).await },
                )
            })
            .collect();
        // Every request is inside its plugin call when the signal arrives.
        tokio::task::spawn_blocking(move || {
            until(ops, "every request in its plugin", |m| {
                value(m, "hookbox_instances{state=\"busy\"}") == IN_FLIGHT as f64
            })
        })
        .await
        .unwrap();
        s.signal("TERM");
        futures::future::join_all(handles).await
    });
    for reply in replies {
        let reply = reply.unwrap();
        assert_eq!(reply.status, 200);
        assert!(
            reply.error_summary().unwrap().contains("deadline"),
            "the plugin ran to its deadline: {:?}",
            reply.body
        );
    }
    assert_eq!(s.wait(), Some(0), "exits 0 once the requests finished");
    assert!(
        TcpStream::connect(addr).is_err(),
        "nothing listens after the exit"
    );
}

/// Root's files, read-only for everyone else (as a ConfigMap or an image layer is).
fn read_only(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = if path.is_dir() { 0o555 } else { 0o444 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn an_unprivileged_user_with_read_only_config_serves() {
    // Dropping privileges needs root (as the tests run here and in CI).
    let uid = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        eprintln!("skipped: not root, cannot start hookbox as uid 10001");
        return;
    }
    use std::os::unix::fs::{PermissionsExt, chown};
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // As in the image: the binary and the plugin owned by root, read-only.
    let bin = root.path().join("hookbox");
    std::fs::copy(env!("CARGO_BIN_EXE_hookbox"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o555)).unwrap();
    let plugins = root.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let plugin = plugins.join("login-conflict.wasm");
    std::fs::copy(login_conflict_wasm(), &plugin).unwrap();
    read_only(&plugin);
    read_only(&plugins);
    // The config directory (config, TLS, secret), read-only.
    let etc = root.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    std::fs::write(etc.join("cert.pem"), &pki.server_cert_pem).unwrap();
    std::fs::write(etc.join("key.pem"), &pki.server_key_pem).unwrap();
    let data = root.path().join("data");
    std::fs::create_dir(&data).unwrap();
    chown(&data, Some(10001), Some(10001)).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    // As in the image: the claim store and the compiled-plugin cache live in
    // the writable data volume, never beside the read-only config.
    let server = format!(
        "listen = \"127.0.0.1:0\"\nops_listen = \"127.0.0.1:0\"\n[engine]\ncache_dir = {:?}\n\
         [store]\nbackend = \"embedded\"\npath = {:?}",
        data.join("cwasm").display().to_string(),
        data.join("store.redb").display().to_string()
    );
    write_config(&etc, &server, &[("acme", plugin.as_path(), "")]);
    for entry in std::fs::read_dir(&etc).unwrap() {
        read_only(&entry.unwrap().path());
    }
    read_only(&etc);

    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=10001",
        "--regid=10001",
        "--clear-groups",
        "--inh-caps=-all",
    ])
    .arg(&bin)
    .args(["serve", "--config"])
    .arg(etc.join("hookbox.toml"))
    .env("HOOKBOX_LOG", "warn")
    .env_remove("HOOKBOX_CONFIG")
    .env_remove("HOOKBOX_LISTEN")
    .env_remove("HOOKBOX_OPS_LISTEN");
    let mut s = Server::start(cmd);
    let ops = s.ops();
    let addr = s.main();
    assert_eq!(get(ops, "/readyz").0, 200);
    let client = Client::new(addr, &pki.ca_der);
    let reply = runtime().block_on(client.hook("acme", "secret-acme", &sample_request()));
    assert_eq!(reply.status, 200);
    assert!(reply.new_login().is_some());
    // It ran as 10001: the precompiled cache it wrote belongs to that user.
    let cache = data.join("cwasm");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&cache).unwrap().uid(), 10001);
    s.signal("TERM");
    assert_eq!(s.wait(), Some(0));
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The sum of every sample whose series starts with `prefix` (e.g. all
/// error kinds of one operation).
fn sum(m: &BTreeMap<String, f64>, prefix: &str) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| *v)
        .sum()
}

/// Polls `/readyz` until its status is `want` (for at most a minute: the
/// store client reconnects on its own schedule); returns the body.
fn until_ready_is(ops: SocketAddr, want: u16) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (status, body) = get(ops, "/readyz");
        if status == want {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz never answered {want}: {status} {body}"
        );
        std::thread::yield_now();
    }
}

fn store_series(name: &str, op: &str) -> String {
    format!("hookbox_{name}{{backend=\"redis\",op=\"{op}\"}}")
}

fn events_handled(tenant: &str, outcome: &str) -> String {
    format!("hookbox_events_handled_total{{tenant=\"{tenant}\",outcome=\"{outcome}\"}}")
}

#[test]
fn metrics_show_the_store_oauth_and_event_hooks_and_readiness_follows_the_store() {
    use hookbox_store::testing::RedisServer;
    let pki = Pki::new();
    let rt = runtime();
    let mut redis = RedisServer::start().unwrap();
    let issuer = rt
        .block_on(hookbox_oauth::testing::FakeIssuer::start())
        .unwrap();
    let good = login_conflict_wasm();
    let events = hookbox_tests::events_only_wasm();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), &pki.server_cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &pki.server_key_pem).unwrap();
    std::fs::write(dir.path().join("issuer-ca.pem"), issuer.ca_pem()).unwrap();
    let mut toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nops_listen = \"127.0.0.1:0\"\n\
         [tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\
         [store]\nbackend = \"redis\"\nurl = {:?}\ncall_timeout = \"250ms\"\nconnect_timeout = \"250ms\"\n",
        redis.url()
    );
    for (id, plugin, extra) in [
        // `good` could handle events too (the reference plugin exports a handler): not here.
        ("good", &good, "events = { enabled = false }\n".to_owned()),
        ("events", &events, String::new()),
        (
            "failing",
            &events,
            "events = { max_attempts = 1 }\n[tenants.settings]\nfail = \"true\"\n".to_owned(),
        ),
    ] {
        std::fs::write(
            dir.path().join(format!("{id}.secret")),
            format!("secret-{id}\n"),
        )
        .unwrap();
        toml += &format!(
            "\n[[tenants]]\nid = {id:?}\nplugin = {:?}\nauth = {{ secrets_file = [\"{id}.secret\"] }}\n{extra}",
            plugin.display().to_string()
        );
    }
    std::fs::write(dir.path().join("api.secret"), "secret-api\n").unwrap();
    toml += &format!(
        "\n[[tenants]]\nid = \"api\"\nplugin = {:?}\n\
         auth = {{ secrets_file = [\"api.secret\"], oauth = {{ issuer = {:?}, audience = {:?}, ca_file = \"issuer-ca.pem\" }} }}\n",
        good.display().to_string(),
        issuer.issuer(),
        hookbox_oauth::testing::AUDIENCE,
    );
    std::fs::write(dir.path().join("hookbox.toml"), toml).unwrap();
    let mut s = Server::serve(&dir.path().join("hookbox.toml"));
    let ops = s.ops();
    let addr = s.main();
    let client = Client::new(addr, &pki.ca_der);
    assert_eq!(get(ops, "/readyz").0, 200);

    // An import request that claims a login, then Okta's retry of it (answered from the store).
    let body = hookbox_tests::fresh_sample();
    let delivery = hookbox_tests::delivery("delivery-sync.json");
    let syncs = delivery["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["eventType"] == "application.provision.user.sync")
        .count() as f64;
    assert!(syncs >= 1.0);
    rt.block_on(async {
        let first = client.hook("good", "secret-good", &body).await;
        assert_eq!(first.status, 200);
        assert!(first.new_login().is_some(), "{:?}", first.body);
        let retry = client.hook("good", "secret-good", &body).await;
        assert_eq!(retry.status, 200);
        assert_eq!(retry.body, first.body);
        for tenant in ["events", "failing"] {
            let r = client
                .events(tenant, &format!("secret-{tenant}"), &delivery)
                .await;
            assert_eq!(r.status, 200, "{:?}", r.body);
        }
    });
    until(ops, "the events handled and dead", |m| {
        value(m, &events_handled("events", "handled")) == syncs
            && value(m, &events_handled("failing", "dead")) == syncs
    });

    let m = scrape(ops);
    let exact = [
        // The first request missed and kept its answer; the retry was found.
        (store_series("store_calls_total", "recall"), 2.0),
        (store_series("store_calls_total", "remember"), 1.0),
        (
            store_series("store_call_duration_seconds_count", "recall"),
            2.0,
        ),
        (
            "hookbox_oauth_key_fetches_total{tenant=\"api\",outcome=\"ok\"}".into(),
            1.0,
        ),
        (
            "hookbox_oauth_key_fetches_total{tenant=\"api\",outcome=\"failed\"}".into(),
            0.0,
        ),
        ("hookbox_events_queued{tenant=\"events\"}".into(), 0.0),
        ("hookbox_events_queued{tenant=\"failing\"}".into(), 0.0),
        (events_handled("events", "retrying"), 0.0),
        (events_handled("failing", "handled"), 0.0),
    ];
    let wrong: Vec<String> = exact
        .iter()
        .filter(|(series, want)| value(&m, series) != *want)
        .map(|(series, want)| format!("{series}: {} (want {want})", value(&m, series)))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}\n{m:#?}");
    // Sampled series are there even at 0 (a depth of 0 read, not a missing one).
    for series in [
        "hookbox_events_queued{tenant=\"events\"}",
        "hookbox_oauth_key_fetches_total{tenant=\"api\",outcome=\"failed\"}",
    ] {
        assert!(m.contains_key(series), "{series} missing: {m:#?}");
    }
    // The plugin claimed its login (and the event handler its `seen:` key): at least one each.
    let claims = value(&m, &store_series("store_calls_total", "claim"));
    assert!(claims >= 1.0 + syncs, "{m:#?}");
    assert_eq!(
        value(
            &m,
            &store_series("store_call_duration_seconds_count", "claim")
        ),
        claims
    );
    assert!(
        value(&m, &store_series("store_calls_total", "owner_of")) >= 1.0,
        "{m:#?}"
    );
    assert_eq!(sum(&m, "hookbox_store_errors_total"), 0.0, "{m:#?}");
    // Only tenants with event hooks on have a queue depth.
    assert!(
        !m.contains_key("hookbox_events_queued{tenant=\"good\"}"),
        "{m:#?}"
    );

    // Redis stops: not ready at the next probe, the scrape still answers (no
    // queue depth it could not read), and a request counts its store errors.
    redis.stop();
    let body_503 = until_ready_is(ops, 503);
    assert!(body_503.contains("store: "), "{body_503}");
    let reply = rt.block_on(client.hook("good", "secret-good", &hookbox_tests::fresh_sample()));
    assert_eq!(reply.status, 200, "answered without the store");
    let m = scrape(ops);
    assert!(
        !m.contains_key("hookbox_events_queued{tenant=\"events\"}"),
        "{m:#?}"
    );
    assert!(
        sum(
            &m,
            "hookbox_store_errors_total{backend=\"redis\",op=\"recall\""
        ) >= 1.0,
        "{m:#?}"
    );
    assert_eq!(
        value(&m, &store_series("store_calls_total", "recall")),
        3.0,
        "{m:#?}"
    );

    // Redis is back: ready again.
    redis.restart().unwrap();
    until_ready_is(ops, 200);
    s.signal("TERM");
    assert_eq!(s.wait(), Some(0));
}

#[test]
fn a_pool_left_keeping_memory_is_recycled_and_the_metrics_show_it() {
    let pki = Pki::new();
    let good = login_conflict_wasm();
    let tenants = [("good", good.as_path(), "")];
    let server = "listen = \"127.0.0.1:0\"\nops_listen = \"127.0.0.1:0\"\n\
                  [engine]\nidle_resident_limit = \"1B\"\nidle_resident_grace = \"100ms\"";
    let dir = config_dir(&pki, server, &tenants);
    let mut s = Server::serve(&dir.path().join("hookbox.toml"));
    let ops = s.ops();
    let addr = s.main();
    let client = Client::new(addr, &pki.ca_der);
    let rt = runtime();
    let burst = || {
        rt.block_on(async {
            let bodies: Vec<_> = (0..8).map(|_| fresh_sample()).collect();
            let replies = futures::future::join_all(
                bodies.iter().map(|b| client.hook("good", "secret-good", b)),
            )
            .await;
            for r in replies {
                assert_eq!(r.status, 200);
                assert!(r.new_login().is_some(), "{:?}", r.body);
            }
        })
    };
    burst();
    if !wasmtime::PoolingAllocationConfig::is_pagemap_scan_available() {
        // Without PAGEMAP_SCAN the pool keeps nothing, so nothing is recycled.
        let m = scrape(ops);
        assert_eq!(value(&m, "hookbox_pool_unused_resident_bytes"), 0.0);
        return;
    }
    // The pool kept pages of those 8 instances past the grace: the tenants
    // move to a new engine, which has served nothing and keeps nothing.
    until(ops, "a recycle", |m| {
        value(m, "hookbox_engine_recycles_total") >= 1.0
    });
    until(ops, "an empty pool", |m| {
        value(m, "hookbox_pool_unused_resident_bytes") == 0.0
    });
    // And the tenant is served as before on it.
    burst();
}
