//! The event queue on Redis (see [`crate::queue`] for the contract).
//!
//! Keys (`Q` = `P:{T}:q:`; ids are zero-padded to 20 digits so that byte order is id order):
//! - `Q seq` — the last id handed out (`INCR`);
//! - `Q due` — sorted set of queued ids scored by due time (ms); ties fall back to member order,
//!   i.e. id order, matching the embedded backend's `(due, id)` order;
//! - `Q ev:<id>` — hash `{uuid, payload, attempts}`;
//! - `Q seen:<uuid>` — present for the dedupe window (`PX`);
//! - `Q dead` — sorted set (score 0) of dead ids; `Q dead:<id>` — hash
//!   `{uuid, payload, attempts, reason, died}`.
//!
//! Each operation is one script, so it is atomic; it is durable as far as the Redis server is
//! (use `appendonly yes` with `appendfsync always` or `everysec` where acknowledged events must
//! survive a Redis crash).

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use crate::queue::{DeadEvent, Delivery, Enqueued, FailOutcome, QueuedEvent};
use crate::redis_backend::RedisStore;
use crate::{StoreError, from_ms};

/// KEYS: due, seq. ARGV: base, max_queued, now, dedupe_ms, then uuid, payload pairs.
/// Returns {1, accepted, duplicates} or {0, queued}.
static ENQUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local base = ARGV[1]
local fresh, batch, dups = {}, {}, 0
for i = 5, #ARGV, 2 do
  local u = ARGV[i]
  if batch[u] or redis.call('EXISTS', base .. 'seen:' .. u) == 1 then
    dups = dups + 1
  else
    batch[u] = true
    fresh[#fresh + 1] = i
  end
end
local queued = redis.call('ZCARD', KEYS[1])
if #fresh > 0 and queued + #fresh > tonumber(ARGV[2]) then
  return {0, queued}
end
for _, i in ipairs(fresh) do
  redis.call('SET', base .. 'seen:' .. ARGV[i], '1', 'PX', ARGV[4])
  local id = string.format('%020d', redis.call('INCR', KEYS[2]))
  redis.call('HSET', base .. 'ev:' .. id, 'uuid', ARGV[i], 'payload', ARGV[i + 1], 'attempts', 0)
  redis.call('ZADD', KEYS[1], ARGV[3], id)
end
return {1, #fresh, dups}
",
    )
});

/// KEYS: due. ARGV: base, now, lease_ms. Returns {id, uuid, payload, attempts} or nil.
static NEXT_DUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local id = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, 1)[1]
if not id then return false end
redis.call('ZADD', KEYS[1], tonumber(ARGV[2]) + tonumber(ARGV[3]), id)
local v = redis.call('HMGET', ARGV[1] .. 'ev:' .. id, 'uuid', 'payload', 'attempts')
return {id, v[1], v[2], v[3]}
",
    )
});

/// KEYS: due. ARGV: base, id. Returns 1 if removed.
static ACK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('ZREM', KEYS[1], ARGV[2]) == 1 then
  redis.call('DEL', ARGV[1] .. 'ev:' .. ARGV[2])
  return 1
end
return 0
",
    )
});

/// KEYS: due, dead. ARGV: base, id, reason, now, retry_ms ('' = dead).
/// Returns 0 unknown, 1 retrying, 2 dead.
static FAIL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then return 0 end
local ev = ARGV[1] .. 'ev:' .. ARGV[2]
redis.call('HINCRBY', ev, 'attempts', 1)
if ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[1], tonumber(ARGV[4]) + tonumber(ARGV[5]), ARGV[2])
  return 1
end
redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('HSET', ev, 'reason', ARGV[3], 'died', ARGV[4])
redis.call('RENAME', ev, ARGV[1] .. 'dead:' .. ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[2])
return 2
",
    )
});

/// KEYS: dead. ARGV: base, limit, has_after, after.
/// Returns flat {id, uuid, payload, attempts, reason, died, ...}.
static DEAD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local from = '-'
if ARGV[3] == '1' then from = '(' .. ARGV[4] end
local ids = redis.call('ZRANGEBYLEX', KEYS[1], from, '+', 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  local v = redis.call('HMGET', ARGV[1] .. 'dead:' .. id, 'uuid', 'payload', 'attempts', 'reason', 'died')
  if v[1] then
    out[#out + 1] = id
    for j = 1, 5 do out[#out + 1] = v[j] end
  end
end
return out
",
    )
});

/// KEYS: due, dead. ARGV: base, id, now. Returns 1 if replayed.
static REPLAY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('ZREM', KEYS[2], ARGV[2]) == 0 then return 0 end
local ev = ARGV[1] .. 'ev:' .. ARGV[2]
redis.call('RENAME', ARGV[1] .. 'dead:' .. ARGV[2], ev)
redis.call('HDEL', ev, 'reason', 'died')
redis.call('HSET', ev, 'attempts', 0)
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
return 1
",
    )
});

fn member(id: u64) -> String {
    format!("{id:020}")
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn parse<T: std::str::FromStr>(what: &str, b: &[u8]) -> Result<T, StoreError> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("queue {what} is not a number")))
}

fn text(what: &str, b: Vec<u8>) -> Result<String, StoreError> {
    String::from_utf8(b).map_err(|_| StoreError::Corrupt(format!("queue {what} is not UTF-8")))
}

impl RedisStore {
    fn queue_base(&self, tenant: &str) -> String {
        format!("{}:{{{tenant}}}:q:", self.prefix)
    }

