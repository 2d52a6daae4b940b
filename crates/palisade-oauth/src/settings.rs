//! The provider's settings: `[oauth]` and `[tokens]`.

use palisade_jose::Algorithm;
use serde::{Deserialize, Serialize};

/// `[oauth]`: the OAuth 2.1 / OpenID Connect provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthSettings {
    /// Resource indicators tokens may be issued for; default `<public URL>/api`. The first is
    /// this server's own API.
    pub resources: Vec<String>,
    /// Scopes clients may be registered for, besides OpenID Connect's.
    pub scopes: Vec<String>,
    /// Tolerated clock difference when checking token times (at most 120).
    pub clock_skew_seconds: u32,
    pub refresh_token_days: u32,
    /// Refreshes of one refresh token within this window are concurrent refreshes (two tabs),
    /// answered with the same successor, not theft (at most 2000).
    pub refresh_grace_ms: u32,
    /// Dynamic client registration without an initial access token.
    pub open_registration: bool,
    /// Hex SHA-256 digests of initial access tokens for (closed) dynamic registration.
    pub registration_token_sha256: Vec<String>,
    /// When not empty, dynamically registered redirect URIs must be on these hosts.
    pub registration_allowed_hosts: Vec<String>,
    /// Dynamic registrations accepted per client address and minute (a burst of as many).
    pub registration_per_minute: u32,
    /// Require DPoP proofs to carry a server nonce (RFC 9449 §8).
    pub dpop_nonces: bool,
}

impl Default for OAuthSettings {
    fn default() -> Self {
        Self {
            resources: Vec::new(),
            scopes: [
                "audit:write",
                "social:read",
                "social:write",
                "messages",
                "moderation",
            ]
            .map(String::from)
            .to_vec(),
            clock_skew_seconds: 30,
            refresh_token_days: 30,
            refresh_grace_ms: 2000,
            open_registration: false,
            registration_token_sha256: Vec::new(),
            registration_allowed_hosts: Vec::new(),
            registration_per_minute: 10,
            dpop_nonces: true,
        }
    }
}

impl OAuthSettings {
    pub fn validate(&self) -> Result<(), String> {
        palisade_http::ApiKeys::from_hex_digests(&self.registration_token_sha256)
            .map_err(|e| format!("oauth.registration_token_sha256: {e}"))?;
        if self.registration_per_minute == 0 {
            return Err("oauth.registration_per_minute must be positive".into());
        }
        if self.refresh_grace_ms > 2000 || self.refresh_token_days == 0 {
            return Err(
                "oauth.refresh_grace_ms must be at most 2000 and oauth.refresh_token_days positive"
                    .into(),
            );
        }
        if i64::from(self.clock_skew_seconds) > palisade_jose::verify::MAX_SKEW_SECONDS {
            return Err("oauth.clock_skew_seconds must be at most 120".into());
        }
        if let Some(r) = self.resources.iter().find(|r| !r.starts_with("https://")) {
            return Err(format!("oauth.resources: `{r}` must be an https URL"));
        }
        Ok(())
    }
}

/// `[tokens]`: signing and lifetimes (TOK-1..3).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSettings {
    /// `EdDSA` (Ed25519, the default) or `ES256`.
    pub signing_algorithm: Algorithm,
    /// Scheduled rotation of the signing key.
    pub key_rotation_days: u32,
    /// How long clients may cache the JWKS; a new key is published this long before it signs.
    pub jwks_cache_seconds: u32,
    /// Access tokens live 5-15 minutes.
    pub access_token_minutes: u32,
    pub id_token_minutes: u32,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            signing_algorithm: Algorithm::EdDSA,
            key_rotation_days: 30,
            jwks_cache_seconds: 3600,
            access_token_minutes: 10,
            id_token_minutes: 60,
        }
    }
}

impl TokenSettings {
    pub fn validate(&self) -> Result<(), String> {
        if !(5..=15).contains(&self.access_token_minutes) {
            return Err("tokens.access_token_minutes must be between 5 and 15".into());
        }
        if self.id_token_minutes == 0 || self.key_rotation_days == 0 {
            return Err(
                "tokens.id_token_minutes and tokens.key_rotation_days must be positive".into(),
            );
        }
        Ok(())
    }

    /// The signing-key lifecycle these settings describe (TOK-2, TOK-3).
    pub fn key_policy(&self) -> palisade_jose::keyring::KeyPolicy {
        palisade_jose::keyring::KeyPolicy {
            algorithm: self.signing_algorithm,
            rotation_interval_ms: i64::from(self.key_rotation_days) * 86_400_000,
            publish_ahead_ms: i64::from(self.jwks_cache_seconds) * 1000,
            // Tokens live at most this long, plus the largest clock skew a verifier allows.
            retire_after_ms: (i64::from(self.access_token_minutes.max(self.id_token_minutes)) * 60
                + palisade_jose::verify::MAX_SKEW_SECONDS)
                * 1000,
        }
    }
}
