//! OAuth errors as RFC 6749 §5.2 defines them, mapped to a status once, here: the outer error
//! renderer writes the body (`error`, `error_description`, the request's `trace_id`), never
//! cached. A failed client authentication answers 401 with a `WWW-Authenticate` challenge for
//! the scheme the client used (RFC 6749 §5.2: required when it used Basic).

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use palisade_http::ErrorInfo;
use palisade_store::StoreError;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// Unknown client, wrong secret or wrong authentication method; `basic` when the client
    /// tried HTTP Basic.
    #[error("invalid_client")]
    InvalidClient { basic: bool },
    /// A bearer token the endpoint needs — an initial access token (RFC 7591 §3) or a
    /// registration access token (RFC 7592 §3) — missing (`presented` false) or not valid;
    /// answered as RFC 6750 §3 says.
    #[error("invalid_token: {description}")]
    InvalidToken {
        presented: bool,
        description: &'static str,
    },
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
    TooManyRequests(Duration),
    /// The database is away for a moment: retry shortly.
    #[error("temporarily_unavailable")]
    Unavailable,
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
        if e.is_unavailable() {
            tracing::warn!(error = %e, "database unavailable; asking the client to retry");
            return OAuthError::Unavailable;
        }
        OAuthError::Server(e.to_string())
    }
}

impl From<palisade_audit::AuditError> for OAuthError {
    fn from(e: palisade_audit::AuditError) -> Self {
        match e {
            palisade_audit::AuditError::Store(e) => e.into(),
            e if e.is_unavailable() => OAuthError::Unavailable,
            e => OAuthError::Server(e.to_string()),
        }
    }
}

impl From<palisade_principal::DpopError> for OAuthError {
    fn from(e: palisade_principal::DpopError) -> Self {
        use palisade_principal::DpopError;
        match e {
            DpopError::Invalid(d) => OAuthError::InvalidDpopProof(d),
            DpopError::UseNonce => OAuthError::UseDpopNonce,
            DpopError::Store(e) => e.into(),
        }
    }
}

impl OAuthError {
    fn parts(&self) -> (StatusCode, &'static str, String) {
        let bad = StatusCode::BAD_REQUEST;
        match self {
            OAuthError::InvalidRequest(d) => (bad, "invalid_request", d.clone()),
            OAuthError::InvalidClient { .. } => (
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Client authentication failed.".into(),
            ),
            OAuthError::InvalidToken { description, .. } => (
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                (*description).into(),
            ),
            OAuthError::InvalidGrant(d) => (bad, "invalid_grant", d.clone()),
            OAuthError::UnauthorizedClient(d) => (bad, "unauthorized_client", d.clone()),
            OAuthError::UnsupportedGrantType => (
                bad,
                "unsupported_grant_type",
                "This grant type is not supported.".into(),
            ),
            OAuthError::InvalidScope(d) => (bad, "invalid_scope", d.clone()),
            OAuthError::InvalidTarget(d) => (bad, "invalid_target", d.clone()),
            OAuthError::InvalidRedirectUri(d) => (bad, "invalid_redirect_uri", d.clone()),
            OAuthError::InvalidClientMetadata(d) => (bad, "invalid_client_metadata", d.clone()),
            OAuthError::InvalidDpopProof(d) => (bad, "invalid_dpop_proof", d.clone()),
            OAuthError::UseDpopNonce => (
                bad,
                "use_dpop_nonce",
                "The DPoP proof must carry the server's nonce.".into(),
            ),
            OAuthError::TooManyRequests(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "Too many requests; retry later.".into(),
            ),
            OAuthError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "The server is busy for a moment; retry shortly.".into(),
            ),
            OAuthError::Server(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "The server could not complete the request.".into(),
            ),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let (status, code, description) = self.parts();
        let mut info = ErrorInfo::oauth(code, description);
        if let OAuthError::Server(detail) = &self {
            info.internal_detail = Some(detail.clone());
        }
        let mut response = status.into_response();
        let headers = response.headers_mut();
        headers.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        let retry = match self {
            OAuthError::TooManyRequests(wait) => Some(wait),
            OAuthError::Unavailable => Some(Duration::from_secs(1)),
            _ => None,
        };
        if let Some(wait) = retry {
            // Whole seconds, rounded up: retrying at the announced time must succeed.
            let seconds = wait.as_millis().div_ceil(1000).max(1);
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from(seconds as u64));
        }
        // RFC 6750 §3.1: a request without a token gets the challenge alone.
        let challenge = match self {
            OAuthError::InvalidClient { basic: true } => {
                Some(r#"Basic realm="palisade", charset="UTF-8""#)
            }
            OAuthError::InvalidClient { basic: false }
            | OAuthError::InvalidToken {
                presented: false, ..
            } => Some(r#"Bearer realm="palisade""#),
            OAuthError::InvalidToken {
                presented: true, ..
            } => Some(r#"Bearer realm="palisade", error="invalid_token""#),
            _ => None,
        };
        if let Some(challenge) = challenge {
            headers.insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response.extensions_mut().insert(info);
        response
    }
}
