//! Deploy-time reloads: new plugins and tenants go live without a restart.
//!
//! A reload (from `SIGHUP`, `POST /admin/reload` or a file change with
//! `server.watch`, see [`watch`]) re-reads and validates the configuration
//! file, then loads every tenant's plugin off the async runtime (`plan`).
//! Invariants:
//! - a plugin file already compiled (same content digest) is reused, never
//!   recompiled;
//! - a new plugin goes live only after it compiled, type-checked against the
//!   world (`instantiate_pre`) and, when the tenant has a `smoke` request,
//!   answered it without error (`smoke`). A tenant whose new plugin fails
//!   any step keeps its old version (plugin, auth, limits, settings) and the
//!   failure is logged with the file's digest; a new tenant whose plugin
//!   fails is not added; the other tenants are not held back by it;
//! - the whole tenant table is published with one store
//!   ([`crate::App`]): a request in flight finishes on the snapshot it took,
//!   the next one sees the new table; tenants added, removed or re-keyed
//!   change in that same store;
//! - an invalid configuration file changes nothing;
//! - a tenant whose `auth.oauth` settings are unchanged keeps its verifier
//!   (cached keys, refresh state); changed settings build a new verifier,
//!   which fetches the issuer's metadata and keys before the tenant goes
//!   live; when that fails the tenant keeps its old version, like a plugin
//!   that fails;
//! - likewise a tenant whose `directory` settings are unchanged keeps its
//!   directory (cache, counters); changed settings build a new one on the
//!   app's shared clients, and when that fails (its `ca_file`) the tenant
//!   keeps its old version; smoke requests run without a directory
//!   (`not-configured`: a reload never calls Okta);
//! - `[server]`, `[tls]`, `[engine]` and `[store]` are fixed at start: their
//!   changes are reported as needing a restart, never half-applied;
//! - reloads run one at a time, so an older table can never be published last.

mod plan;
mod report;
mod smoke;
mod watch;

pub use plan::RejectReason;
pub use report::{Change, ReloadReport, TenantReport};
pub use smoke::{SmokeError, smoke_at_start};
#[cfg(unix)]
pub use watch::reload_on_sighup;
pub use watch::{DEBOUNCE, watch};

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::App;
use crate::config::{Config, Overrides};
use crate::tenant::Tenants;

/// Reloads an [`App`] from the configuration file it was started from.
pub struct Reloader {
    app: Arc<App>,
    path: PathBuf,
    overrides: Overrides,
    /// The sections fixed at start.
    fixed: plan::Fixed,
    /// Files whose change triggers a reload with `server.watch` (absolute paths).
    watched: Mutex<BTreeSet<PathBuf>>,
}

impl Reloader {
    /// Reloads `app` from the file `config` was loaded from (`path`), with the same overrides.
    pub fn new(app: Arc<App>, path: PathBuf, overrides: Overrides, config: &Config) -> Reloader {
        let watched = Mutex::new(plan::watch_list(&path, config));
        Reloader {
            app,
            path,
            overrides,
            fixed: plan::Fixed::of(config),
            watched,
        }
    }

    /// The app it reloads.
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Re-reads the configuration file and swaps in what loads; see the module docs.
    /// Never fails as a whole: the report says what happened (and the
    /// metrics count it: `hookbox_reloads_total`).
    pub async fn reload(&self) -> ReloadReport {
        let report = self.reload_once().await;
        self.app.metrics().reload(&report);
        report
    }

    async fn reload_once(&self) -> ReloadReport {
        let start = Instant::now();
        // One table change at a time (reloads, engine recycles).
        let _one_at_a_time = self.app.table_change().await;
        let current = self.app.tenants();

        // Reading files and compiling block: off the async runtime.
        let (runtime, engine, path, overrides, table) = (
            self.app.runtime(),
            self.fixed.engine.clone(),
            self.path.clone(),
            self.overrides.clone(),
            current.clone(),
        );
        let prepared = tokio::task::spawn_blocking(move || {
            plan::prepare(&runtime, &engine, &path, &overrides, &table)
        })
        .await;
        let (config, mut candidates) = match prepared {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "reload refused: invalid configuration; nothing changed");
                return ReloadReport::failed(e.to_string(), start);
            }
            Err(e) => {
                tracing::error!(error = %e, "reload task failed; nothing changed");
                return ReloadReport::failed(format!("reload task failed: {e}"), start);
            }
        };
        if let Ok(mut w) = self.watched.lock() {
            *w = plan::watch_list(&self.path, &config);
        }

        // OAuth verifiers: the running one when the settings are the same, else a new one
        // (fetching keys: async, and bounded by each issuer's fetch_timeout).
        for c in candidates.iter_mut() {
            let (Ok(plugin), Some(oauth)) = (&c.plugin, &c.config.auth.oauth) else {
                continue;
            };
            let running = current
                .get(&c.config.id)
                .filter(|t| t.auth().oauth.as_ref() == Some(oauth))
                .and_then(|t| t.oauth().cloned());
            c.oauth = match running {
                Some(v) => Some(v),
                None => match hookbox_oauth::Verifier::from_config(oauth).await {
                    Ok(v) => Some(v),
                    Err(e) => {
                        let digest = Some(plugin.digest().to_owned());
                        c.plugin = Err(plan::Rejection {
                            digest,
                            reason: RejectReason::OAuth(e),
                        });
                        None
                    }
                },
            };
        }

        // Directories: the running one when the settings are the same (its cache and
        // counters carry over), else a new one on the app's shared clients.
        for c in candidates.iter_mut() {
            let Ok(plugin) = &c.plugin else {
                continue;
            };
            let running = current
                .get(&c.config.id)
                .filter(|t| t.config().directory == c.config.directory)
                .and_then(|t| t.directory().cloned());
            c.directory = match running {
                Some(d) => Some(d),
                None => {
                    match crate::tenant::build_directory(&c.config, self.app.directory_clients()) {
                        Ok(d) => d,
                        Err(e) => {
                            let digest = Some(plugin.digest().to_owned());
                            c.plugin = Err(plan::Rejection {
                                digest,
                                reason: RejectReason::Directory(e),
                            });
                            None
                        }
                    }
                }
            };
        }

        // Smoke requests run on the async runtime, like real requests.
        for c in candidates.iter_mut().filter(|c| !c.unchanged) {
            let (Ok(plugin), Some(body)) = (&c.plugin, c.smoke.take()) else {
                continue;
            };
            let passed = match body {
                Ok(body) => smoke::smoke(plugin, &c.config, &body).await,
                Err(unreadable) => Err(unreadable),
            };
            if let Err(reason) = passed {
                let digest = Some(plugin.digest().to_owned());
                c.plugin = Err(plan::Rejection { digest, reason });
            }
        }

        let (next, reports) = plan::decide(&current, candidates);
        // The one publication: every tenant's change becomes visible at once.
        self.app
            .publish(Tenants::from_tenants(next), config.admin.clone());

        let needs_restart = self.fixed.needs_restart(&config);
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
            tenants = self.app.tenants().len(),
            "reload done"
        );
        report
    }
}
