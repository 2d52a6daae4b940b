//! OAuth clients (OAU-4): registered by an operator (CLI or admin API) or, later, dynamically.
//! Confidential clients get a high-entropy secret shown once; only its SHA-256 digest is stored
//! (a slow hash would cap the token endpoint and adds nothing to 256 random bits).

use crate::error::OAuthError;
use data_encoding::BASE64;
use palisade_store::{Db, StoreError, now_ms};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    /// A JWT signed with one of the client's registered keys (RFC 7523).
    PrivateKeyJwt,
    /// Public clients (browser and native apps): no secret.
    None,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
            AuthMethod::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "client_secret_basic" => Some(AuthMethod::ClientSecretBasic),
            "client_secret_post" => Some(AuthMethod::ClientSecretPost),
            "private_key_jwt" => Some(AuthMethod::PrivateKeyJwt),
            "none" => Some(AuthMethod::None),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Client {
    pub client_id: String,
    /// The organisation the client belongs to: it acts for that tenant's accounts only.
    pub tenant_id: String,
    pub name: String,
    pub auth_method: AuthMethod,
    #[serde(skip)]
    secret_sha256: Option<String>,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    /// The scopes this client may ever be granted.
    pub scopes: Vec<String>,
    pub created_at: i64,
    /// The public keys of a `private_key_jwt` client.
    #[serde(skip)]
    pub jwks: Vec<palisade_jose::Jwk>,
    /// Where OpenID Connect back-channel logout tokens are delivered.
    pub backchannel_logout_uri: Option<String>,
}

impl Client {
    pub fn allows_grant(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
    }
}

pub struct NewClient {
    pub tenant_id: String,
    pub name: String,
    pub auth_method: AuthMethod,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    /// Required for `private_key_jwt`.
    pub jwks: Vec<palisade_jose::Jwk>,
    pub backchannel_logout_uri: Option<String>,
}

pub const GRANTS: &[&str] = &["authorization_code", "refresh_token", "client_credentials"];
pub const OIDC_SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "address",
    "phone",
    "offline_access",
];

/// Redirect URIs must be https, or http on a loopback address for native apps (RFC 8252), and
/// carry no fragment.
fn redirect_uri_ok(uri: &str) -> bool {
    let loopback = ["http://127.0.0.1", "http://[::1]", "http://localhost"]
        .iter()
        .any(|p| {
            uri.strip_prefix(p)
                .is_some_and(|rest| rest.starts_with([':', '/']))
        });
    (uri.starts_with("https://") || loopback) && !uri.contains('#')
}

