//! The principal of a resource request (RES-1): who is asking, established once from a verified
//! access token (Bearer, or DPoP with a proof of its key) and handed to handlers as one typed
//! value — never a bare user id taken from a path or a header. A user's role comes from the
//! account on every request, so a demotion or a lock applies to the next one; the tenant comes
//! from the signed token and must still be the account's (RES-4). Each
//! principal's requests are rate limited (RES-7).

use crate::OAuth;
use crate::resource::{ResourceError, Scheme};
use axum::extract::{FromRef, FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use palisade_authz::Role;
use palisade_http::AppError;
use palisade_http::client_ip::PeerAddr;
use palisade_http::rate_limit::{RateLimiter, network_key};
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Principal {
    /// The user, or the client acting for itself (client credentials).
    pub subject: String,
    pub tenant: String,
    pub scopes: Vec<String>,
    pub client_id: String,
    /// The browser session the grant came from (`sid`), for a user's token.
    pub session: Option<String>,
    /// A user's role; `None` for a client acting for itself.
    pub role: Option<Role>,
    /// The DPoP key the token is bound to (`cnf.jkt`).
    pub key_binding: Option<String>,
}

impl Principal {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    fn from_verified(verified: crate::Verified) -> Result<Self, ResourceError> {
        let crate::Verified { claims, user } = verified;
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        let scheme = Scheme::of(&claims);
        let (subject, client_id) = match (text("sub"), text("client_id")) {
            (Some(s), Some(c)) => (s, c),
            _ => return Err(ResourceError::invalid_token(scheme)),
        };
        // RES-4: the tenant comes from the signed token only, and for a user's token it must
        // still be the account's; a token without one is not ours.
        let Some(tenant) = text("tenant") else {
            return Err(ResourceError::invalid_token(scheme));
        };
        // A user's token was checked against the account, which gives the role; a client's own
        // token has neither account nor role.
        let role = match user {
            Some(user) if user.tenant_id != tenant => {
                return Err(ResourceError::invalid_token(scheme));
            }
            // An unknown role grants nothing beyond a member's.
            Some(user) => Some(Role::parse(&user.role).unwrap_or(Role::Member)),
            None => None,
        };
        Ok(Principal {
            scopes: text("scope")
                .map(|s| s.split(' ').map(str::to_owned).collect())
                .unwrap_or_default(),
            session: text("sid"),
            key_binding: claims
                .get("cnf")
                .and_then(|c| c.get("jkt"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            subject,
            client_id,
            tenant,
            role,
        })
    }
}

/// Requests per minute to protected resources (RES-7), each in bursts of as many.
#[derive(Debug, Clone, Copy)]
pub struct Allowance {
    pub per_user: u32,
    pub per_client: u32,
    pub per_network: u32,
}

/// The counters of an [`Allowance`].
pub(crate) struct Limits {
    network: RateLimiter,
    user: RateLimiter,
    client: RateLimiter,
}

impl Limits {
    pub(crate) fn new(allowance: Allowance) -> Self {
        Self {
            network: RateLimiter::per_minute(allowance.per_network),
            user: RateLimiter::per_minute(allowance.per_user),
            client: RateLimiter::per_minute(allowance.per_client),
        }
    }
}

fn limited(check: Result<(), std::time::Duration>) -> Result<(), AppError> {
    check.map_err(|retry_after| AppError::TooManyRequests { retry_after })
}

impl<S> FromRequestParts<S> for Principal
where
    OAuth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        // Established already by `require_scope` for this request.
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        let oauth = OAuth::from_ref(state);
        let limits = &oauth.0.api_limits;
        // Per network first: a flood of made-up tokens costs no signature check. The listener
        // gives every request its peer; without one, nothing is served.
        let peer = parts
            .extensions
            .get::<PeerAddr>()
            .ok_or_else(|| AppError::internal("request served without a peer address"))
            .map_err(IntoResponse::into_response)?;
        limited(limits.network.check(&network_key(peer.0.ip())))
            .map_err(IntoResponse::into_response)?;
        let verified = oauth
            .authenticate_resource(
                &parts.headers,
                parts.method.as_str(),
                parts.uri.path(),
                None,
            )
            .await
            .map_err(IntoResponse::into_response)?;
        let principal = Principal::from_verified(verified).map_err(IntoResponse::into_response)?;
        // RES-7: each principal has its own allowance, and each client one for all its users;
        // one flooding leaves the others alone.
        limited(limits.user.check(&principal.subject))
            .and_then(|()| limited(limits.client.check(&principal.client_id)))
            .map_err(IntoResponse::into_response)?;
        Ok(principal)
    }
}

/// Middleware for a route declared to need `scope` (RES-2, RES-6): establishes the principal
/// once, refuses a token without the scope before the handler reads anything, and hands the
/// principal to the handler's extractor through the request's extensions.
pub async fn require_scope(
    State((oauth, scope)): State<(OAuth, &'static str)>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let principal = match Principal::from_request_parts(&mut parts, &oauth).await {
        Ok(principal) => principal,
        Err(refused) => return refused,
    };
    if !principal.has_scope(scope) {
        let scheme = match principal.key_binding {
            Some(_) => Scheme::DPoP,
            None => Scheme::Bearer,
        };
        return ResourceError::insufficient_scope(scheme).into_response();
    }
    parts.extensions.insert(principal);
    next.run(Request::from_parts(parts, body)).await
}
