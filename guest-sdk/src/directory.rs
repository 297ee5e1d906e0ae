//! A read-only lookup in the tenant's Okta org: which Okta user holds a login.
//!
//! [`Directory`] is the plugin's view of it (WIT interface `directory`):
//! [`Host::directory`](crate::Host::directory) gives the host's lookup inside a
//! component, and [`FakeDirectory`] an in-memory one for native unit tests.
//! The host, never the plugin, calls Okta's Users API with the tenant's
//! credentials; it caches, honours Okta's rate limits and bounds each lookup
//! by the plugin's deadline. A tenant without a directory answers
//! [`DirectoryError::NotConfigured`] to every lookup.
//!
//! ```
//! use hookbox_sdk::{Directory, DirectoryError, FakeDirectory};
//!
//! let okta = FakeDirectory::new().with_user("ada@example.com", "00u1");
//! assert_eq!(okta.find_user("Ada@Example.com"), Ok(Some("00u1".to_owned())));
//! assert_eq!(okta.find_user("bob@example.com"), Ok(None));
//! assert_eq!(
//!     FakeDirectory::not_configured().find_user("ada@example.com"),
//!     Err(DirectoryError::NotConfigured)
//! );
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

pub use crate::bindings::hookbox::okta_import::directory::DirectoryError;

/// The tenant's Okta directory.
pub trait Directory {
    /// The id (`00u…`) of the Okta user whose login is `login` (compared
    /// case-insensitively, as Okta does), or `None` if no user has it.
    fn find_user(&self, login: &str) -> Result<Option<String>, DirectoryError>;
}

impl DirectoryError {
    /// The kind, as in the WIT: `not-configured`, `unavailable`,
    /// `rate-limited`, `timed-out`, `denied` (without the text of `unavailable`).
    pub fn kind(&self) -> &'static str {
        match self {
            DirectoryError::NotConfigured => "not-configured",
            DirectoryError::Unavailable(_) => "unavailable",
            DirectoryError::RateLimited => "rate-limited",
            DirectoryError::TimedOut => "timed-out",
            DirectoryError::Denied => "denied",
        }
    }
}

/// The host's directory, through the component's imports.
#[cfg(target_arch = "wasm32")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostDirectory;

#[cfg(target_arch = "wasm32")]
impl Directory for HostDirectory {
    fn find_user(&self, login: &str) -> Result<Option<String>, DirectoryError> {
        crate::bindings::hookbox::okta_import::directory::find_user(login)
    }
}

/// An in-memory Okta directory for native unit tests.
///
/// Logins are compared case-insensitively (Unicode lowercase), as Okta does.
/// Clones share one directory, so a test can keep a clone to add users, make
/// it fail ([`FakeDirectory::fail_with`]) or count lookups.
#[derive(Debug, Clone)]
pub struct FakeDirectory {
    state: Rc<RefCell<FakeState>>,
}

#[derive(Debug)]
struct FakeState {
    /// `None`: the tenant has no directory.
    users: Option<BTreeMap<String, String>>,
    failure: Option<DirectoryError>,
    lookups: usize,
}

impl Default for FakeDirectory {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeDirectory {
    /// A configured directory without users.
    pub fn new() -> Self {
        FakeDirectory {
            state: Rc::new(RefCell::new(FakeState {
                users: Some(BTreeMap::new()),
                failure: None,
                lookups: 0,
            })),
        }
    }

    /// A tenant without a directory: every lookup is `NotConfigured`.
    pub fn not_configured() -> Self {
        let directory = Self::new();
        directory.state.borrow_mut().users = None;
        directory
    }

    /// Adds the Okta user `id` with login `login`.
    pub fn with_user(self, login: &str, id: impl Into<String>) -> Self {
        self.add_user(login, id);
        self
    }

    /// Adds the Okta user `id` with login `login` (configuring the directory if it was not).
    pub fn add_user(&self, login: &str, id: impl Into<String>) {
        self.state
            .borrow_mut()
            .users
            .get_or_insert_with(BTreeMap::new)
            .insert(login.to_lowercase(), id.into());
    }

    /// From now on every lookup fails with `error` (`None`: works again).
    pub fn fail_with(&self, error: impl Into<Option<DirectoryError>>) {
        self.state.borrow_mut().failure = error.into();
    }

    /// How many lookups were made, failed ones included.
    pub fn lookups(&self) -> usize {
        self.state.borrow().lookups
    }
}

impl Directory for FakeDirectory {
    fn find_user(&self, login: &str) -> Result<Option<String>, DirectoryError> {
        let mut state = self.state.borrow_mut();
        state.lookups += 1;
        let Some(users) = &state.users else {
            return Err(DirectoryError::NotConfigured);
        };
        if let Some(error) = &state.failure {
            return Err(error.clone());
        }
        Ok(users.get(&login.to_lowercase()).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_and_failures() {
        let okta = FakeDirectory::new().with_user("Ada@Example.com", "00u1");
        assert_eq!(okta.find_user("ada@example.COM"), Ok(Some("00u1".into())));
        assert_eq!(okta.find_user("bob@example.com"), Ok(None));
        okta.fail_with(DirectoryError::RateLimited);
        assert_eq!(
            okta.find_user("ada@example.com"),
            Err(DirectoryError::RateLimited)
        );
        okta.fail_with(None);
        assert!(okta.find_user("ada@example.com").is_ok());
        assert_eq!(okta.lookups(), 4);
        assert_eq!(
            DirectoryError::Unavailable("x".into()).kind(),
            "unavailable"
        );
    }

    #[test]
    fn not_configured() {
        let okta = FakeDirectory::not_configured();
        assert_eq!(okta.find_user("a@b"), Err(DirectoryError::NotConfigured));
        okta.add_user("a@b", "00u1");
        assert_eq!(okta.find_user("a@b"), Ok(Some("00u1".into())));
    }
}
