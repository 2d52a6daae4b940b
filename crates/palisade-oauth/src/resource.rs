//! How a resource accepts an access token (RES-1, TOK-4, TOK-5, OAU-10): the one function every
//! protected endpoint calls. `Authorization: Bearer` carries an unbound token; `Authorization:
//! DPoP` a token bound to a key, with a proof of that key for this very request. A bound token
//! presented as a bearer token is refused: stealing it must not be enough. Errors carry the
//! RFC 6750 / RFC 9449 `WWW-Authenticate` challenge of the scheme used.

use crate::OAuth;
use crate::dpop::{DpopError, NONCE_HEADER};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Bearer,
    DPoP,
}

impl Scheme {
    /// The scheme a verified token is presented with: DPoP when it is bound to a key (`cnf`).
    pub fn of(claims: &serde_json::Map<String, Value>) -> Self {
        if claims.contains_key("cnf") {
            Scheme::DPoP
        } else {
            Scheme::Bearer
        }
    }
}

/// A refused resource request.
#[derive(Debug)]
pub struct ResourceError {
    pub scheme: Scheme,
    pub status: StatusCode,
    /// `None` when the request carried no credentials at all (RFC 6750 §3.1).
    pub error: Option<&'static str>,
    pub description: &'static str,
    /// The nonce to retry with, for `use_dpop_nonce`.
    pub nonce: Option<String>,
}

impl ResourceError {
    fn new(scheme: Scheme, error: &'static str, description: &'static str) -> Self {
        let status = if error == "invalid_request" {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNAUTHORIZED
        };
        Self {
            scheme,
            status,
            error: Some(error),
            description,
            nonce: None,
        }
    }

    pub fn invalid_request(description: &'static str) -> Self {
        Self::new(Scheme::Bearer, "invalid_request", description)
    }

    pub fn invalid_token(scheme: Scheme) -> Self {
        Self::new(scheme, "invalid_token", "The access token is not valid.")
    }

    pub fn insufficient_scope(scheme: Scheme) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            ..Self::new(
                scheme,
                "insufficient_scope",
                "The token lacks the required scope.",
            )
        }
    }
}

impl IntoResponse for ResourceError {
    fn into_response(self) -> Response {
        let mut challenge = match self.scheme {
            Scheme::Bearer => r#"Bearer realm="palisade""#.to_owned(),
            Scheme::DPoP => r#"DPoP algs="EdDSA ES256""#.to_owned(),
        };
        if let Some(error) = self.error {
            challenge.push_str(&format!(
                r#", error="{error}", error_description="{}""#,
                self.description
            ));
        }
        let mut response = self.status.into_response();
        let headers = response.headers_mut();
        headers.insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_str(&challenge).expect("ASCII challenge"),
        );
        headers.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        if let Some(nonce) = self.nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
            headers.insert(NONCE_HEADER, nonce);
        }
        // The challenge is in the header; the body is the usual JSON error, with the same code.
        response
            .extensions_mut()
            .insert(palisade_http::error::ErrorInfo {
                code: self.error.unwrap_or("unauthenticated"),
                message: self.description.to_owned(),
                internal_detail: None,
            });
        response
    }
}

impl OAuth {
    /// Authenticates a resource request for `method` on `path` (this server's path, as the
    /// client addressed it under the issuer): the token from the `Authorization` header, or
    /// `form_token` (RFC 6750 §2.2) where the endpoint allows one. Returns the verified claims and,
    /// for a user's token, the account.
    pub async fn authenticate_resource(
        &self,
        headers: &HeaderMap,
        method: &str,
        path: &str,
        form_token: Option<&str>,
    ) -> Result<crate::Verified, ResourceError> {
        use Scheme::{Bearer, DPoP};
        let mut authorization = headers.get_all(http::header::AUTHORIZATION).iter();
        let header = authorization.next();
        if authorization.next().is_some() || (header.is_some() && form_token.is_some()) {
            return Err(ResourceError::invalid_request("Present one access token."));
        }
        let (scheme, token) = match header {
            None => match form_token {
                Some(t) => (Bearer, t),
                None => {
                    return Err(ResourceError {
                        error: None,
                        ..ResourceError::new(Bearer, "invalid_token", "")
                    });
                }
            },
            Some(value) => {
                let parsed = value.to_str().ok().and_then(|v| v.split_once(' '));
                match parsed {
                    Some((s, t)) if s.eq_ignore_ascii_case("bearer") => (Bearer, t.trim()),
                    Some((s, t)) if s.eq_ignore_ascii_case("dpop") => (DPoP, t.trim()),
                    _ => {
                        return Err(ResourceError::invalid_request(
                            "Use the Bearer or DPoP scheme.",
                        ));
                    }
                }
            }
        };
        let proof = if scheme == DPoP {
            match self.dpop_proof(headers, method, path, Some(token)).await {
                Ok(Some(proof)) => Some(proof),
                Ok(None) => {
                    return Err(ResourceError::new(
                        DPoP,
                        "invalid_dpop_proof",
                        "A DPoP proof is required.",
                    ));
                }
                Err(DpopError::UseNonce) => {
                    return Err(ResourceError {
                        nonce: self.dpop_nonce(),
                        ..ResourceError::new(DPoP, "use_dpop_nonce", "Use the server's nonce.")
                    });
                }
                Err(DpopError::Invalid(_)) => {
                    return Err(ResourceError::new(
                        DPoP,
                        "invalid_dpop_proof",
                        "The DPoP proof is not valid.",
                    ));
                }
                Err(DpopError::Store(e)) => {
                    tracing::error!(error = %e, "DPoP proof check failed");
                    return Err(ResourceError {
                        status: StatusCode::SERVICE_UNAVAILABLE,
                        ..ResourceError::new(DPoP, "temporarily_unavailable", "Try again.")
                    });
                }
            }
        } else {
            None
        };
        let invalid = || ResourceError::invalid_token(scheme);
        let verified = self
            .verify_access_token_of(token, None)
            .await
            .map_err(|_| invalid())?;
        let bound_to = verified
            .claims
            .get("cnf")
            .and_then(|c| c.get("jkt"))
            .and_then(Value::as_str);
        match (bound_to, &proof) {
            (None, None) => Ok(verified),
            (Some(jkt), Some(proof)) if jkt == proof.jkt => Ok(verified),
            _ => Err(invalid()),
        }
    }
}
