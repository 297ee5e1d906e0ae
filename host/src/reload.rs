//! Deploy-time reloads: new plugins and tenants go live without a restart.
//!
//! A reload (from `SIGHUP`, `POST /admin/reload` or a file change with
//! `server.watch`) re-reads and validates the configuration file, then loads
//! every tenant's plugin off the async runtime. Invariants:
//! - a plugin file already compiled (same content digest) is reused, never
//!   recompiled;
//! - a new plugin goes live only after it compiled, type-checked against the
//!   world (`instantiate_pre`) and, when the tenant has a `smoke` request,
//!   answered it without error. A tenant whose new plugin fails any step keeps
//!   its old version (plugin, auth, limits, settings) and the failure is logged
//!   with the file's digest; a new tenant whose plugin fails is not added; the
//!   other tenants are not held back by it;
//! - the whole routing table is published with one `ArcSwap::store`: a request
//!   in flight finishes on the snapshot it took, the next one sees the new table;
//!   tenants added, removed or re-keyed change in that same store;
//! - an invalid configuration file changes nothing;
//! - `[server]`, `[tls]` and `[engine]` are fixed at start: their changes are
//!   reported as needing a restart, never half-applied;
//! - reloads run one at a time, so an older table can never be published last.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use notify::Watcher as _;
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::App;
use crate::config::{Config, EngineConfig, Overrides, ServerConfig, TenantConfig, TlsSource};
use crate::error::{HttpError, json_response};
use crate::hook::{decode, encode};
use crate::plugin::{Compiled, Outcome, Plugin, Runtime};
use crate::tenant::{Tenant, Tenants};

/// The admin endpoint's path. It exists only when `[admin]` is configured.
pub const ADMIN_RELOAD_PATH: &str = "/admin/reload";

/// How long the watched files must stay quiet before a reload: a deploy that
/// copies several files (or writes one in several steps) triggers one reload.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// What a running server needs to reload itself.
pub(crate) struct Reloader {
    path: PathBuf,
    overrides: Overrides,
    /// The settings fixed at start; a change to them needs a restart.
    server: ServerConfig,
    tls: TlsSource,
    engine: EngineConfig,
    /// Files whose change triggers a reload with `server.watch` (absolute paths).
    watched: Mutex<BTreeSet<PathBuf>>,
    /// One reload at a time.
    lock: tokio::sync::Mutex<()>,
}

impl Reloader {
    pub(crate) fn new(path: PathBuf, overrides: Overrides, config: &Config) -> Reloader {
        let watched = Mutex::new(watch_list(&path, config));
        Reloader {
            path,
            overrides,
            server: config.server.clone(),
            tls: config.tls.clone(),
            engine: config.engine.clone(),
            watched,
            lock: tokio::sync::Mutex::new(()),
        }
    }
}

/// What a reload did, tenant by tenant. Served by `POST /admin/reload`.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    /// False when the configuration could not be read or was invalid: then nothing changed.
    pub applied: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Every tenant of the old and the new configuration, by id.
    pub tenants: Vec<TenantReport>,
    /// Sections (`server`, `tls`, `engine`) that changed but apply only after a restart.
    pub needs_restart: Vec<String>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TenantReport {
    pub id: String,
    pub change: Change,
    /// Digest of the plugin serving this tenant after the reload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// Digest of the plugin that served it before (updated, removed, rejected).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// Digest of the rejected file, when it could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected_plugin: Option<String>,
    /// Why the new version was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Added,
    Removed,
    Updated,
    Unchanged,
    /// The new version failed; the old one (if any) keeps serving.
    Rejected,
}

impl ReloadReport {
    fn failed(error: String, start: Instant) -> ReloadReport {
        ReloadReport {
            applied: false,
            error: Some(error),
            tenants: Vec::new(),
            needs_restart: Vec::new(),
            duration_ms: start.elapsed().as_millis() as u64,
        }
    }

