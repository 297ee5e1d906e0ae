//! Tenants: who may call, which plugin answers, under which limits.
//!
//! A [`Tenant`] keeps its [`TenantConfig`] whole, as the one source of its
//! identity, auth, plugin file, limits and settings; beside it only what a
//! running tenant adds: the loaded plugin, what answers (its warm instances),
//! its concurrency permits and, with `auth.oauth`, its token verifier (whose
//! key cache lives as long as the tenant's OAuth settings do: a reload that
//! keeps them keeps the verifier, keys and all) and, with `directory`, its
//! Okta directory (likewise kept, cache and counters, by a reload that keeps
//! its settings; the HTTPS clients and rate-limit gates under it live in
//! [`crate::App`]'s [`DirectoryClients`] for the process's lifetime). Whether a reload leaves a tenant unchanged is
//! decided in one place, [`Tenant::is_unchanged`].
//!
//! The tenant table ([`Tenants`]) is immutable once built and is published
//! behind one `ArcSwap` in [`crate::App`]: a request takes a snapshot when it
//! starts and keeps it to the end, so a later swap never changes the plugin,
//! limits or secrets of a request in flight.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Semaphore;

use hookbox_directory::{Directory, DirectoryClients};
use hookbox_oauth::Verifier;

use crate::auth::TenantAuth;
use crate::config::TenantConfig;
use crate::log::LogBudget;
use crate::plugin::{Backend, Binding, Compiled, Limits, Plugin, PluginError, Runtime, StoreScope};

/// A tenant's plugin could not be loaded at start.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    /// The plugin file could not be read.
    #[error("tenant '{tenant}': {error}")]
    Read {
        /// The tenant's id.
        tenant: String,
        /// What went wrong ([`PluginError::Read`]).
        error: PluginError,
    },
    /// The plugin file was read, and refused.
    #[error("tenant '{tenant}': loading plugin {}: {error}", path.display())]
    Load {
        /// The tenant's id.
        tenant: String,
        /// The plugin file.
        path: PathBuf,
        /// Why it was refused.
        error: PluginError,
    },
    /// The tenant's OAuth verifier could not be set up (the step that failed
    /// and its URL: metadata, JWKS, CA file).
    #[error("tenant '{tenant}': auth.oauth: {error}")]
    OAuth {
        /// The tenant's id.
        tenant: String,
        /// What failed.
        error: hookbox_oauth::SetupError,
    },
    /// The tenant's directory could not be set up (its `ca_file`).
    #[error("tenant '{tenant}': {error}")]
    Directory {
        /// The tenant's id.
        tenant: String,
        /// What failed.
        error: hookbox_directory::SetupError,
    },
    /// A tenant with `auth.oauth` was loaded without its verifier (use
    /// [`crate::App::start`], which fetches the keys first).
    #[error("tenant '{0}': auth.oauth needs its keys fetched before the tenant is built")]
    NoVerifier(String),
    /// The tenant's plugin could not be moved to a new engine (a recycle,
    /// which then leaves every tenant where it was).
    #[error("tenant '{tenant}': {error}")]
    Rebind {
        /// The tenant's id.
        tenant: String,
        /// What failed ([`PluginError::Rebind`]).
        error: PluginError,
    },
}

/// Each OAuth tenant's verifier, by tenant id.
pub type Verifiers = HashMap<String, Verifier>;

/// Builds the verifier of every tenant with `auth.oauth`, all at once (each
/// fetches its issuer's metadata and keys, bounded by its `fetch_timeout`).
/// The first failure in `configs` order is returned.
pub async fn build_verifiers(configs: &[TenantConfig]) -> Result<Verifiers, TenantError> {
    let tasks: Vec<_> = configs
        .iter()
        .filter_map(|c| {
            let oauth = c.auth.oauth.clone()?;
            let task = tokio::spawn(async move { Verifier::from_config(&oauth).await });
            Some((c.id.clone(), task))
        })
        .collect();
    let mut verifiers = Verifiers::with_capacity(tasks.len());
    for (tenant, task) in tasks {
        let verifier = match task.await {
            Ok(result) => result.map_err(|error| TenantError::OAuth {
                tenant: tenant.clone(),
                error,
            })?,
            Err(e) => {
                return Err(TenantError::OAuth {
                    tenant,
                    error: hookbox_oauth::SetupError::Discovery(format!("setup task failed: {e}")),
                });
            }
        };
        verifiers.insert(tenant, verifier);
    }
    Ok(verifiers)
}

