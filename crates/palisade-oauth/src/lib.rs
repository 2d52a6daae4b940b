//! The OAuth 2.1 / OpenID Connect provider (OAU-*, TOK-1, TOK-4, TOK-5): the client registry and
//! client authentication; the authorization endpoint with PKCE, consent and session-bound codes;
//! the token endpoint (`authorization_code`, `client_credentials`) issuing RFC 9068 access tokens
//! and ID tokens; userinfo; RFC 7662 introspection; discovery; and the one access-token
//! verification function resources use.

pub mod admin;
mod apps;
mod authorize;
mod backchannel;
pub mod clients;
pub mod codes;
pub mod dpop;
pub mod error;
mod logout;
mod once;
pub mod principal;
mod registration;
pub mod resource;
mod routes;
mod token;

use palisade_audit::Auditor;
use palisade_identity::Identity;
use palisade_jose::jws;
use palisade_jose::keyring::KeyRing;
use palisade_jose::verify::{Expectations, TokenError, verify};
use palisade_store::{Db, now_ms};
use serde_json::{Map, Value, json};
use std::sync::Arc;

pub use routes::router;

/// Percent-encoding for query values sent back to clients: everything but RFC 3986's
/// unreserved characters.
pub(crate) const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// The issuer identifier: an https URL without query or fragment, matched exactly.
    pub issuer: String,
    /// Resource indicators (RFC 8707) tokens may be issued for; the first is the default.
    pub resources: Vec<String>,
    /// Scopes clients may be registered for, beyond OpenID Connect's.
    pub scopes: Vec<String>,
    pub access_token_minutes: u32,
    pub id_token_minutes: u32,
    pub refresh_token_days: u32,
    /// A rotated refresh token presented again within this window is a concurrent legitimate
    /// refresh, not a reuse (OAU-5).
    pub refresh_grace_ms: i64,
    pub skew_seconds: i64,
    pub registration: RegistrationPolicy,
    /// The key DPoP nonces are made with; `None` turns server nonces off (RFC 9449 §8).
    pub dpop_nonce_key: Option<[u8; 32]>,
    /// Requests to protected resources per minute (RES-7).
    pub api: principal::Allowance,
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

#[derive(Clone)]
pub struct OAuth(Arc<Inner>);

struct Inner {
    db: Db,
    keys: KeyRing,
    auditor: Auditor,
    identity: Identity,
    clients: clients::ClientCache,
    /// Dynamic registrations per client network (OAU-9).
    registrations: palisade_http::rate_limit::RateLimiter,
    /// Protected-resource requests per network, user and client (RES-7).
    api_limits: principal::Limits,
    config: OAuthConfig,
}

/// An access token that verified: its claims, and for a user's token the account it was
/// checked against.
pub struct Verified {
    pub claims: Map<String, Value>,
    pub user: Option<palisade_identity::users::User>,
}

/// An access token as issued.
pub struct AccessToken {
    pub token: String,
    pub expires_in: i64,
    pub scope: String,
}

impl OAuth {
    pub fn new(
        db: Db,
        keys: KeyRing,
        auditor: Auditor,
        identity: Identity,
        config: OAuthConfig,
    ) -> Self {
        Self(Arc::new(Inner {
            db,
            keys,
            auditor,
            identity,
            clients: clients::ClientCache::default(),
            registrations: palisade_http::rate_limit::RateLimiter::per_minute(
                config.registration.per_minute,
            ),
            api_limits: principal::Limits::new(config.api),
            config,
        }))
    }

    pub fn config(&self) -> &OAuthConfig {
        &self.0.config
    }

