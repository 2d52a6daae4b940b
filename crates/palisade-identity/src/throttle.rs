//! Brute-force defence (IDN-3): failed logins are counted per account and per client network;
//! past a free allowance each further failure doubles the wait, up to a ceiling. While a key
//! waits, logins for it are refused before the password is even checked — the right password
//! included — so guessing gains nothing. The counts are the cluster's ([`Backoff`]): shared by
//! every node through Redis, so spreading guesses over nodes gains nothing either.

use palisade_cluster::{Backoff, BackoffPolicy};
use palisade_http::client_ip::network_key;
use std::net::IpAddr;
use std::time::Duration;

#[derive(Clone)]
pub struct LoginThrottle {
    backoff: Backoff,
    account: BackoffPolicy,
    network: BackoffPolicy,
}

const ACCOUNTS: &str = "login.account";
const NETWORKS: &str = "login.network";

impl LoginThrottle {
    pub fn new(backoff: Backoff, account: BackoffPolicy, network: BackoffPolicy) -> Self {
        Self {
            backoff,
            account,
            network,
        }
    }

    /// How long the caller must wait before this account may try again from this address, if at
    /// all: the longer of the two waits.
    pub async fn wait(&self, account: &str, ip: IpAddr) -> Option<Duration> {
        let network = network_key(ip);
        let (a, n) = tokio::join!(
            self.backoff.wait(ACCOUNTS, account),
            self.backoff.wait(NETWORKS, &network)
        );
        a.max(n)
    }

    pub async fn record_failure(&self, account: &str, ip: IpAddr) {
        let network = network_key(ip);
        tokio::join!(
            self.backoff.fail(ACCOUNTS, account, self.account),
            self.backoff.fail(NETWORKS, &network, self.network)
        );
    }

    /// A successful login clears the account's count. The network's count is left to decay, so
    /// an attacker cannot reset it by logging in to an account of their own between guesses.
    pub async fn record_success(&self, account: &str) {
        self.backoff.clear(ACCOUNTS, account).await;
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

    fn policy(free: u32) -> BackoffPolicy {
        BackoffPolicy {
            free_attempts: free,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }

    #[tokio::test]
    async fn accounts_and_networks_are_independent() {
        let t = LoginThrottle::new(Backoff::in_process(), policy(1), policy(100));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        t.record_failure("alice", a).await;
        t.record_failure("alice", a).await;
        assert!(t.wait("alice", a).await.is_some());
        assert!(
            t.wait("alice", b).await.is_some(),
            "account back-off applies from any address"
        );
        assert!(t.wait("bob", b).await.is_none());
        t.record_success("alice").await;
        assert!(t.wait("alice", b).await.is_none());
    }
}
