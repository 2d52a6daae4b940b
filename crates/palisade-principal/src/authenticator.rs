//! The one authentication of a resource request (RES-1, TOK-4, TOK-5, OAU-10), for REST and
//! WebSockets alike: credentials in, a [`Principal`] out, no HTTP request needed.
//!
//! In order, cheapest and stateless first, the one write last:
//! 1. the token's signature by a published key and its claims (RFC 8725 via
//!    `palisade_jose::verify`, once per token and node while its key is published), typed into
//!    [`AccessClaims`]; its audience must be this resource —
//!    a token minted for another resource of the same issuer is not accepted here;
//! 2. the scheme: an unbound token is a Bearer token; a token bound to a key (`cnf.jkt`) only
//!    with a DPoP proof of that key for this very request (method, URI, token hash, nonce);
//! 3. revocation: a user's token must name the account's current revocation epoch, an unlocked
//!    account of the token's tenant, and a live grant;
//! 4. only then is the DPoP proof spent (single use, across nodes), so that a forged or revoked
//!    token sent with someone's proof burns nothing.

use crate::claims::{AccessClaims, TenantId};
use crate::dpop::{Dpop, DpopError};
use crate::revocation::{AccountState, Revocations};
use crate::ticket::{Ticket, Tickets};
use crate::verified::{Digest, VerifiedTokens};
use crate::{AuthError, Principal};
use palisade_jose::keyring::KeyRing;
use palisade_jose::verify::{Expectations, verify_by_key};
use palisade_store::now_ms;
use std::sync::Arc;

/// What a caller presented.
#[derive(Debug, Clone, Copy)]
pub enum Credentials<'a> {
    /// `Authorization: Bearer` (or, where allowed, the form body's `access_token`).
    Bearer { token: &'a str },
    /// `Authorization: DPoP` with the request's `DPoP` proof, for `method` on `path`.
    Dpop {
        token: &'a str,
        proof: &'a str,
        method: &'a str,
        path: &'a str,
    },
    /// A one-time ticket ([`Authenticator::issue_ticket`]) presented from `origin`.
    Ticket {
        ticket: &'a str,
        origin: Option<&'a str>,
    },
}

/// A token of this issuer that verified and is not revoked, with the account it was checked
/// against (for a user's token).
#[derive(Debug, Clone)]
pub struct Live {
    pub claims: AccessClaims,
    pub account: Option<AccountState>,
}

#[derive(Clone)]
pub struct Authenticator(Arc<Inner>);

struct Inner {
    keys: KeyRing,
    issuer: String,
    /// The resource this authenticator guards: its tokens' `aud` must name it.
    audience: String,
    /// Every resource tokens are issued for (what introspection may report on).
    resources: Vec<String>,
    skew_seconds: i64,
    dpop: Dpop,
    revocations: Revocations,
    verified: VerifiedTokens,
    tickets: Tickets,
}

/// What an authenticator is configured with.
pub struct AuthenticatorConfig {
    pub issuer: String,
    /// This resource; `resources[0]` unless told otherwise.
    pub audience: String,
    pub resources: Vec<String>,
    pub skew_seconds: i64,
    /// Seals one-time tickets; every node must derive the same.
    pub ticket_key: [u8; 32],
}

impl Authenticator {
    pub fn new(
        keys: KeyRing,
        config: AuthenticatorConfig,
        dpop: Dpop,
        revocations: Revocations,
    ) -> Self {
        let tickets = Tickets::new(&config.ticket_key, dpop.replay().clone());
        Self(Arc::new(Inner {
            tickets,
            keys,
            issuer: config.issuer,
            audience: config.audience,
            resources: config.resources,
            skew_seconds: config.skew_seconds,
            dpop,
            revocations,
            verified: VerifiedTokens::default(),
        }))
    }

    pub fn dpop(&self) -> &Dpop {
        &self.0.dpop
    }

    pub fn revocations(&self) -> &Revocations {
        &self.0.revocations
    }

    pub fn audience(&self) -> &str {
        &self.0.audience
    }

    /// The principal `credentials` act as, for this resource.
    pub async fn authenticate(&self, credentials: Credentials<'_>) -> Result<Principal, AuthError> {
        self.authenticate_live(credentials)
            .await
            .map(Principal::from_live)
    }

