//! OAuth clients (OAU-4, OAU-9): registered by an operator (CLI or admin API) or dynamically.
//! Confidential clients get a high-entropy secret shown once; only its SHA-256 digest is stored
//! (a slow hash would cap the token endpoint and adds nothing to 256 random bits).

use crate::redirect_uri::RedirectUri;
use palisade_cluster::{Bus, Delivery};
use palisade_store::{Db, StoreError, now_ms};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    /// A JWT signed with one of the client's registered keys (RFC 7523).
    PrivateKeyJwt,
    /// Mutual TLS with an X.509-SVID of the internal CA naming the registered SPIFFE ID
    /// (RFC 8705 §2.1, `tls_client_auth_san_uri`).
    TlsClientAuth,
    /// Mutual TLS with the self-signed certificate whose thumbprint was registered (RFC 8705
    /// §2.2).
    SelfSignedTlsClientAuth,
    /// Public clients (browser and native apps): no secret.
    None,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
            AuthMethod::TlsClientAuth => "tls_client_auth",
            AuthMethod::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
            AuthMethod::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "client_secret_basic" => Some(AuthMethod::ClientSecretBasic),
            "client_secret_post" => Some(AuthMethod::ClientSecretPost),
            "private_key_jwt" => Some(AuthMethod::PrivateKeyJwt),
            "tls_client_auth" => Some(AuthMethod::TlsClientAuth),
            "self_signed_tls_client_auth" => Some(AuthMethod::SelfSignedTlsClientAuth),
            "none" => Some(AuthMethod::None),
            _ => None,
        }
    }
}

/// Who registered a client: an administrator (CLI, admin API), or anyone through dynamic
/// registration. Only an administrator's clients may be granted service scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Registrar {
    Admin,
    Registration,
}

impl Registrar {
    fn as_str(self) -> &'static str {
        match self {
            Registrar::Admin => "admin",
            Registrar::Registration => "registration",
        }
    }
}

/// Scopes that let a client act as a service rather than for a user: granted only to clients an
/// administrator created, only through client credentials — never by dynamic registration or
/// by a user's consent.
pub const SERVICE_SCOPES: &[&str] = &[palisade_principal::AUDIT_WRITE];

#[derive(Debug, Clone, Serialize)]
pub struct Client {
    pub client_id: String,
    /// The organisation the client belongs to: it acts for that tenant's accounts only.
    pub tenant_id: String,
    pub name: String,
    pub auth_method: AuthMethod,
    #[serde(skip)]
    pub(crate) secret_sha256: Option<String>,
    pub redirect_uris: Vec<RedirectUri>,
    pub grant_types: Vec<String>,
    /// The scopes this client may ever be granted.
    pub scopes: Vec<String>,
    pub created_at: i64,
    /// The public keys of a `private_key_jwt` client.
    #[serde(skip)]
    pub jwks: Vec<palisade_jose::Jwk>,
    /// Where OpenID Connect back-channel logout tokens are delivered.
    pub backchannel_logout_uri: Option<RedirectUri>,
    pub registered_by: Registrar,
    /// For a resource server: the resource (RFC 8707) it serves; it may introspect only tokens
    /// for that audience.
    pub resource: Option<String>,
    /// The client certificate of a mutual-TLS client: the SPIFFE ID its SVID names
    /// (`tls_client_auth`), or its self-signed certificate's SHA-256 thumbprint.
    pub tls_client_certificate: Option<String>,
}

impl AuthMethod {
    /// Whether the client authenticates with the certificate of its TLS connection.
    pub fn is_mutual_tls(self) -> bool {
        matches!(
            self,
            AuthMethod::TlsClientAuth | AuthMethod::SelfSignedTlsClientAuth
        )
    }
}

impl Client {
    pub fn allows_grant(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
    }

