//! The OAuth 2.1 / OpenID Connect provider (OAU-*, TOK-1, TOK-4, TOK-5): the client registry and
//! client authentication; the authorization endpoint with PKCE, consent and session-bound codes;
//! the token endpoint (`authorization_code`, `refresh_token`, `client_credentials`) issuing
//! RFC 9068 access tokens and ID tokens; userinfo; RFC 7662 introspection; RFC 7009 revocation;
//! discovery; dynamic registration; RP-initiated and back-channel logout.
//!
//! What resources accept is not decided here: they ask `palisade-principal`'s authenticator,
//! which this provider also uses for userinfo and introspection.
// Library code handles every failure; tests and examples may unwrap.
#![warn(clippy::unwrap_used)]

pub mod admin;
mod apps;
mod authorize;
mod backchannel;
mod client_auth;
pub mod clients;
pub mod codes;
mod discovery;
mod endpoint;
pub mod error;
mod introspection;
mod logout;
mod redirect_uri;
mod registration;
mod revocation;
mod routes;
mod settings;
mod token;
mod userinfo;

pub use backchannel::jobs as backchannel_jobs;
pub use endpoint::{ClientGuard, RegistrationGuard};
pub use redirect_uri::RedirectUri;
pub use routes::router;
pub use settings::{OAuthSettings, TokenSettings};

use palisade_audit::Auditor;
use palisade_cluster::Cluster;
use palisade_http::egress::Egress;
use palisade_identity::Identity;
use palisade_jose::jws;
use palisade_jose::keyring::KeyRing;
use palisade_jose::verify::{Expectations, verify};
use palisade_principal::{AccessClaims, Audience, Authenticator, Confirmation, Scopes, TenantId};
use palisade_store::{Db, now_ms};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Percent-encoding for query values sent back to clients: everything but RFC 3986's
/// unreserved characters.
pub(crate) const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The provider's configuration, as the binary derives it from [`OAuthSettings`],
/// [`TokenSettings`] and the public URL.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// The issuer identifier: an https URL without query or fragment, matched exactly.
    pub issuer: String,
    /// Resource indicators (RFC 8707) tokens may be issued for; the first is this server's own
    /// API (and userinfo).
    pub resources: Vec<String>,
    /// Scopes clients may be registered for, beyond OpenID Connect's.
    pub scopes: Vec<String>,
    pub access_token_minutes: u32,
    pub id_token_minutes: u32,
    pub refresh_token_days: u32,
    /// Refreshes of one token within this window all get its one successor (OAU-5).
    pub refresh_grace_ms: i64,
    /// The key successors of refresh tokens are derived with (so none is stored in clear).
    pub refresh_key: [u8; 32],
    pub skew_seconds: i64,
    pub registration: RegistrationPolicy,
    /// The base URL of the mutual-TLS listener, when there is one: where clients authenticate
    /// with their certificates and get certificate-bound tokens (RFC 8705 §5).
    pub mtls_base: Option<String>,
}

/// Who may register clients dynamically (OAU-9).
#[derive(Clone, Default)]
pub struct RegistrationPolicy {
    /// Anyone, without an initial access token.
    pub open: bool,
    /// Initial access tokens (only their digests are configured) for closed registration.
    pub initial_tokens: palisade_http::ApiKeys,
    /// When not empty, redirect URIs must be on these hosts.
    pub allowed_hosts: Vec<String>,
    /// Registrations accepted per client network and minute.
    pub per_minute: u32,
}

impl std::fmt::Debug for RegistrationPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrationPolicy")
            .field("open", &self.open)
            .field("allowed_hosts", &self.allowed_hosts)
            .finish_non_exhaustive()
    }
}

/// What the provider works with.
pub struct Parts {
    pub db: Db,
    pub keys: KeyRing,
    pub auditor: Auditor,
    pub identity: Identity,
    /// The authenticator of this server's own resource (userinfo, introspection).
    pub authenticator: Authenticator,
    pub cluster: Cluster,
    pub jobs: palisade_jobs::Jobs,
    pub egress: Egress,
}

#[derive(Clone)]
pub struct OAuth(Arc<Inner>);

struct Inner {
    db: Db,
    keys: KeyRing,
    auditor: Auditor,
    identity: Identity,
    auth: Authenticator,
    cluster: Cluster,
    clients: clients::ClientCache,
    jobs: palisade_jobs::Jobs,
    egress: Egress,
    config: OAuthConfig,
}

