//! The one error type of the store. Every backend maps its own failures onto these variants so
//! the host can render them (the WIT `store-error`, `/readyz`, logs) without knowing the backend.

use std::time::Duration;

/// Why a store call failed.
///
/// What a caller may assume after each error:
/// - [`Unavailable`](StoreError::Unavailable) and [`Timeout`](StoreError::Timeout): the store could
///   not be reached or did not answer in time. A write **may or may not** have been applied (a
///   Redis `SET` can land after the client gave up); retrying the same call is safe because every
///   write here is idempotent for the same arguments (`claim` by the same owner answers
///   `AlreadyYours`, `remember` answers `Existing`).
/// - [`Invalid`](StoreError::Invalid): the request itself is wrong (a key too long, an empty
///   owner, a tenant id with characters outside `[a-z0-9_-]`); nothing was read or written and a
///   retry fails the same way.
/// - [`Io`](StoreError::Io): the embedded database could not read or write its file (permission
///   denied, disk full, ...); the operation was not committed.
/// - [`Corrupt`](StoreError::Corrupt): stored data could not be decoded (a damaged file, a foreign
///   value under one of our Redis keys). Needs an operator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend cannot be reached right now (Redis down or refusing, the embedded database
    /// locked by another process). Transient: the same call may succeed later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend did not answer within the per-call timeout. Transient, like `Unavailable`.
    #[error("store call timed out after {0:?}")]
    Timeout(Duration),
    /// The request is malformed (sizes, characters); permanent for these arguments.
    #[error("invalid store request: {0}")]
    Invalid(String),
    /// The embedded database's file could not be created, read or written.
    #[error("store I/O error while {context}: {source}")]
    Io {
        /// What the store was doing.
        context: String,
        /// The operating system's error (e.g. permission denied, no space left on device).
        #[source]
        source: std::io::Error,
    },
    /// Stored data is damaged or not in the format this crate writes.
    #[error("store data corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// True for errors that may go away by themselves (`Unavailable`, `Timeout`): the host may
    /// degrade (answer without the store) rather than fail the request.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Timeout(_))
    }

    /// A short, stable name for metrics labels and the WIT mapping.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Timeout(_) => "timeout",
            StoreError::Invalid(_) => "invalid",
            StoreError::Io { .. } => "io",
            StoreError::Corrupt(_) => "corrupt",
        }
    }

    /// The same error again, for each caller of a group commit that failed
    /// (an I/O error is rebuilt from its kind and message).
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
            StoreError::Timeout(d) => StoreError::Timeout(*d),
            StoreError::Invalid(m) => StoreError::Invalid(m.clone()),
            StoreError::Io { context, source } => StoreError::Io {
                context: context.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StoreError::Io {
            context: context.into(),
            source,
        }
    }
}