    /// [`Authenticator::authenticate`] on a connection whose client presented a certificate
    /// with the SHA-256 thumbprint `certificate` (mutual TLS): a token bound to a certificate
    /// (RFC 8705 §3) is accepted only with that one.
    pub async fn authenticate_on(
        &self,
        credentials: Credentials<'_>,
        certificate: Option<&str>,
    ) -> Result<Principal, AuthError> {
        self.authenticate_presented(credentials, certificate)
            .await
            .map(Principal::from_live)
    }

    /// [`Authenticator::authenticate`], with the token's claims and the account they were
    /// checked against: what a long-lived connection checks again later ([`Self::recheck`]).
    pub async fn authenticate_live(&self, credentials: Credentials<'_>) -> Result<Live, AuthError> {
        self.authenticate_presented(credentials, None).await
    }

    async fn authenticate_presented(
        &self,
        credentials: Credentials<'_>,
        certificate: Option<&str>,
    ) -> Result<Live, AuthError> {
        let (token, proof) = match credentials {
            Credentials::Bearer { token } => (token, None),
            Credentials::Dpop {
                token,
                proof,
                method,
                path,
            } => (token, Some((proof, method, path))),
            Credentials::Ticket { ticket, origin } => return self.redeem(ticket, origin).await,
        };
        let claims = self.signed(token, Some(&self.0.audience))?;
        // A certificate-bound token is worth nothing without the certificate's key: the
        // connection must have been made with that very certificate.
        if let Some(bound) = claims.certificate_binding()
            && !certificate
                .is_some_and(|c| palisade_crypto::constant_time_eq(c.as_bytes(), bound.as_bytes()))
        {
            return Err(AuthError::InvalidToken);
        }
        let proof = match (claims.key_binding(), proof) {
            (None, None) => None,
            (Some(jkt), Some((proof, method, path))) => {
                let proof = self
                    .0
                    .dpop
                    .check(proof, method, path, Some(token))
                    .map_err(AuthError::from)?;
                if proof.jkt != jkt {
                    return Err(AuthError::InvalidToken);
                }
                Some(proof)
            }
            // A bound token presented as a bearer token (stealing it must not be enough), or an
            // unbound one dressed up as DPoP.
            _ => return Err(AuthError::InvalidToken),
        };
        let live = self.check_revocation(claims, false).await?;
        if let Some(proof) = &proof {
            self.0.dpop.spend(proof).await.map_err(AuthError::from)?;
        }
        Ok(live)
    }

    /// A one-time ticket for the holder of `token`, which the caller has authenticated with
    /// its proof, to present from `origin` within thirty seconds.
    pub fn issue_ticket(&self, token: &str, origin: Option<&str>) -> Ticket {
        self.0.tickets.issue(token, origin)
    }

    /// A ticket's token, as [`Self::authenticate_live`] would check it; its key binding was
    /// proven when the ticket was issued. The ticket is spent last, once all else verified.
    async fn redeem(&self, ticket: &str, origin: Option<&str>) -> Result<Live, AuthError> {
        let opened = self.0.tickets.open(ticket, origin)?;
        let claims = self.signed(&opened.token, Some(&self.0.audience))?;
        let live = self.check_revocation(claims, false).await?;
        let first = self.0.tickets.spend(&opened).await.map_err(|e| {
            tracing::warn!(error = %e, "ticket not checked: the replay store failed");
            AuthError::Unavailable
        })?;
        if !first {
            return Err(AuthError::InvalidTicket(
                "The ticket has been used already.",
            ));
        }
        Ok(live)
    }

    /// Whether a connection authenticated as `claims` may go on: not expired, not revoked,
    /// and the account's state as it is now.
    pub async fn recheck(&self, claims: &AccessClaims) -> Result<Live, AuthError> {
        if claims.exp <= now_ms() / 1000 {
            return Err(AuthError::InvalidToken);
        }
        self.check_revocation(claims.clone(), true).await
    }

