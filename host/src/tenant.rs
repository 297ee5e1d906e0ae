//! Tenants: who may call, which plugin answers, under which limits.
//!
//! The routing table ([`Tenants`]) is immutable once built and is published
//! behind one `ArcSwap` in [`crate::App`]: a request takes a snapshot when it
//! starts and keeps it to the end, so a later swap never changes the plugin,
//! limits or secrets of a request in flight.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::Semaphore;

use crate::auth::Auth;
use crate::config::{Limits, TenantConfig};
use crate::plugin::{Compiled, Instances, Plugin, Runtime};

#[derive(Debug)]
pub struct Tenant {
    pub id: String,
    pub auth: Auth,
    pub plugin: Plugin,
    pub limits: Limits,
    pub settings: Arc<BTreeMap<String, String>>,
    /// The plugin bound to this tenant's settings and limits, and its warm
    /// instances in `reuse` mode: built per tenant, so never shared with another,
    /// and dropped with the tenant when a reload replaces it.
    pub instances: Instances,
    /// Invocations in flight for this tenant; one tenant's flood cannot take every pool slot.
    pub concurrency: Arc<Semaphore>,
    /// The configuration this tenant was built from (a reload compares against it).
    pub source: TenantConfig,
}

/// The routing table: tenant id → tenant.
#[derive(Debug, Default)]
pub struct Tenants {
    by_id: HashMap<String, Arc<Tenant>>,
}

impl Tenants {
    /// Builds the table, compiling each distinct plugin file once (tenants
    /// sharing a file, by content, share the compiled plugin). Blocking.
    pub fn load(runtime: &Runtime, configs: &[TenantConfig]) -> anyhow::Result<Tenants> {
        let mut compiled = Compiled::default();
        let mut by_id = HashMap::with_capacity(configs.len());
        for c in configs {
            let bytes = std::fs::read(&c.plugin).with_context(|| {
                format!("tenant '{}': reading plugin {}", c.id, c.plugin.display())
            })?;
            let plugin = compiled.load(runtime, &bytes).map_err(|(_, e)| {
                e.context(format!(
                    "tenant '{}': loading plugin {}",
                    c.id,
                    c.plugin.display()
                ))
            })?;
            by_id.insert(c.id.clone(), Arc::new(Tenant::new(c, plugin)));
        }
        Ok(Tenants { by_id })
    }

    /// A table from already-loaded plugins.
    pub fn from_parts(parts: impl IntoIterator<Item = (TenantConfig, Plugin)>) -> Tenants {
        Tenants {
            by_id: parts
                .into_iter()
                .map(|(c, p)| (c.id.clone(), Arc::new(Tenant::new(&c, p))))
                .collect(),
        }
    }

    /// A table from already-built tenants (a reload keeps unchanged ones as they are).
    pub fn from_tenants(tenants: impl IntoIterator<Item = Arc<Tenant>>) -> Tenants {
        Tenants {
            by_id: tenants.into_iter().map(|t| (t.id.clone(), t)).collect(),
        }
    }

    /// Every tenant, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        self.by_id.values()
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Tenant>> {
        self.by_id.get(id)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.by_id.keys().map(String::as_str)
    }
}

impl Tenant {
    pub fn new(c: &TenantConfig, plugin: Plugin) -> Tenant {
        let settings = Arc::new(c.settings.clone());
        Tenant {
            id: c.id.clone(),
            auth: c.auth.clone(),
            instances: Instances::new(plugin.clone(), settings.clone(), c.limits.clone()),
            plugin,
            limits: c.limits.clone(),
            settings,
            concurrency: Arc::new(Semaphore::new(c.limits.max_concurrency as usize)),
            source: c.clone(),
        }
    }

    /// The next version of `previous` (same id), built by a reload. It shares
    /// the previous version's permits, so requests still running on the old
    /// version count against the limit and the tenant never runs more than
    /// its share during a swap. A changed `max_concurrency` resizes the shared
    /// count: a higher one adds permits at once; a lower one removes the free
    /// permits now and the rest as the old version's requests finish. Call it
    /// only for the version that goes live, from within the tokio runtime.
    pub fn succeed(previous: &Tenant, c: &TenantConfig, plugin: Plugin) -> Tenant {
        let mut next = Tenant::new(c, plugin);
        let permits = previous.concurrency.clone();
        let (old, new) = (
            previous.limits.max_concurrency as usize,
            next.limits.max_concurrency as usize,
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
        next.concurrency = permits;
        next
    }
}
