//! Parsing and validation of the configuration file.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::plugin::{DEFAULT_REUSE_MAX_REQUESTS, InstanceMode, Limits};

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/hookbox"), &Overrides::default())
}

const MINIMAL: &str = r#"
    [tls]
    cert = "cert.pem"
    key = "key.pem"
    [[tenants]]
    id = "acme"
    plugin = "p.wasm"
    auth = { secrets_file = ["SECRET_FILE"] }
"#;

/// The minimal config, with its secret in a real file (tests never mutate the environment).
fn minimal() -> String {
    // One file per call: tests run in parallel, and rewriting a shared file races with readers.
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "hookbox-config-test-secret-{}-{n}",
        std::process::id()
    ));
    std::fs::write(&path, "s3cret\n").expect("write secret");
    MINIMAL.replace("SECRET_FILE", &path.display().to_string())
}

#[test]
fn minimal_config_gets_defaults_and_resolves_paths() {
    let c = parse(&minimal()).expect("valid");
    assert_eq!(c.server.listen, "127.0.0.1:8443".parse().expect("addr"));
    assert_eq!(c.tenants[0].plugin, Path::new("/etc/hookbox/p.wasm"));
    assert_eq!(c.tenants[0].limits, Limits::default());
    assert!(
        matches!(c.tls, TlsSource::Files { ref cert, .. } if cert == Path::new("/etc/hookbox/cert.pem"))
    );
}

#[test]
fn unknown_keys_are_rejected() {
    let e = parse(&minimal().replace("[tls]", "[tls]\nciphers = 1")).expect_err("unknown key");
    assert!(e.to_string().contains("ciphers"), "{e}");
}

#[test]
fn bad_values_name_their_key() {
    let minimal = minimal();
    let cases = [
        (
            minimal.replace("auth =", "limits = { deadline = \"5s\" }\n        auth ="),
            "limits.deadline",
        ),
        (
            minimal.replace("auth =", "limits = { memory = \"lots\" }\n        auth ="),
            "limits.memory",
        ),
        (minimal.replace("\"acme\"", "\"Acme Corp\""), "tenant id"),
        (
            minimal.replace(
                "auth =",
                "limits = { instance_mode = \"sometimes\" }\n        auth =",
            ),
            "limits.instance_mode",
        ),
        (
            minimal.replace(
                "auth =",
                "limits = { reuse_max_requests = 10 }\n        auth =",
            ),
            "limits.reuse_max_requests",
        ),
        (
            minimal.replace(
                "auth =",
                "limits = { instance_mode = \"reuse\", reuse_max_requests = 0 }\n        auth =",
            ),
            "limits.reuse_max_requests",
        ),
        (
            MINIMAL.replace(
                "secrets_file = [\"SECRET_FILE\"]",
                "secrets_env = [\"HOOKBOX_TEST_UNSET_VAR\"]",
            ),
            "HOOKBOX_TEST_UNSET_VAR",
        ),
        (
            MINIMAL.replace("SECRET_FILE", "/nonexistent/secret"),
            "cannot read",
        ),
        (
            format!("{minimal}\n[server]\nlisten = \"nowhere\""),
            "listen",
        ),
        (
            format!(
                "{minimal}{}",
                &minimal[minimal.find("[[tenants]]").expect("tenants")..]
            ),
            "twice",
        ),
    ];
    for (text, needle) in cases {
        let e = parse(&text).expect_err(needle);
        assert!(
            e.to_string().contains(needle),
            "expected '{needle}' in: {e}"
        );
    }
}

#[test]
fn instance_mode_defaults_to_fresh_and_reuse_to_the_default_count() {
    let limits = |l: &str| {
        parse(&minimal().replace("auth =", &format!("limits = {{ {l} }}\n        auth =")))
            .expect("valid")
            .tenants[0]
            .limits
            .instance_mode
    };
    assert_eq!(limits(""), InstanceMode::Fresh);
    assert_eq!(limits("instance_mode = \"fresh\""), InstanceMode::Fresh);
    assert_eq!(
        limits("instance_mode = \"reuse\""),
        InstanceMode::Reuse {
            max_requests: DEFAULT_REUSE_MAX_REQUESTS
        }
    );
    assert_eq!(
        limits("instance_mode = \"reuse\", reuse_max_requests = 7"),
        InstanceMode::Reuse { max_requests: 7 }
    );
}

