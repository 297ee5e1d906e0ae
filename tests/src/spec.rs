//! What a test server is configured with: typed specs of its tenants and
//! sections, rendered as the TOML file `hookbox serve --config` reads.

use std::path::{Path, PathBuf};

use hookbox_oauth::testing::FakeIssuer;

use crate::Pki;
use crate::server::TestServer;

/// One `[[tenants]]` entry of the test config.
#[derive(Clone)]
pub struct TenantSpec {
    id: String,
    plugin: PathBuf,
    header: Option<String>,
    secrets: Vec<String>,
    limits: LimitsSpec,
    settings: Vec<(String, String)>,
    smoke: Option<PathBuf>,
    oauth: Option<OAuthSpec>,
    events: EventsSpec,
    directory: Option<DirectorySpec>,
}

/// A tenant's `directory` table: an Okta org, its API token and CA (written
/// to files beside the config, named by relative `token_file` and `ca_file`),
/// and optional keys.
#[derive(Clone)]
struct DirectorySpec {
    url: String,
    token: String,
    ca_pem: String,
    /// Further keys, each with its value as TOML text (`found_ttl = "0s"`, `cache_entries = 0`).
    keys: Vec<(String, String)>,
}

/// A tenant's `auth.oauth` table: an issuer, its CA (written to a file beside
/// the config, named by a relative `ca_file`), and optional keys.
#[derive(Clone)]
struct OAuthSpec {
    issuer: String,
    audience: String,
    ca_pem: String,
    /// Further keys, each a TOML string value (`client_id`, `scope`, `leeway`, ...).
    keys: Vec<(String, String)>,
}

/// A tenant's `events` table; unset values take hookbox's defaults.
#[derive(Clone, Default)]
struct EventsSpec {
    enabled: Option<bool>,
    types: Option<Vec<String>>,
    max_queued: Option<usize>,
    max_attempts: Option<u32>,
    retry_backoff: Option<String>,
}

impl EventsSpec {
    /// The body of the TOML inline table.
    fn toml(&self) -> String {
        let mut fields = Vec::new();
        if let Some(v) = self.enabled {
            fields.push(format!("enabled = {v}"));
        }
        if let Some(types) = &self.types {
            let list: Vec<_> = types.iter().map(|t| format!("{t:?}")).collect();
            fields.push(format!("types = [{}]", list.join(", ")));
        }
        if let Some(n) = self.max_queued {
            fields.push(format!("max_queued = {n}"));
        }
        if let Some(n) = self.max_attempts {
            fields.push(format!("max_attempts = {n}"));
        }
        if let Some(v) = &self.retry_backoff {
            fields.push(format!("retry_backoff = {v:?}"));
        }
        fields.join(", ")
    }
}

/// A tenant's `limits` table; unset values take hookbox's defaults.
#[derive(Clone, Default)]
struct LimitsSpec {
    memory: Option<String>,
    deadline: Option<String>,
    fuel: Option<u64>,
    max_concurrency: Option<u32>,
    instance_mode: Option<String>,
    reuse_max_requests: Option<u32>,
    log_volume: Option<String>,
    log_window: Option<String>,
}

impl LimitsSpec {
    /// The body of the TOML inline table.
    fn toml(&self) -> String {
        let mut fields = Vec::new();
        let mut text = |key: &str, v: &Option<String>| {
            if let Some(v) = v {
                fields.push(format!("{key} = {v:?}"));
            }
        };
        text("memory", &self.memory);
        text("deadline", &self.deadline);
        text("instance_mode", &self.instance_mode);
        text("log_volume", &self.log_volume);
        text("log_window", &self.log_window);
        for (key, v) in [
            ("fuel", self.fuel),
            ("max_concurrency", self.max_concurrency.map(u64::from)),
            ("reuse_max_requests", self.reuse_max_requests.map(u64::from)),
        ] {
            if let Some(v) = v {
                fields.push(format!("{key} = {v}"));
            }
        }
        fields.join(", ")
    }
}

impl TenantSpec {
    /// Tenant `id` serving `plugin`, authenticated by `Authorization: secret-{id}`.
    pub fn new(id: &str, plugin: PathBuf) -> TenantSpec {
        TenantSpec {
            id: id.to_owned(),
            plugin,
            header: None,
            secrets: vec![format!("secret-{id}")],
            limits: LimitsSpec::default(),
            settings: Vec::new(),
            smoke: None,
            oauth: None,
            events: EventsSpec::default(),
            directory: None,
        }
    }