/// The directory for `config`'s `directory` settings (`None` without them),
/// on `clients`' shared HTTPS clients and rate-limit gates.
pub fn build_directory(
    config: &TenantConfig,
    clients: &DirectoryClients,
) -> Result<Option<Arc<Directory>>, hookbox_directory::SetupError> {
    let Some(settings) = &config.directory else {
        return Ok(None);
    };
    Directory::new(settings.clone(), clients).map(|d| Some(Arc::new(d)))
}

/// One tenant, as requests see it.
#[derive(Debug)]
pub struct Tenant {
    config: TenantConfig,
    plugin: Plugin,
    /// What answers: the plugin with this tenant's own warm instances (built
    /// per tenant, so never shared with another, and dropped with the tenant
    /// when a reload replaces it), or a bench's native resolver.
    backend: Backend,
    /// Invocations in flight for this tenant; one tenant's flood cannot take every pool slot.
    permits: Arc<Semaphore>,
    /// Verifies bearer tokens when the tenant has `auth.oauth` (built from exactly that).
    oauth: Option<Verifier>,
    /// How much its plugin may log per window (a new version starts a new
    /// window; the same version moved to a new engine keeps it).
    log_budget: Arc<LogBudget>,
    /// Its Okta directory, when `directory` is configured (built from exactly that).
    directory: Option<Arc<Directory>>,
}

/// The tenant table: tenant id → tenant.
#[derive(Debug, Default)]
pub struct Tenants {
    by_id: HashMap<String, Arc<Tenant>>,
}

impl Tenants {
    /// Builds the table, compiling each distinct plugin file once (tenants
    /// sharing a file, by content, share the compiled plugin); each tenant
    /// with `auth.oauth` takes its verifier from `verifiers` (see
    /// [`build_verifiers`]), each with `directory` gets its directory on
    /// `clients`. Blocking.
    pub fn load(
        runtime: &Runtime,
        configs: &[TenantConfig],
        verifiers: &Verifiers,
        clients: &DirectoryClients,
    ) -> Result<Tenants, TenantError> {
        let mut compiled = Compiled::default();
        let mut by_id = HashMap::with_capacity(configs.len());
        for c in configs {
            let oauth = match &c.auth.oauth {
                Some(_) => Some(
                    verifiers
                        .get(&c.id)
                        .cloned()
                        .ok_or_else(|| TenantError::NoVerifier(c.id.clone()))?,
                ),
                None => None,
            };
            let bytes = std::fs::read(&c.plugin).map_err(|error| TenantError::Read {
                tenant: c.id.clone(),
                error: PluginError::Read {
                    path: c.plugin.clone(),
                    error,
                },
            })?;
            let plugin = compiled
                .load(runtime, &bytes)
                .map_err(|refusal| TenantError::Load {
                    tenant: c.id.clone(),
                    path: c.plugin.clone(),
                    error: refusal.error,
                })?;
            let directory =
                build_directory(c, clients).map_err(|error| TenantError::Directory {
                    tenant: c.id.clone(),
                    error,
                })?;
            let tenant = Tenant::new(c.clone(), plugin)
                .with_oauth(oauth)
                .with_directory(directory);
            by_id.insert(c.id.clone(), Arc::new(tenant));
        }
        Ok(Tenants { by_id })
    }

    /// A table from already-loaded plugins.
    pub fn from_parts(parts: impl IntoIterator<Item = (TenantConfig, Plugin)>) -> Tenants {
        Tenants::from_tenants(parts.into_iter().map(|(c, p)| Arc::new(Tenant::new(c, p))))
    }

    /// A table from already-built tenants (a reload keeps unchanged ones as they are).
    pub fn from_tenants(tenants: impl IntoIterator<Item = Arc<Tenant>>) -> Tenants {
        Tenants {
            by_id: tenants
                .into_iter()
                .map(|t| (t.id().to_owned(), t))
                .collect(),
        }
    }