/// An access token as issued.
pub struct AccessToken {
    pub token: String,
    pub expires_in: i64,
    pub scope: String,
}

/// What an access token is issued for.
pub struct TokenFor<'a> {
    pub subject: &'a str,
    pub tenant: &'a str,
    pub client_id: &'a str,
    pub scope: &'a str,
    pub audience: &'a str,
    /// For a user's token: the session handle, the grant and the account's revocation epoch.
    pub user: Option<UserBinding<'a>>,
    /// The DPoP key the token is bound to.
    pub jkt: Option<&'a str>,
    /// The client certificate the token is bound to (RFC 8705), by its SHA-256 thumbprint.
    pub x5t: Option<&'a str>,
}

pub struct UserBinding<'a> {
    pub sid: &'a str,
    pub grant: &'a str,
    pub epoch: i64,
}

impl OAuth {
    pub fn new(parts: Parts, config: OAuthConfig) -> Self {
        Self(Arc::new(Inner {
            clients: clients::ClientCache::new(parts.cluster.bus.clone()),
            db: parts.db,
            keys: parts.keys,
            auditor: parts.auditor,
            identity: parts.identity,
            auth: parts.authenticator,
            cluster: parts.cluster,
            jobs: parts.jobs,
            egress: parts.egress,
            config,
        }))
    }

    pub fn config(&self) -> &OAuthConfig {
        &self.0.config
    }

    /// The client cache, whose `follow` task applies other nodes' changes.
    pub fn client_cache(&self) -> clients::ClientCache {
        self.0.clients.clone()
    }

    /// Signs an RFC 9068 access token.
    pub fn issue_access_token(&self, t: TokenFor<'_>) -> AccessToken {
        let now = now_ms() / 1000;
        let lifetime = i64::from(self.0.config.access_token_minutes) * 60;
        let claims = AccessClaims {
            iss: self.0.config.issuer.clone(),
            sub: t.subject.to_owned(),
            aud: Audience::One(t.audience.to_owned()),
            client_id: t.client_id.to_owned(),
            scope: Scopes::parse(t.scope),
            jti: palisade_crypto::random_token(),
            iat: now,
            exp: now + lifetime,
            tenant: TenantId::new(t.tenant),
            sid: t.user.as_ref().map(|u| u.sid.to_owned()),
            gid: t.user.as_ref().map(|u| u.grant.to_owned()),
            rev: t.user.as_ref().map(|u| u.epoch),
            cnf: (t.jkt.is_some() || t.x5t.is_some()).then(|| Confirmation {
                jkt: t.jkt.map(str::to_owned),
                x5t_s256: t.x5t.map(str::to_owned),
            }),
        };
        AccessToken {
            token: jws::sign(&self.0.keys.signing_key(), "at+jwt", &claims),
            expires_in: lifetime,
            scope: claims.scope.to_string(),
        }
    }

    /// Signs an OpenID Connect ID token for `claims` (subject, audience, nonce, …).
    pub fn issue_id_token(&self, mut claims: Map<String, Value>) -> String {
        let now = now_ms() / 1000;
        claims.insert("iss".into(), self.0.config.issuer.clone().into());
        claims.insert("iat".into(), now.into());
        claims.insert(
            "exp".into(),
            (now + i64::from(self.0.config.id_token_minutes) * 60).into(),
        );
        jws::sign(&self.0.keys.signing_key(), "JWT", &claims)
    }

    /// The claims of an ID token of ours, for hints (`aud` is the client it was issued to,
    /// `sub` the user): the signature and issuer must hold, but the token may have expired
    /// (RP-initiated logout and `prompt=none` accept old hints).
    pub fn verify_id_token_hint(&self, token: &str) -> Option<Map<String, Value>> {
        let parts = jws::split(token)?;
        let unverified: Map<String, Value> = serde_json::from_slice(&parts.payload).ok()?;
        let exp = unverified.get("exp")?.as_i64()?;
        verify(
            token,
            &self.0.keys.published(),
            &Expectations {
                typ: "JWT",
                issuer: &self.0.config.issuer,
                audience: None,
                // Checked as of just before it expired: only the signature and issuer matter.
                now: exp - 1,
                skew_seconds: 0,
            },
        )
        .ok()
    }
}