    /// `directory` for the Okta org at `url` (e.g. `FakeOkta::url()`), with
    /// `token` in a token file and `ca_pem` as a CA file (both relative
    /// paths, as an operator would write them).
    pub fn directory(mut self, url: &str, token: &str, ca_pem: &str) -> Self {
        let keys = self.directory.take().map(|d| d.keys).unwrap_or_default();
        self.directory = Some(DirectorySpec {
            url: url.to_owned(),
            token: token.to_owned(),
            ca_pem: ca_pem.to_owned(),
            keys,
        });
        self
    }

    /// One more key of `directory` (after [`TenantSpec::directory`]), its
    /// value as TOML text: e.g. `("cache_entries", "0")`, `("call_timeout", "\"200ms\"")`.
    pub fn directory_key(mut self, key: &str, toml_value: &str) -> Self {
        let directory = self
            .directory
            .as_mut()
            .expect("directory_key needs TenantSpec::directory first");
        directory.keys.push((key.to_owned(), toml_value.to_owned()));
        self
    }

    /// `auth.oauth` for `issuer` (its issuer URL, audience `api://default`,
    /// its CA as a relative `ca_file`), beside the header secrets: a
    /// migrating tenant. Add [`TenantSpec::no_secrets`] for OAuth only.
    pub fn oauth(mut self, issuer: &FakeIssuer) -> Self {
        let keys = self.oauth.take().map(|o| o.keys).unwrap_or_default();
        self.oauth = Some(OAuthSpec {
            issuer: issuer.issuer().to_owned(),
            audience: hookbox_oauth::testing::AUDIENCE.to_owned(),
            ca_pem: issuer.ca_pem().to_owned(),
            keys,
        });
        self
    }

    /// One more key of `auth.oauth` (after [`TenantSpec::oauth`]), as a TOML
    /// string: e.g. `("client_id", "0oa1")`, `("min_refresh_interval", "1h")`.
    pub fn oauth_key(mut self, key: &str, value: &str) -> Self {
        let oauth = self
            .oauth
            .as_mut()
            .expect("oauth_key needs TenantSpec::oauth first");
        oauth.keys.push((key.to_owned(), value.to_owned()));
        self
    }

    /// No header secrets (with [`TenantSpec::oauth`]: OAuth only).
    pub fn no_secrets(mut self) -> Self {
        self.secrets.clear();
        self
    }

    /// `events.enabled = false`: the tenant's event hook answers 404.
    pub fn events_disabled(mut self) -> Self {
        self.events.enabled = Some(false);
        self
    }

    /// `events.types`: the event types handed to the handler.
    pub fn event_types(mut self, types: &[&str]) -> Self {
        self.events.types = Some(types.iter().map(|t| (*t).to_owned()).collect());
        self
    }

    /// `events.max_queued`.
    pub fn max_queued(mut self, n: usize) -> Self {
        self.events.max_queued = Some(n);
        self
    }