    /// The same table with every plugin moved to `runtime` (a successor of
    /// the runtimes they are on: [`Runtime::successor`]), each distinct
    /// plugin once (tenants that shared a plugin still share it), each
    /// tenant [`Tenant::rebound`]. Blocking (copies every plugin's code).
    pub fn rebound(&self, runtime: &Runtime) -> Result<Tenants, TenantError> {
        let mut moved: HashMap<String, Plugin> = HashMap::new();
        let mut by_id = HashMap::with_capacity(self.by_id.len());
        for (id, tenant) in &self.by_id {
            let old = tenant.plugin();
            let plugin = match moved.get(old.digest()) {
                Some(p) => p.clone(),
                None => {
                    let p = old.rebind(runtime).map_err(|error| TenantError::Rebind {
                        tenant: id.clone(),
                        error,
                    })?;
                    moved.insert(old.digest().to_owned(), p.clone());
                    p
                }
            };
            by_id.insert(id.clone(), Arc::new(tenant.rebound(plugin)));
        }
        Ok(Tenants { by_id })
    }

    /// Every tenant, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        self.by_id.values()
    }

    /// The tenant with this id.
    pub fn get(&self, id: &str) -> Option<&Arc<Tenant>> {
        self.by_id.get(id)
    }

    /// How many tenants there are.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Every tenant id, in no particular order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.by_id.keys().map(String::as_str)
    }
}

impl Tenant {
    /// A tenant serving `plugin` as `config` says, with its own permits and
    /// (in `reuse` mode) its own warm instances.
    pub fn new(config: TenantConfig, plugin: Plugin) -> Tenant {
        let permits = Arc::new(Semaphore::new(config.limits.max_concurrency as usize));
        let log_budget = Arc::new(LogBudget::new(
            config.limits.log_volume,
            config.limits.log_window,
        ));
        Tenant {
            config,
            plugin,
            backend: Backend::default(),
            permits,
            oauth: None,
            log_budget,
            directory: None,
        }
    }

    /// The same tenant verifying bearer tokens with `verifier`, which must
    /// have been built from this tenant's `auth.oauth`.
    pub fn with_oauth(mut self, verifier: Option<Verifier>) -> Tenant {
        self.oauth = verifier;
        self
    }

    /// The same tenant looking logins up in `directory`, which must have
    /// been built from this tenant's `directory` settings.
    pub fn with_directory(mut self, directory: Option<Arc<Directory>>) -> Tenant {
        self.directory = directory;
        self
    }

    /// The same tenant answered by `backend` instead (the benchmarks' seam:
    /// see [`Backend::Native`]).
    pub fn with_backend(mut self, backend: Backend) -> Tenant {
        self.backend = backend;
        self
    }

    /// The next version of `previous` (same id), built by a reload. It shares
    /// the previous version's permits, so requests still running on the old
    /// version count against the limit and the tenant never runs more than
    /// its share during a swap. A changed `max_concurrency` resizes the shared
    /// count: a higher one adds permits at once; a lower one removes the free
    /// permits now and the rest as the old version's requests finish. Call it
    /// only for the version that goes live, from within the tokio runtime.
    pub fn succeed(previous: &Tenant, config: TenantConfig, plugin: Plugin) -> Tenant {
        let mut next = Tenant::new(config, plugin);
        let permits = previous.permits.clone();
        let (old, new) = (
            previous.limits().max_concurrency as usize,
            next.limits().max_concurrency as usize,
        );
        if new > old {
            permits.add_permits(new - old);
        } else if new < old {
            let owed = (old - new) - permits.forget_permits(old - new);
            if owed > 0 {
                // A queued acquire is served before any `try_acquire`, so the
                // permits released by the old version's requests go here
                // first, until the count is down to the new limit.
                let owed = u32::try_from(owed).unwrap_or(u32::MAX);
                let permits = permits.clone();
                tokio::spawn(async move {
                    if let Ok(p) = permits.acquire_many_owned(owed).await {
                        p.forget();
                    }
                });
            }
        }
        next.permits = permits;
        next
    }

    /// The same tenant served by `plugin`, the same version of its plugin
    /// moved to a new engine ([`Plugin::rebind`]): one tenant still, so it
    /// shares everything with `self` (permits, log window, OAuth verifier,
    /// directory, configuration) but the warm instances, which belong to the
    /// old engine and go with it. A native backend (benchmarks) is kept.
    pub fn rebound(&self, plugin: Plugin) -> Tenant {
        let backend = match &self.backend {
            Backend::Plugin(_) => Backend::default(),
            Backend::Native(resolver) => Backend::Native(resolver.clone()),
        };
        Tenant {
            config: self.config.clone(),
            plugin,
            backend,
            permits: self.permits.clone(),
            oauth: self.oauth.clone(),
            log_budget: self.log_budget.clone(),
            directory: self.directory.clone(),
        }
    }

