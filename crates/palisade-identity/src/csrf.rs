//! CSRF defence for every state-changing form (IDN-5), in three independent layers:
//! Fetch Metadata (`Sec-Fetch-Site` must be same-origin, or absent for older browsers), the
//! `Origin` header (must be this site when present), and a double-submit token: a random
//! `__Host-` cookie whose value each form echoes in a hidden field. A cross-site page can make a
//! browser send the cookie but can neither read it nor set it, so it cannot forge the field.

use crate::cookies;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, IntoResponseParts, Response, ResponseParts};
use http::request::Parts;
use http::{HeaderMap, header};
use palisade_http::AppError;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// The CSRF token for forms on the page being rendered. Returned alongside the page so that a
/// freshly minted token also reaches the browser as a cookie.
#[derive(Debug, Clone)]
pub struct Csrf {
    pub token: String,
    fresh: bool,
}

const COOKIE_LIFETIME: Duration = Duration::from_secs(60 * 60 * 24 * 14);

fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl<S: Send + Sync> FromRequestParts<S> for Csrf {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(
            match cookies::get(&parts.headers, cookies::CSRF).filter(|t| well_formed(t)) {
                Some(token) => Csrf {
                    token: token.to_owned(),
                    fresh: false,
                },
                None => Csrf {
                    token: palisade_crypto::random_token(),
                    fresh: true,
                },
            },
        )
    }
}

impl IntoResponseParts for Csrf {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        if self.fresh {
            res.headers_mut().append(
                header::SET_COOKIE,
                cookies::set(cookies::CSRF, &self.token, COOKIE_LIFETIME, "Strict"),
            );
        }
        Ok(res)
    }
}

/// A form body that passed every CSRF layer, parsed strictly: URL-encoded only, UTF-8 only,
/// each field at most once.
#[derive(Debug)]
pub struct CsrfForm<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for CsrfForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        check_same_origin(req.headers(), req.uri()).map_err(IntoResponse::into_response)?;
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(http::StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response());
        }
        let cookie_token = cookies::get(req.headers(), cookies::CSRF).map(str::to_owned);
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let mut pairs =
            palisade_http::forms::parse_pairs(&body).map_err(IntoResponse::into_response)?;
        let submitted = pairs
            .iter()
            .position(|(k, _)| k == "csrf")
            .map(|i| pairs.swap_remove(i).1);
        check_token(cookie_token.as_deref(), submitted.as_deref())
            .map_err(IntoResponse::into_response)?;
        let de =
            serde::de::value::MapDeserializer::<_, serde::de::value::Error>::new(pairs.into_iter());
        serde_path_to_error::deserialize(de)
            .map(CsrfForm)
            .map_err(|e| {
                // serde's message may quote a submitted value (a password), so the field is named
                // without it; a missing field's message quotes only the name.
                let rule = e.inner().to_string();
                let message = match e.path().to_string().as_str() {
                    _ if rule.starts_with("missing field") => format!("{rule}."),
                    "." => "The form is invalid.".into(),
                    field => format!("The field `{field}` is invalid."),
                };
                AppError::bad_request("invalid_form", message).into_response()
            })
    }
}

/// A JSON body from this site's own scripts, which send the CSRF token in `x-csrf-token`.
#[derive(Debug)]
pub struct CsrfJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for CsrfJson<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        check_same_origin(req.headers(), req.uri()).map_err(IntoResponse::into_response)?;
        if !palisade_http::input::is_json(req.headers()) {
            return Err(http::StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response());
        }
        let cookie_token = cookies::get(req.headers(), cookies::CSRF).map(str::to_owned);
        let submitted = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        check_token(cookie_token.as_deref(), submitted.as_deref())
            .map_err(IntoResponse::into_response)?;
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        palisade_http::input::json_body(&body)
            .map(CsrfJson)
            .map_err(IntoResponse::into_response)
    }
}

fn check_token(cookie: Option<&str>, submitted: Option<&str>) -> Result<(), AppError> {
    let valid = match (cookie, submitted) {
        (Some(c), Some(s)) => {
            well_formed(c) && palisade_crypto::constant_time_eq(c.as_bytes(), s.as_bytes())
        }
        _ => false,
    };
    if valid {
        Ok(())
    } else {
        Err(AppError::forbidden(
            "csrf",
            "The form has expired or did not come from this site. Reload the page and try again.",
        ))
    }
}

fn check_same_origin(headers: &HeaderMap, uri: &http::Uri) -> Result<(), AppError> {
    let refuse = || {
        AppError::forbidden(
            "cross_site",
            "Cross-site form submissions are not accepted.",
        )
    };
    if let Some(site) = headers.get("sec-fetch-site")
        && !matches!(site.as_bytes(), b"same-origin" | b"none")
    {
        return Err(refuse());
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()));
        let expected = host.map(|h| format!("https://{h}"));
        if expected.as_deref().map(str::as_bytes) != Some(origin.as_bytes()) {
            return Err(refuse());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_site_requests_are_refused() {
        let uri: http::Uri = "/login".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:8443".parse().unwrap());
        assert!(
            check_same_origin(&h, &uri).is_ok(),
            "no metadata at all: older client"
        );
        h.insert(header::ORIGIN, "https://127.0.0.1:8443".parse().unwrap());
        h.insert("sec-fetch-site", "same-origin".parse().unwrap());
        assert!(check_same_origin(&h, &uri).is_ok());
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(check_same_origin(&h, &uri).is_err());
        h.insert("sec-fetch-site", "same-site".parse().unwrap());
        assert!(check_same_origin(&h, &uri).is_err());
        h.remove("sec-fetch-site");
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(check_same_origin(&h, &uri).is_err());
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(check_same_origin(&h, &uri).is_err());
    }
}
