//! Typed input at the edge (PLT-9): JSON bodies and query strings parsed into the handler's
//! type, and bounded text that checks its rule while it is parsed. A refusal names the field
//! and the rule it broke (`body: must have 1 to 5000 characters`), so a client can fix its
//! request without guessing, and it is rendered like every other error.

use crate::AppError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use std::fmt;

/// A JSON request body (`application/json` or a `+json` type), parsed into `T`; as a response,
/// `T` serialized.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response());
        }
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        json_body(&body)
            .map(Json)
            .map_err(IntoResponse::into_response)
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// A query string parsed into `T`; a name given twice is refused, like in forms.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Self::from_uri(&parts.uri)
    }
}

impl<T: DeserializeOwned> Query<T> {
    /// The query string of `uri` parsed into `T`.
    pub fn from_uri(uri: &http::Uri) -> Result<Self, AppError> {
        let query = uri.query().unwrap_or_default().as_bytes();
        crate::forms::parse_pairs(query)?;
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|e| refusal("invalid_query", e.path(), e.inner()))
    }
}

/// Whether the request says its body is JSON.
pub fn is_json(headers: &HeaderMap) -> bool {
    let Some(essence) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
    else {
        return false;
    };
    essence == "application/json"
        || essence.starts_with("application/") && essence.ends_with("+json")
}

/// Parses a JSON body into `T`, naming the field and the rule when it does not fit.
pub fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        if e.inner().is_data() {
            refusal("invalid_json", e.path(), e.inner())
        } else {
            AppError::bad_request(
                "invalid_json",
                format!("The body is not valid JSON: {}.", e.inner()),
            )
        }
    })?;
    de.end()
        .map_err(|e| AppError::bad_request("invalid_json", format!("The body has {e}.")))?;
    Ok(value)
}

/// The refusal of a value that parsed but does not fit: the field's path, then serde's rule.
fn refusal(
    code: &'static str,
    path: &serde_path_to_error::Path,
    rule: impl fmt::Display,
) -> AppError {
    let field = path.to_string();
    if field == "." {
        AppError::bad_request(code, format!("{rule}."))
    } else {
        AppError::bad_request(code, format!("{field}: {rule}."))
    }
}

/// Text with `MIN` to `MAX` characters, not blank when `MIN` is above zero, and without control
/// characters — except line breaks and tabs when `LINES` (bodies, not names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<const MIN: usize, const MAX: usize, const LINES: bool = true>(String);

/// Text on one line: a name or a title.
pub type Line<const MIN: usize, const MAX: usize> = Text<MIN, MAX, false>;

impl<const MIN: usize, const MAX: usize, const LINES: bool> Text<MIN, MAX, LINES> {
    /// The text, if it keeps the rule; otherwise the rule it broke.
    pub fn parse(text: String) -> Result<Self, String> {
        let count = text.chars().count();
        let allowed = |c: char| !c.is_control() || LINES && matches!(c, '\n' | '\r' | '\t');
        if (count < MIN || count > MAX) && MIN == 0 {
            Err(format!("must have at most {MAX} characters"))
        } else if count < MIN || count > MAX {
            Err(format!("must have {MIN} to {MAX} characters"))
        } else if MIN > 0 && text.trim().is_empty() {
            Err("must not be blank".into())
        } else if !text.chars().all(allowed) {
            Err(if LINES {
                "must not contain control characters other than line breaks and tabs".into()
            } else {
                "must be one line without control characters".into()
            })
        } else {
            Ok(Self(text))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl<'de, const MIN: usize, const MAX: usize, const LINES: bool> Deserialize<'de>
    for Text<MIN, MAX, LINES>
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::parse(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Post {
        body: Text<1, 10>,
        name: Line<0, 5>,
        count: Option<u8>,
    }

    fn message(body: &str) -> String {
        match json_body::<Post>(body.as_bytes()) {
            Err(AppError::BadRequest { message, .. }) => message,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn refusals_name_the_field_and_the_rule() {
        assert!(message(r#"{"body":"  ","name":""}"#).starts_with("body: must not be blank"));
        assert!(message(r#"{"body":"","name":""}"#).starts_with("body: must have 1 to 10"));
        assert!(
            message(r#"{"body":"x","name":"abcdef"}"#).starts_with("name: must have at most 5")
        );
        assert!(message(r#"{"body":"x","name":"a\nb"}"#).starts_with("name: must be one line"));
        assert!(
            message(r#"{"body":"x","name":"","count":300}"#).starts_with("count: invalid value")
        );
        assert!(message(r#"{"name":""}"#).starts_with("missing field `body`"));
        let m = message(r#"{"body":"x","name":"","extra":1}"#);
        assert!(m.contains("unknown field `extra`, expected one of"), "{m}");
        assert!(message(r#"{"body":"x""#).starts_with("The body is not valid JSON"));
        assert!(message(r#"{"body":"x","name":""} []"#).starts_with("The body has trailing"));
        let ok: Post = json_body(br#"{"body":"two\nlines","name":"abc"}"#).unwrap();
        assert_eq!(ok.body.as_str(), "two\nlines");
        assert_eq!((ok.name.into_string(), ok.count), ("abc".into(), None));
    }

    #[test]
    fn json_content_types() {
        let with = |v: &str| HeaderMap::from_iter([(header::CONTENT_TYPE, v.parse().unwrap())]);
        assert!(is_json(&with("application/json; charset=utf-8")));
        assert!(is_json(&with("application/merge-patch+json")));
        assert!(!is_json(&with("text/plain")));
        assert!(!is_json(&with("application/jsonp")));
        assert!(!is_json(&HeaderMap::new()));
    }
}
