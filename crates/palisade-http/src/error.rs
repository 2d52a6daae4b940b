//! One error type for every handler (PLT-9). Handlers return [`AppError`]; its `IntoResponse`
//! only sets the status and attaches an [`ErrorInfo`]. The outermost middleware then renders
//! every error response the same way — JSON for API clients, a page for browsers — with the
//! request's trace id. Errors produced by axum itself (rejections, 404, 405, 413) pass through
//! the same renderer, so no response ever carries a panic message, SQL text or secret.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use std::time::Duration;

#[derive(Debug)]
pub enum AppError {
    /// Malformed or invalid input; `code` is a stable machine-readable reason.
    BadRequest {
        code: &'static str,
        message: String,
    },
    /// No valid authentication.
    Unauthenticated,
    /// Authenticated but not allowed, or a CSRF check failed.
    Forbidden {
        code: &'static str,
        message: String,
    },
    NotFound,
    Conflict {
        code: &'static str,
        message: String,
    },
    TooManyRequests {
        retry_after: Duration,
    },
    /// Temporarily overloaded; try again after the given time.
    Unavailable {
        retry_after: Duration,
    },
    /// Anything unexpected. The detail is logged with the trace id and never sent.
    Internal(String),
}

impl AppError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        AppError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        AppError::Forbidden {
            code,
            message: message.into(),
        }
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        AppError::Internal(detail.to_string())
    }
}

impl From<palisade_store::StoreError> for AppError {
    fn from(e: palisade_store::StoreError) -> Self {
        // Every connection stayed busy, or the database is restarting: it is overloaded or away
        // for a moment, not broken. The client is told to come back (RES-7, SCL-2) rather than
        // shown an error.
        if e.is_unavailable() {
            tracing::warn!(error = %e, "database unavailable; asking the client to retry");
            return AppError::Unavailable {
                retry_after: Duration::from_secs(1),
            };
        }
        AppError::Internal(format!("store: {e}"))
    }
}

impl From<palisade_store::sqlx::Error> for AppError {
    fn from(e: palisade_store::sqlx::Error) -> Self {
        palisade_store::StoreError::from(e).into()
    }
}

/// Marks an error response whose body is already the right answer (a readiness report, a
/// protocol-mandated error format); the renderer leaves it as it is.
#[derive(Debug, Clone, Copy)]
pub struct PassThrough;

/// What the renderer needs to describe an error; travels in the response extensions.
#[derive(Debug, Clone)]
pub struct ErrorInfo {
    pub code: &'static str,
    pub message: String,
    /// Logged with the trace id when present; never rendered.
    pub internal_detail: Option<String>,
    pub style: ErrorStyle,
}

/// The shape of a JSON error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStyle {
    /// `{"error", "message", "trace_id"}`.
    App,
    /// RFC 6749 §5.2: `{"error", "error_description", "trace_id"}`, for OAuth endpoints.
    OAuth,
}

impl ErrorInfo {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            internal_detail: None,
            style: ErrorStyle::App,
        }
    }

    /// An OAuth error (RFC 6749 §5.2), rendered with `error_description`.
    pub fn oauth(code: &'static str, description: impl Into<String>) -> Self {
        Self {
            style: ErrorStyle::OAuth,
            ..Self::new(code, description)
        }
    }

    /// The description of a bare status code, for errors that did not come from an `AppError`
    /// (axum's extractor rejections, unknown routes, wrong methods, oversized bodies).
    pub fn for_status(status: StatusCode) -> Self {
        let (code, message) = match status {
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
                ("invalid_request", "The request is malformed.")
            }
            StatusCode::UNAUTHORIZED => ("unauthenticated", "Authentication is required."),
            StatusCode::FORBIDDEN => ("forbidden", "You are not allowed to do this."),
            StatusCode::NOT_FOUND => ("not_found", "Nothing is here."),
            StatusCode::METHOD_NOT_ALLOWED => {
                ("method_not_allowed", "This method is not allowed here.")
            }
            StatusCode::REQUEST_TIMEOUT => ("timeout", "The request took too long."),
            StatusCode::PAYLOAD_TOO_LARGE => {
                ("payload_too_large", "The request body is too large.")
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "unsupported_media_type",
                "This content type is not accepted here.",
            ),
            StatusCode::TOO_MANY_REQUESTS => {
                ("rate_limited", "Too many requests; try again later.")
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                ("unavailable", "The service is busy; try again shortly.")
            }
            s if s.is_client_error() => ("invalid_request", "The request was refused."),
            _ => ("internal_error", "Something went wrong on our side."),
        };
        Self::new(code, message)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut retry = None;
        let (status, info) = match self {
            AppError::BadRequest { code, message } => {
                (StatusCode::BAD_REQUEST, ErrorInfo::new(code, message))
            }
            AppError::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                ErrorInfo::for_status(StatusCode::UNAUTHORIZED),
            ),
            AppError::Forbidden { code, message } => {
                (StatusCode::FORBIDDEN, ErrorInfo::new(code, message))
            }
            AppError::NotFound => (
                StatusCode::NOT_FOUND,
                ErrorInfo::for_status(StatusCode::NOT_FOUND),
            ),
            AppError::Conflict { code, message } => {
                (StatusCode::CONFLICT, ErrorInfo::new(code, message))
            }
            AppError::TooManyRequests { retry_after } => {
                retry = Some(retry_after);
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorInfo::for_status(StatusCode::TOO_MANY_REQUESTS),
                )
            }
            AppError::Unavailable { retry_after } => {
                retry = Some(retry_after);
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorInfo::for_status(StatusCode::SERVICE_UNAVAILABLE),
                )
            }
            AppError::Internal(detail) => {
                let mut info = ErrorInfo::for_status(StatusCode::INTERNAL_SERVER_ERROR);
                info.internal_detail = Some(detail);
                (StatusCode::INTERNAL_SERVER_ERROR, info)
            }
        };
        let mut response = status.into_response();
        if let Some(after) = retry {
            // Retry-After is whole seconds; round up so clients never retry early.
            let secs = after.as_millis().div_ceil(1000).max(1);
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&secs.to_string()).expect("digits are a valid header"),
            );
        }
        response.extensions_mut().insert(info);
        response
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_detail_is_kept_out_of_the_public_message() {
        let r = AppError::internal("SELECT * FROM users -- secret").into_response();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let info = r.extensions().get::<ErrorInfo>().unwrap();
        assert!(!info.message.contains("SELECT"));
        assert!(info.internal_detail.as_deref().unwrap().contains("SELECT"));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let r = AppError::TooManyRequests {
            retry_after: Duration::from_millis(1500),
        }
        .into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;&#x27;&lt;/a&gt;"
        );
    }

    #[test]
    fn an_exhausted_pool_is_unavailable_for_a_moment_not_an_error() {
        let e = AppError::from(palisade_store::StoreError::from(
            palisade_store::sqlx::Error::PoolTimedOut,
        ));
        let response = e.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let other = AppError::from(palisade_store::sqlx::Error::RowNotFound).into_response();
        assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
