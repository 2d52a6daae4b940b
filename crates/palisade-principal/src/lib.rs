//! Who is asking (RES-1, RES-4): the typed claims of an access token, the one [`Principal`]
//! every protected request acts as, and the one [`Authenticator`] that turns credentials into
//! it — for the REST API, userinfo, the audit ingest and, later, WebSockets — without needing an
//! HTTP request. The HTTP side ([`AccessTokenGuard`], [`ServiceGuard`], the extractor) is a
//! thin adapter over it.
//!
//! The principal's role comes from the account on every request (through the revocation cache,
//! [`Revocations`]), so a demotion or a lock applies to the next one; its tenant comes from the
//! signed token and must still be the account's.
// Library code handles every failure; tests and examples may unwrap.
#![warn(clippy::unwrap_used)]

mod authenticator;
mod claims;
pub mod dpop;
mod guard;
mod revocation;
mod ticket;
mod verified;
mod workload;

pub use authenticator::{Authenticator, AuthenticatorConfig, Credentials, Live};
pub use claims::{AccessClaims, Audience, Confirmation, Scopes, TenantId};
pub use dpop::{Dpop, DpopError};
pub use guard::{
    AUDIT_INGEST, AUDIT_WRITE, AccessTokenGuard, ApiSettings, Refusal, Scheme, ServiceGuard,
    credentials,
};
/// Account roles are the policies' own (one definition, in `palisade-authz`).
pub use palisade_authz::Role;
pub use revocation::{AccountState, Change, Changes, Revocations};
pub use ticket::{TICKET_LIFETIME_MS, Ticket};
pub use workload::{Workload, WorkloadGuard, presented_svid};

/// The principal of a protected request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user, or the client acting for itself (client credentials).
    pub subject: String,
    pub tenant: TenantId,
    pub scopes: Scopes,
    pub client_id: String,
    /// The browser session the grant came from (`sid`), for a user's token.
    pub session: Option<String>,
    /// A user's role; `None` for a client acting for itself.
    pub role: Option<Role>,
    /// The DPoP key the token is bound to (`cnf.jkt`).
    pub key_binding: Option<String>,
    /// When the token expires (Unix seconds).
    pub expires_at: i64,
}

impl Principal {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }

    /// A user (as opposed to a client acting for itself).
    pub fn is_user(&self) -> bool {
        self.role.is_some()
    }

    pub fn scheme(&self) -> Scheme {
        match self.key_binding {
            Some(_) => Scheme::DPoP,
            None => Scheme::Bearer,
        }
    }
}

/// Why credentials were not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// None were presented (RFC 6750 §3.1: the challenge carries no error).
    #[error("no credentials")]
    Missing,
    #[error("{0}")]
    BadRequest(&'static str),
    /// Forged, misdirected, expired, revoked, or presented with the wrong scheme.
    #[error("the access token is not valid")]
    InvalidToken,
    #[error("the DPoP proof is not valid: {0}")]
    InvalidProof(String),
    #[error("the DPoP proof must carry the server's nonce")]
    UseNonce,
    /// A one-time ticket that is forged, expired, used, or presented from another Origin.
    #[error("{0}")]
    InvalidTicket(&'static str),
    #[error("the token lacks the required scope")]
    InsufficientScope,
    /// The revocation state or the replay store could not be read: try again shortly.
    #[error("temporarily unavailable")]
    Unavailable,
}
