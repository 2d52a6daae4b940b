//! The HTTP side of the principal: reading credentials from a request, the guards of
//! `Access::AccessToken` and `Access::ServiceKey` routes, refusals with their RFC 6750 /
//! RFC 9449 challenge, and the extractor handlers take the principal with.

use crate::authenticator::{Authenticator, Credentials};
use crate::{AuthError, Principal};
use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode};
use palisade_audit::Origin;
use palisade_cluster::{Counter, Rate};
use palisade_http::client_ip::{PeerAddr, network_key};
use palisade_http::{Access, ApiKeys, AppError, Guard};
use palisade_tls::ca::{AllowList, TrustDomain};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How a token was presented, for the challenge of a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Bearer,
    DPoP,
}

/// A refused resource request: the error, in the scheme the request used.
#[derive(Debug)]
pub struct Refusal {
    pub scheme: Scheme,
    pub error: AuthError,
    /// The nonce to retry with, for `use_dpop_nonce`.
    pub nonce: Option<String>,
}

impl Refusal {
    pub fn new(scheme: Scheme, error: AuthError) -> Self {
        Self {
            scheme,
            error,
            nonce: None,
        }
    }

    /// The status, the RFC 6750 / 9449 error code and a description fit for the challenge.
    fn parts(&self) -> (StatusCode, Option<&'static str>, &'static str) {
        match &self.error {
            AuthError::Missing => (StatusCode::UNAUTHORIZED, None, ""),
            AuthError::BadRequest(d) => (StatusCode::BAD_REQUEST, Some("invalid_request"), d),
            AuthError::InvalidToken => (
                StatusCode::UNAUTHORIZED,
                Some("invalid_token"),
                "The access token is not valid.",
            ),
            AuthError::InvalidProof(_) => (
                StatusCode::UNAUTHORIZED,
                Some("invalid_dpop_proof"),
                "The DPoP proof is not valid.",
            ),
            AuthError::UseNonce => (
                StatusCode::UNAUTHORIZED,
                Some("use_dpop_nonce"),
                "Use the server's nonce.",
            ),
            AuthError::InvalidTicket(d) => (StatusCode::UNAUTHORIZED, Some("invalid_ticket"), d),
            AuthError::InsufficientScope => (
                StatusCode::FORBIDDEN,
                Some("insufficient_scope"),
                "The token lacks the required scope.",
            ),
            AuthError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                Some("temporarily_unavailable"),
                "Try again shortly.",
            ),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, code, description) = self.parts();
        let mut challenge = match self.scheme {
            Scheme::Bearer => r#"Bearer realm="palisade""#.to_owned(),
            Scheme::DPoP => r#"DPoP algs="EdDSA ES256""#.to_owned(),
        };
        if let Some(code) = code {
            challenge.push_str(&format!(
                r#", error="{code}", error_description="{description}""#
            ));
        }
        let mut response = status.into_response();
        let headers = response.headers_mut();
        if let Ok(challenge) = HeaderValue::from_str(&challenge) {
            headers.insert(http::header::WWW_AUTHENTICATE, challenge);
        }
        headers.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        if self.error == AuthError::Unavailable {
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Some(nonce) = self.nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
            headers.insert(crate::dpop::NONCE_HEADER, nonce);
        }
        // The challenge is in the header; the body is the usual JSON error with the same code.
        let message = match &self.error {
            AuthError::InvalidProof(detail) => format!("The DPoP proof is not valid: {detail}"),
            AuthError::Missing => "Authentication is required.".to_owned(),
            _ => description.to_owned(),
        };
        response
            .extensions_mut()
            .insert(palisade_http::ErrorInfo::new(
                code.unwrap_or("unauthenticated"),
                message,
            ));
        response
    }
}

/// The credentials of a resource request for `method` on `path`: the `Authorization` header
/// (Bearer, or DPoP with the `DPoP` header's proof), or `form_token` (RFC 6750 §2.2) where the
/// endpoint allows one — exactly one of them.
pub fn credentials<'a>(
    headers: &'a HeaderMap,
    method: &'a str,
    path: &'a str,
    form_token: Option<&'a str>,
) -> Result<(Scheme, Credentials<'a>), Refusal> {
    let bad = |d| Refusal::new(Scheme::Bearer, AuthError::BadRequest(d));
    let mut authorization = headers.get_all(http::header::AUTHORIZATION).iter();
    let header = authorization.next();
    if authorization.next().is_some() || (header.is_some() && form_token.is_some()) {
        return Err(bad("Present one access token."));
    }
    let Some(header) = header else {
        return match form_token {
            Some(token) => Ok((Scheme::Bearer, Credentials::Bearer { token })),
            None => Err(Refusal::new(Scheme::Bearer, AuthError::Missing)),
        };
    };
    let (scheme, token) = header
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .ok_or_else(|| bad("Use the Bearer or DPoP scheme."))?;
    let token = token.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok((Scheme::Bearer, Credentials::Bearer { token }));
    }
    if !scheme.eq_ignore_ascii_case("dpop") {
        return Err(bad("Use the Bearer or DPoP scheme."));
    }
    let dpop_refusal = |e: crate::DpopError| Refusal::new(Scheme::DPoP, AuthError::from(e));
    let proof = crate::Dpop::header(headers)
        .map_err(dpop_refusal)?
        .ok_or_else(|| {
            Refusal::new(
                Scheme::DPoP,
                AuthError::InvalidProof("a DPoP proof is required".into()),
            )
        })?;
    Ok((
        Scheme::DPoP,
        Credentials::Dpop {
            token,
            proof,
            method,
            path,
        },
    ))
}