impl NewClient {
    /// The registration policy, for the CLI and dynamic registration alike: known grants and
    /// scopes only; redirect URIs safe and, when `allowed_hosts` is not empty, on those hosts;
    /// keys exactly for `private_key_jwt`; no client credentials for public clients.
    pub fn check(&self, api_scopes: &[String], allowed_hosts: &[String]) -> Result<(), String> {
        if let Some(g) = self
            .grant_types
            .iter()
            .find(|g| !GRANTS.contains(&g.as_str()))
        {
            return Err(format!(
                "unknown grant `{g}` (known: {})",
                GRANTS.join(", ")
            ));
        }
        let known = |s: &String| OIDC_SCOPES.contains(&s.as_str()) || api_scopes.contains(s);
        if let Some(s) = self.scopes.iter().find(|s| !known(s)) {
            return Err(format!("unknown scope `{s}`"));
        }
        for uri in &self.redirect_uris {
            if !redirect_uri_ok(uri) {
                return Err(format!(
                    "redirect URI `{uri}` must be https (or http on a loopback address), without a fragment"
                ));
            }
            let host = uri
                .split_once("://")
                .map(|(_, rest)| rest.split(['/', ':', '?']).next().unwrap_or_default())
                .unwrap_or_default();
            if !allowed_hosts.is_empty() && !allowed_hosts.iter().any(|h| h == host) {
                return Err(format!("redirect URI host `{host}` is not allowed"));
            }
        }
        if let Some(uri) = &self.backchannel_logout_uri
            && !redirect_uri_ok(uri)
        {
            return Err(format!(
                "backchannel_logout_uri `{uri}` must be https (or http on a loopback address), without a fragment"
            ));
        }
        if self.grant_types.iter().any(|g| g == "authorization_code")
            && self.redirect_uris.is_empty()
        {
            return Err("the code flow needs at least one redirect URI".into());
        }
        if self
            .jwks
            .iter()
            .any(|k| palisade_jose::keys::PublicKey::from_jwk(k).is_none())
        {
            return Err("only Ed25519 (EdDSA) and P-256 (ES256) public keys are accepted".into());
        }
        if (self.auth_method == AuthMethod::PrivateKeyJwt) == self.jwks.is_empty() {
            return Err("keys are required for private_key_jwt, and only for it".into());
        }
        if self.auth_method == AuthMethod::None
            && self.grant_types.iter().any(|g| g == "client_credentials")
        {
            return Err("a public client cannot use client_credentials".into());
        }
        Ok(())
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    client_id: String,
    name: String,
    auth_method: String,
    secret_sha256: Option<String>,
    redirect_uris: String,
    grant_types: String,
    scopes: String,
    created_at: i64,
    jwks: Option<String>,
    backchannel_logout_uri: Option<String>,
    tenant_id: String,
}

fn from_row(row: Row) -> Result<Client, StoreError> {
    let corrupt = |what: &str| {
        StoreError::Database(sqlx::Error::Protocol(format!(
            "client {}: {what}",
            row.client_id
        )))
    };
    Ok(Client {
        auth_method: AuthMethod::parse(&row.auth_method).ok_or_else(|| corrupt("auth method"))?,
        redirect_uris: serde_json::from_str(&row.redirect_uris)
            .map_err(|_| corrupt("redirect URIs"))?,
        grant_types: serde_json::from_str(&row.grant_types).map_err(|_| corrupt("grant types"))?,
        scopes: row.scopes.split_whitespace().map(str::to_owned).collect(),
        jwks: match &row.jwks {
            Some(j) => serde_json::from_str(j).map_err(|_| corrupt("keys"))?,
            None => Vec::new(),
        },
        backchannel_logout_uri: row.backchannel_logout_uri,
        tenant_id: row.tenant_id,
        client_id: row.client_id,
        name: row.name,
        secret_sha256: row.secret_sha256,
        created_at: row.created_at,
    })
}

const COLUMNS: &str = "client_id, name, auth_method, secret_sha256, redirect_uris, grant_types, \
                       scopes, created_at, jwks, backchannel_logout_uri, tenant_id";

/// Stores a new client; returns it and, for a confidential client, its secret (shown once).
pub async fn create(db: &Db, new: NewClient) -> Result<(Client, Option<String>), StoreError> {
    let client_id = palisade_crypto::random_token();
    let secret = matches!(
        new.auth_method,
        AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
    )
    .then(palisade_crypto::random_token);
    let digest = secret
        .as_deref()
        .map(|s| palisade_crypto::sha256_hex(s.as_bytes()));
    sqlx::query(&format!(
        "INSERT INTO oauth_clients ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(&client_id)
    .bind(&new.name)
    .bind(new.auth_method.as_str())
    .bind(&digest)
    .bind(serde_json::to_string(&new.redirect_uris).expect("strings serialize"))
    .bind(serde_json::to_string(&new.grant_types).expect("strings serialize"))
    .bind(new.scopes.join(" "))
    .bind(now_ms())
    .bind((!new.jwks.is_empty()).then(|| serde_json::to_string(&new.jwks).expect("JWKs serialize")))
    .bind(&new.backchannel_logout_uri)
    .bind(&new.tenant_id)
    .execute(db.pool())
    .await?;
    let client = find(db, &client_id).await?.expect("just inserted");
    Ok((client, secret))
}

/// How long a client read for authentication is trusted without reading it again: as long as a
/// running server takes to follow signing-key changes made elsewhere. This node's own changes
/// (dynamic registration updates, deletions on its admin API) evict at once; a client deleted
/// by the CLI or on another node stops authenticating here within this.
const CACHE_TTL: Duration = Duration::from_secs(2);
const CACHE_MAX: usize = 10_000;

/// Clients recently read, so that authenticating the client of every back-channel request
/// (token, introspection, revocation, PAR) costs no database round trip.
#[derive(Default)]
pub struct ClientCache(Mutex<HashMap<String, (Instant, Client)>>);

impl ClientCache {
    pub async fn find(&self, db: &Db, client_id: &str) -> Result<Option<Client>, StoreError> {
        let now = Instant::now();
        if let Some((at, client)) = self.0.lock().expect("client cache").get(client_id)
            && now.duration_since(*at) < CACHE_TTL
        {
            return Ok(Some(client.clone()));
        }
        let found = find(db, client_id).await?;
        if let Some(client) = &found {
            let mut entries = self.0.lock().expect("client cache");
            if entries.len() >= CACHE_MAX {
                entries.retain(|_, (at, _)| now.duration_since(*at) < CACHE_TTL);
                if entries.len() >= CACHE_MAX {
                    entries.clear();
                }
            }
            entries.insert(client_id.to_owned(), (now, client.clone()));
        }
        Ok(found)
    }

    /// Forgets a client this node changed or deleted.
    pub fn evict(&self, client_id: &str) {
        self.0.lock().expect("client cache").remove(client_id);
    }
}

pub async fn find(db: &Db, client_id: &str) -> Result<Option<Client>, StoreError> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM oauth_clients WHERE client_id = $1"
    ))
    .bind(client_id)
    .fetch_optional(db.pool())
    .await?;
    row.map(from_row).transpose()
}

