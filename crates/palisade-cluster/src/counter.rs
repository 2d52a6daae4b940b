//! Shared counters (RES-7, IDN-3, SCL-1): rate limits by the generic cell rate algorithm, and
//! failure back-off for password guessing — counted in Redis across nodes when it is
//! configured and reachable, in this node's memory otherwise (one node, or an outage: "degrade
//! to local behaviour"). Redis computes with its own clock, so nodes' clocks need not agree.

use crate::link::{Link, key};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Keys kept in memory per table at most: a flood of distinct keys cannot grow memory without
/// limit (past it, expired keys are dropped first, then the table starts over).
const MAX_KEYS: usize = 100_000;

/// A steady rate with a burst of as many: `per_minute` requests a minute, any `per_minute` of
/// them at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_minute: u32,
}

impl Rate {
    fn interval(self) -> Duration {
        Duration::from_secs(60) / self.per_minute.max(1)
    }

    fn tolerance(self) -> Duration {
        self.interval() * self.per_minute.max(1)
    }
}

/// GCRA: each key has a theoretical arrival time (TAT) of its next request; a request is
/// allowed while the TAT, advanced by one interval, stays within the burst tolerance of now.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local after = tat + interval
if after > now + tolerance then return after - (now + tolerance) end
redis.call('SET', KEYS[1], after, 'PX', after - now + 1000)
return 0
";

/// Rate limits by key.
#[derive(Clone)]
pub struct Counter {
    link: Option<Link>,
    local: Arc<Mutex<HashMap<String, Instant>>>,
    gcra: Arc<redis::Script>,
}

impl Counter {
    pub(crate) fn new(link: Option<Link>) -> Self {
        Self {
            link,
            local: Arc::default(),
            gcra: Arc::new(redis::Script::new(GCRA)),
        }
    }

    /// An in-process counter, for one node (and tests).
    pub fn in_process() -> Self {
        Self::new(None)
    }

    /// Counts a request of `key` in the limit `limit` (e.g. `api.user`): `Ok` within `rate`,
    /// else how long to wait.
    pub async fn check(&self, limit: &str, key_of: &str, rate: Rate) -> Result<(), Duration> {
        if let Some(link) = &self.link {
            let key = key("gcra", &[limit, key_of]);
            let interval = rate.interval().as_millis() as u64;
            let tolerance = rate.tolerance().as_millis() as u64;
            let script = self.gcra.clone();
            let wait = link
                .run("rate limit", |mut conn| async move {
                    script
                        .key(key)
                        .arg(interval)
                        .arg(tolerance)
                        .invoke_async::<u64>(&mut conn)
                        .await
                })
                .await;
            if let Some(wait) = wait {
                return if wait == 0 {
                    Ok(())
                } else {
                    Err(Duration::from_millis(wait))
                };
            }
        }
        self.check_locally(&format!("{limit}\u{0}{key_of}"), rate, Instant::now())
    }

    fn check_locally(&self, key: &str, rate: Rate, now: Instant) -> Result<(), Duration> {
        let mut table = self.local.lock().expect("rate counters");
        if table.len() >= MAX_KEYS {
            table.retain(|_, tat| *tat > now);
            if table.len() >= MAX_KEYS {
                table.clear();
            }
        }
        let tat = table.get(key).copied().unwrap_or(now).max(now);
        let after = tat + rate.interval();
        if after > now + rate.tolerance() {
            return Err(after - (now + rate.tolerance()));
        }
        table.insert(key.to_owned(), after);
        Ok(())
    }
}

/// How failures back off: `free_attempts` cost nothing, each further one doubles the wait from
/// `base_delay` up to `max_delay`. A key quiet for two ceilings starts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    pub free_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

/// Failures of a key (`f`), when it last failed (`l`) and until when it waits (`u`), in one
/// hash that expires when the key would start over anyway.
const FAIL: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local free = tonumber(ARGV[1])
local base = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
local f = tonumber(redis.call('HGET', KEYS[1], 'f') or 0)
local last = tonumber(redis.call('HGET', KEYS[1], 'l') or now)
local u = tonumber(redis.call('HGET', KEYS[1], 'u') or 0)
if now - last > 2 * max then f = 0 end
f = f + 1
if f > free then
  local doublings = math.min(f - free - 1, 20)
  u = now + math.min(base * (2 ^ doublings), max)
end
redis.call('HSET', KEYS[1], 'f', f, 'l', now, 'u', u)
redis.call('PEXPIRE', KEYS[1], 2 * max + 1000)
return 0
";

const WAIT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local u = tonumber(redis.call('HGET', KEYS[1], 'u') or 0)
if u > now then return u - now end
return 0
";

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    blocked_until: Instant,
    last: Instant,
}

/// Failure back-off by key (IDN-3: password guessing per account and per network).
#[derive(Clone)]
pub struct Backoff {
    link: Option<Link>,
    local: Arc<Mutex<HashMap<String, Failures>>>,
    fail: Arc<redis::Script>,
    wait: Arc<redis::Script>,
}

