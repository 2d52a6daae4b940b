//! OAuth errors as RFC 6749 §5.2 defines them: a JSON body with `error` and
//! `error_description`, plus the request's `trace_id`, never cached. A failed client
//! authentication answers 401, with a `WWW-Authenticate` challenge for the scheme the client
//! used (RFC 6749 §5.2: required when it used Basic).

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use palisade_store::StoreError;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// Unknown client, wrong secret or wrong authentication method; `basic` when the client
    /// tried HTTP Basic.
    #[error("invalid_client")]
    InvalidClient { basic: bool },
    #[error("invalid_grant: {0}")]
    InvalidGrant(String),
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(String),
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    #[error("invalid_scope: {0}")]
    InvalidScope(String),
    #[error("invalid_target: {0}")]
    InvalidTarget(String),
    #[error("invalid_redirect_uri: {0}")]
    InvalidRedirectUri(String),
    #[error("invalid_client_metadata: {0}")]
    InvalidClientMetadata(String),
    /// RFC 9449 §5: a DPoP proof is missing, invalid or replayed.
    #[error("invalid_dpop_proof: {0}")]
    InvalidDpopProof(String),
    /// RFC 9449 §8: the proof must carry the nonce in the `DPoP-Nonce` header.
    #[error("use_dpop_nonce")]
    UseDpopNonce,
    /// A rate limit was reached; retry after this long.
    #[error("too many requests")]
    TooManyRequests(std::time::Duration),
    #[error("server_error")]
    Server(String),
}

impl From<sqlx::Error> for OAuthError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::from(e).into()
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        OAuthError::Server(e.to_string())
    }
}

impl OAuthError {
    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            OAuthError::InvalidRequest(d) => {
                (StatusCode::BAD_REQUEST, "invalid_request", d.clone())
            }
            OAuthError::InvalidClient { .. } => (
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Client authentication failed.".into(),
            ),
            OAuthError::InvalidGrant(d) => (StatusCode::BAD_REQUEST, "invalid_grant", d.clone()),
            OAuthError::UnauthorizedClient(d) => {
                (StatusCode::BAD_REQUEST, "unauthorized_client", d.clone())
            }
            OAuthError::UnsupportedGrantType => (
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "This grant type is not supported.".into(),
            ),
            OAuthError::InvalidScope(d) => (StatusCode::BAD_REQUEST, "invalid_scope", d.clone()),
            OAuthError::InvalidTarget(d) => (StatusCode::BAD_REQUEST, "invalid_target", d.clone()),
            OAuthError::InvalidRedirectUri(d) => {
                (StatusCode::BAD_REQUEST, "invalid_redirect_uri", d.clone())
            }
            OAuthError::InvalidClientMetadata(d) => (
                StatusCode::BAD_REQUEST,
                "invalid_client_metadata",
                d.clone(),
            ),
            OAuthError::InvalidDpopProof(d) => {
                (StatusCode::BAD_REQUEST, "invalid_dpop_proof", d.clone())
            }
            OAuthError::UseDpopNonce => (
                StatusCode::BAD_REQUEST,
                "use_dpop_nonce",
                "The DPoP proof must carry the server's nonce.".into(),
            ),
            OAuthError::TooManyRequests(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "Too many requests; retry later.".into(),
            ),
            OAuthError::Server(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "The server could not complete the request.".into(),
            ),
        }
    }

    /// The answer for a request with `trace_id`.
    pub fn respond(self, trace_id: Option<&str>) -> Response {
        if let OAuthError::Server(detail) = &self {
            tracing::error!(error = %detail, "oauth server error");
        }
        let (status, code, description) = self.parts();
        let mut response = (
            status,
            Json(json!({
                "error": code,
                "error_description": description,
                "trace_id": trace_id,
            })),
        )
            .into_response();
        // The body is the protocol's own: the outer error renderer must leave it as it is.
        response
            .extensions_mut()
            .insert(palisade_http::error::PassThrough);
        let headers = response.headers_mut();
        headers.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        if let OAuthError::TooManyRequests(wait) = self {
            // Whole seconds, rounded up: retrying at the announced time must succeed.
            let seconds = wait.as_millis().div_ceil(1000).max(1);
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from(seconds as u64));
        }
        if let OAuthError::InvalidClient { basic } = self {
            let challenge = if basic {
                r#"Basic realm="palisade", charset="UTF-8""#
            } else {
                r#"Bearer realm="palisade""#
            };
            headers.insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}
