//! A bounded cache of lookup answers, keyed by the case-folded login.
//!
//! Invariants:
//! - Only answers are cached (a user id, or "free"); errors never are.
//! - An entry is never returned after its expiry (found and free answers have their own TTLs,
//!   chosen by the caller at insertion).
//! - At most `capacity` entries are held: inserting into a full cache first drops expired
//!   entries in insertion order, then the oldest insertions (first in, first out, which for
//!   fixed TTLs is also "soonest to expire" among entries of one kind).
//! - The insertion-order queue holds at most `2 × capacity + 1` items: stale items (for keys
//!   re-inserted or removed since) are compacted away when it grows past that.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

struct Entry {
    user_id: Option<String>,
    expires: Instant,
    seq: u64,
}

/// See the module documentation. Not synchronized: the owner wraps it in a mutex.
pub(crate) struct AnswerCache {
    capacity: usize,
    entries: HashMap<String, Entry>,
    order: VecDeque<(String, u64)>,
    next_seq: u64,
}

impl AnswerCache {
    pub(crate) fn new(capacity: usize) -> AnswerCache {
        AnswerCache {
            capacity,
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
        }
    }

    /// The cached answer for `key` (`Some(None)`: cached as free), if not expired at `now`.
    pub(crate) fn get(&mut self, key: &str, now: Instant) -> Option<Option<String>> {
        match self.entries.get(key) {
            Some(e) if e.expires > now => Some(e.user_id.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Caches `user_id` for `key` until `now + ttl` (a zero TTL caches nothing).
    pub(crate) fn insert(
        &mut self,
        key: String,
        user_id: Option<String>,
        ttl: Duration,
        now: Instant,
    ) {
        if self.capacity == 0 || ttl.is_zero() {
            return;
        }
        let Some(expires) = now.checked_add(ttl) else {
            return;
        };
        self.next_seq += 1;
        let seq = self.next_seq;
        self.order.push_back((key.clone(), seq));
        self.entries.insert(
            key,
            Entry {
                user_id,
                expires,
                seq,
            },
        );
        if self.entries.len() > self.capacity {
            self.evict(now);
        }
        if self.order.len() > 2 * self.capacity + 1 {
            let entries = &self.entries;
            self.order
                .retain(|(k, s)| entries.get(k).is_some_and(|e| e.seq == *s));
        }
    }

    fn evict(&mut self, now: Instant) {
        // Expired entries first: one pass over the queue, in insertion order.
        let entries = &mut self.entries;
        self.order.retain(|(k, s)| match entries.get(k) {
            Some(e) if e.seq == *s => {
                if e.expires <= now {
                    entries.remove(k);
                    false
                } else {
                    true
                }
            }
            _ => false,
        });
        // Then the oldest insertions.
        while self.entries.len() > self.capacity {
            let Some((k, s)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&k).is_some_and(|e| e.seq == s) {
                self.entries.remove(&k);
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ttl_and_capacity() {
        let now = Instant::now();
        let mut c = AnswerCache::new(2);
        c.insert(
            "a".into(),
            Some("00ua".into()),
            Duration::from_secs(10),
            now,
        );
        c.insert("b".into(), None, Duration::from_secs(1), now);
        assert_eq!(c.get("a", now), Some(Some("00ua".into())));
        assert_eq!(c.get("b", now), Some(None));
        assert_eq!(c.get("b", now + Duration::from_secs(1)), None);
        // Full: the expired "b" goes first, then the oldest.
        c.insert("b".into(), None, Duration::from_secs(1), now);
        c.insert(
            "c".into(),
            None,
            Duration::from_secs(10),
            now + Duration::from_secs(2),
        );
        assert_eq!(c.len(), 2);
        assert!(c.get("a", now + Duration::from_secs(2)).is_some());
        assert!(c.get("b", now + Duration::from_secs(2)).is_none());
        c.insert(
            "d".into(),
            None,
            Duration::from_secs(10),
            now + Duration::from_secs(2),
        );
        assert_eq!(c.len(), 2);
        assert!(
            c.get("a", now + Duration::from_secs(2)).is_none(),
            "the oldest stays"
        );
        assert!(c.get("c", now + Duration::from_secs(2)).is_some());
        assert!(c.get("d", now + Duration::from_secs(2)).is_some());
    }

    #[test]
    fn reinsertion_keeps_the_queue_bounded() {
        let now = Instant::now();
        let mut c = AnswerCache::new(3);
        for _ in 0..100 {
            c.insert("a".into(), None, Duration::from_secs(10), now);
        }
        assert_eq!(c.len(), 1);
        assert!(c.order.len() <= 7);
        c.insert("b".into(), None, Duration::ZERO, now);
        assert!(c.get("b", now).is_none(), "zero TTL cached");
        let mut none = AnswerCache::new(0);
        none.insert("a".into(), None, Duration::from_secs(10), now);
        assert!(none.get("a", now).is_none());
    }
}
