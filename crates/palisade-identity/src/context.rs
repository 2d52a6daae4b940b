//! Extractors shared by the identity handlers.

use crate::sessions::{self, Session};
use crate::users::{self, User};
use crate::{Identity, cookies};
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Redirect, Response};
use http::request::Parts;
use http::{Method, header};
use palisade_audit::{Action, Outcome, SecurityEvent};
use palisade_http::{AppError, ClientIp, TraceId};
use std::net::IpAddr;

/// Who is asking, from where, under which trace: what every security event records.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub ip: IpAddr,
    pub trace_id: String,
    pub user_agent: String,
}

impl RequestContext {
    pub fn event(&self, action: Action, outcome: Outcome, tenant: &str) -> SecurityEvent {
        SecurityEvent::new(action, outcome, tenant)
            .ip(self.ip)
            .trace_id(self.trace_id.clone())
            .device(&self.user_agent)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await?;
        let trace_id = parts
            .extensions
            .get::<TraceId>()
            .map(|t| t.0.clone())
            .unwrap_or_default();
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown")
            .to_owned();
        Ok(Self {
            ip,
            trace_id,
            user_agent,
        })
    }
}

/// What a session may do as a principal: read and send, as the account pages do.
const SESSION_SCOPES: &str = "social:read messages";
/// The client a session acts through: Palisade's own pages.
const FIRST_PARTY: &str = "palisade";

/// A signed-in user with a live session. Pages that need one send everyone else to the login
/// page (and back afterwards); other methods get a 401.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user: User,
    pub session: Session,
}

impl SignedIn {
    /// The session of the request, if there is a live one for an unlocked account.
    pub async fn from_headers(
        identity: &Identity,
        headers: &http::HeaderMap,
    ) -> Result<Option<Self>, AppError> {
        let Some(token) = cookies::get(headers, cookies::SESSION) else {
            return Ok(None);
        };
        let now = palisade_store::now_ms();
        let Some(session) =
            sessions::lookup(&identity.db, token, now, identity.config.session_idle()).await?
        else {
            return Ok(None);
        };
        match users::get(&identity.db, &session.user_id).await? {
            Some(user) if !user.is_locked() => Ok(Some(Self { user, session })),
            _ => Ok(None),
        }
    }

    /// The principal the session acts as on Palisade's own pages and their sockets: the
    /// account's role and tenant, the scopes the account pages use, until the session ends.
    pub fn principal(&self) -> palisade_principal::Principal {
        use palisade_principal::{Principal, Role, Scopes, TenantId};
        Principal {
            role: Some(Role::parse(&self.user.role).unwrap_or(Role::Member)),
            tenant: TenantId::new(self.user.tenant_id.clone()),
            subject: self.user.id.clone(),
            scopes: Scopes::parse(SESSION_SCOPES),
            client_id: FIRST_PARTY.to_owned(),
            session: Some(self.session.id_hash.clone()),
            key_binding: None,
            expires_at: self.session.expires_at / 1000,
        }
    }

    pub fn audit(&self, ctx: &RequestContext, action: Action, outcome: Outcome) -> SecurityEvent {
        ctx.event(action, outcome, &self.user.tenant_id)
            .actor(self.user.id.clone())
    }
}

/// The guard of `Access::Session` routes: a live session of an unlocked account, established
/// once and handed to the handler (its [`SignedIn`] extractor) through the request's extensions.
/// Pages send everyone else to the login page and back afterwards; other methods get a 401.
pub struct SessionGuard(pub Identity);

impl palisade_http::Guard for SessionGuard {
    fn admit<'a>(
        &'a self,
        _: palisade_http::Access,
        mut request: axum::extract::Request,
    ) -> futures_util::future::BoxFuture<'a, Result<axum::extract::Request, Response>> {
        Box::pin(async move {
            match SignedIn::from_headers(&self.0, request.headers()).await {
                Ok(Some(signed_in)) => {
                    request.extensions_mut().insert(signed_in);
                    Ok(request)
                }
                Ok(None) if request.method() == Method::GET => {
                    let here = request
                        .uri()
                        .path_and_query()
                        .map(|p| p.as_str())
                        .unwrap_or("/account");
                    let target = format!(
                        "/login?return_to={}",
                        percent_encoding::utf8_percent_encode(
                            here,
                            percent_encoding::NON_ALPHANUMERIC
                        )
                    );
                    Err(Redirect::to(&target).into_response())
                }
                Ok(None) => Err(AppError::Unauthenticated.into_response()),
                Err(e) => Err(e.into_response()),
            }
        })
    }
}

/// Handlers of session routes take the session their guard established.
impl<S: Send + Sync> FromRequestParts<S> for SignedIn {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        parts.extensions.get::<SignedIn>().cloned().ok_or_else(|| {
            AppError::internal("a handler asked for a session its route's guard did not establish")
        })
    }
}

/// Where to send the user after signing in: a path on this site only. Anything else (another
/// host, a protocol-relative `//host`, a backslash trick) falls back to the account page, so a
/// crafted link cannot turn the login page into an open redirect.
pub(crate) fn safe_return_to(candidate: &str) -> &str {
    let ok = candidate.starts_with('/')
        && !candidate.starts_with("//")
        && !candidate.contains('\\')
        && !candidate.chars().any(|c| c.is_control())
        && candidate.len() <= 2048;
    if ok { candidate } else { "/account" }
}

#[cfg(test)]
mod tests {
    use super::safe_return_to;

    #[test]
    fn return_to_stays_on_site() {
        assert_eq!(safe_return_to("/account?x=1"), "/account?x=1");
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "",
            "javascript:alert(1)",
            "/a\nb",
        ] {
            assert_eq!(safe_return_to(bad), "/account", "{bad:?}");
        }
    }
}