pub async fn list(db: &Db) -> Result<Vec<Client>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM oauth_clients ORDER BY created_at"
    ))
    .fetch_all(db.pool())
    .await?;
    rows.into_iter().map(from_row).collect()
}

/// Returns whether a client was deleted.
pub async fn delete(db: &Db, client_id: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM oauth_clients WHERE client_id = $1")
        .bind(client_id)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// How a request presented its client credentials.
pub struct Presented {
    /// From `Authorization: Basic`.
    pub basic: Option<(String, String)>,
    /// From the form body.
    pub post_id: Option<String>,
    pub post_secret: Option<String>,
    /// A `client_assertion` of type `jwt-bearer` (RFC 7523).
    pub assertion: Option<String>,
}

/// Longest lifetime accepted for a client assertion: they are meant to be made per request.
const MAX_ASSERTION_LIFETIME_S: i64 = 600;

/// RFC 7523: a JWT by the client, signed with one of its registered keys, naming this server
/// as audience, used once.
async fn authenticate_assertion(
    db: &Db,
    cache: &ClientCache,
    jwt: &str,
    claimed_id: Option<String>,
    audiences: &[String],
) -> Result<Client, OAuthError> {
    let refuse = || OAuthError::InvalidClient { basic: false };
    // The unverified `iss` only says which client's keys to verify with.
    let parts = palisade_jose::jws::split(jwt).ok_or_else(refuse)?;
    let unverified: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&parts.payload).map_err(|_| refuse())?;
    let id = unverified
        .get("iss")
        .and_then(|v| v.as_str())
        .ok_or_else(refuse)?
        .to_owned();
    if claimed_id.is_some_and(|c| c != id) {
        return Err(refuse());
    }
    let client = cache.find(db, &id).await?.ok_or_else(refuse)?;
    if client.auth_method != AuthMethod::PrivateKeyJwt {
        return Err(refuse());
    }
    let keys: Vec<_> = client
        .jwks
        .iter()
        .filter_map(palisade_jose::keys::PublicKey::from_jwk)
        .collect();
    let now = now_ms() / 1000;
    let claims = palisade_jose::verify::verify(
        jwt,
        &keys,
        &palisade_jose::verify::Expectations {
            typ: "JWT",
            issuer: &id,
            audience: None,
            now,
            skew_seconds: 30,
        },
    )
    .map_err(|_| refuse())?;
    let for_us = match claims.get("aud") {
        Some(serde_json::Value::String(a)) => audiences.contains(a),
        Some(serde_json::Value::Array(list)) => list
            .iter()
            .any(|a| a.as_str().is_some_and(|a| audiences.iter().any(|x| x == a))),
        _ => false,
    };
    let exp = claims.get("exp").and_then(|v| v.as_i64()).unwrap_or(0);
    let jti = claims
        .get("jti")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if claims.get("sub").and_then(|v| v.as_str()) != Some(id.as_str())
        || !for_us
        || jti.is_empty()
        || exp - now > MAX_ASSERTION_LIFETIME_S
    {
        return Err(refuse());
    }
    // Used once: the id is remembered until the assertion expires.
    let digest = palisade_crypto::sha256_hex(format!("{id}\n{jti}").as_bytes());
    if !crate::once::first_use(db, &digest, (exp + 60) * 1000).await? {
        return Err(refuse());
    }
    Ok(client)
}