#[test]
fn overrides_win_over_the_file() {
    let o = Overrides {
        listen: Some("127.0.0.1:0".into()),
        ..Overrides::default()
    };
    let c = Config::parse(
        &format!("{}\n[server]\nlisten = \"0.0.0.0:9\"", minimal()),
        Path::new("/"),
        &o,
    )
    .expect("valid");
    assert_eq!(c.server.listen.port(), 0);
}

#[test]
fn sizes_and_durations() {
    assert_eq!(parse_size("k", "32MiB").ok(), Some(32 << 20));
    assert_eq!(parse_size("k", "1000").ok(), Some(1000));
    assert!(parse_size("k", "32 parsecs").is_err());
    assert_eq!(
        parse_duration("k", "500ms").ok(),
        Some(Duration::from_millis(500))
    );
    assert_eq!(parse_duration("k", "2s").ok(), Some(Duration::from_secs(2)));
    assert!(parse_duration("k", "soon").is_err());
}

#[test]
fn oauth_alone_or_beside_secrets_with_ca_file_relative_to_the_config() {
    let oauth_only = MINIMAL.replace(
        r#"auth = { secrets_file = ["SECRET_FILE"] }"#,
        r#"auth = { oauth = { issuer = "https://example.okta.com/oauth2/default", audience = "api://default", ca_file = "issuer-ca.pem", client_id = "0oa1", scope = "hookbox.import" } }"#,
    );
    let c = parse(&oauth_only).expect("valid");
    let auth = &c.tenants[0].auth;
    assert!(auth.secret.is_none());
    let oauth = auth.oauth.as_ref().expect("oauth");
    assert_eq!(
        oauth.ca_file.as_deref(),
        Some(Path::new("/etc/hookbox/issuer-ca.pem"))
    );
    assert_eq!(oauth.client_id.as_deref(), Some("0oa1"));

    let both = minimal().replace(
        "] }",
        r#"], oauth = { issuer = "https://example.okta.com/oauth2/default", audience = "api://default" } }"#,
    );
    let c = parse(&both).expect("valid");
    assert!(c.tenants[0].auth.secret.is_some() && c.tenants[0].auth.oauth.is_some());
}

