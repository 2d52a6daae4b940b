//! The claims of an access token (RFC 9068, TOK-1) as a type: what the provider signs and what a
//! resource reads back, field by field — never a map looked up by name.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The tenant (organisation) a token, an account or an object belongs to (IDN-8).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for TenantId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

/// Granted scopes: a space-separated list on the wire (RFC 6749 §3.3), each scope once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Vec<String>);

impl Scopes {
    pub fn parse(text: &str) -> Self {
        let mut scopes: Vec<String> = Vec::new();
        for s in text.split(' ').filter(|s| !s.is_empty()) {
            if !scopes.iter().any(|x| x == s) {
                scopes.push(s.to_owned());
            }
        }
        Self(scopes)
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s == scope)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.0.clone()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

impl Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Scopes::parse(&String::deserialize(d)?))
    }
}

/// `aud`: one resource or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn contains(&self, resource: &str) -> bool {
        match self {
            Audience::One(a) => a == resource,
            Audience::Many(list) => list.iter().any(|a| a == resource),
        }
    }
}

/// `cnf`: what a token is bound to — the DPoP key by its JWK thumbprint (RFC 9449 §6), or the
/// client certificate of a mutual-TLS connection by its SHA-256 (RFC 8705 §3.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
    #[serde(default, rename = "x5t#S256", skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<String>,
}

/// An access token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// The user, or the client acting for itself.
    pub sub: String,
    pub aud: Audience,
    pub client_id: String,
    pub scope: Scopes,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    pub tenant: TenantId,
    /// For a user's token: the browser session the grant came from (a handle, not the cookie).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// For a user's token: the grant it was issued under; revoking the grant ends the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    /// For a user's token: the account's revocation epoch when it was issued (TOK-4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rev: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

impl AccessClaims {
    /// The JWK thumbprint of the DPoP key the token is bound to.
    pub fn key_binding(&self) -> Option<&str> {
        self.cnf.as_ref().and_then(|c| c.jkt.as_deref())
    }

    /// The SHA-256 thumbprint (base64url) of the client certificate the token is bound to.
    pub fn certificate_binding(&self) -> Option<&str> {
        self.cnf.as_ref().and_then(|c| c.x5t_s256.as_deref())
    }

    /// A user's token, as opposed to a client's own (client credentials).
    pub fn is_users(&self) -> bool {
        self.rev.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_read_what_the_provider_signs() {
        let json = serde_json::json!({
            "iss": "https://id.example", "sub": "u1", "aud": ["https://id.example/api", "x"],
            "client_id": "c1", "scope": "openid  social:read openid", "jti": "j", "iat": 1,
            "exp": 2, "tenant": "default", "rev": 3, "gid": "g", "sid": "s",
            "cnf": { "jkt": "thumb" }
        });
        let claims: AccessClaims = serde_json::from_value(json).unwrap();
        assert!(claims.aud.contains("https://id.example/api"));
        assert_eq!(claims.scope.to_string(), "openid social:read");
        assert!(claims.scope.contains("social:read") && !claims.scope.contains("messages"));
        assert_eq!(claims.key_binding(), Some("thumb"));
        assert!(claims.is_users());
        assert_eq!(
            serde_json::to_value(&claims).unwrap()["scope"],
            "openid social:read"
        );
        // A claim of the wrong type is not a token of ours.
        let bad = serde_json::json!({ "iss": "i", "sub": 5, "aud": "a", "client_id": "c",
            "scope": "", "jti": "j", "iat": 1, "exp": 2, "tenant": "t" });
        assert!(serde_json::from_value::<AccessClaims>(bad).is_err());
    }
}