impl Backoff {
    pub(crate) fn new(link: Option<Link>) -> Self {
        Self {
            link,
            local: Arc::default(),
            fail: Arc::new(redis::Script::new(FAIL)),
            wait: Arc::new(redis::Script::new(WAIT)),
        }
    }

    pub fn in_process() -> Self {
        Self::new(None)
    }

    /// How long `key` must still wait before it may try again, if at all.
    pub async fn wait(&self, table: &str, key_of: &str) -> Option<Duration> {
        if let Some(link) = &self.link {
            let key = key("backoff", &[table, key_of]);
            let script = self.wait.clone();
            let ms = link
                .run("back-off", |mut conn| async move {
                    script.key(key).invoke_async::<u64>(&mut conn).await
                })
                .await;
            if let Some(ms) = ms {
                return (ms > 0).then(|| Duration::from_millis(ms));
            }
        }
        let now = Instant::now();
        let entries = self.local.lock().expect("back-off table");
        let entry = entries.get(&local_key(table, key_of))?;
        (entry.blocked_until > now).then(|| entry.blocked_until - now)
    }

    /// Counts a failure of `key` under `policy`.
    pub async fn fail(&self, table: &str, key_of: &str, policy: BackoffPolicy) {
        if let Some(link) = &self.link {
            let key = key("backoff", &[table, key_of]);
            let script = self.fail.clone();
            let done = link
                .run("back-off", |mut conn| async move {
                    script
                        .key(key)
                        .arg(policy.free_attempts)
                        .arg(policy.base_delay.as_millis() as u64)
                        .arg(policy.max_delay.as_millis() as u64)
                        .invoke_async::<u64>(&mut conn)
                        .await
                })
                .await;
            if done.is_some() {
                return;
            }
        }
        self.fail_locally(&local_key(table, key_of), policy, Instant::now());
    }

    /// Forgets the failures of `key` (a successful sign-in).
    pub async fn clear(&self, table: &str, key_of: &str) {
        if let Some(link) = &self.link {
            let key = key("backoff", &[table, key_of]);
            let done = link
                .run("back-off", |mut conn| async move {
                    redis::cmd("DEL")
                        .arg(key)
                        .query_async::<i64>(&mut conn)
                        .await
                })
                .await;
            if done.is_some() {
                return;
            }
        }
        self.local
            .lock()
            .expect("back-off table")
            .remove(&local_key(table, key_of));
    }

    fn fail_locally(&self, key: &str, p: BackoffPolicy, now: Instant) {
        let mut table = self.local.lock().expect("back-off table");
        if table.len() >= MAX_KEYS {
            table.retain(|_, e| now.duration_since(e.last) < p.max_delay * 2);
            if table.len() >= MAX_KEYS {
                table.clear();
            }
        }
        let e = table.entry(key.to_owned()).or_insert(Failures {
            count: 0,
            blocked_until: now,
            last: now,
        });
        if now.duration_since(e.last) > p.max_delay * 2 {
            e.count = 0;
        }
        e.count += 1;
        e.last = now;
        if e.count > p.free_attempts {
            let doublings = (e.count - p.free_attempts - 1).min(20);
            e.blocked_until = now + p.base_delay.saturating_mul(1 << doublings).min(p.max_delay);
        }
    }
}

fn local_key(table: &str, key: &str) -> String {
    format!("{table}\u{0}{key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_bursts_then_keeps_the_steady_rate_per_key() {
        let counter = Counter::in_process();
        let rate = Rate { per_minute: 3 };
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(counter.check_locally("a", rate, t0).is_ok());
        }
        assert_eq!(
            counter.check_locally("a", rate, t0),
            Err(Duration::from_secs(20))
        );
        assert!(
            counter.check_locally("b", rate, t0).is_ok(),
            "keys are independent"
        );
        let t1 = t0 + Duration::from_secs(20);
        assert!(counter.check_locally("a", rate, t1).is_ok());
        assert!(counter.check_locally("a", rate, t1).is_err());
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(
                counter.check_locally("a", rate, t2).is_ok(),
                "a quiet minute restores the burst"
            );
        }
    }

    #[test]
    fn back_off_doubles_after_the_free_attempts_and_is_capped() {
        let backoff = Backoff::in_process();
        let p = BackoffPolicy {
            free_attempts: 2,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        };
        let start = Instant::now();
        let blocked = |b: &Backoff| b.local.lock().unwrap()["t\u{0}k"].blocked_until - start;
        backoff.fail_locally("t\u{0}k", p, start);
        backoff.fail_locally("t\u{0}k", p, start);
        assert_eq!(blocked(&backoff), Duration::ZERO);
        backoff.fail_locally("t\u{0}k", p, start);
        assert_eq!(blocked(&backoff), Duration::from_secs(1));
        backoff.fail_locally("t\u{0}k", p, start);
        assert_eq!(blocked(&backoff), Duration::from_secs(2));
        for _ in 0..30 {
            backoff.fail_locally("t\u{0}k", p, start);
        }
        assert_eq!(blocked(&backoff), Duration::from_secs(60));
    }
}