    /// The entry of tenant `id`, if the reload saw it.
    pub fn tenant(&self, id: &str) -> Option<&TenantReport> {
        self.tenants.iter().find(|t| t.id == id)
    }
}

/// Why a tenant's new version cannot go live.
struct Rejection {
    digest: Option<String>,
    reason: String,
}

struct Candidate {
    config: TenantConfig,
    plugin: Result<Plugin, Rejection>,
    /// The smoke request's bytes (read with the plugin, off the async runtime).
    smoke: Option<Result<Vec<u8>, String>>,
}

impl App {
    /// Re-reads the configuration file and swaps in what loads; see the module docs.
    /// Never fails as a whole: the report says what happened.
    pub async fn reload(&self) -> ReloadReport {
        let start = Instant::now();
        let Some(r) = &self.reloader else {
            return ReloadReport::failed(
                "this server was started without a configuration file; nothing to reload".into(),
                start,
            );
        };
        let _one_at_a_time = r.lock.lock().await;
        let current = self.tenants.load_full();

        // Reading files and compiling block: off the async runtime.
        let (runtime, path, overrides, table) = (
            self.runtime.clone(),
            r.path.clone(),
            r.overrides.clone(),
            current.clone(),
        );
        let engine = r.engine.clone();
        let prepared = tokio::task::spawn_blocking(move || {
            prepare(&runtime, &engine, &path, &overrides, &table)
        })
        .await;
        let (config, mut candidates) = match prepared {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "reload refused: invalid configuration; nothing changed");
                return ReloadReport::failed(e, start);
            }
            Err(e) => {
                tracing::error!(error = %e, "reload task failed; nothing changed");
                return ReloadReport::failed(format!("reload task failed: {e}"), start);
            }
        };
        if let Ok(mut w) = r.watched.lock() {
            *w = watch_list(&r.path, &config);
        }

        // Smoke requests run on the async runtime, like real requests.
        for c in &mut candidates {
            let unchanged = current.get(&c.config.id).is_some_and(|old| {
                old.source == c.config
                    && c.plugin
                        .as_ref()
                        .is_ok_and(|p| p.digest() == old.plugin.digest())
            });
            if unchanged {
                continue;
            }
            if let (Ok(plugin), Some(body)) = (&c.plugin, &c.smoke)
                && let Err(reason) = match body {
                    Ok(body) => smoke(&self.runtime, plugin, &c.config, body).await,
                    Err(unreadable) => Err(unreadable.clone()),
                }
            {
                c.plugin = Err(Rejection {
                    digest: Some(plugin.digest().to_owned()),
                    reason,
                });
            }
        }

        let mut reports = Vec::new();
        let mut next = Vec::with_capacity(candidates.len());
        let mut ids = HashSet::new();
        for c in candidates {
            let id = c.config.id.clone();
            ids.insert(id.clone());
            let old = current.get(&id);
            let previous = old.map(|o| o.plugin.digest().to_owned());
            let report = match c.plugin {
                Ok(plugin) => {
                    let change = match old {
                        Some(o) if o.source == c.config && o.plugin.digest() == plugin.digest() => {
                            // Same Arc: its concurrency count carries over.
                            next.push(o.clone());
                            Change::Unchanged
                        }
                        Some(o) => {
                            next.push(Arc::new(Tenant::succeed(o, &c.config, plugin.clone())));
                            Change::Updated
                        }
                        None => {
                            next.push(Arc::new(Tenant::new(&c.config, plugin.clone())));
                            Change::Added
                        }
                    };
                    TenantReport {
                        id,
                        change,
                        plugin: Some(plugin.digest().to_owned()),
                        previous: previous.filter(|_| change == Change::Updated),
                        rejected_plugin: None,
                        reason: None,
                    }
                }
                Err(rejection) => {
                    if let Some(o) = old {
                        next.push(o.clone());
                    }
                    tracing::warn!(
                        tenant = %id,
                        plugin = rejection.digest.as_deref().unwrap_or("-"),
                        file = %c.config.plugin.display(),
                        reason = %rejection.reason,
                        kept = previous.as_deref().unwrap_or("-"),
                        "new plugin version rejected; it does not go live"
                    );
                    TenantReport {
                        id,
                        change: Change::Rejected,
                        plugin: previous.clone(),
                        previous,
                        rejected_plugin: rejection.digest,
                        reason: Some(rejection.reason),
                    }
                }
            };
            reports.push(report);
        }
        for old in current.iter().filter(|t| !ids.contains(&t.id)) {
            reports.push(TenantReport {
                id: old.id.clone(),
                change: Change::Removed,
                plugin: None,
                previous: Some(old.plugin.digest().to_owned()),
                rejected_plugin: None,
                reason: None,
            });
        }
        reports.sort_by(|a, b| a.id.cmp(&b.id));

        // The one publication: every tenant's change becomes visible at once.
        self.tenants.store(Arc::new(Tenants::from_tenants(next)));
        self.admin.store(config.admin.clone().map(Arc::new));

        let mut needs_restart = Vec::new();
        if config.server != r.server {
            needs_restart.push("server".to_owned());
        }
        if config.tls != r.tls {
            needs_restart.push("tls".to_owned());
        }
        // Fuel follows the tenants; a tenant needing it on an engine without it is rejected above.
        let engine = EngineConfig {
            fuel: r.engine.fuel,
            ..config.engine.clone()
        };
        if engine != r.engine || (config.engine.fuel && !r.engine.fuel) {
            needs_restart.push("engine".to_owned());
        }
        for t in &reports {
            if t.change != Change::Rejected && t.change != Change::Unchanged {
                tracing::info!(
                    tenant = %t.id,
                    change = ?t.change,
                    plugin = t.plugin.as_deref().unwrap_or("-"),
                    previous = t.previous.as_deref().unwrap_or("-"),
                    "reload"
                );
            }
        }
        if !needs_restart.is_empty() {
            tracing::warn!(
                sections = ?needs_restart,
                "configuration sections changed that apply only after a restart"
            );
        }
        let report = ReloadReport {
            applied: true,
            error: None,
            tenants: reports,
            needs_restart,
            duration_ms: start.elapsed().as_millis() as u64,
        };
        tracing::info!(
            duration_ms = report.duration_ms,
            tenants = self.tenants.load().len(),
            "reload done"
        );
        report
    }
}