    /// Signs an RFC 9068 access token for `subject` of `tenant`, obtained through
    /// `client_id`; `extra` claims (session, grant, revocation epoch) are added as given.
    pub fn issue_access_token(
        &self,
        subject: &str,
        tenant: &str,
        client_id: &str,
        scope: &str,
        audience: &str,
        extra: Map<String, Value>,
    ) -> AccessToken {
        let now = now_ms() / 1000;
        let lifetime = i64::from(self.0.config.access_token_minutes) * 60;
        let claims = json!({
            "iss": self.0.config.issuer,
            "sub": subject,
            "aud": audience,
            "client_id": client_id,
            "scope": scope,
            "jti": palisade_crypto::random_token(),
            "iat": now,
            "exp": now + lifetime,
            "tenant": tenant,
        });
        let Value::Object(mut claims) = claims else {
            unreachable!("a JSON object literal")
        };
        claims.extend(extra);
        AccessToken {
            token: jws::sign(&self.0.keys.signing_key(), "at+jwt", &claims),
            expires_in: lifetime,
            scope: scope.to_owned(),
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

    /// The verification every resource applies to an access token (TOK-5, TOK-4): signed by a
    /// published key under its own algorithm, `typ` `at+jwt`, this issuer, an audience among
    /// this server's resources (or exactly `audience` when given), within its lifetime; and for
    /// a user's token, its grant not revoked and the user's revocation epoch not raised since.
    pub async fn verify_access_token(
        &self,
        token: &str,
        audience: Option<&str>,
    ) -> Result<Map<String, Value>, TokenError> {
        Ok(self.verify_access_token_of(token, audience).await?.claims)
    }

    /// [`OAuth::verify_access_token`], also handing back the account a user's token was checked
    /// against, so that callers needing it (the principal, userinfo) do not read it again.
    pub(crate) async fn verify_access_token_of(
        &self,
        token: &str,
        audience: Option<&str>,
    ) -> Result<Verified, TokenError> {
        let claims = self.verify_signed(token, audience)?;
        let db = &self.0.db;
        // The grant and the account are read at once: each is a round trip to the database.
        let grant_live = async {
            match claims.get("gid").and_then(Value::as_str) {
                Some(grant) => codes::grant_is_live(db, grant).await.unwrap_or(false),
                None => true,
            }
        };
        let account = async {
            let epoch = claims.get("rev").and_then(Value::as_i64)?;
            let subject = claims
                .get("sub")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let user = palisade_identity::users::get(db, subject)
                .await
                .ok()
                .flatten();
            Some(user.filter(|u| u.revocation_epoch == epoch && u.locked == 0))
        };
        let (grant_live, account) = tokio::join!(grant_live, account);
        if !grant_live {
            return Err(TokenError::Claim("gid"));
        }
        match account {
            // A user's token: the account must exist, be unlocked and have the same epoch.
            Some(user) => {
                let user = user.ok_or(TokenError::Claim("rev"))?;
                Ok(Verified {
                    claims,
                    user: Some(user),
                })
            }
            None => Ok(Verified { claims, user: None }),
        }
    }

    fn verify_signed(
        &self,
        token: &str,
        audience: Option<&str>,
    ) -> Result<Map<String, Value>, TokenError> {
        let config = &self.0.config;
        let claims = verify(
            token,
            &self.0.keys.published(),
            &Expectations {
                typ: "at+jwt",
                issuer: &config.issuer,
                audience,
                now: now_ms() / 1000,
                skew_seconds: config.skew_seconds,
            },
        )?;
        let ours = match claims.get("aud") {
            Some(Value::String(a)) => config.resources.contains(a),
            Some(Value::Array(list)) => list.iter().any(|a| {
                a.as_str()
                    .is_some_and(|a| config.resources.iter().any(|r| r == a))
            }),
            _ => false,
        };
        if !ours {
            return Err(TokenError::Claim("aud"));
        }
        Ok(claims)
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

    /// Whether `token`, presented as a bearer token, is a valid access token granting `scope`.
    /// A DPoP-bound token is not: it is only good with a proof of its key.
    pub async fn token_grants(&self, token: &str, scope: &str) -> bool {
        self.verify_access_token(token, None)
            .await
            .is_ok_and(|claims| {
                !claims.contains_key("cnf")
                    && claims
                        .get("scope")
                        .and_then(Value::as_str)
                        .is_some_and(|s| s.split(' ').any(|s| s == scope))
            })
    }
}
