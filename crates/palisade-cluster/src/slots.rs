//! Bounded sets of live holders across the cluster (RTM-6: connections per user on every node
//! together). A holder takes a slot under a key while fewer than the limit are held, keeps it
//! alive by renewing it, and gives it back when done; a slot not renewed within its time to
//! live lapses, so a node that dies does not keep its users' slots forever.
//!
//! In Redis a key is a sorted set of holders scored by when each lapses, changed by one script
//! so that two nodes admitting at once cannot both take the last slot; locally (one node, or
//! while Redis is unreachable) it is a map in memory.

use crate::link::{Link, key};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Keys kept in memory at most (see the counters' bound).
const MAX_KEYS: usize = 100_000;

/// Drops lapsed holders, then adds `ARGV[1]` while fewer than `ARGV[3]` hold the key.
const ACQUIRE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false and
   redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl + 1000)
return 1
";

#[derive(Clone)]
pub struct Slots {
    link: Option<Link>,
    local: Arc<Mutex<HashMap<String, HashMap<String, Instant>>>>,
    acquire: Arc<redis::Script>,
}

impl Slots {
    pub(crate) fn new(link: Option<Link>) -> Self {
        Self {
            link,
            local: Arc::default(),
            acquire: Arc::new(redis::Script::new(ACQUIRE)),
        }
    }

    pub fn in_process() -> Self {
        Self::new(None)
    }

    /// Takes (or renews) `holder`'s slot of `table`/`key` for `ttl`: `false` when `limit`
    /// others hold it already.
    pub async fn acquire(
        &self,
        table: &str,
        key_of: &str,
        holder: &str,
        limit: u32,
        ttl: Duration,
    ) -> bool {
        if let Some(link) = &self.link {
            let key = key("slots", &[table, key_of]);
            let script = self.acquire.clone();
            let holder = holder.to_owned();
            let taken = link
                .run("slots", |mut conn| async move {
                    script
                        .key(key)
                        .arg(holder)
                        .arg(ttl.as_millis() as u64)
                        .arg(limit)
                        .invoke_async::<i64>(&mut conn)
                        .await
                })
                .await;
            if let Some(taken) = taken {
                return taken == 1;
            }
        }
        let now = Instant::now();
        let mut table_map = self.local.lock().expect("slots");
        if table_map.len() >= MAX_KEYS {
            table_map.retain(|_, holders| holders.values().any(|until| *until > now));
        }
        let holders = table_map
            .entry(format!("{table}\u{0}{key_of}"))
            .or_default();
        holders.retain(|_, until| *until > now);
        if !holders.contains_key(holder) && holders.len() >= limit as usize {
            return false;
        }
        holders.insert(holder.to_owned(), now + ttl);
        true
    }

    /// Gives `holder`'s slot back.
    pub async fn release(&self, table: &str, key_of: &str, holder: &str) {
        if let Some(link) = &self.link {
            let key = key("slots", &[table, key_of]);
            let holder = holder.to_owned();
            let done = link
                .run("slots", |mut conn| async move {
                    redis::cmd("ZREM")
                        .arg(key)
                        .arg(holder)
                        .query_async::<i64>(&mut conn)
                        .await
                })
                .await;
            if done.is_some() {
                return;
            }
        }
        let local_key = format!("{table}\u{0}{key_of}");
        let mut table_map = self.local.lock().expect("slots");
        if let Some(holders) = table_map.get_mut(&local_key) {
            holders.remove(holder);
            if holders.is_empty() {
                table_map.remove(&local_key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_holds_at_most_its_limit_and_lapsed_slots_free_up() {
        let slots = Slots::in_process();
        let ttl = Duration::from_secs(60);
        assert!(slots.acquire("t", "u", "a", 2, ttl).await);
        assert!(slots.acquire("t", "u", "b", 2, ttl).await);
        assert!(!slots.acquire("t", "u", "c", 2, ttl).await, "full");
        assert!(
            slots.acquire("t", "u", "a", 2, ttl).await,
            "renewing is not taking"
        );
        assert!(slots.acquire("t", "v", "c", 2, ttl).await, "keys are apart");
        slots.release("t", "u", "b").await;
        assert!(
            slots.acquire("t", "u", "c", 2, ttl).await,
            "a released slot is free"
        );
        assert!(slots.acquire("t", "w", "x", 1, Duration::ZERO).await);
        assert!(
            slots.acquire("t", "w", "y", 1, ttl).await,
            "a slot not renewed lapses"
        );
    }
}