/// Runs a smoke request (`body`) through `plugin` with the tenant's settings
/// and limits; `Err` says why the plugin must not go live.
async fn smoke(
    runtime: &Runtime,
    plugin: &Plugin,
    config: &TenantConfig,
    body: &[u8],
) -> Result<(), String> {
    let request = decode::decode(body)
        .map_err(|e| format!("smoke: the smoke file is not a valid request: {}", e.0))?;
    let invocation = runtime
        .invoke(
            plugin,
            &request,
            Arc::new(config.settings.clone()),
            &config.limits,
        )
        .await;
    if invocation.pool_exhausted {
        return Err("smoke: no free instance slot to run it".into());
    }
    match &invocation.result {
        Ok(Outcome::Declined(summary)) => Err(format!(
            "smoke: the plugin answered with an error: {summary}"
        )),
        Err(failure) => Err(format!("smoke: {failure}")),
        Ok(Outcome::Response(_)) => encode::encode(&invocation.result, plugin.short_digest())
            .map(|_| ())
            .map_err(|failure| format!("smoke: {failure}")),
    }
}

/// Start-up's counterpart of a reload's check: every tenant with a `smoke`
/// request must answer it before the server binds, so a version that a
/// reload would refuse is never served because it happened to be there at
/// start. `Err` names the tenant and the reason.
pub async fn smoke_at_start(app: &App) -> Result<(), String> {
    for tenant in app.tenants.load().iter() {
        let Some(path) = &tenant.source.smoke else {
            continue;
        };
        let body = std::fs::read(path).map_err(|e| {
            format!(
                "tenant {}: smoke: cannot read {}: {e}",
                tenant.id,
                path.display()
            )
        })?;
        smoke(&app.runtime, &tenant.plugin, &tenant.source, &body)
            .await
            .map_err(|reason| format!("tenant {}: {reason}", tenant.id))?;
    }
    Ok(())
}