    /// `events.max_attempts`.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.events.max_attempts = Some(n);
        self
    }

    /// `events.retry_backoff`, e.g. `"100ms"`.
    pub fn retry_backoff(mut self, duration: &str) -> Self {
        self.events.retry_backoff = Some(duration.to_owned());
        self
    }

    /// `smoke`: a request file a new plugin version must answer before a reload makes it live.
    pub fn smoke(mut self, path: PathBuf) -> Self {
        self.smoke = Some(path);
        self
    }

    /// One more entry of `settings`.
    pub fn setting(mut self, k: &str, v: &str) -> Self {
        self.settings.push((k.to_owned(), v.to_owned()));
        self
    }

    /// `limits.memory`, e.g. `"16MiB"`.
    pub fn memory(mut self, size: &str) -> Self {
        self.limits.memory = Some(size.to_owned());
        self
    }

    /// `limits.deadline`, e.g. `"200ms"`.
    pub fn deadline(mut self, duration: &str) -> Self {
        self.limits.deadline = Some(duration.to_owned());
        self
    }

    /// `limits.fuel`.
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.limits.fuel = Some(fuel);
        self
    }

    /// `limits.max_concurrency`.
    pub fn max_concurrency(mut self, n: u32) -> Self {
        self.limits.max_concurrency = Some(n);
        self
    }

    /// `limits.instance_mode`: `"fresh"` or `"reuse"`.
    pub fn instance_mode(mut self, mode: &str) -> Self {
        self.limits.instance_mode = Some(mode.to_owned());
        self
    }

    /// `limits.reuse_max_requests`.
    pub fn reuse_max_requests(mut self, n: u32) -> Self {
        self.limits.reuse_max_requests = Some(n);
        self
    }

    /// `limits.log_volume`, e.g. `"4KiB"`.
    pub fn log_volume(mut self, size: &str) -> Self {
        self.limits.log_volume = Some(size.to_owned());
        self
    }

    /// `limits.log_window`, e.g. `"1m"`.
    pub fn log_window(mut self, duration: &str) -> Self {
        self.limits.log_window = Some(duration.to_owned());
        self
    }

    /// The secrets the tenant accepts (in place of `secret-{id}`).
    pub fn secrets(mut self, secrets: &[&str]) -> Self {
        self.secrets = secrets.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// The auth header (in place of `Authorization`).
    pub fn header(mut self, name: &str) -> Self {
        self.header = Some(name.to_owned());
        self
    }

    /// The tenant's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The first configured secret.
    pub fn secret(&self) -> &str {
        &self.secrets[0]
    }
}

/// A whole test configuration, section by section, built with typed setters
/// and written as the TOML file `hookbox serve --config` reads. Unset values
/// take hookbox's defaults.
#[derive(Clone, Default)]
pub struct Setup {
    tenants: Vec<TenantSpec>,
    body_limit: Option<String>,
    request_timeout: Option<String>,
    handshake_timeout: Option<String>,
    header_timeout: Option<String>,
    idle_timeout: Option<String>,
    write_timeout: Option<String>,
    shutdown_grace: Option<String>,
    max_header_size: Option<String>,
    max_connections: Option<usize>,
    watch: bool,
    cache_dir: Option<PathBuf>,
    cache_max_size: Option<String>,
    cpu_slots: Option<(u32, u32)>,
    idle_resident: Option<(String, String)>,
    admin_secret: Option<String>,
    store: Option<StoreSpec>,
    answer_ttl: Option<String>,
}

/// Where the test server's claim store is (`[store]`).
#[derive(Clone)]
pub enum StoreSpec {
    /// An embedded store at this file (e.g. shared by two servers started one after the other).
    Embedded(PathBuf),
    /// A Redis store at this URL (e.g. `RedisServer::url()`).
    Redis(String),
}

impl Setup {
    /// One more tenant.
    pub fn tenant(mut self, tenant: TenantSpec) -> Self {
        self.tenants.push(tenant);
        self
    }