/// `[api]` settings: the protected API's allowances (RES-7), each a rate per minute in bursts
/// of as many, and its load-shedding bound.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    /// Requests each principal (user or client) may make per minute.
    pub requests_per_minute: u32,
    /// Requests per minute of all the users of one OAuth client together.
    pub client_requests_per_minute: u32,
    /// Requests per minute from one network (an IPv4 address, an IPv6 /64), counted before any
    /// token is checked.
    pub network_requests_per_minute: u32,
    /// Requests the API serves at once; more are shed at once with `503` and `Retry-After`
    /// rather than queued on the database.
    pub max_in_flight: usize,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            requests_per_minute: 600,
            client_requests_per_minute: 60_000,
            network_requests_per_minute: 3_000,
            max_in_flight: 256,
        }
    }
}

impl ApiSettings {
    pub fn validate(&self) -> Result<(), String> {
        for (key, value) in [
            ("api.requests_per_minute", self.requests_per_minute),
            (
                "api.client_requests_per_minute",
                self.client_requests_per_minute,
            ),
            (
                "api.network_requests_per_minute",
                self.network_requests_per_minute,
            ),
        ] {
            if value == 0 {
                return Err(format!("{key} must be positive"));
            }
        }
        if self.max_in_flight == 0 {
            return Err("api.max_in_flight must be positive".into());
        }
        Ok(())
    }
}

#[allow(clippy::result_large_err)] // the refusal is the answer, built once
fn limited(check: Result<(), Duration>) -> Result<(), Response> {
    check.map_err(|retry_after| AppError::TooManyRequests { retry_after }.into_response())
}

fn peer(request: &Request) -> Option<std::net::IpAddr> {
    request.extensions().get::<PeerAddr>().map(|p| p.0.ip())
}

/// The guard of `Access::AccessToken` routes (RES-1, RES-2, RES-7): the network's allowance
/// first (a flood of made-up tokens costs no signature check), then the principal, the scope
/// the route declares, and the allowances of the principal and of its client. The principal
/// reaches the handler in the request's extensions.
pub struct AccessTokenGuard {
    auth: Authenticator,
    counter: Counter,
    settings: ApiSettings,
}

impl AccessTokenGuard {
    pub fn new(auth: Authenticator, counter: Counter, settings: ApiSettings) -> Self {
        Self {
            auth,
            counter,
            settings,
        }
    }

    async fn admit(&self, scope: &'static str, request: Request) -> Result<Request, Response> {
        let Some(ip) = peer(&request) else {
            return Err(AppError::internal("request served without a peer address").into_response());
        };
        let network = network_key(ip);
        let per_minute = |n| Rate { per_minute: n };
        limited(
            self.counter
                .check(
                    "api.network",
                    &network,
                    per_minute(self.settings.network_requests_per_minute),
                )
                .await,
        )?;
        let (parts, body) = request.into_parts();
        let (form_token, body) = form_token(&parts, body).await?;
        let (scheme, credentials) = credentials(
            &parts.headers,
            parts.method.as_str(),
            parts.uri.path(),
            form_token.as_deref(),
        )
        .map_err(IntoResponse::into_response)?;
        let refuse = |error: AuthError| {
            let nonce = (error == AuthError::UseNonce)
                .then(|| self.auth.dpop().nonce())
                .flatten();
            Refusal {
                scheme,
                error,
                nonce,
            }
            .into_response()
        };
        let certificate = parts
            .extensions
            .get::<std::sync::Arc<palisade_tls::ca::PeerCertificate>>()
            .map(|peer| peer.thumbprint.as_str());
        let principal = self
            .auth
            .authenticate_on(credentials, certificate)
            .await
            .map_err(refuse)?;
        if !principal.has_scope(scope) {
            return Err(refuse(AuthError::InsufficientScope));
        }
        // Each principal has its own allowance, and each client one for all its users: one
        // flooding leaves the others alone.
        limited(
            self.counter
                .check(
                    "api.user",
                    &principal.subject,
                    per_minute(self.settings.requests_per_minute),
                )
                .await,
        )?;
        limited(
            self.counter
                .check(
                    "api.client",
                    &principal.client_id,
                    per_minute(self.settings.client_requests_per_minute),
                )
                .await,
        )?;
        let mut request = Request::from_parts(parts, body);
        request.extensions_mut().insert(principal);
        Ok(request)
    }
}

/// Bodies read for a form token at most (a token is a few hundred bytes).
const FORM_TOKEN_BODY_LIMIT: usize = 16 * 1024;