#[test]
fn bad_oauth_values_name_their_key() {
    let with = |oauth: &str| {
        MINIMAL.replace(
            r#"auth = { secrets_file = ["SECRET_FILE"] }"#,
            &format!("auth = {{ {oauth} }}"),
        )
    };
    let cases = [
        (
            with(r#"oauth = { issuer = "http://example.okta.com", audience = "a" }"#),
            "tenants.acme.auth.oauth.issuer",
        ),
        (
            with(r#"oauth = { issuer = "https://o.example", audience = "a", leeway = "1h" }"#),
            "tenants.acme.auth.oauth.leeway",
        ),
        (
            with(r#"oauth = { issuer = "https://o.example", audience = "a", audiance = "typo" }"#),
            "audiance",
        ),
        (
            with(r#"header = "X-Okta", oauth = { issuer = "https://o.example", audience = "a" }"#),
            "tenants.acme.auth.header",
        ),
        (with(""), "tenants.acme.auth"),
    ];
    for (text, key) in cases {
        let e = parse(&text).expect_err(key);
        assert!(e.to_string().contains(key), "{key}: {e}");
    }
    let admin = minimal().replacen(
        "[tls]",
        "[admin]\noauth = { issuer = \"https://o.example\", audience = \"a\" }\n[tls]",
        1,
    );
    let e = parse(&admin).expect_err("admin oauth");
    assert!(e.to_string().contains("admin.oauth"), "{e}");
}

#[test]
fn connection_deadlines_and_header_size_are_read_and_checked() {
    let c = parse(&minimal()).expect("valid");
    assert_eq!(c.server.header_timeout, Duration::from_secs(5));
    assert_eq!(c.server.idle_timeout, Duration::from_secs(30));
    assert_eq!(c.server.write_timeout, Duration::from_secs(5));
    assert_eq!(c.server.max_header_size, DEFAULT_MAX_HEADER_SIZE);
    let text = format!(
        "[server]\nheader_timeout = \"2s\"\nidle_timeout = \"1m\"\nwrite_timeout = \"750ms\"\n\
         max_header_size = \"32KiB\"\n{}",
        minimal()
    );
    let c = parse(&text).expect("valid");
    assert_eq!(c.server.header_timeout, Duration::from_secs(2));
    assert_eq!(c.server.idle_timeout, Duration::from_secs(60));
    assert_eq!(c.server.write_timeout, Duration::from_millis(750));
    assert_eq!(c.server.max_header_size, 32 * 1024);
    for (line, needle) in [
        (
            "idle_timeout = \"0s\"",
            "server.idle_timeout must be above 0",
        ),
        ("write_timeout = \"soon\"", "server.write_timeout"),
        ("header_timeout = \"0ms\"", "server.header_timeout"),
        ("max_header_size = \"100\"", "server.max_header_size"),
        ("max_header_size = \"2MiB\"", "server.max_header_size"),
    ] {
        let e = parse(&format!("[server]\n{line}\n{}", minimal())).expect_err(needle);
        assert!(
            e.to_string().contains(needle),
            "expected '{needle}' in: {e}"
        );
    }
}

#[test]
fn a_tenant_directory_is_validated_with_paths_resolved_and_its_token_file_watched() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("okta-token"), "00tOkEn\n").expect("write token");
    let text = format!(
        "{}directory = {{ url = \"https://acme.okta.com/\", token_file = \"okta-token\", ca_file = \"ca.pem\", max_lookups_per_request = 3 }}\n",
        minimal()
    );
    let c = Config::parse(&text, dir.path(), &Overrides::default()).expect("valid");
    let d = c.tenants[0].directory.as_ref().expect("a directory");
    assert_eq!(d.url, "https://acme.okta.com");
    assert_eq!(
        d.ca_file.as_deref(),
        Some(dir.path().join("ca.pem").as_path())
    );
    assert_eq!(d.max_lookups_per_request, 3);
    assert!(!format!("{c:?}").contains("00tOkEn"), "the token in Debug");
    assert!(c.secret_files.contains(&dir.path().join("okta-token")));

    // Without the table: no directory (not-configured).
    assert!(
        parse(&minimal()).expect("valid").tenants[0]
            .directory
            .is_none()
    );
    // Errors name the tenant's key and never show the token.
    for (table, needle) in [
        (
            "{ url = \"http://acme.okta.com\", token_file = \"okta-token\" }",
            "tenants.acme.directory.url",
        ),
        (
            "{ url = \"https://acme.okta.com\" }",
            "tenants.acme.directory.token_env or token_file",
        ),
        (
            "{ url = \"https://acme.okta.com\", token_file = \"okta-token\", cache = 1 }",
            "cache",
        ),
    ] {
        let text = format!("{}directory = {table}\n", minimal());
        let e = Config::parse(&text, dir.path(), &Overrides::default())
            .expect_err(table)
            .to_string();
        assert!(e.contains(needle), "{e}");
        assert!(!e.contains("00tOkEn"), "{e}");
    }
}

#[test]
fn heavy_priority_is_read_and_checked() {
    use crate::plugin::HeavyPriority;
    assert_eq!(
        parse(&minimal()).expect("valid").engine.heavy_priority,
        HeavyPriority::Idle
    );
    let with = |keys: &str| minimal().replace("[tls]", &format!("[engine]\n{keys}\n[tls]"));
    for (value, expected) in [
        ("idle", HeavyPriority::Idle),
        ("lowest", HeavyPriority::Lowest),
        ("normal", HeavyPriority::Normal),
    ] {
        let c = parse(&with(&format!("heavy_priority = \"{value}\""))).expect(value);
        assert_eq!(c.engine.heavy_priority, expected);
        assert_eq!(expected.as_str(), value);
    }
    let e = parse(&with("heavy_priority = \"realtime\"")).expect_err("not a priority");
    let e = e.to_string();
    assert!(
        e.contains("heavy_priority") && e.contains("idle"),
        "names the key and the choices: {e}"
    );
}

#[test]
fn engine_memory_keys_are_read_and_checked() {
    let c = parse(&minimal()).expect("valid");
    assert_eq!(c.engine.memory_keep_resident, 1 << 20);
    assert_eq!(c.engine.table_keep_resident, 64 << 10);
    assert_eq!(c.engine.max_unused_warm_slots, 16);
    assert_eq!(c.engine.idle_resident_limit, Some(34 << 20));
    assert_eq!(c.engine.idle_resident_grace, Duration::from_secs(10));

    let with = |keys: &str| minimal().replace("[tls]", &format!("[engine]\n{keys}\n[tls]"));
    let c = parse(&with(
        "memory_keep_resident = \"0\"\ntable_keep_resident = \"4KiB\"\nmax_unused_warm_slots = 0",
    ))
    .expect("valid");
    assert_eq!(
        (
            c.engine.memory_keep_resident,
            c.engine.table_keep_resident,
            c.engine.max_unused_warm_slots
        ),
        (0, 4096, 0)
    );
    let c = parse(&with(
        "idle_resident_limit = \"off\"\nidle_resident_grace = \"250ms\"",
    ))
    .expect("valid");
    assert_eq!(c.engine.idle_resident_limit, None);
    assert_eq!(c.engine.idle_resident_grace, Duration::from_millis(250));
    let c = parse(&with("idle_resident_limit = \"1MiB\"")).expect("valid");
    assert_eq!(c.engine.idle_resident_limit, Some(1 << 20));

    for (keys, key) in [
        (
            "memory_keep_resident = \"lots\"",
            "engine.memory_keep_resident",
        ),
        (
            "max_memory = \"16MiB\"\nmemory_keep_resident = \"32MiB\"",
            "engine.memory_keep_resident",
        ),
        (
            "table_keep_resident = \"1GiB\"",
            "engine.table_keep_resident",
        ),
        (
            "max_instances = 8\nmax_unused_warm_slots = 9",
            "engine.max_unused_warm_slots",
        ),
        (
            "idle_resident_limit = \"never\"",
            "engine.idle_resident_limit",
        ),
        ("idle_resident_grace = \"0s\"", "engine.idle_resident_grace"),
        (
            "idle_resident_grace = \"soon\"",
            "engine.idle_resident_grace",
        ),
    ] {
        let e = parse(&with(keys)).expect_err(keys);
        assert!(e.to_string().contains(key), "{keys}: {e}");
    }
}

#[test]
fn store_backend_and_path_default_as_without_a_store_section() {
    let store =
        |section: &str| parse(&format!("{}\n[store]\n{section}\n", minimal())).map(|c| c.store);
    let default = hookbox_store::StoreConfig::embedded("/etc/hookbox/hookbox-data/store.redb");
    assert_eq!(parse(&minimal()).expect("valid").store, default);
    assert_eq!(store("").expect("valid"), default);
    assert_eq!(
        store("answer_ttl = \"5m\"").expect("valid"),
        hookbox_store::StoreConfig::Embedded {
            path: "/etc/hookbox/hookbox-data/store.redb".into(),
            answer_ttl: Duration::from_secs(300),
        }
    );
    assert_eq!(
        store("path = \"s.redb\"").expect("valid"),
        hookbox_store::StoreConfig::embedded("/etc/hookbox/s.redb")
    );
    assert_eq!(
        store("backend = \"redis\"\nurl = \"redis://127.0.0.1:6379/0\"").expect("valid"),
        hookbox_store::StoreConfig::redis("redis://127.0.0.1:6379/0")
    );
    // Redis has no default URL, and unknown keys or backends are refused, by name.
    for (section, needle) in [
        ("backend = \"redis\"", "url"),
        (
            "backend = \"redis\"\nurl = \"redis://h/0\"\npath = \"x\"",
            "path",
        ),
        ("patth = \"x\"", "patth"),
        ("backend = \"disk\"", "disk"),
    ] {
        let e = store(section).expect_err(section).to_string();
        assert!(
            e.contains("[store]") && e.contains(needle),
            "{section}: {e}"
        );
    }
}