    /// A token of this issuer for any of its resources, not revoked: what introspection
    /// reports on. Proofs are not checked here: the holder of the token is not asking.
    pub async fn inspect(&self, token: &str) -> Result<Live, AuthError> {
        let claims = self.signed(token, None)?;
        self.check_revocation(claims, false).await
    }

    /// Signature, issuer, type, times and audience (this resource, or any of the issuer's when
    /// `audience` is `None`), typed. A token that verified before is not verified again while
    /// its key is published and it has not expired ([`VerifiedTokens`]).
    fn signed(&self, token: &str, audience: Option<&str>) -> Result<AccessClaims, AuthError> {
        let now = now_ms() / 1000;
        let keys = &self.0.keys;
        let digest = Digest::of(token);
        let claims = match self
            .0
            .verified
            .get(&digest, now, self.0.skew_seconds, |kid| {
                keys.is_published(kid)
            }) {
            Some(claims) => claims,
            None => {
                let (kid, claims) = verify_by_key(
                    token,
                    &keys.published(),
                    &Expectations {
                        typ: "at+jwt",
                        issuer: &self.0.issuer,
                        audience: None,
                        now,
                        skew_seconds: self.0.skew_seconds,
                    },
                )
                .map_err(|_| AuthError::InvalidToken)?;
                let claims: AccessClaims =
                    serde_json::from_value(serde_json::Value::Object(claims))
                        .map_err(|_| AuthError::InvalidToken)?;
                if !self.0.resources.iter().any(|r| claims.aud.contains(r)) {
                    return Err(AuthError::InvalidToken);
                }
                self.0.verified.insert(digest, kid, claims.clone(), now);
                claims
            }
        };
        match audience {
            Some(audience) if !claims.aud.contains(audience) => Err(AuthError::InvalidToken),
            _ => Ok(claims),
        }
    }

    /// The revocation checks of a user's token; a client's own token has none. `fresh` reads
    /// the database whatever is cached.
    async fn check_revocation(&self, claims: AccessClaims, fresh: bool) -> Result<Live, AuthError> {
        let Some(epoch) = claims.rev else {
            return Ok(Live {
                claims,
                account: None,
            });
        };
        let revocations = &self.0.revocations;
        // Both at once: on a cache miss each is a round trip to the database.
        let (grant, account) = tokio::join!(
            async {
                match (&claims.gid, fresh) {
                    (Some(g), true) => revocations.grant_is_live_now(g).await,
                    (Some(g), false) => revocations.grant_is_live(g).await,
                    (None, _) => Ok(false),
                }
            },
            async {
                if fresh {
                    revocations.account_now(&claims.sub).await
                } else {
                    revocations.account(&claims.sub).await
                }
            }
        );
        let unavailable = |e: palisade_store::StoreError| {
            tracing::warn!(error = %e, "revocation state unavailable");
            AuthError::Unavailable
        };
        if !grant.map_err(unavailable)? {
            return Err(AuthError::InvalidToken);
        }
        let account = account
            .map_err(unavailable)?
            .filter(|a| a.epoch == epoch && !a.locked && a.tenant == claims.tenant)
            .ok_or(AuthError::InvalidToken)?;
        Ok(Live {
            claims,
            account: Some(account),
        })
    }
}

impl From<DpopError> for AuthError {
    fn from(e: DpopError) -> Self {
        match e {
            DpopError::Invalid(d) => AuthError::InvalidProof(d),
            DpopError::UseNonce => AuthError::UseNonce,
            DpopError::Store(e) => {
                tracing::warn!(error = %e, "DPoP proof not checked: the replay store failed");
                AuthError::Unavailable
            }
        }
    }
}

impl Principal {
    /// The principal of a token that verified and is live.
    pub fn from_live(live: Live) -> Self {
        let Live { claims, account } = live;
        // RES-4: the tenant comes from the signed token only, and for a user's token it must
        // still be the account's (checked with the revocation state).
        let tenant: TenantId = claims.tenant.clone();
        Principal {
            role: account.map(|a| a.role),
            key_binding: claims.key_binding().map(str::to_owned),
            session: claims.sid,
            subject: claims.sub,
            client_id: claims.client_id,
            scopes: claims.scope,
            expires_at: claims.exp,
            tenant,
        }
    }
}