/// Loads the configuration and every tenant's plugin, reusing compiled ones. Blocking.
fn prepare(
    runtime: &Runtime,
    engine: &EngineConfig,
    path: &Path,
    overrides: &Overrides,
    current: &Tenants,
) -> Result<(Config, Vec<Candidate>), String> {
    let config = Config::load(path, overrides).map_err(|e| e.0)?;
    let mut compiled = Compiled::from_plugins(current.iter().map(|t| &t.plugin));
    let candidates = config
        .tenants
        .iter()
        .map(|c| Candidate {
            config: c.clone(),
            plugin: load_plugin(runtime, engine, c, &mut compiled),
            smoke: c.smoke.as_ref().map(|p| {
                std::fs::read(p).map_err(|e| format!("smoke: cannot read {}: {e}", p.display()))
            }),
        })
        .collect();
    Ok((config, candidates))
}

fn load_plugin(
    runtime: &Runtime,
    engine: &EngineConfig,
    c: &TenantConfig,
    compiled: &mut Compiled,
) -> Result<Plugin, Rejection> {
    let reject = |digest: Option<&str>, reason: String| Rejection {
        digest: digest.map(str::to_owned),
        reason,
    };
    // The running engine's pool and metering are fixed: a tenant asking beyond them would
    // fail on every request, so it does not go live.
    if c.limits.fuel.is_some() && !engine.fuel {
        return Err(reject(
            None,
            "limits.fuel needs fuel metering, which the running engine does not do; restart to enable it".into(),
        ));
    }
    if c.limits.memory > engine.max_memory {
        return Err(reject(
            None,
            format!(
                "limits.memory is above the running engine's max_memory ({} bytes); restart to raise it",
                engine.max_memory
            ),
        ));
    }
    let bytes = std::fs::read(&c.plugin)
        .map_err(|e| reject(None, format!("cannot read {}: {e}", c.plugin.display())))?;
    compiled
        .load(runtime, &bytes)
        .map_err(|(digest, e)| reject(Some(&digest), format!("{e:#}")))
}

/// The files whose change means a reload: the config file, every plugin,
/// smoke request and secret file.
fn watch_list(config_path: &Path, config: &Config) -> BTreeSet<PathBuf> {
    let mut files = BTreeSet::new();
    files.insert(absolute(config_path));
    files.extend(config.secret_files.iter().map(|f| absolute(f)));
    for t in &config.tenants {
        files.insert(absolute(&t.plugin));
        if let Some(s) = &t.smoke {
            files.insert(absolute(s));
        }
    }
    files
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

/// `POST /admin/reload`: 404 unless `[admin]` is configured (its existence is not revealed),
/// then the admin secret, then a reload answered with its [`ReloadReport`]
/// (200, or 422 when the configuration file was invalid and nothing changed).
pub(crate) async fn admin_reload(app: &App, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(auth) = app.admin.load_full() else {
        return HttpError::NotFound.into_response();
    };
    if req.method() != Method::POST {
        return HttpError::MethodNotAllowed { allow: "POST" }.into_response();
    }
    if !auth.verify(req.headers()) {
        tracing::warn!("admin reload refused: bad credentials");
        return HttpError::Unauthorized.into_response();
    }
    tracing::info!("reload requested by the admin endpoint");
    let report = app.reload().await;
    let status = if report.applied {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    match serde_json::to_vec(&report) {
        Ok(body) => json_response(status, body.into()),
        Err(e) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            crate::error::error_body(&format!("cannot encode the report: {e}")),
        ),
    }
}

/// Reloads on every `SIGHUP` until the task is aborted.
#[cfg(unix)]
pub fn reload_on_sighup(app: Arc<App>) -> std::io::Result<JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading");
            app.reload().await;
        }
    }))
}

