//! The Redis backend: one [`ConnectionManager`] (a multiplexed connection that re-connects by
//! itself) per store, every call a single Lua script or command so it is atomic on the server.
//!
//! Key layout (`P` = configured prefix, `T` = tenant id, which is `[a-z0-9_-]+`):
//! - `P:{T}:claim:<key>` — a hash `{owner, at}` (`at` = claimed-at, ms since the epoch);
//! - `P:{T}:claims` — a sorted set of the tenant's claimed keys (all score 0, so `ZRANGEBYLEX`
//!   pages them in byte order);
//! - `P:{T}:answer:<event id>` — `v1 | digest(32) | created_ms(8, BE) | body`, with `PX` expiry;
//! - `P:{T}:q:…` — the event queue (see `queue_redis`).
//!
//! Neither the prefix nor the tenant can contain `:` or braces, and `<key>` is always the last
//! component after a fixed marker, so no two (tenant, kind, key) triples share a Redis key
//! whatever bytes the key holds. `{T}` is a hash tag: one tenant's keys share a cluster slot, so
//! the multi-key scripts stay valid there too.
//!
//! Every call is wrapped in `tokio::time::timeout(call_timeout)`; while Redis is down a call
//! fails fast with `Unavailable` (connection refused) or `Timeout`, and the manager starts a new
//! connection attempt that a later call will use once Redis is back.

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script};

use crate::{ClaimOutcome, ClaimRecord, NewAnswer, Remembered, StoreError, StoredAnswer, from_ms};

/// KEYS: claim hash, tenant index. ARGV: owner, now_ms, key.
/// Returns 1 claimed, 2 already yours, 3 taken.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('HGET', KEYS[1], 'owner')
if not cur then
  redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'at', ARGV[2])
  redis.call('ZADD', KEYS[2], 0, ARGV[3])
  return 1
elseif cur == ARGV[1] then
  return 2
end
return 3
",
    )
});

/// KEYS: claim hash, tenant index. ARGV: owner, key. Returns 1 if removed.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 1
end
return 0
",
    )
});

/// KEYS: claim hash, tenant index. ARGV: key. Returns the former owner or nil.
static FORCE_RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('HGET', KEYS[1], 'owner')
if cur then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return cur
",
    )
});

/// KEYS: tenant index. ARGV: claim key prefix, limit, has_after (0/1), after.
/// Returns a flat array key, owner, at, key, owner, at, ...
static LIST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local from = '-'
if ARGV[3] == '1' then from = '(' .. ARGV[4] end
local members = redis.call('ZRANGEBYLEX', KEYS[1], from, '+', 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, m in ipairs(members) do
  local v = redis.call('HMGET', ARGV[1] .. m, 'owner', 'at')
  if v[1] then
    out[#out + 1] = m
    out[#out + 1] = v[1]
    out[#out + 1] = v[2]
  end
end
return out
",
    )
});

/// KEYS: answer key. ARGV: encoded answer, ttl_ms.
/// Returns {1, nil} when stored, {0, existing} when a live answer was there first.
static REMEMBER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, false}
end
return {0, redis.call('GET', KEYS[1])}
",
    )
});

const ANSWER_FORMAT_V1: u8 = 1;

pub(crate) struct RedisStore {
    pub(crate) conn: ConnectionManager,
    pub(crate) prefix: String,
    call_timeout: Duration,
}

impl RedisStore {
    pub(crate) fn open(
        url: &str,
        prefix: &str,
        call_timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self, StoreError> {
        if prefix.is_empty() || prefix.contains([':', '{', '}']) {
            return Err(StoreError::Invalid(format!(
                "redis key prefix '{prefix}' must be non-empty and free of ':', '{{', '}}'"
            )));
        }
        let client =
            redis::Client::open(url).map_err(|e| StoreError::Invalid(format!("redis url: {e}")))?;
        // Few, quick reconnect attempts per loss: a call never waits longer than call_timeout
        // anyway, and the next call after a failed attempt starts a new one.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(call_timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(200));
        // Lazy: the host may start while Redis is down and report it through ping().
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| StoreError::Invalid(format!("redis connection settings: {e}")))?;
        Ok(RedisStore {
            conn,
            prefix: prefix.to_owned(),
            call_timeout,
        })
    }

