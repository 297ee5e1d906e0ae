//! The claim store: "this key belongs to that owner", first come, first served.
//!
//! [`Claims`] is the plugin's view of the store (WIT interface `claims`):
//! [`Host::claims`](crate::Host::claims) gives the host's store inside a
//! component, and [`FakeClaims`] an in-memory one for native unit tests.
//!
//! What the host guarantees (the WIT says the same): keys are scoped to the
//! tenant; keys and owners are compared byte for byte (fold the case of a
//! login yourself); a claim is atomic per key and durable once `claim`
//! returned [`ClaimResult::Claimed`] or [`ClaimResult::AlreadyYours`]; claims
//! never expire; after an error nothing is known, and retrying the same claim
//! is safe (the same owner gets `AlreadyYours`); keys and owners are 1 to
//! [`MAX_LEN`] bytes.
//!
//! ```
//! use hookbox_sdk::{ClaimResult, Claims, FakeClaims};
//!
//! let store = FakeClaims::new();
//! assert_eq!(store.claim("ada@example.com", "u1"), Ok(ClaimResult::Claimed));
//! assert_eq!(store.claim("ada@example.com", "u1"), Ok(ClaimResult::AlreadyYours));
//! assert_eq!(store.claim("ada@example.com", "u2"), Ok(ClaimResult::Taken));
//! assert_eq!(store.owner_of("ada@example.com"), Ok(Some("u1".to_owned())));
//! assert_eq!(store.release("ada@example.com", "u2"), Ok(false));
//! assert_eq!(store.release("ada@example.com", "u1"), Ok(true));
//! assert_eq!(store.owner_of("ada@example.com"), Ok(None));
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

pub use crate::bindings::hookbox::okta_import::claims::{ClaimResult, StoreError};

/// The longest key or owner the store accepts, in bytes.
pub const MAX_LEN: usize = 512;

/// A claim store. See the [module docs](self) for the guarantees.
pub trait Claims {
    /// Claims `key` for `owner` if nobody holds it: `Claimed` (it was free),
    /// `AlreadyYours` (`owner` held it already) or `Taken` (another owner does).
    fn claim(&self, key: &str, owner: &str) -> Result<ClaimResult, StoreError>;

    /// The owner of `key`, or `None` when it is free (a snapshot).
    fn owner_of(&self, key: &str) -> Result<Option<String>, StoreError>;

    /// Releases `key` if `owner` holds it: `true` if it did (the key is now
    /// free), `false` if it was free or someone else's (nothing changed).
    fn release(&self, key: &str, owner: &str) -> Result<bool, StoreError>;
}

impl ClaimResult {
    /// Whether the owner now holds the key (`Claimed` or `AlreadyYours`).
    pub fn is_held(self) -> bool {
        matches!(self, ClaimResult::Claimed | ClaimResult::AlreadyYours)
    }

    /// `claimed`, `already-yours` or `taken`, as in the WIT.
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimResult::Claimed => "claimed",
            ClaimResult::AlreadyYours => "already-yours",
            ClaimResult::Taken => "taken",
        }
    }
}

/// Checks a key or owner the way the host does before it reaches the store.
fn check(what: &str, text: &str) -> Result<(), StoreError> {
    if text.is_empty() {
        return Err(StoreError::Invalid(format!("empty {what}")));
    }
    if text.len() > MAX_LEN {
        return Err(StoreError::Invalid(format!(
            "{what} longer than {MAX_LEN} bytes"
        )));
    }
    Ok(())
}

/// The host's claim store, through the component's imports.
#[cfg(target_arch = "wasm32")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostClaims;

#[cfg(target_arch = "wasm32")]
impl Claims for HostClaims {
    fn claim(&self, key: &str, owner: &str) -> Result<ClaimResult, StoreError> {
        crate::bindings::hookbox::okta_import::claims::claim(key, owner)
    }

    fn owner_of(&self, key: &str) -> Result<Option<String>, StoreError> {
        crate::bindings::hookbox::okta_import::claims::owner_of(key)
    }

    fn release(&self, key: &str, owner: &str) -> Result<bool, StoreError> {
        crate::bindings::hookbox::okta_import::claims::release(key, owner)
    }
}

/// An in-memory claim store for native unit tests.
///
/// Clones share one store, so a test keeps a clone to inspect what the code
/// under test claimed ([`FakeClaims::owner`], [`FakeClaims::snapshot`]), to
/// pre-seed claims ([`FakeClaims::insert`]) or to make the store fail
/// ([`FakeClaims::fail_with`], [`FakeClaims::fail_after`]). It checks keys and
/// owners as the host does (empty or over [`MAX_LEN`] bytes: `Invalid`).
/// Single-threaded, like a plugin instance.
///
/// ```
/// use hookbox_sdk::{Claims, FakeClaims, StoreError};
///
/// let store = FakeClaims::new();
/// store.insert("taken@example.com", "someone");
/// store.fail_after(1, StoreError::Timeout);
/// assert!(store.owner_of("taken@example.com").is_ok());
/// assert_eq!(store.claim("x", "me"), Err(StoreError::Timeout));
/// assert_eq!(store.snapshot(), [("taken@example.com".to_owned(), "someone".to_owned())]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct FakeClaims {
    state: Rc<RefCell<FakeState>>,
}

#[derive(Debug, Default)]
struct FakeState {
    claims: BTreeMap<String, String>,
    /// Calls still allowed to succeed before `failure` applies (`None`: no limit).
    successes_left: Option<usize>,
    failure: Option<StoreError>,
    calls: usize,
}