/// Watches the directories of the config file and of every plugin, smoke
/// request and secret file, and reloads once they have been quiet for [`DEBOUNCE`].
/// Directories, not files: a deploy usually replaces a file by renaming a new
/// one over it, which a watch on the old file would not see.
pub fn watch(app: Arc<App>) -> anyhow::Result<JoinHandle<()>> {
    let Some(reloader) = &app.reloader else {
        anyhow::bail!("watching needs a configuration file");
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let filter_app = app.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if !changes_content(&event.kind) {
            return;
        }
        let Some(r) = &filter_app.reloader else {
            return;
        };
        let relevant = r
            .watched
            .lock()
            .map(|w| event.paths.iter().any(|p| is_watched(&w, p)))
            .unwrap_or(true);
        if relevant {
            let _ = tx.send(());
        }
    })?;
    let mut dirs = BTreeSet::new();
    watch_dirs(&mut watcher, reloader, &mut dirs);
    Ok(tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Debounce: wait until no event came for DEBOUNCE.
            loop {
                match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_quiet) => break,
                }
            }
            tracing::info!("watched files changed: reloading");
            app.reload().await;
            if let Some(r) = &app.reloader {
                watch_dirs(&mut watcher, r, &mut dirs);
            }
        }
    }))
}

/// Whether an event on `path` may change a watched file: the file itself, or
/// the `..data` link of its directory, which Kubernetes swaps to update every
/// file of a mounted Secret or ConfigMap at once (the files themselves are
/// links through it and see no event).
fn is_watched(watched: &BTreeSet<PathBuf>, path: &Path) -> bool {
    let path = absolute(path);
    if watched.contains(&path) {
        return true;
    }
    path.file_name().is_some_and(|n| n == "..data")
        && path
            .parent()
            .is_some_and(|dir| watched.iter().any(|f| f.parent() == Some(dir)))
}

/// Adds a watch on every directory of a watched file not watched yet.
fn watch_dirs(
    watcher: &mut notify::RecommendedWatcher,
    reloader: &Reloader,
    dirs: &mut BTreeSet<PathBuf>,
) {
    let wanted: Vec<PathBuf> = match reloader.watched.lock() {
        Ok(w) => w
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect(),
        Err(_) => return,
    };
    for dir in wanted {
        if dirs.contains(&dir) {
            continue;
        }
        match watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
            Ok(()) => {
                dirs.insert(dir);
            }
            Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cannot watch directory"),
        }
    }
}

/// Events that may mean new content (reads, which a reload itself causes, do not).
fn changes_content(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode, ModifyKind};
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_on_watched_files_and_on_their_directory_s_kubernetes_link_count() {
        let dir = std::env::temp_dir().join("hookbox-watch-test");
        let secret = dir.join("acme-secret");
        let watched = BTreeSet::from([secret.clone(), PathBuf::from("/etc/hookbox/hookbox.toml")]);
        assert!(is_watched(&watched, &secret));
        // Kubernetes updates a mounted Secret by swapping `..data`.
        assert!(is_watched(&watched, &dir.join("..data")));
        // Other files, and `..data` links of directories without a watched file, do not.
        assert!(!is_watched(&watched, &dir.join("other")));
        assert!(!is_watched(&watched, &dir.join("..2026_11_23_12_00_00.1")));
        assert!(!is_watched(&watched, Path::new("/elsewhere/..data")));
        assert!(!is_watched(&watched, &dir.join("sub").join("..data")));
    }
}
