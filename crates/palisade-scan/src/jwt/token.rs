//! A compact JWS taken apart, and new tokens put together from its parts.

use data_encoding::BASE64URL_NOPAD;
use serde_json::{Map, Value};

use crate::ScanError;

/// A JSON object: a JOSE header or a claims set.
pub(crate) type Object = Map<String, Value>;

/// A token as the scanner sees it: parsed but not trusted.
#[derive(Clone, Debug)]
pub struct Token {
    pub header: Object,
    pub claims: Object,
    pub signature: Vec<u8>,
    /// `header.payload` exactly as received: what the signature covers.
    pub signing_input: String,
}

impl Token {
    pub fn parse(compact: &str) -> Result<Self, ScanError> {
        let compact = compact.trim();
        let parts: Vec<&str> = compact.split('.').collect();
        match parts.len() {
            3 => {}
            5 => {
                return Err(ScanError::Token(
                    "an encrypted token (JWE) cannot be audited without its key".into(),
                ));
            }
            n => {
                return Err(ScanError::Token(format!(
                    "a compact JWS has 3 parts separated by dots, this has {n}"
                )));
            }
        }
        let header = object(parts[0], "header")?;
        let claims = object(parts[1], "payload")?;
        let signature = BASE64URL_NOPAD
            .decode(parts[2].as_bytes())
            .map_err(|_| ScanError::Token("the signature is not base64url".into()))?;
        Ok(Self {
            header,
            claims,
            signature,
            signing_input: format!("{}.{}", parts[0], parts[1]),
        })
    }

    pub fn alg(&self) -> &str {
        self.header.get("alg").and_then(Value::as_str).unwrap_or("")
    }

    /// A numeric claim (`exp`, `iat`, `nbf`), in whole seconds.
    pub fn time_claim(&self, name: &str) -> Option<i64> {
        self.claims
            .get(name)
            .and_then(Value::as_f64)
            .map(|v| v as i64)
    }
}

fn object(part: &str, what: &str) -> Result<Object, ScanError> {
    let bytes = BASE64URL_NOPAD
        .decode(part.as_bytes())
        .map_err(|_| ScanError::Token(format!("the {what} is not base64url")))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ScanError::Token(format!("the {what} is not a JSON object"))),
    }
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    BASE64URL_NOPAD.encode(bytes)
}

/// `header.payload` for a new token.
pub(crate) fn signing_input(header: &Object, claims: &Object) -> String {
    format!(
        "{}.{}",
        b64(&Value::Object(header.clone()).to_string().into_bytes()),
        b64(&Value::Object(claims.clone()).to_string().into_bytes())
    )
}

/// A compact token from its signing input and signature.
pub(crate) fn compact(signing_input: &str, signature: &[u8]) -> String {
    format!("{signing_input}.{}", b64(signature))
}

/// The seconds since the Unix epoch.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_token_and_refuses_what_is_not_one() {
        let t = Token::parse("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.AAE").unwrap();
        assert_eq!(t.alg(), "HS256");
        assert_eq!(t.claims["sub"], "a");
        assert_eq!(t.signature, [0, 1]);
        assert!(matches!(Token::parse("a.b"), Err(ScanError::Token(m)) if m.contains("has 2")));
        assert!(matches!(Token::parse("a.b.c.d.e"), Err(ScanError::Token(m)) if m.contains("JWE")));
        assert!(
            Token::parse("eyJhbGciOiJIUzI1NiJ9.WzFd.").is_err(),
            "payload is an array"
        );
    }
}
