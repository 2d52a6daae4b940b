//! Request rate limits (OAU-9 registration, and RES-7 to come): a generic cell rate algorithm
//! per key — a steady rate with a burst of the same size — kept in memory with a bounded
//! number of keys. A refused request learns how long to wait (`Retry-After`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys are bounded in number: a flood of distinct keys cannot grow memory without limit.
const MAX_KEYS: usize = 100_000;

#[derive(Debug)]
pub struct RateLimiter {
    /// Time between two requests at the steady rate.
    interval: Duration,
    /// How far ahead of now a key's theoretical arrival time may run: the burst.
    tolerance: Duration,
    /// Each key's theoretical arrival time of its next request.
    next: Mutex<HashMap<String, Instant>>,
}

impl RateLimiter {
    /// `per_minute` requests a minute, any `per_minute` of them at once.
    pub fn per_minute(per_minute: u32) -> Self {
        let interval = Duration::from_secs(60) / per_minute.max(1);
        Self {
            interval,
            tolerance: interval * per_minute.max(1),
            next: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a request for `key`: `Ok` if it is within the limit, else how long to wait.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut next = self.next.lock().expect("rate limiter lock");
        if next.len() >= MAX_KEYS {
            next.retain(|_, at| *at > now);
        }
        let at = next.get(key).copied().unwrap_or(now).max(now);
        let after = at + self.interval;
        if after > now + self.tolerance {
            return Err(after - (now + self.tolerance));
        }
        next.insert(key.to_owned(), after);
        Ok(())
    }
}

/// The network a client address counts for: itself for IPv4, its /64 for IPv6 (the smallest
/// block a single subscriber usually holds).
pub fn network_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_the_steady_rate_per_key() {
        let limiter = RateLimiter::per_minute(3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at("a", t0).is_ok());
        }
        let wait = limiter.check_at("a", t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(20));
        // Another key is not affected.
        assert!(limiter.check_at("b", t0).is_ok());
        // After one interval, one more request; not two.
        let t1 = t0 + Duration::from_secs(20);
        assert!(limiter.check_at("a", t1).is_ok());
        assert!(limiter.check_at("a", t1).is_err());
        // A quiet minute restores the whole burst.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(limiter.check_at("a", t2).is_ok());
        }
        assert!(limiter.check_at("a", t2).is_err());
    }

    #[test]
    fn ipv6_addresses_count_per_64() {
        assert_eq!(
            network_key("2001:db8:1:2:aaaa::1".parse().unwrap()),
            network_key("2001:db8:1:2:bbbb::9".parse().unwrap())
        );
        assert_ne!(
            network_key("192.0.2.1".parse().unwrap()),
            network_key("192.0.2.2".parse().unwrap())
        );
    }
}
