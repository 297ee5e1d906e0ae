//! Planning a reload: reading the configuration, loading each tenant's
//! plugin (reusing compiled ones), the engine-fit policy, and deciding the
//! next tenant table with a report line per tenant. Pure with respect to the
//! running server: nothing here publishes anything.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hookbox_store::StoreConfig;

use super::report::{Change, TenantReport};
use crate::config::{Config, ConfigError, Overrides, ServerConfig, TenantConfig, TlsSource};
use crate::hook::decode::DecodeError;
use crate::plugin::{Compiled, EngineConfig, Failure, Limits, Plugin, PluginError, Runtime};
use crate::tenant::{Tenant, Tenants};
use hookbox_oauth::Verifier;

/// Why a tenant's new version does not go live (the report's `reason`).
#[derive(Debug, thiserror::Error)]
pub enum RejectReason {
    /// The tenant meters fuel; the running engine does not.
    #[error(
        "limits.fuel needs fuel metering, which the running engine does not do; restart to enable it"
    )]
    NeedsFuel,
    /// The tenant's memory limit is above the running engine's slots.
    #[error(
        "limits.memory is above the running engine's max_memory ({0} bytes); restart to raise it"
    )]
    TooMuchMemory(u64),
    /// The plugin file could not be read.
    #[error("cannot read {}: {error}", path.display())]
    Unreadable {
        /// The plugin file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The plugin was refused (compile, imports, world).
    #[error("{0}")]
    Plugin(PluginError),
    /// The smoke request file could not be read.
    #[error("smoke: cannot read {}: {error}", path.display())]
    SmokeUnreadable {
        /// The smoke file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The smoke request file is not a valid request.
    #[error("smoke: the smoke file is not a valid request: {0}")]
    SmokeInvalid(DecodeError),
    /// No scratch claim store could be made for the smoke request.
    #[error("smoke: cannot make a scratch claim store: {0}")]
    SmokeStore(hookbox_store::StoreError),
    /// No instance slot was free to run the smoke request.
    #[error("smoke: no free instance slot to run it")]
    SmokeOverloaded,
    /// The plugin declined the smoke request.
    #[error("smoke: the plugin answered with an error: {0}")]
    SmokeDeclined(String),
    /// The plugin failed the smoke request.
    #[error("smoke: {0}")]
    SmokeFailed(Failure),
    /// New `auth.oauth` settings, and the verifier could not be set up with
    /// them (the step and URL that failed).
    #[error("auth.oauth: {0}")]
    OAuth(hookbox_oauth::SetupError),
}

/// Why a tenant's new version cannot go live, and which file version it was.
pub(super) struct Rejection {
    /// Digest of the refused file, when it could be read.
    pub(super) digest: Option<String>,
    pub(super) reason: RejectReason,
}

/// One tenant of the new configuration, on its way to the table.
pub(super) struct Candidate {
    pub(super) config: TenantConfig,
    pub(super) plugin: Result<Plugin, Rejection>,
    /// The smoke request's bytes (read with the plugin, off the async runtime).
    pub(super) smoke: Option<Result<Vec<u8>, RejectReason>>,
    /// The running tenant already is this version: nothing to smoke-test or rebuild.
    pub(super) unchanged: bool,
    /// The verifier for `config.auth.oauth` (the running one when its
    /// settings did not change), filled in before [`decide`].
    pub(super) oauth: Option<Verifier>,
}

/// The sections fixed at start; a change to them needs a restart.
pub(super) struct Fixed {
    pub(super) server: ServerConfig,
    pub(super) tls: TlsSource,
    pub(super) engine: EngineConfig,
    pub(super) store: StoreConfig,
}

impl Fixed {
    pub(super) fn of(config: &Config) -> Fixed {
        Fixed {
            server: config.server.clone(),
            tls: config.tls.clone(),
            engine: config.engine.clone(),
            store: config.store.clone(),
        }
    }

    /// The sections `config` changes that apply only after a restart.
    pub(super) fn needs_restart(&self, config: &Config) -> Vec<String> {
        let mut sections = Vec::new();
        if config.server != self.server {
            sections.push("server".to_owned());
        }
        if config.tls != self.tls {
            sections.push("tls".to_owned());
        }
        // Fuel follows the tenants; a tenant needing it on an engine without it is rejected.
        let engine = EngineConfig {
            fuel: self.engine.fuel,
            ..config.engine.clone()
        };
        if engine != self.engine || (config.engine.fuel && !self.engine.fuel) {
            sections.push("engine".to_owned());
        }
        // The store is opened once, at start: claims must never be split
        // between two stores by a half-applied change.
        if config.store != self.store {
            sections.push("store".to_owned());
        }
        sections
    }
}

/// Loads the configuration and every tenant's plugin, reusing compiled ones. Blocking.
pub(super) fn prepare(
    runtime: &Runtime,
    engine: &EngineConfig,
    path: &Path,
    overrides: &Overrides,
    current: &Tenants,
) -> Result<(Config, Vec<Candidate>), ConfigError> {
    let config = Config::load(path, overrides)?;
    let mut compiled = Compiled::from_plugins(current.iter().map(|t| t.plugin()));
    let candidates = config
        .tenants
        .iter()
        .map(|c| {
            let plugin = load_plugin(runtime, engine, c, &mut compiled);
            let unchanged = match (&plugin, current.get(&c.id)) {
                (Ok(p), Some(old)) => old.is_unchanged(c, p),
                _ => false,
            };
            Candidate {
                config: c.clone(),
                plugin,
                smoke: c.smoke.as_ref().map(|path| {
                    std::fs::read(path).map_err(|error| RejectReason::SmokeUnreadable {
                        path: path.clone(),
                        error,
                    })
                }),
                unchanged,
                oauth: None,
            }
        })
        .collect();
    Ok((config, candidates))
}

/// The running engine's pool and metering are fixed: a tenant asking beyond
/// them would fail on every request, so it does not go live.
fn fits_engine(limits: &Limits, engine: &EngineConfig) -> Result<(), RejectReason> {
    if limits.fuel.is_some() && !engine.fuel {
        return Err(RejectReason::NeedsFuel);
    }
    if limits.memory > engine.max_memory {
        return Err(RejectReason::TooMuchMemory(engine.max_memory));
    }
    Ok(())
}

fn load_plugin(
    runtime: &Runtime,
    engine: &EngineConfig,
    c: &TenantConfig,
    compiled: &mut Compiled,
) -> Result<Plugin, Rejection> {
    let unread = |reason| Rejection {
        digest: None,
        reason,
    };
    fits_engine(&c.limits, engine).map_err(unread)?;
    let bytes = std::fs::read(&c.plugin).map_err(|error| {
        unread(RejectReason::Unreadable {
            path: c.plugin.clone(),
            error,
        })
    })?;
    compiled.load(runtime, &bytes).map_err(|refusal| Rejection {
        digest: Some(refusal.digest),
        reason: RejectReason::Plugin(refusal.error),
    })
}

/// The next tenant table and a report line per tenant (sorted by id), from
/// the current table and the candidates (smoke-tested already).
pub(super) fn decide(
    current: &Tenants,
    candidates: Vec<Candidate>,
) -> (Vec<Arc<Tenant>>, Vec<TenantReport>) {
    let mut reports = Vec::new();
    let mut next = Vec::with_capacity(candidates.len());
    let mut ids = HashSet::new();
    for c in candidates {
        let id = c.config.id.clone();
        ids.insert(id.clone());
        let old = current.get(&id);
        let previous = old.map(|o| o.plugin().digest().to_owned());
        let report = match c.plugin {
            Ok(plugin) => {
                let digest = plugin.digest().to_owned();
                let change = match old {
                    Some(o) if c.unchanged => {
                        // Same Arc: its warm instances and concurrency count carry over.
                        next.push(o.clone());
                        Change::Unchanged
                    }
                    Some(o) => {
                        let t = Tenant::succeed(o, c.config, plugin).with_oauth(c.oauth);
                        next.push(Arc::new(t));
                        Change::Updated
                    }
                    None => {
                        next.push(Arc::new(Tenant::new(c.config, plugin).with_oauth(c.oauth)));
                        Change::Added
                    }
                };
                TenantReport {
                    id,
                    change,
                    plugin: Some(digest),
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
                    reason: Some(rejection.reason.to_string()),
                }
            }
        };
        reports.push(report);
    }
    for old in current.iter().filter(|t| !ids.contains(t.id())) {
        reports.push(TenantReport {
            id: old.id().to_owned(),
            change: Change::Removed,
            plugin: None,
            previous: Some(old.plugin().digest().to_owned()),
            rejected_plugin: None,
            reason: None,
        });
    }
    reports.sort_by(|a, b| a.id.cmp(&b.id));
    (next, reports)
}

/// The files whose change means a reload: the config file, every plugin,
/// smoke request and secret file (absolute paths).
pub(super) fn watch_list(config_path: &Path, config: &Config) -> BTreeSet<PathBuf> {
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

pub(super) fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}