    /// A registered redirect URI that `given` is (RFC 8252's loopback ports aside).
    pub fn redirect_uri(&self, given: &str) -> Option<&RedirectUri> {
        self.redirect_uris.iter().find(|r| r.matches(given))
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
    pub registered_by: Registrar,
    pub resource: Option<String>,
    /// Required for the mutual-TLS methods: the SPIFFE ID (`tls_client_auth`) or the
    /// certificate's base64url SHA-256 thumbprint (`self_signed_tls_client_auth`).
    pub tls_client_certificate: Option<String>,
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

/// What the registration policy allows.
pub struct Policy<'a> {
    /// Scopes clients may be registered for, beyond OpenID Connect's.
    pub api_scopes: &'a [String],
    /// When not empty, redirect URIs must be on these hosts.
    pub allowed_hosts: &'a [String],
    /// Resources tokens may be issued for: a resource server's must be one of them.
    pub resources: &'a [String],
}

impl NewClient {
    /// The registration policy, for the CLI, the admin API and dynamic registration alike: known
    /// grants and scopes only (service scopes for an administrator's clients only); redirect URIs
    /// safe and, when `allowed_hosts` is not empty, on those hosts; keys exactly for
    /// `private_key_jwt`; no client credentials for public clients.
    pub fn check(&self, policy: &Policy<'_>) -> Result<(), String> {
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
        let known = |s: &String| OIDC_SCOPES.contains(&s.as_str()) || policy.api_scopes.contains(s);
        if let Some(s) = self.scopes.iter().find(|s| !known(s)) {
            return Err(format!("unknown scope `{s}`"));
        }
        if self.registered_by != Registrar::Admin
            && let Some(s) = self
                .scopes
                .iter()
                .find(|s| SERVICE_SCOPES.contains(&s.as_str()))
        {
            return Err(format!(
                "the scope `{s}` is granted to service clients an administrator creates, never by registration"
            ));
        }
        for uri in &self.redirect_uris {
            let uri = RedirectUri::parse(uri).map_err(|e| format!("redirect URI {e}"))?;
            if !policy.allowed_hosts.is_empty()
                && !policy.allowed_hosts.iter().any(|h| h == uri.host())
            {
                return Err(format!("redirect URI host `{}` is not allowed", uri.host()));
            }
        }
        if let Some(uri) = &self.backchannel_logout_uri {
            RedirectUri::parse(uri).map_err(|e| format!("backchannel_logout_uri {e}"))?;
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
        match (self.auth_method, &self.tls_client_certificate) {
            (AuthMethod::TlsClientAuth, Some(id)) => {
                palisade_tls::ca::SpiffeId::parse(id)
                    .map_err(|e| format!("tls_client_auth_san_uri {id}: {e}"))?;
            }
            (AuthMethod::SelfSignedTlsClientAuth, Some(thumbprint)) => {
                let bytes = data_encoding::BASE64URL_NOPAD
                    .decode(thumbprint.as_bytes())
                    .ok();
                if bytes.is_none_or(|b| b.len() != 32) {
                    return Err(
                        "the certificate thumbprint must be a base64url SHA-256 digest".into(),
                    );
                }
            }
            (AuthMethod::TlsClientAuth | AuthMethod::SelfSignedTlsClientAuth, None) => {
                return Err(format!(
                    "{} needs the client's certificate (SPIFFE ID or thumbprint)",
                    self.auth_method.as_str()
                ));
            }
            (_, Some(_)) => {
                return Err("a client certificate is only for the mutual-TLS methods".into());
            }
            (_, None) => {}
        }
        if self.auth_method == AuthMethod::None
            && self.grant_types.iter().any(|g| g == "client_credentials")
        {
            return Err("a public client cannot use client_credentials".into());
        }
        if let Some(resource) = &self.resource
            && !policy.resources.contains(resource)
        {
            return Err(format!("`{resource}` is not a resource of this server"));
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
    registered_by: String,
    resource: Option<String>,
    tls_client_certificate: Option<String>,
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
        backchannel_logout_uri: row
            .backchannel_logout_uri
            .as_deref()
            .map(RedirectUri::parse)
            .transpose()
            .map_err(|_| corrupt("back-channel logout URI"))?,
        registered_by: match row.registered_by.as_str() {
            "admin" => Registrar::Admin,
            _ => Registrar::Registration,
        },
        resource: row.resource,
        tls_client_certificate: row.tls_client_certificate,
        tenant_id: row.tenant_id,
        client_id: row.client_id,
        name: row.name,
        secret_sha256: row.secret_sha256,
        created_at: row.created_at,
    })
}

const COLUMNS: &str = "client_id, name, auth_method, secret_sha256, redirect_uris, grant_types, \
                       scopes, created_at, jwks, backchannel_logout_uri, tenant_id, \
                       registered_by, resource, tls_client_certificate";

fn jwks_text(jwks: &[palisade_jose::Jwk]) -> Option<String> {
    (!jwks.is_empty()).then(|| serde_json::to_string(jwks).expect("JWKs serialize"))
}

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
        "INSERT INTO oauth_clients ({COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    ))
    .bind(&client_id)
    .bind(&new.name)
    .bind(new.auth_method.as_str())
    .bind(&digest)
    .bind(serde_json::to_string(&new.redirect_uris).expect("strings serialize"))
    .bind(serde_json::to_string(&new.grant_types).expect("strings serialize"))
    .bind(new.scopes.join(" "))
    .bind(now_ms())
    .bind(jwks_text(&new.jwks))
    .bind(&new.backchannel_logout_uri)
    .bind(&new.tenant_id)
    .bind(new.registered_by.as_str())
    .bind(&new.resource)
    .bind(&new.tls_client_certificate)
    .execute(db.pool())
    .await?;
    let client = find(db, &client_id).await?.ok_or_else(|| {
        StoreError::Database(sqlx::Error::Protocol("a new client vanished".into()))
    })?;
    Ok((client, secret))
}

/// How long a client read for authentication is trusted without reading it again, when no
/// change was announced: changes on any node (and by the CLI) evict it at once through the bus;
/// this bounds what a change made where no bus reaches could cost.
const CACHE_TTL: Duration = Duration::from_secs(30);
const CACHE_MAX: usize = 10_000;
const TOPIC: &str = "clients";

/// A cached client: when it was read, and in which bus epoch.
type Cached = (Instant, u64, Client);

/// Clients recently read, so that authenticating the client of every back-channel request
/// (token, introspection, revocation, PAR) costs no database round trip.
#[derive(Clone)]
pub struct ClientCache {
    entries: Arc<Mutex<HashMap<String, Cached>>>,
    bus: Bus,
}

impl ClientCache {
    pub fn new(bus: Bus) -> Self {
        Self {
            entries: Arc::default(),
            bus,
        }
    }