    /// Whether this tenant already is `config` served by `plugin` (same
    /// configuration, same plugin content): a reload then keeps it as it is,
    /// warm instances and permits included.
    pub fn is_unchanged(&self, config: &TenantConfig, plugin: &Plugin) -> bool {
        self.config == *config && self.plugin.digest() == plugin.digest()
    }

    /// The tenant's id.
    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &TenantConfig {
        &self.config
    }

    /// How Okta authenticates to it.
    pub fn auth(&self) -> &TenantAuth {
        &self.config.auth
    }

    /// Its bearer-token verifier (with `auth.oauth`): for readiness
    /// ([`Verifier::health`]) and metrics ([`Verifier::fetch_count`]) too.
    pub fn oauth(&self) -> Option<&Verifier> {
        self.oauth.as_ref()
    }

    /// Its Okta directory (with `directory`): for its plugin's
    /// `directory.find-user` ([`crate::App::scope`]) and metrics
    /// ([`Directory::stats`]).
    pub fn directory(&self) -> Option<&Arc<Directory>> {
        self.directory.as_ref()
    }

    /// What one invocation may use.
    pub fn limits(&self) -> &Limits {
        &self.config.limits
    }

    /// Its plugin's log budget.
    pub fn log_budget(&self) -> &LogBudget {
        &self.log_budget
    }

    /// The plugin version serving it.
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    /// Concurrency permits free right now (its `max_concurrency` minus the
    /// invocations in flight, old versions' included).
    pub fn free_permits(&self) -> usize {
        self.permits.available_permits()
    }

    /// Whether it serves Okta event hooks: its plugin exports the event
    /// handler, `events.enabled` is on, and the plugin (not a bench's
    /// native resolver) answers it.
    pub fn handles_events(&self) -> bool {
        self.config.events.enabled
            && self.plugin.exports().event_handler
            && matches!(self.backend, Backend::Plugin(_))
    }

    /// Warm instances waiting for a request (always 0 in `fresh` mode).
    pub fn idle_instances(&self) -> usize {
        self.backend.idle()
    }

    /// What the request pipeline runs this tenant's requests with, in
    /// `scope` (the tenant's space of the claim store: [`crate::App::scope`]).
    pub fn binding<'a>(&'a self, scope: &'a StoreScope) -> Binding<'a> {
        Binding {
            plugin: &self.plugin,
            settings: &self.config.settings,
            limits: &self.config.limits,
            backend: &self.backend,
            permits: &self.permits,
            scope,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Auth, Secret};

    fn config(id: &str) -> TenantConfig {
        let auth = Auth::new(
            hyper::header::AUTHORIZATION,
            vec![Secret::new("s".repeat(32))],
        )
        .expect("a valid secret");
        TenantConfig {
            id: id.to_owned(),
            plugin: PathBuf::from("reference.wasm"),
            auth: TenantAuth::secret(auth),
            limits: Limits {
                max_concurrency: 3,
                ..Limits::default()
            },
            settings: Arc::default(),
            smoke: None,
            events: Default::default(),
            directory: None,
        }
    }

    #[tokio::test]
    async fn a_table_moved_to_a_new_engine_keeps_its_tenants_and_their_shared_state() {
        let (runtime, plugin) = crate::plugin::reference_on_a_small_engine();
        let table = Tenants::from_parts([(config("a"), plugin.clone()), (config("b"), plugin)]);
        let held = table
            .get("a")
            .expect("a")
            .permits
            .clone()
            .try_acquire_owned();

        let next = runtime.successor().expect("a successor");
        let moved = table.rebound(&next).expect("moves");
        let (a, b) = (moved.get("a").expect("a"), moved.get("b").expect("b"));
        let old_a = table.get("a").expect("a");
        // Still the same tenants: configuration, permits (one in use on the
        // old table counts on the new one), log window.
        assert_eq!(a.config(), old_a.config());
        assert!(held.is_ok());
        assert_eq!(a.free_permits(), 2);
        assert!(Arc::ptr_eq(&a.permits, &old_a.permits));
        assert!(Arc::ptr_eq(&a.log_budget, &old_a.log_budget));
        // On the new engine, and tenants that shared a plugin still share one.
        assert!(a.plugin().runtime().same(&next));
        assert!(a.plugin().same(b.plugin()));
        assert!(!a.plugin().same(old_a.plugin()));
        assert_eq!(a.plugin().digest(), old_a.plugin().digest());
    }
}
