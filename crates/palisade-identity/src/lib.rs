//! Identity (IDN-1..7): accounts with argon2id passwords, browser sessions in `__Host-`
//! cookies, CSRF-protected forms, throttled logins, TOTP with replay protection, recovery codes,
//! passkeys, and the pages for all of it. Every security event goes through the auditor.
// Library code handles every failure; tests and examples may unwrap.
#![warn(clippy::unwrap_used)]

pub mod assurance;
pub mod config;
pub mod cookies;
pub mod csrf;
pub mod pages;
pub mod passkeys;
pub mod password;
pub mod recovery;
pub mod sessions;
pub mod tenants;
pub mod throttle;
pub mod totp;
pub mod users;
pub mod webauthn;

mod account;
mod context;
mod login;
mod routes;

pub use config::IdentityConfig;
pub use context::{RequestContext, SessionGuard, SignedIn};
pub use login::{check_password_rules, end_session};
pub use routes::router;

use palisade_audit::Auditor;
use palisade_cluster::{Backoff, BackoffPolicy};
use palisade_crypto::SealingKey;
use palisade_principal::Revocations;
use palisade_store::Db;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::{counter::Counter, family::Family, gauge::Gauge};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;
use throttle::LoginThrottle;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Default)]
pub struct IdentityMetrics {
    pub logins: Family<OutcomeLabel, Counter>,
    pub hashes_in_flight: Gauge,
}

impl IdentityMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "identity_logins",
            "Login attempts by outcome",
            m.logins.clone(),
        );
        registry.register(
            "identity_password_hashes_in_flight",
            "Password hashes being computed",
            m.hashes_in_flight.clone(),
        );
        m
    }
}

/// What identity works with.
pub struct Parts {
    pub db: Db,
    pub auditor: Auditor,
    pub sealing: SealingKey,
    pub metrics: IdentityMetrics,
    pub backoff: Backoff,
    pub revocations: Revocations,
    pub relying_party: webauthn::RelyingParty,
}

/// Everything the identity handlers share.
#[derive(Clone)]
pub struct Identity(Arc<Inner>);

pub struct Inner {
    pub db: Db,
    pub auditor: Auditor,
    pub hasher: Arc<password::PasswordHasher>,
    pub throttle: LoginThrottle,
    pub sealing: SealingKey,
    pub config: IdentityConfig,
    pub metrics: IdentityMetrics,
    /// Tells every node's resources when an account's revocation state changes (TOK-4).
    pub revocations: Revocations,
    /// Passkeys are for this site (from the public URL).
    pub relying_party: webauthn::RelyingParty,
    /// The tenant of open sign-up, and of sign-in when no organisation is named (IDN-8).
    pub tenant: String,
}

impl std::ops::Deref for Identity {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Identity {
    pub fn new(parts: Parts, config: IdentityConfig) -> Result<Self, String> {
        let Parts {
            db,
            auditor,
            sealing,
            metrics,
            backoff,
            revocations,
            relying_party,
        } = parts;
        config.validate()?;
        let hasher = password::PasswordHasher::new(&config, metrics.hashes_in_flight.clone())?;
        let policy = |free| BackoffPolicy {
            free_attempts: free,
            base_delay: Duration::from_millis(config.throttle_base_delay_ms),
            max_delay: Duration::from_secs(config.throttle_max_delay_seconds),
        };
        let throttle = LoginThrottle::new(
            backoff,
            policy(config.throttle_account_free_attempts),
            policy(config.throttle_ip_free_attempts),
        );
        Ok(Self(Arc::new(Inner {
            db,
            auditor,
            hasher,
            throttle,
            sealing,
            config,
            metrics,
            revocations,
            relying_party,
            tenant: palisade_store::DEFAULT_TENANT.into(),
        })))
    }
}
