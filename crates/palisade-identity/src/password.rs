//! Password hashing with argon2id (IDN-1) behind a bounded gate (IDN-3): at most `slots` hashes
//! run at once on the blocking pool and at most `queue` wait; anything beyond is refused at once
//! with a retryable error. A flood of logins therefore costs a fixed share of the CPU and never
//! the whole of it.

use crate::config::IdentityConfig;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use palisade_crypto::Secret;
use palisade_http::AppError;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;

pub struct PasswordHasher {
    argon2: Argon2<'static>,
    slots: Semaphore,
    /// Logins holding or waiting for a slot.
    admitted: AtomicUsize,
    /// Slots plus queue: the most logins admitted at once.
    capacity: usize,
    /// A hash of a random password with the current parameters, verified when the account does
    /// not exist so that unknown and known accounts cost the same time (IDN-2).
    dummy_hash: String,
    in_flight: Gauge,
}

impl PasswordHasher {
    pub fn new(config: &IdentityConfig, in_flight: Gauge) -> Result<Arc<Self>, String> {
        let params = Params::new(
            config.argon2_memory_kib,
            config.argon2_iterations,
            config.argon2_parallelism,
            None,
        )
        .map_err(|e| format!("argon2 parameters: {e}"))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let salt = SaltString::encode_b64(&palisade_crypto::random_bytes::<16>())
            .map_err(|e| e.to_string())?;
        let dummy_hash = argon2
            .hash_password(palisade_crypto::random_token().as_bytes(), &salt)
            .map_err(|e| e.to_string())?
            .to_string();
        Ok(Arc::new(Self {
            argon2,
            slots: Semaphore::new(config.hash_slots()),
            admitted: AtomicUsize::new(0),
            capacity: config.hash_slots() + config.hash_queue,
            dummy_hash,
            in_flight,
        }))
    }

    pub async fn hash(self: &Arc<Self>, password: Secret<String>) -> Result<String, AppError> {
        self.run(move |this| {
            let salt = SaltString::encode_b64(&palisade_crypto::random_bytes::<16>())
                .map_err(|e| AppError::internal(e.to_string()))?;
            this.argon2
                .hash_password(password.expose().as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| AppError::internal(format!("argon2: {e}")))
        })
        .await
    }

    /// Verifies `password` against `stored`, or against the dummy hash when there is no account,
    /// in which case the answer is always false.
    pub async fn verify(
        self: &Arc<Self>,
        password: Secret<String>,
        stored: Option<String>,
    ) -> Result<bool, AppError> {
        self.run(move |this| {
            let exists = stored.is_some();
            let encoded = stored.unwrap_or_else(|| this.dummy_hash.clone());
            let parsed = PasswordHash::new(&encoded)
                .map_err(|e| AppError::internal(format!("stored hash unreadable: {e}")))?;
            let ok = this
                .argon2
                .verify_password(password.expose().as_bytes(), &parsed)
                .is_ok();
            Ok(ok && exists)
        })
        .await
    }

    async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Self) -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        let busy = AppError::Unavailable {
            retry_after: Duration::from_secs(1),
        };
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(busy);
        }
        let _admission = Admission(&self.admitted);
        let _permit = self
            .slots
            .acquire()
            .await
            .map_err(|_| AppError::internal("hash gate closed"))?;
        self.in_flight.inc();
        let this = Arc::clone(self);
        let result = tokio::task::spawn_blocking(move || work(&this)).await;
        self.in_flight.dec();
        result.map_err(|_| AppError::internal("password hashing task failed"))?
    }
}

/// Releases an admission when the login finishes or its request is dropped mid-wait.
struct Admission<'a>(&'a AtomicUsize);

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast_config() -> IdentityConfig {
        IdentityConfig {
            argon2_memory_kib: 8192,
            argon2_iterations: 1,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let h = PasswordHasher::new(&fast_config(), Gauge::default()).unwrap();
        let hash = h.hash(Secret::new("correct horse".into())).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"));
        assert!(
            h.verify(Secret::new("correct horse".into()), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !h.verify(Secret::new("wrong horse".into()), Some(hash))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn unknown_accounts_never_verify() {
        let h = PasswordHasher::new(&fast_config(), Gauge::default()).unwrap();
        assert!(!h.verify(Secret::new(String::new()), None).await.unwrap());
    }
}