impl FakeClaims {
    /// An empty store that works.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a claim directly, as if `owner` had claimed `key` earlier
    /// (replacing any owner it had).
    pub fn insert(&self, key: impl Into<String>, owner: impl Into<String>) {
        self.state
            .borrow_mut()
            .claims
            .insert(key.into(), owner.into());
    }

    /// From now on every call fails with `error`.
    pub fn fail_with(&self, error: StoreError) {
        self.fail_after(0, error);
    }

    /// The next `calls` calls work, every later one fails with `error`.
    pub fn fail_after(&self, calls: usize, error: StoreError) {
        let mut state = self.state.borrow_mut();
        state.successes_left = Some(calls);
        state.failure = Some(error);
    }

    /// Works again.
    pub fn recover(&self) {
        let mut state = self.state.borrow_mut();
        state.successes_left = None;
        state.failure = None;
    }

    /// The owner of `key`, read without counting as a call or failing.
    pub fn owner(&self, key: &str) -> Option<String> {
        self.state.borrow().claims.get(key).cloned()
    }

    /// Every claim, `(key, owner)` sorted by key.
    pub fn snapshot(&self) -> Vec<(String, String)> {
        self.state
            .borrow()
            .claims
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// How many calls (`claim`, `owner_of`, `release`) were made, failed ones included.
    pub fn calls(&self) -> usize {
        self.state.borrow().calls
    }

    /// Counts a call and fails it if the store is set to fail.
    fn enter(&self) -> Result<std::cell::RefMut<'_, FakeState>, StoreError> {
        let mut state = self.state.borrow_mut();
        state.calls += 1;
        match state.successes_left {
            Some(0) => {
                if let Some(error) = state.failure.clone() {
                    return Err(error);
                }
            }
            Some(ref mut left) => *left -= 1,
            None => {}
        }
        Ok(state)
    }
}

impl Claims for FakeClaims {
    fn claim(&self, key: &str, owner: &str) -> Result<ClaimResult, StoreError> {
        let mut state = self.enter()?;
        check("key", key)?;
        check("owner", owner)?;
        Ok(match state.claims.get(key) {
            None => {
                state.claims.insert(key.to_owned(), owner.to_owned());
                ClaimResult::Claimed
            }
            Some(holder) if holder == owner => ClaimResult::AlreadyYours,
            Some(_) => ClaimResult::Taken,
        })
    }

    fn owner_of(&self, key: &str) -> Result<Option<String>, StoreError> {
        let state = self.enter()?;
        check("key", key)?;
        Ok(state.claims.get(key).cloned())
    }

    fn release(&self, key: &str, owner: &str) -> Result<bool, StoreError> {
        let mut state = self.enter()?;
        check("key", key)?;
        check("owner", owner)?;
        if state.claims.get(key).is_some_and(|holder| holder == owner) {
            state.claims.remove(key);
            Ok(true)
        } else {
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_owner_release() {
        let store = FakeClaims::new();
        assert_eq!(store.claim("k", "a"), Ok(ClaimResult::Claimed));
        assert_eq!(store.claim("k", "a"), Ok(ClaimResult::AlreadyYours));
        assert_eq!(store.claim("k", "b"), Ok(ClaimResult::Taken));
        assert_eq!(store.owner_of("k"), Ok(Some("a".into())));
        assert_eq!(store.owner_of("free"), Ok(None));
        assert_eq!(store.release("k", "b"), Ok(false));
        assert_eq!(store.release("k", "a"), Ok(true));
        assert_eq!(store.release("k", "a"), Ok(false));
        assert_eq!(store.claim("k", "b"), Ok(ClaimResult::Claimed));
        assert_eq!(store.calls(), 9);
    }

    #[test]
    fn keys_are_exact() {
        let store = FakeClaims::new();
        assert_eq!(store.claim("Ada", "a"), Ok(ClaimResult::Claimed));
        assert_eq!(store.claim("ada", "b"), Ok(ClaimResult::Claimed));
    }

    #[test]
    fn clones_share_the_store() {
        let store = FakeClaims::new();
        let view = store.clone();
        store.claim("k", "a").ok();
        assert_eq!(view.owner("k").as_deref(), Some("a"));
    }

    #[test]
    fn sizes_are_checked() {
        let store = FakeClaims::new();
        assert!(matches!(store.claim("", "a"), Err(StoreError::Invalid(_))));
        assert!(matches!(store.claim("k", ""), Err(StoreError::Invalid(_))));
        let long = "x".repeat(MAX_LEN + 1);
        assert!(matches!(
            store.claim(&long, "a"),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(store.owner_of(&long), Err(StoreError::Invalid(_))));
        assert_eq!(
            store.claim(&"x".repeat(MAX_LEN), "a"),
            Ok(ClaimResult::Claimed)
        );
        assert_eq!(store.snapshot().len(), 1);
    }

    #[test]
    fn failures_and_recovery() {
        let store = FakeClaims::new();
        store.fail_after(2, StoreError::Unavailable("down".into()));
        assert!(store.claim("a", "o").is_ok());
        assert!(store.owner_of("a").is_ok());
        assert_eq!(
            store.claim("b", "o"),
            Err(StoreError::Unavailable("down".into()))
        );
        assert_eq!(store.owner("b"), None);
        store.recover();
        assert_eq!(store.claim("b", "o"), Ok(ClaimResult::Claimed));
    }
}
