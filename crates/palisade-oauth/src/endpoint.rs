//! What every back-channel endpoint shares: strict form parsing (form bodies only, no repeated
//! parameter), client authentication with audited failures, `no-store` answers — and the guards
//! of `Access::Client` and `Access::RegistrationToken` routes, which run before any handler and
//! hand it the authenticated client. A leaf of the provider: the endpoints use it, it uses none
//! of them.

use crate::OAuth;
use crate::client_auth::{self, Known, Presented};
use crate::clients::{self, Client};
use crate::error::OAuthError;
use axum::Json;
use axum::extract::{FromRequestParts, Path, Request};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use http::request::Parts;
use palisade_audit::{Action, Outcome};
use palisade_http::{Access, AppError, Guard};
use palisade_identity::RequestContext;
use palisade_tls::ca::PeerCertificate;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Back-channel forms are small: a code, a token, a verifier, an assertion.
const FORM_LIMIT: usize = 64 * 1024;

/// A JSON answer that must not be cached (anything carrying a token or its status).
pub(crate) fn no_store(body: Value) -> Response {
    (
        [("cache-control", "no-store"), ("pragma", "no-cache")],
        Json(body),
    )
        .into_response()
}

/// The form parameters of a back-channel request.
pub(crate) fn form(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<HashMap<String, String>, OAuthError> {
    let form_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return Err(OAuthError::InvalidRequest(
            "The body must be application/x-www-form-urlencoded.".into(),
        ));
    }
    palisade_http::forms::parse_pairs(body)
        .map(|pairs| pairs.into_iter().collect())
        .map_err(|_| {
            OAuthError::InvalidRequest("The form is malformed or repeats a parameter.".into())
        })
}

/// Authenticates the calling client; failures are audited.
async fn client(
    oauth: &OAuth,
    ctx: &RequestContext,
    headers: &HeaderMap,
    certificate: Option<Arc<PeerCertificate>>,
    params: &HashMap<String, String>,
) -> Result<Client, OAuthError> {
    let authorization = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let basic = match authorization {
        Some(h) if h.starts_with("Basic ") => {
            Some(client_auth::parse_basic(h).ok_or(OAuthError::InvalidClient { basic: true })?)
        }
        _ => None,
    };
    let attempted = basic
        .as_ref()
        .map(|(id, _)| id.clone())
        .or_else(|| params.get("client_id").cloned());
    let assertion =
        match params.get("client_assertion_type").map(String::as_str) {
            None => None,
            Some(JWT_BEARER) => Some(params.get("client_assertion").cloned().ok_or_else(|| {
                OAuthError::InvalidRequest("client_assertion is missing.".into())
            })?),
            Some(_) => {
                return Err(OAuthError::InvalidRequest(
                    "Only jwt-bearer client assertions are supported.".into(),
                ));
            }
        };
    let presented = Presented {
        basic,
        post_id: params.get("client_id").cloned(),
        post_secret: params.get("client_secret").cloned(),
        assertion,
        certificate,
    };
    // A client assertion may name the issuer or the endpoint it is sent to.
    let issuer = &oauth.config().issuer;
    let audiences: Vec<String> = std::iter::once(issuer.clone())
        .chain(
            ["token", "introspect", "revoke", "par"]
                .iter()
                .map(|e| format!("{issuer}/oauth/{e}")),
        )
        .collect();
    let known = Known {
        db: &oauth.0.db,
        cache: &oauth.0.clients,
        replay: &oauth.0.cluster.replay,
        audiences: &audiences,
    };
    let result = client_auth::authenticate(&known, presented).await;
    if let Err(OAuthError::InvalidClient { .. }) = &result {
        let mut event = ctx.event(
            Action::ClientAuthenticationFailed,
            Outcome::Failure,
            "default",
        );
        if let Some(id) = attempted {
            event = event.client(id);
        }
        oauth.0.auditor.record(event).await?;
    }
    result
}

/// A back-channel request (token, introspection, revocation, PAR) that its guard admitted: its
/// form parameters and the client that authenticated it.
#[derive(Clone)]
pub(crate) struct Authenticated {
    pub params: HashMap<String, String>,
    pub client: Client,
    /// The thumbprint of the certificate a mutual-TLS client authenticated with.
    pub certificate: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        parts
            .extensions
            .get::<Authenticated>()
            .cloned()
            .ok_or_else(|| AppError::internal("a client route without its client guard"))
    }
}

/// The guard of `Access::Client` routes: the form is read and parsed, and the client
/// authenticated as it registered, before the handler runs; failures answer in RFC 6749 form.
pub struct ClientGuard(pub OAuth);

impl Guard for ClientGuard {
    fn admit<'a>(
        &'a self,
        _: Access,
        request: Request,
    ) -> BoxFuture<'a, Result<Request, Response>> {
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let ctx = RequestContext::from_request_parts(&mut parts, &())
                .await
                .map_err(IntoResponse::into_response)?;
            let body = axum::body::to_bytes(body, FORM_LIMIT)
                .await
                .map_err(|_| OAuthError::InvalidRequest("The form is too large.".into()))
                .map_err(IntoResponse::into_response)?;
            let authenticated = async {
                let params = form(&parts.headers, &body)?;
                let presented = parts.extensions.get::<Arc<PeerCertificate>>().cloned();
                let client =
                    client(&self.0, &ctx, &parts.headers, presented.clone(), &params).await?;
                // Tokens of a client that proved itself with its certificate are bound to it.
                let certificate = presented
                    .filter(|_| client.auth_method.is_mutual_tls())
                    .map(|p| p.thumbprint.clone());
                Ok::<_, OAuthError>(Authenticated {
                    params,
                    client,
                    certificate,
                })
            };
            let authenticated = authenticated.await.map_err(IntoResponse::into_response)?;
            let mut request = Request::from_parts(parts, axum::body::Body::from(body));
            request.extensions_mut().insert(authenticated);
            Ok(request)
        })
    }
}

/// A dynamically registered client whose registration access token the request presented
/// (RFC 7592 §3), for the client named in the path.
#[derive(Clone)]
pub(crate) struct Registered(pub Client);

impl<S: Send + Sync> FromRequestParts<S> for Registered {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        parts
            .extensions
            .get::<Registered>()
            .cloned()
            .ok_or_else(|| AppError::internal("a registration route without its guard"))
    }
}

/// The guard of `Access::RegistrationToken` routes: the client in the path, and the bearer
/// registration access token issued with it.
pub struct RegistrationGuard(pub OAuth);

impl Guard for RegistrationGuard {
    fn admit<'a>(
        &'a self,
        _: Access,
        request: Request,
    ) -> BoxFuture<'a, Result<Request, Response>> {
        Box::pin(async move {
            let refused = || {
                OAuthError::InvalidToken {
                    presented: true,
                    description: "The registration access token is not valid for this client.",
                }
                .into_response()
            };
            let (mut parts, body) = request.into_parts();
            let Ok(Path(client_id)) = Path::<String>::from_request_parts(&mut parts, &()).await
            else {
                return Err(refused());
            };
            let token = parts
                .headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or_else(|| {
                    OAuthError::InvalidToken {
                        presented: false,
                        description: "Managing a registration needs its registration access \
                                      token, sent as a Bearer token (RFC 7592 §3).",
                    }
                    .into_response()
                })?;
            let client = clients::by_registration_token(&self.0.0.db, &client_id, token)
                .await
                .map_err(|e| OAuthError::from(e).into_response())?
                .ok_or_else(refused)?;
            let mut request = Request::from_parts(parts, body);
            request.extensions_mut().insert(Registered(client));
            Ok(request)
        })
    }
}