    /// More tenants.
    pub fn tenants<'a>(mut self, tenants: impl IntoIterator<Item = &'a TenantSpec>) -> Self {
        self.tenants.extend(tenants.into_iter().cloned());
        self
    }

    /// The same setup with exactly these tenants.
    pub fn only_tenants(&self, tenants: &[TenantSpec]) -> Self {
        Setup {
            tenants: tenants.to_vec(),
            ..self.clone()
        }
    }

    /// `server.body_limit`, e.g. `"4KiB"`.
    pub fn body_limit(mut self, size: &str) -> Self {
        self.body_limit = Some(size.to_owned());
        self
    }

    /// `server.request_timeout`, e.g. `"300ms"`.
    pub fn request_timeout(mut self, duration: &str) -> Self {
        self.request_timeout = Some(duration.to_owned());
        self
    }

    /// `server.handshake_timeout`, e.g. `"300ms"`.
    pub fn handshake_timeout(mut self, duration: &str) -> Self {
        self.handshake_timeout = Some(duration.to_owned());
        self
    }

    /// `server.header_timeout`, e.g. `"300ms"`.
    pub fn header_timeout(mut self, duration: &str) -> Self {
        self.header_timeout = Some(duration.to_owned());
        self
    }

    /// `server.idle_timeout`, e.g. `"300ms"`.
    pub fn idle_timeout(mut self, duration: &str) -> Self {
        self.idle_timeout = Some(duration.to_owned());
        self
    }

    /// `server.shutdown_grace`, e.g. `"300ms"`.
    pub fn shutdown_grace(mut self, duration: &str) -> Self {
        self.shutdown_grace = Some(duration.to_owned());
        self
    }

    /// `server.write_timeout`, e.g. `"300ms"`.
    pub fn write_timeout(mut self, duration: &str) -> Self {
        self.write_timeout = Some(duration.to_owned());
        self
    }

    /// `server.max_header_size`, e.g. `"32KiB"`.
    pub fn max_header_size(mut self, size: &str) -> Self {
        self.max_header_size = Some(size.to_owned());
        self
    }

    /// `server.max_connections`.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = Some(n);
        self
    }

    /// `server.watch = true`: file changes reload.
    pub fn watch(mut self) -> Self {
        self.watch = true;
        self
    }

    /// `engine.cache_dir`.
    pub fn cache_dir(mut self, dir: &Path) -> Self {
        self.cache_dir = Some(dir.to_owned());
        self
    }

    /// `engine.cache_max_size`, e.g. `"50MiB"`.
    pub fn cache_max_size(mut self, size: &str) -> Self {
        self.cache_max_size = Some(size.to_owned());
        self
    }

    /// `engine.cpu_slots` and `engine.cpu_slots_per_tenant`.
    pub fn cpu_slots(mut self, slots: u32, per_tenant: u32) -> Self {
        self.cpu_slots = Some((slots, per_tenant));
        self
    }

    /// `engine.idle_resident_limit` and `engine.idle_resident_grace`.
    pub fn idle_resident(mut self, limit: &str, grace: &str) -> Self {
        self.idle_resident = Some((limit.to_owned(), grace.to_owned()));
        self
    }

    /// `[admin]` with this secret (in a file beside the config): `POST /admin/reload` exists.
    pub fn admin_secret(mut self, secret: &str) -> Self {
        self.admin_secret = Some(secret.to_owned());
        self
    }

    /// `[store]`: where claims and idempotent answers live (default: an
    /// embedded store in the server's own directory).
    pub fn store(mut self, store: StoreSpec) -> Self {
        self.store = Some(store);
        self
    }

    /// `[store] answer_ttl`, e.g. `"200ms"` (needs a `store`).
    pub fn answer_ttl(mut self, ttl: &str) -> Self {
        self.answer_ttl = Some(ttl.to_owned());
        self
    }

    /// Writes the config file (`hookbox.toml`), its secret files and a
    /// certificate into `dir`, as `hookbox serve --config` reads them; the
    /// certificate's CA is returned for a client. For a server in another
    /// process (e.g. one a test kills).
    pub fn write_files(&self, dir: &Path) -> (PathBuf, Pki) {
        let pki = Pki::new();
        std::fs::write(dir.join("cert.pem"), &pki.server_cert_pem).unwrap();
        std::fs::write(dir.join("key.pem"), &pki.server_key_pem).unwrap();
        let config_path = dir.join("hookbox.toml");
        std::fs::write(&config_path, self.toml(dir)).unwrap();
        (config_path, pki)
    }

    /// Writes the config file, loads it as `hookbox serve --config` would,
    /// binds 127.0.0.1:0 and serves.
    pub async fn start(self) -> TestServer {
        TestServer::start_setup(self).await
    }

    /// The config file's text; secret files are written into `dir`.
    pub(crate) fn toml(&self, dir: &Path) -> String {
        let mut s = String::from("[server]\n");
        for (key, v) in [
            ("body_limit", &self.body_limit),
            ("request_timeout", &self.request_timeout),
            ("handshake_timeout", &self.handshake_timeout),
            ("header_timeout", &self.header_timeout),
            ("idle_timeout", &self.idle_timeout),
            ("write_timeout", &self.write_timeout),
            ("shutdown_grace", &self.shutdown_grace),
            ("max_header_size", &self.max_header_size),
        ] {
            if let Some(v) = v {
                s += &format!("{key} = {v:?}\n");
            }
        }
        if let Some(n) = self.max_connections {
            s += &format!("max_connections = {n}\n");
        }
        if self.watch {
            s += "watch = true\n";
        }
        s += "[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n";
        if self.cache_dir.is_some()
            || self.cache_max_size.is_some()
            || self.cpu_slots.is_some()
            || self.idle_resident.is_some()
        {
            s += "[engine]\n";
            if let Some((limit, grace)) = &self.idle_resident {
                s += &format!("idle_resident_limit = {limit:?}\nidle_resident_grace = {grace:?}\n");
            }
            if let Some((slots, per_tenant)) = self.cpu_slots {
                s += &format!("cpu_slots = {slots}\ncpu_slots_per_tenant = {per_tenant}\n");
            }
            if let Some(dir) = &self.cache_dir {
                s += &format!("cache_dir = {:?}\n", dir.display().to_string());
            }
            if let Some(size) = &self.cache_max_size {
                s += &format!("cache_max_size = {size:?}\n");
            }
        }
        if let Some(store) = &self.store {
            s += &match store {
                StoreSpec::Embedded(path) => format!(
                    "[store]\nbackend = \"embedded\"\npath = {:?}\n",
                    path.display().to_string()
                ),
                StoreSpec::Redis(url) => format!(
                    "[store]\nbackend = \"redis\"\nurl = {url:?}\ncall_timeout = \"250ms\"\nconnect_timeout = \"250ms\"\n"
                ),
            };
            if let Some(ttl) = &self.answer_ttl {
                s += &format!("answer_ttl = {ttl:?}\n");
            }
        }
        if let Some(secret) = &self.admin_secret {
            std::fs::write(dir.join("admin-secret"), format!("{secret}\n")).unwrap();
            s += "[admin]\nsecrets_file = [\"admin-secret\"]\n";
        }
        for t in &self.tenants {
            let mut secret_files = Vec::new();
            for (i, secret) in t.secrets.iter().enumerate() {
                let name = format!("{}-secret-{i}", t.id);
                std::fs::write(dir.join(&name), format!("{secret}\n")).unwrap();
                secret_files.push(format!("{name:?}"));
            }
            let mut auth = Vec::new();
            if let Some(h) = &t.header {
                auth.push(format!("header = {h:?}"));
            }
            if !secret_files.is_empty() {
                auth.push(format!("secrets_file = [{}]", secret_files.join(", ")));
            }
            if let Some(o) = &t.oauth {
                // Relative, as an operator would write it: resolved against the config's directory.
                let ca_file = format!("{}-issuer-ca.pem", t.id);
                std::fs::write(dir.join(&ca_file), &o.ca_pem).unwrap();
                let mut keys = vec![
                    format!("issuer = {:?}", o.issuer),
                    format!("audience = {:?}", o.audience),
                    format!("ca_file = {ca_file:?}"),
                ];
                keys.extend(o.keys.iter().map(|(k, v)| format!("{k} = {v:?}")));
                auth.push(format!("oauth = {{ {} }}", keys.join(", ")));
            }
            s += &format!(
                "\n[[tenants]]\nid = {:?}\nplugin = {:?}\nauth = {{ {} }}\nlimits = {{ {} }}\n",
                t.id,
                t.plugin.display().to_string(),
                auth.join(", "),
                t.limits.toml(),
            );
            if let Some(smoke) = &t.smoke {
                s += &format!("smoke = {:?}\n", smoke.display().to_string());
            }
            s += &format!("events = {{ {} }}\n", t.events.toml());
            if let Some(d) = &t.directory {
                let (token_file, ca_file) = (
                    format!("{}-okta-token", t.id),
                    format!("{}-okta-ca.pem", t.id),
                );
                std::fs::write(dir.join(&token_file), format!("{}\n", d.token)).unwrap();
                std::fs::write(dir.join(&ca_file), &d.ca_pem).unwrap();
                let mut keys = vec![
                    format!("url = {:?}", d.url),
                    format!("token_file = {token_file:?}"),
                    format!("ca_file = {ca_file:?}"),
                ];
                keys.extend(d.keys.iter().map(|(k, v)| format!("{k} = {v}")));
                s += &format!("directory = {{ {} }}\n", keys.join(", "));
            }
            s += "[tenants.settings]\n";
            for (k, v) in &t.settings {
                s += &format!("{k:?} = {v:?}\n");
            }
        }
        s
    }
}
