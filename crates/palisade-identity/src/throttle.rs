//! Brute-force defence (IDN-3): failed logins are counted per account and per client network;
//! past a free allowance each further failure doubles the wait, up to a ceiling. While a key
//! waits, logins for it are refused before the password is even checked — the right password
//! included — so guessing gains nothing. Entries decay once quiet for two ceilings.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use palisade_http::rate_limit::network_key;

#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    pub free_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    blocked_until: Instant,
    last_failure: Instant,
}

/// Keys are bounded in number: a flood of distinct usernames cannot grow memory without limit.
const MAX_KEYS: usize = 100_000;

#[derive(Debug)]
struct Table {
    policy: ThrottlePolicy,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Table {
    fn new(policy: ThrottlePolicy) -> Self {
        Self {
            policy,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn wait(&self, key: &str, now: Instant) -> Option<Duration> {
        let entries = self.entries.lock().expect("throttle lock");
        let e = entries.get(key)?;
        (e.blocked_until > now).then(|| e.blocked_until - now)
    }

    fn fail(&self, key: &str, now: Instant) {
        let p = self.policy;
        let mut entries = self.entries.lock().expect("throttle lock");
        if entries.len() >= MAX_KEYS {
            let horizon = p.max_delay * 2;
            entries.retain(|_, e| now.duration_since(e.last_failure) < horizon);
        }
        let e = entries.entry(key.to_owned()).or_insert(Entry {
            failures: 0,
            blocked_until: now,
            last_failure: now,
        });
        if now.duration_since(e.last_failure) > p.max_delay * 2 {
            e.failures = 0;
        }
        e.failures += 1;
        e.last_failure = now;
        if e.failures > p.free_attempts {
            let doublings = (e.failures - p.free_attempts - 1).min(20);
            let delay = p.base_delay.saturating_mul(1 << doublings).min(p.max_delay);
            e.blocked_until = now + delay;
        }
    }

    fn clear(&self, key: &str) {
        self.entries.lock().expect("throttle lock").remove(key);
    }
}

#[derive(Debug)]
pub struct LoginThrottle {
    accounts: Table,
    networks: Table,
}

impl LoginThrottle {
    pub fn new(account: ThrottlePolicy, network: ThrottlePolicy) -> Self {
        Self {
            accounts: Table::new(account),
            networks: Table::new(network),
        }
    }

    /// How long the caller must wait before this account may try again from this address, if at
    /// all: the longer of the two waits.
    pub fn wait(&self, account: &str, ip: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let a = self.accounts.wait(account, now);
        let n = self.networks.wait(&network_key(ip), now);
        a.max(n)
    }

    pub fn record_failure(&self, account: &str, ip: IpAddr) {
        let now = Instant::now();
        self.accounts.fail(account, now);
        self.networks.fail(&network_key(ip), now);
    }

    /// A successful login clears the account's count. The network's count is left to decay, so
    /// an attacker cannot reset it by logging in to an account of their own between guesses.
    pub fn record_success(&self, account: &str) {
        self.accounts.clear(account);
    }
}

/// The key an account's password attempts count under: its address within its tenant, so that
/// failures against one organisation's account neither lock out nor are reset by another's.
pub(crate) fn account_key(tenant: &str, normalized_email: &str) -> String {
    format!("{tenant}\u{0}{normalized_email}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(free: u32) -> ThrottlePolicy {
        ThrottlePolicy {
            free_attempts: free,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }

    #[test]
    fn back_off_doubles_after_the_free_attempts_and_is_capped() {
        let t = Table::new(policy(2));
        let start = Instant::now();
        t.fail("k", start);
        t.fail("k", start);
        assert_eq!(t.wait("k", start), None);
        t.fail("k", start);
        assert_eq!(t.wait("k", start), Some(Duration::from_secs(1)));
        t.fail("k", start);
        assert_eq!(t.wait("k", start), Some(Duration::from_secs(2)));
        for _ in 0..30 {
            t.fail("k", start);
        }
        assert_eq!(t.wait("k", start), Some(Duration::from_secs(60)));
        assert_eq!(t.wait("k", start + Duration::from_secs(61)), None);
    }

    #[test]
    fn accounts_and_networks_are_independent() {
        let t = LoginThrottle::new(policy(1), policy(100));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        t.record_failure("alice", a);
        t.record_failure("alice", a);
        assert!(t.wait("alice", a).is_some());
        assert!(
            t.wait("alice", b).is_some(),
            "account back-off applies from any address"
        );
        assert!(t.wait("bob", b).is_none());
        t.record_success("alice");
        assert!(t.wait("alice", b).is_none());
    }
}