    pub(crate) async fn enqueue(
        &self,
        tenant: &str,
        events: Vec<QueuedEvent>,
        max_queued: usize,
        dedupe_for: Duration,
        now: u64,
    ) -> Result<Enqueued, StoreError> {
        let base = self.queue_base(tenant);
        let mut inv = ENQUEUE.prepare_invoke();
        inv.key(format!("{base}due"))
            .key(format!("{base}seq"))
            .arg(&base)
            .arg(max_queued)
            .arg(now)
            .arg(ms(dedupe_for));
        for e in &events {
            inv.arg(&e.uuid).arg(&e.payload);
        }
        let mut conn = self.conn.clone();
        let r: Vec<u64> = self.bounded(inv.invoke_async(&mut conn)).await?;
        let n = |i: usize| usize::try_from(r.get(i).copied().unwrap_or(0)).unwrap_or(usize::MAX);
        match r.first() {
            Some(1) => Ok(Enqueued::Accepted {
                accepted: n(1),
                duplicates: n(2),
            }),
            Some(0) => Ok(Enqueued::Full { queued: n(1) }),
            _ => Err(StoreError::Corrupt("enqueue script answered oddly".into())),
        }
    }

    pub(crate) async fn next_due(
        &self,
        tenant: &str,
        lease: Duration,
        now: u64,
    ) -> Result<Option<Delivery>, StoreError> {
        let base = self.queue_base(tenant);
        let mut inv = NEXT_DUE.prepare_invoke();
        inv.key(format!("{base}due"))
            .arg(&base)
            .arg(now)
            .arg(ms(lease));
        let mut conn = self.conn.clone();
        let r: Option<Vec<Vec<u8>>> = self.bounded(inv.invoke_async(&mut conn)).await?;
        let Some(r) = r else { return Ok(None) };
        let [id, uuid, payload, attempts]: [Vec<u8>; 4] = r
            .try_into()
            .map_err(|_| StoreError::Corrupt("queued event is incomplete".into()))?;
        Ok(Some(Delivery {
            id: parse("id", &id)?,
            uuid: text("uuid", uuid)?,
            payload,
            attempts: parse("attempts", &attempts)?,
        }))
    }

    pub(crate) async fn ack(&self, tenant: &str, id: u64) -> Result<bool, StoreError> {
        let base = self.queue_base(tenant);
        let mut inv = ACK.prepare_invoke();
        inv.key(format!("{base}due")).arg(&base).arg(member(id));
        let mut conn = self.conn.clone();
        let n: i64 = self.bounded(inv.invoke_async(&mut conn)).await?;
        Ok(n == 1)
    }

    pub(crate) async fn fail(
        &self,
        tenant: &str,
        id: u64,
        reason: &str,
        retry_in: Option<Duration>,
        now: u64,
    ) -> Result<FailOutcome, StoreError> {
        let base = self.queue_base(tenant);
        let mut inv = FAIL.prepare_invoke();
        inv.key(format!("{base}due"))
            .key(format!("{base}dead"))
            .arg(&base)
            .arg(member(id))
            .arg(reason)
            .arg(now)
            .arg(retry_in.map(|d| ms(d).to_string()).unwrap_or_default());
        let mut conn = self.conn.clone();
        let n: i64 = self.bounded(inv.invoke_async(&mut conn)).await?;
        Ok(match n {
            1 => FailOutcome::Retrying,
            2 => FailOutcome::Dead,
            _ => FailOutcome::Unknown,
        })
    }

    pub(crate) async fn dead(
        &self,
        tenant: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeadEvent>, StoreError> {
        let base = self.queue_base(tenant);
        let mut inv = DEAD.prepare_invoke();
        inv.key(format!("{base}dead"))
            .arg(&base)
            .arg(limit)
            .arg(if after.is_some() { "1" } else { "0" })
            .arg(after.map(member).unwrap_or_default());
        let mut conn = self.conn.clone();
        let flat: Vec<Vec<u8>> = self.bounded(inv.invoke_async(&mut conn)).await?;
        if !flat.len().is_multiple_of(6) {
            return Err(StoreError::Corrupt("dead list is ragged".into()));
        }
        let mut out = Vec::with_capacity(flat.len() / 6);
        let mut it = flat.into_iter();
        while let (Some(id), Some(uuid), Some(payload), Some(attempts), Some(reason), Some(died)) = (
            it.next(),
            it.next(),
            it.next(),
            it.next(),
            it.next(),
            it.next(),
        ) {
            out.push(DeadEvent {
                id: parse("id", &id)?,
                uuid: text("uuid", uuid)?,
                payload,
                attempts: parse("attempts", &attempts)?,
                reason: text("reason", reason)?,
                died_at: from_ms(parse("died", &died)?),
            });
        }
        Ok(out)
    }

    pub(crate) async fn replay(&self, tenant: &str, id: u64, now: u64) -> Result<bool, StoreError> {
        let base = self.queue_base(tenant);
        let mut inv = REPLAY.prepare_invoke();
        inv.key(format!("{base}due"))
            .key(format!("{base}dead"))
            .arg(&base)
            .arg(member(id))
            .arg(now);
        let mut conn = self.conn.clone();
        let n: i64 = self.bounded(inv.invoke_async(&mut conn)).await?;
        Ok(n == 1)
    }

    pub(crate) async fn queued(&self, tenant: &str) -> Result<usize, StoreError> {
        let base = self.queue_base(tenant);
        let cmd = redis::cmd("ZCARD").arg(format!("{base}due")).to_owned();
        let mut conn = self.conn.clone();
        self.bounded(cmd.query_async(&mut conn)).await
    }
}
