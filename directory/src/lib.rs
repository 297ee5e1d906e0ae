//! A per-tenant, read-only lookup in the tenant's Okta org for hookbox (issue 16): which Okta
//! user holds a login. The host calls it for a plugin's `directory.find-user` (WIT 0.2.0); the
//! plugin never talks to Okta.
//!
//! - [`DirectoryConfig`] is the tenant's `directory = { url = "https://{org}", token_env = "..." }`
//!   table; [`DirectoryConfig::validate`] reads the token and returns typed
//!   [`DirectorySettings`].
//! - [`Directory`] (one per tenant, cheap to clone, `Send + Sync`):
//!   [`Directory::find_user`]`(login, deadline)` → `Ok(Some(user id))`, `Ok(None)` (free) or a
//!   [`DirectoryError`] that maps one to one onto WIT's `directory-error`;
//!   [`Directory::find_user_in`] also takes a plugin call's [`RequestBudget`] (the per-call
//!   cap). Steps, caching and error mapping are documented in [`directory`]; rate limits in
//!   [`rate`].
//! - [`DirectoryClients`] shares HTTPS clients per org and rate-limit gates per org and token
//!   between tenants; the host keeps one for its lifetime.
//! - With the `test-support` feature, `testing::FakeOkta` is a real HTTPS Users API on loopback.
//!
//! Never logged, never in an error text: the API token and the logins looked up.

mod cache;
pub mod config;
pub mod directory;
pub mod rate;
#[cfg(feature = "test-support")]
pub mod testing;

pub use config::{ApiToken, ConfigError, DirectoryConfig, DirectorySettings};
pub use directory::{
    Directory, DirectoryClients, DirectoryError, DirectoryStats, RequestBudget, SetupError,
};
