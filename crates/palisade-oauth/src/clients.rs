//! OAuth clients (OAU-4): registered by an operator (CLI or admin API) or, later, dynamically.
//! Confidential clients get a high-entropy secret shown once; only its SHA-256 digest is stored
//! (a slow hash would cap the token endpoint and adds nothing to 256 random bits).

use crate::error::OAuthError;
use data_encoding::BASE64;
use palisade_store::{Db, StoreError, now_ms};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    /// Public clients (browser and native apps): no secret.
    None,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "client_secret_basic" => Some(AuthMethod::ClientSecretBasic),
            "client_secret_post" => Some(AuthMethod::ClientSecretPost),
            "none" => Some(AuthMethod::None),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    pub auth_method: AuthMethod,
    #[serde(skip)]
    secret_sha256: Option<String>,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    /// The scopes this client may ever be granted.
    pub scopes: Vec<String>,
    pub created_at: i64,
}

impl Client {
    pub fn allows_grant(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
    }
}

pub struct NewClient {
    pub name: String,
    pub auth_method: AuthMethod,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
}

type Row = (
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    i64,
);

fn from_row(
    (client_id, name, method, secret_sha256, redirect_uris, grant_types, scopes, created_at): Row,
) -> Result<Client, StoreError> {
    let corrupt = |what: &str| {
        StoreError::Database(sqlx::Error::Protocol(format!("client {client_id}: {what}")))
    };
    Ok(Client {
        auth_method: AuthMethod::parse(&method).ok_or_else(|| corrupt("auth method"))?,
        redirect_uris: serde_json::from_str(&redirect_uris)
            .map_err(|_| corrupt("redirect URIs"))?,
        grant_types: serde_json::from_str(&grant_types).map_err(|_| corrupt("grant types"))?,
        scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        client_id,
        name,
        secret_sha256,
        created_at,
    })
}

const COLUMNS: &str =
    "client_id, name, auth_method, secret_sha256, redirect_uris, grant_types, scopes, created_at";

/// Stores a new client; returns it and, for a confidential client, its secret (shown once).
pub async fn create(db: &Db, new: NewClient) -> Result<(Client, Option<String>), StoreError> {
    let client_id = palisade_crypto::random_token();
    let secret = (new.auth_method != AuthMethod::None).then(palisade_crypto::random_token);
    let digest = secret
        .as_deref()
        .map(|s| palisade_crypto::sha256_hex(s.as_bytes()));
    sqlx::query(&format!(
        "INSERT INTO oauth_clients ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    ))
    .bind(&client_id)
    .bind(&new.name)
    .bind(new.auth_method.as_str())
    .bind(&digest)
    .bind(serde_json::to_string(&new.redirect_uris).expect("strings serialize"))
    .bind(serde_json::to_string(&new.grant_types).expect("strings serialize"))
    .bind(new.scopes.join(" "))
    .bind(now_ms())
    .execute(db.pool())
    .await?;
    let client = find(db, &client_id).await?.expect("just inserted");
    Ok((client, secret))
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
pub async fn authenticate(db: &Db, presented: Presented) -> Result<Client, OAuthError> {
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
    let client = find(db, &id).await?.ok_or_else(refuse)?;
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
                name: "billing".into(),
                auth_method: AuthMethod::ClientSecretBasic,
                redirect_uris: vec![],
                grant_types: vec!["client_credentials".into()],
                scopes: vec!["audit:write".into()],
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
        };
        let ok = authenticate(&db, basic(&client.client_id, &secret))
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
            },
            // No secret at all, as a public client would.
            Presented {
                basic: None,
                post_id: Some(client.client_id.clone()),
                post_secret: None,
            },
        ] {
            assert!(matches!(
                authenticate(&db, bad).await,
                Err(OAuthError::InvalidClient { .. })
            ));
        }
        let both = Presented {
            basic: Some((client.client_id.clone(), secret.clone())),
            post_id: None,
            post_secret: Some(secret.clone()),
        };
        assert!(matches!(
            authenticate(&db, both).await,
            Err(OAuthError::InvalidRequest(_))
        ));
        assert!(delete(&db, &client.client_id).await.unwrap());
        assert!(
            authenticate(&db, basic(&client.client_id, &secret))
                .await
                .is_err()
        );
    }
    palisade_store::both_backends!(clients_authenticate_only_as_registered);
}