    pub async fn find(&self, db: &Db, client_id: &str) -> Result<Option<Client>, StoreError> {
        let now = Instant::now();
        let epoch = self.bus.epoch();
        if self.bus.reliable()
            && let Some((at, loaded_in, client)) =
                self.entries.lock().expect("client cache").get(client_id)
            && *loaded_in == epoch
            && now.duration_since(*at) < CACHE_TTL
        {
            return Ok(Some(client.clone()));
        }
        let found = find(db, client_id).await?;
        if let Some(client) = &found
            && self.bus.reliable()
        {
            let mut entries = self.entries.lock().expect("client cache");
            if entries.len() >= CACHE_MAX {
                entries.clear();
            }
            entries.insert(client_id.to_owned(), (now, epoch, client.clone()));
        }
        Ok(found)
    }

    /// Call after committing a change to a client (update, deletion): every node forgets it.
    pub async fn changed(&self, client_id: &str) {
        self.entries.lock().expect("client cache").remove(client_id);
        self.bus.publish(TOPIC, client_id.to_owned()).await;
    }

    /// Applies other nodes' (and tools') changes until `shutdown`.
    pub async fn follow(self, shutdown: CancellationToken) {
        let mut changes = self.bus.subscribe(TOPIC);
        loop {
            let delivery = tokio::select! {
                d = changes.recv() => d,
                _ = shutdown.cancelled() => return,
            };
            match delivery {
                Some(Delivery::Message(id)) => {
                    let id = String::from_utf8_lossy(&id);
                    self.entries
                        .lock()
                        .expect("client cache")
                        .remove(id.as_ref());
                }
                Some(Delivery::Resync) => self.entries.lock().expect("client cache").clear(),
                None => return,
            }
        }
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
/// Deletes a client and ends every grant it holds, so that no token it was given works any
/// more on any node; the tenant it belonged to, if there was such a client.
pub async fn delete(
    db: &Db,
    cache: &ClientCache,
    revocations: &palisade_principal::Revocations,
    client_id: &str,
) -> Result<Option<String>, StoreError> {
    let mut tx = db.begin().await?;
    let tenant: Option<String> =
        sqlx::query_scalar("DELETE FROM oauth_clients WHERE client_id = $1 RETURNING tenant_id")
            .bind(client_id)
            .fetch_optional(&mut *tx)
            .await?;
    let grants: Vec<String> = sqlx::query_scalar(
        "UPDATE oauth_grants SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL \
         RETURNING grant_id",
    )
    .bind(now_ms())
    .bind(client_id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    cache.changed(client_id).await;
    for grant in grants {
        revocations.grant_revoked(&grant).await;
    }
    Ok(tenant)
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

/// Replaces a client's metadata (not its id, method, secret or registrar).
pub async fn update(db: &Db, client_id: &str, new: &NewClient) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE oauth_clients SET name = $1, redirect_uris = $2, grant_types = $3, scopes = $4, \
         jwks = $5, backchannel_logout_uri = $6 WHERE client_id = $7",
    )
    .bind(&new.name)
    .bind(serde_json::to_string(&new.redirect_uris).expect("strings serialize"))
    .bind(serde_json::to_string(&new.grant_types).expect("strings serialize"))
    .bind(new.scopes.join(" "))
    .bind(jwks_text(&new.jwks))
    .bind(&new.backchannel_logout_uri)
    .bind(client_id)
    .execute(db.pool())
    .await?;
    Ok(())
}