/// RFC 6749 §2.3.1: `base64(urlencode(id) ":" urlencode(secret))`.
pub fn parse_basic(header: &str) -> Option<(String, String)> {
    let encoded = header.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(BASE64.decode(encoded.trim().as_bytes()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .ok()
            .map(|s| s.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

/// Authenticates the client of a token or introspection request: exactly one method, the one
/// the client registered, with the right secret.
pub async fn authenticate(
    db: &Db,
    cache: &ClientCache,
    audiences: &[String],
    presented: Presented,
) -> Result<Client, OAuthError> {
    if let Some(jwt) = presented.assertion {
        if presented.basic.is_some() || presented.post_secret.is_some() {
            return Err(OAuthError::InvalidRequest(
                "Use one client authentication method, not several.".into(),
            ));
        }
        return authenticate_assertion(db, cache, &jwt, presented.post_id, audiences).await;
    }
    let basic = presented.basic.is_some();
    let refuse = || OAuthError::InvalidClient { basic };
    let (method, id, secret) = match (presented.basic, presented.post_id, presented.post_secret) {
        (Some(_), _, Some(_)) => {
            return Err(OAuthError::InvalidRequest(
                "Use one client authentication method, not several.".into(),
            ));
        }
        (Some((id, secret)), post_id, None) => {
            if post_id.is_some_and(|p| p != id) {
                return Err(OAuthError::InvalidRequest(
                    "The client_id does not match the authenticated client.".into(),
                ));
            }
            (AuthMethod::ClientSecretBasic, id, Some(secret))
        }
        (None, Some(id), Some(secret)) => (AuthMethod::ClientSecretPost, id, Some(secret)),
        (None, Some(id), None) => (AuthMethod::None, id, None),
        (None, None, _) => return Err(refuse()),
    };
    let client = cache.find(db, &id).await?.ok_or_else(refuse)?;
    if client.auth_method != method {
        return Err(refuse());
    }
    match (&client.secret_sha256, secret) {
        (Some(digest), Some(secret)) => {
            let given = palisade_crypto::sha256_hex(secret.as_bytes());
            if !palisade_crypto::constant_time_eq(digest.as_bytes(), given.as_bytes()) {
                return Err(refuse());
            }
        }
        (None, None) => {}
        _ => return Err(refuse()),
    }
    Ok(client)
}

/// Gives a client a new registration access token (RFC 7592); returns it (shown once).
pub async fn issue_registration_token(db: &Db, client_id: &str) -> Result<String, StoreError> {
    let token = palisade_crypto::random_token();
    sqlx::query("UPDATE oauth_clients SET registration_token_sha256 = $1 WHERE client_id = $2")
        .bind(palisade_crypto::sha256_hex(token.as_bytes()))
        .bind(client_id)
        .execute(db.pool())
        .await?;
    Ok(token)
}

/// The client whose registration access token this is, if it is one.
pub async fn by_registration_token(
    db: &Db,
    client_id: &str,
    token: &str,
) -> Result<Option<Client>, StoreError> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT registration_token_sha256 FROM oauth_clients \
         WHERE client_id = $1 AND registration_token_sha256 IS NOT NULL",
    )
    .bind(client_id)
    .fetch_optional(db.pool())
    .await?;
    let given = palisade_crypto::sha256_hex(token.as_bytes());
    match row {
        Some((digest,))
            if palisade_crypto::constant_time_eq(digest.as_bytes(), given.as_bytes()) =>
        {
            find(db, client_id).await
        }
        _ => Ok(None),
    }
}

/// Replaces a client's metadata (not its id, method or secret).
pub async fn update(db: &Db, client_id: &str, new: &NewClient) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE oauth_clients SET name = $1, redirect_uris = $2, grant_types = $3, scopes = $4, \
         jwks = $5, backchannel_logout_uri = $6 WHERE client_id = $7",
    )
    .bind(&new.name)
    .bind(serde_json::to_string(&new.redirect_uris).expect("strings serialize"))
    .bind(serde_json::to_string(&new.grant_types).expect("strings serialize"))
    .bind(new.scopes.join(" "))
    .bind((!new.jwks.is_empty()).then(|| serde_json::to_string(&new.jwks).expect("JWKs serialize")))
    .bind(&new.backchannel_logout_uri)
    .bind(client_id)
    .execute(db.pool())
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let header = format!("Basic {}", BASE64.encode(b"my%20app:s%3Acret+x"));
        assert_eq!(
            parse_basic(&header),
            Some(("my app".into(), "s:cret x".into()))
        );
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
        assert_eq!(
            parse_basic(&format!("Basic {}", BASE64.encode(b"no-colon"))),
            None
        );
    }

    async fn clients_authenticate_only_as_registered(db: Db) {
        let (client, secret) = create(
            &db,
            NewClient {
                tenant_id: palisade_store::DEFAULT_TENANT.into(),
                name: "billing".into(),
                auth_method: AuthMethod::ClientSecretBasic,
                redirect_uris: vec![],
                grant_types: vec!["client_credentials".into()],
                scopes: vec!["audit:write".into()],
                jwks: vec![],
                backchannel_logout_uri: None,
            },
        )
        .await
        .unwrap();
        let secret = secret.unwrap();
        let (stored,): (String,) =
            sqlx::query_as("SELECT secret_sha256 FROM oauth_clients WHERE client_id = $1")
                .bind(&client.client_id)
                .fetch_one(db.pool())
                .await
                .unwrap();
        assert_ne!(stored, secret, "only the digest is stored");
        let basic = |id: &str, s: &str| Presented {
            basic: Some((id.to_owned(), s.to_owned())),
            post_id: None,
            post_secret: None,
            assertion: None,
        };
        let ok = authenticate(
            &db,
            &ClientCache::default(),
            &[],
            basic(&client.client_id, &secret),
        )
        .await
        .unwrap();
        assert_eq!(ok.client_id, client.client_id);
        for bad in [
            basic(&client.client_id, "wrong"),
            basic("unknown", &secret),
            // Registered for Basic: the same secret in the body is refused.
            Presented {
                basic: None,
                post_id: Some(client.client_id.clone()),
                post_secret: Some(secret.clone()),
                assertion: None,
            },
            // No secret at all, as a public client would.
            Presented {
                basic: None,
                post_id: Some(client.client_id.clone()),
                post_secret: None,
                assertion: None,
            },
        ] {
            assert!(matches!(
                authenticate(&db, &ClientCache::default(), &[], bad).await,
                Err(OAuthError::InvalidClient { .. })
            ));
        }
        let both = Presented {
            basic: Some((client.client_id.clone(), secret.clone())),
            post_id: None,
            post_secret: Some(secret.clone()),
            assertion: None,
        };
        assert!(matches!(
            authenticate(&db, &ClientCache::default(), &[], both).await,
            Err(OAuthError::InvalidRequest(_))
        ));
        assert!(delete(&db, &client.client_id).await.unwrap());
        assert!(
            authenticate(
                &db,
                &ClientCache::default(),
                &[],
                basic(&client.client_id, &secret)
            )
            .await
            .is_err()
        );
    }
    palisade_store::both_backends!(clients_authenticate_only_as_registered);
}