    /// Bounds one Redis round trip by the call timeout and maps its errors.
    pub(crate) async fn bounded<T>(
        &self,
        fut: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.call_timeout, fut).await {
            Err(_) => Err(StoreError::Timeout(self.call_timeout)),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(map_err(e, self.call_timeout)),
        }
    }

    fn claim_key(&self, tenant: &str, key: &str) -> String {
        format!("{}{key}", self.claim_prefix(tenant))
    }

    fn claim_prefix(&self, tenant: &str) -> String {
        format!("{}:{{{tenant}}}:claim:", self.prefix)
    }

    fn index_key(&self, tenant: &str) -> String {
        format!("{}:{{{tenant}}}:claims", self.prefix)
    }

    fn answer_key(&self, tenant: &str, event_id: &str) -> String {
        format!("{}:{{{tenant}}}:answer:{event_id}", self.prefix)
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let pong: String = self
            .bounded(redis::cmd("PING").query_async(&mut conn))
            .await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Unavailable(format!(
                "redis answered PING with '{pong}'"
            )))
        }
    }

    pub(crate) async fn claim(
        &self,
        tenant: &str,
        key: &str,
        owner: &str,
        now: u64,
    ) -> Result<ClaimOutcome, StoreError> {
        let mut conn = self.conn.clone();
        let mut inv = CLAIM.prepare_invoke();
        inv.key(self.claim_key(tenant, key))
            .key(self.index_key(tenant))
            .arg(owner)
            .arg(now)
            .arg(key);
        let code: i64 = self.bounded(inv.invoke_async(&mut conn)).await?;
        match code {
            1 => Ok(ClaimOutcome::Claimed),
            2 => Ok(ClaimOutcome::AlreadyYours),
            3 => Ok(ClaimOutcome::Taken),
            other => Err(StoreError::Corrupt(format!(
                "claim script answered {other}"
            ))),
        }
    }

    pub(crate) async fn owner_of(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("HGET")
            .arg(self.claim_key(tenant, key))
            .arg("owner")
            .to_owned();
        self.bounded(cmd.query_async(&mut conn)).await
    }

    pub(crate) async fn release(
        &self,
        tenant: &str,
        key: &str,
        owner: &str,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let mut inv = RELEASE.prepare_invoke();
        inv.key(self.claim_key(tenant, key))
            .key(self.index_key(tenant))
            .arg(owner)
            .arg(key);
        let n: i64 = self.bounded(inv.invoke_async(&mut conn)).await?;
        Ok(n == 1)
    }

    pub(crate) async fn force_release(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.clone();
        let mut inv = FORCE_RELEASE.prepare_invoke();
        inv.key(self.claim_key(tenant, key))
            .key(self.index_key(tenant))
            .arg(key);
        self.bounded(inv.invoke_async(&mut conn)).await
    }

    pub(crate) async fn list(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ClaimRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let mut inv = LIST.prepare_invoke();
        inv.key(self.index_key(tenant))
            .arg(self.claim_prefix(tenant))
            .arg(limit)
            .arg(if after.is_some() { "1" } else { "0" })
            .arg(after.unwrap_or(""));
        let flat: Vec<String> = self.bounded(inv.invoke_async(&mut conn)).await?;
        if !flat.len().is_multiple_of(3) {
            return Err(StoreError::Corrupt(
                "list script answered a ragged array".into(),
            ));
        }
        flat.chunks_exact(3)
            .map(|c| {
                let at: u64 = c[2].parse().map_err(|_| {
                    StoreError::Corrupt(format!("claim '{}' has a bad timestamp", c[0]))
                })?;
                Ok(ClaimRecord {
                    key: c[0].clone(),
                    owner: c[1].clone(),
                    claimed_at: from_ms(at),
                })
            })
            .collect()
    }

    pub(crate) async fn remember(
        &self,
        tenant: &str,
        event_id: &str,
        answer: NewAnswer,
    ) -> Result<Remembered, StoreError> {
        let mut encoded = Vec::with_capacity(1 + 32 + 8 + answer.body.len());
        encoded.push(ANSWER_FORMAT_V1);
        encoded.extend_from_slice(&answer.request_digest);
        encoded.extend_from_slice(&answer.created_ms.to_be_bytes());
        encoded.extend_from_slice(&answer.body);
        let mut conn = self.conn.clone();
        let mut inv = REMEMBER.prepare_invoke();
        inv.key(self.answer_key(tenant, event_id))
            .arg(encoded)
            .arg(answer.ttl_ms);
        let (code, existing): (i64, Option<Vec<u8>>) =
            self.bounded(inv.invoke_async(&mut conn)).await?;
        match (code, existing) {
            (1, _) => Ok(Remembered::Stored),
            (0, Some(bytes)) => Ok(Remembered::Existing(decode_answer(&bytes)?)),
            (code, _) => Err(StoreError::Corrupt(format!(
                "remember script answered {code} without an answer"
            ))),
        }
    }

    pub(crate) async fn recall(
        &self,
        tenant: &str,
        event_id: &str,
    ) -> Result<Option<StoredAnswer>, StoreError> {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("GET")
            .arg(self.answer_key(tenant, event_id))
            .to_owned();
        let bytes: Option<Vec<u8>> = self.bounded(cmd.query_async(&mut conn)).await?;
        bytes.map(|b| decode_answer(&b)).transpose()
    }
}

fn decode_answer(b: &[u8]) -> Result<StoredAnswer, StoreError> {
    let corrupt = || StoreError::Corrupt("stored answer is not in format v1".into());
    let (&version, rest) = b.split_first().ok_or_else(corrupt)?;
    if version != ANSWER_FORMAT_V1 || rest.len() < 40 {
        return Err(corrupt());
    }
    let (digest, rest) = rest.split_at(32);
    let (created, body) = rest.split_at(8);
    let request_digest: [u8; 32] = digest.try_into().map_err(|_| corrupt())?;
    let created: [u8; 8] = created.try_into().map_err(|_| corrupt())?;
    Ok(StoredAnswer {
        request_digest,
        body: body.to_vec(),
        created_at: from_ms(u64::from_be_bytes(created)),
    })
}

fn map_err(e: RedisError, call_timeout: Duration) -> StoreError {
    if e.is_timeout() {
        StoreError::Timeout(call_timeout)
    } else if matches!(
        e.kind(),
        redis::ErrorKind::UnexpectedReturnType | redis::ErrorKind::Parse
    ) || e.code() == Some("WRONGTYPE")
    {
        // Someone else's value under one of our keys.
        StoreError::Corrupt(format!("unexpected value in redis: {e}"))
    } else {
        // Refused, reset, loading, read-only replica, auth...: all "cannot use Redis right now".
        StoreError::Unavailable(format!("redis: {e}"))
    }
}
