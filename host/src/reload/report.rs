//! What a reload did, tenant by tenant: served by `POST /admin/reload`,
//! returned to whoever asked for the reload.

use std::time::Instant;

use serde::Serialize;

/// What a reload did. Served by `POST /admin/reload`.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    /// False when the configuration could not be read or was invalid: then nothing changed.
    pub applied: bool,
    /// Why nothing changed, when `applied` is false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Every tenant of the old and the new configuration, by id.
    pub tenants: Vec<TenantReport>,
    /// Sections (`server`, `tls`, `engine`, `store`) that changed but apply only after a restart.
    pub needs_restart: Vec<String>,
    /// How long the reload took.
    pub duration_ms: u64,
}

/// What a reload did to one tenant.
#[derive(Debug, Clone, Serialize)]
pub struct TenantReport {
    /// The tenant's id.
    pub id: String,
    /// What happened to it.
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

/// What happened to one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// A new tenant went live.
    Added,
    /// The tenant is gone.
    Removed,
    /// A new version went live.
    Updated,
    /// Nothing changed: the same tenant (warm instances, permits) serves on.
    Unchanged,
    /// The new version failed; the old one (if any) keeps serving.
    Rejected,
}

impl ReloadReport {
    /// A reload that changed nothing, for `error`.
    pub(crate) fn failed(error: String, start: Instant) -> ReloadReport {
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
