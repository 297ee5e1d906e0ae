//! Size and character limits, checked before any backend is touched so that both backends
//! refuse exactly the same requests (with [`StoreError::Invalid`]).

use std::time::Duration;

use crate::StoreError;

/// Longest tenant id, in bytes. Tenant ids are `[a-z0-9_-]+`.
pub const MAX_TENANT: usize = 64;
/// Longest claim key, in bytes.
pub const MAX_CLAIM_KEY: usize = 512;
/// Longest claim owner, in bytes.
pub const MAX_CLAIM_OWNER: usize = 512;
/// Longest event id, in bytes.
pub const MAX_EVENT_ID: usize = 256;
/// Largest remembered answer body, in bytes (Okta caps hook responses far below this).
pub const MAX_ANSWER_BODY: usize = 1 << 20;
/// Most claims one [`crate::Store::list`] call returns.
pub const MAX_LIST_LIMIT: usize = 1000;

pub(crate) fn tenant(t: &str) -> Result<(), StoreError> {
    if t.is_empty() || t.len() > MAX_TENANT {
        return Err(StoreError::Invalid(format!(
            "tenant id must be 1 to {MAX_TENANT} bytes"
        )));
    }
    // Redis key names rely on this: a tenant id can never contain ':' or braces.
    if !t
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(StoreError::Invalid(format!(
            "tenant id '{t}' may contain only a-z, 0-9, '_' and '-'"
        )));
    }
    Ok(())
}

fn sized(what: &str, v: &str, max: usize) -> Result<(), StoreError> {
    if v.is_empty() {
        return Err(StoreError::Invalid(format!("{what} is empty")));
    }
    if v.len() > max {
        return Err(StoreError::Invalid(format!(
            "{what} is {} bytes, more than {max}",
            v.len()
        )));
    }
    Ok(())
}

pub(crate) fn claim_key(k: &str) -> Result<(), StoreError> {
    sized("claim key", k, MAX_CLAIM_KEY)
}

pub(crate) fn owner(o: &str) -> Result<(), StoreError> {
    sized("claim owner", o, MAX_CLAIM_OWNER)
}

pub(crate) fn event_id(e: &str) -> Result<(), StoreError> {
    sized("event id", e, MAX_EVENT_ID)
}

pub(crate) fn body(b: &[u8]) -> Result<(), StoreError> {
    if b.len() > MAX_ANSWER_BODY {
        return Err(StoreError::Invalid(format!(
            "answer body is {} bytes, more than {MAX_ANSWER_BODY}",
            b.len()
        )));
    }
    Ok(())
}

pub(crate) fn ttl_ms(ttl: Duration) -> Result<u64, StoreError> {
    let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    // A year is far beyond any sensible answer TTL, and keeps `now + ttl` from overflowing.
    if ms == 0 || ms > 366 * 24 * 3600 * 1000 {
        return Err(StoreError::Invalid(format!(
            "answer TTL {ttl:?} must be between 1 ms and a year"
        )));
    }
    Ok(ms)
}
