use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[identity]` configuration. Defaults follow OWASP's password-storage cheat sheet for argon2id
/// (19 MiB, 2 passes, 1 lane) and conservative session lifetimes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// Password hashes computed at once; 0 means half the cores (at least one), which leaves the
    /// rest for every other endpoint during a login flood (IDN-3).
    pub hash_concurrency: usize,
    /// Logins that may wait for a hashing slot; beyond that the server answers 503 at once.
    pub hash_queue: usize,
    pub session_idle_minutes: u64,
    pub session_absolute_hours: u64,
    /// Failed logins per account before back-off starts.
    pub throttle_account_free_attempts: u32,
    /// Failed logins per client address before back-off starts.
    pub throttle_ip_free_attempts: u32,
    pub throttle_base_delay_ms: u64,
    pub throttle_max_delay_seconds: u64,
    pub min_password_length: usize,
    pub totp_issuer: String,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            hash_concurrency: 0,
            hash_queue: 64,
            session_idle_minutes: 60 * 12,
            session_absolute_hours: 24 * 14,
            throttle_account_free_attempts: 5,
            throttle_ip_free_attempts: 20,
            throttle_base_delay_ms: 1_000,
            throttle_max_delay_seconds: 900,
            min_password_length: 10,
            totp_issuer: "Palisade".into(),
        }
    }
}

impl IdentityConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.argon2_memory_kib < 8 * 1024 {
            return Err("identity.argon2_memory_kib must be at least 8192".into());
        }
        if self.argon2_iterations == 0 || self.argon2_parallelism == 0 {
            return Err(
                "identity.argon2_iterations and argon2_parallelism must be positive".into(),
            );
        }
        if self.session_idle_minutes == 0 || self.session_absolute_hours == 0 {
            return Err(
                "identity.session_idle_minutes and session_absolute_hours must be positive".into(),
            );
        }
        if self.min_password_length < 8 {
            return Err("identity.min_password_length must be at least 8".into());
        }
        if self.throttle_account_free_attempts == 0 || self.throttle_ip_free_attempts == 0 {
            return Err("identity.throttle_*_free_attempts must be positive".into());
        }
        Ok(())
    }

    pub fn session_idle(&self) -> Duration {
        Duration::from_secs(self.session_idle_minutes * 60)
    }

    pub fn session_absolute(&self) -> Duration {
        Duration::from_secs(self.session_absolute_hours * 3600)
    }

    pub fn hash_slots(&self) -> usize {
        if self.hash_concurrency > 0 {
            return self.hash_concurrency;
        }
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        (cores / 2).max(1)
    }
}