/// RFC 6750 §2.2: a POST without an `Authorization` header may carry the token as the form
/// body's only parameter, `access_token`. The body is read and given back.
async fn form_token(parts: &Parts, body: Body) -> Result<(Option<String>, Body), Response> {
    let is_form = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if parts.method != http::Method::POST
        || !is_form
        || parts.headers.contains_key(http::header::AUTHORIZATION)
    {
        return Ok((None, body));
    }
    let bad = |d| Refusal::new(Scheme::Bearer, AuthError::BadRequest(d)).into_response();
    let bytes = axum::body::to_bytes(body, FORM_TOKEN_BODY_LIMIT)
        .await
        .map_err(|_| bad("The body is too large for a form with an access_token."))?;
    let only_a_token = || bad("The body must be a form with at most an access_token.");
    let mut token = None;
    for (key, value) in palisade_http::forms::parse_pairs(&bytes).map_err(|_| only_a_token())? {
        if key != "access_token" {
            return Err(only_a_token());
        }
        token = Some(value);
    }
    Ok((token, Body::from(bytes)))
}

impl Guard for AccessTokenGuard {
    fn admit<'a>(
        &'a self,
        access: Access,
        request: Request,
    ) -> BoxFuture<'a, Result<Request, Response>> {
        Box::pin(async move {
            match access {
                Access::AccessToken { scope } => self.admit(scope, request).await,
                other => Err(
                    AppError::internal(format!("access-token guard on {other:?}")).into_response(),
                ),
            }
        })
    }
}

/// The guard of `Access::ServiceKey` routes (the audit ingest): an X.509-SVID that `ca.allow`
/// lists for [`AUDIT_INGEST`], a service's API key, or an access token granting `audit:write`
/// that a client holds for itself — never a user's token, whatever its scopes. The writer
/// reaches the handler as an [`Origin`], which the log records.
pub struct ServiceGuard {
    keys: ApiKeys,
    tokens: AccessTokenGuard,
    workloads: Option<(TrustDomain, AllowList)>,
}

/// The route group of the audit ingest in `ca.allow`.
pub const AUDIT_INGEST: &str = "audit-ingest";

/// The scope that lets a service client write audit events.
pub const AUDIT_WRITE: &str = "audit:write";

impl ServiceGuard {
    pub fn new(keys: ApiKeys, tokens: AccessTokenGuard) -> Self {
        Self {
            keys,
            tokens,
            workloads: None,
        }
    }

    /// Admits the workloads of `trust_domain` that `allow` lists for [`AUDIT_INGEST`].
    pub fn with_workloads(mut self, trust_domain: TrustDomain, allow: AllowList) -> Self {
        self.workloads = Some((trust_domain, allow));
        self
    }
}

impl Guard for ServiceGuard {
    fn admit<'a>(
        &'a self,
        _: Access,
        request: Request,
    ) -> BoxFuture<'a, Result<Request, Response>> {
        Box::pin(async move {
            let workload = self.workloads.as_ref().and_then(|(domain, allow)| {
                crate::workload::presented_svid(&request, domain).map(|id| (allow, id))
            });
            let mut refused_workload = None;
            if let Some((allow, id)) = workload {
                if allow.permits(AUDIT_INGEST, &id) {
                    let mut request = request;
                    request
                        .extensions_mut()
                        .insert(Origin::Workload(id.to_string()));
                    return Ok(request);
                }
                refused_workload = Some(id);
            }
            if let Some(key) = self.keys.presented(request.headers()) {
                let mut request = request;
                request.extensions_mut().insert(Origin::Key(key));
                return Ok(request);
            }
            // Neither a key nor a token scheme: unauthenticated, with the key's challenge.
            let scheme = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split_once(' '))
                .map(|(s, _)| s.to_ascii_lowercase());
            if !matches!(scheme.as_deref(), Some("bearer" | "dpop")) {
                // A workload that proved who it is, but is not one the ingest admits.
                if let Some(id) = refused_workload {
                    return Err(AppError::forbidden(
                        "workload_not_allowed",
                        format!("{id} is not on the audit ingest's allow-list"),
                    )
                    .into_response());
                }
                return Err(Refusal::new(Scheme::Bearer, AuthError::Missing).into_response());
            }
            let mut request = self.tokens.admit(AUDIT_WRITE, request).await?;
            let principal = request
                .extensions_mut()
                .remove::<Principal>()
                .ok_or_else(|| {
                    AppError::internal("no principal after the guard").into_response()
                })?;
            if principal.is_user() {
                return Err(
                    Refusal::new(principal.scheme(), AuthError::InsufficientScope).into_response(),
                );
            }
            request
                .extensions_mut()
                .insert(Origin::Client(principal.client_id));
            Ok(request)
        })
    }
}

/// Handlers take the principal the route's guard established; a route without one has none to
/// give, and the request fails closed.
impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        parts.extensions.get::<Principal>().cloned().ok_or_else(|| {
            AppError::internal(
                "a handler asked for a principal its route's guard did not establish",
            )
        })
    }
}
