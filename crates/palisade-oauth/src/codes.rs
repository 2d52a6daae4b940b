//! Authorization codes, the grants they become, and remembered consent (OAU-3, OAU-6, OAU-7).

use palisade_store::{Db, StoreError, now_ms};

/// Codes live this long at most (OAU-3: ≤ 60 s).
pub const CODE_LIFETIME_MS: i64 = 60_000;

/// What a code was issued for.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CodeGrant {
    pub grant_id: String,
    pub client_id: String,
    pub user_id: String,
    pub session_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub resource: String,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub auth_time: i64,
    pub amr: String,
    pub expires_at: i64,
    /// RFC 9449 §10: the DPoP key the code must be exchanged with.
    pub dpop_jkt: Option<String>,
}

/// Stores a new code for `grant`; returns the code (only its digest is kept).
pub async fn issue(db: &Db, grant: &CodeGrant) -> Result<String, StoreError> {
    let code = palisade_crypto::random_token();
    sqlx::query(
        "INSERT INTO oauth_codes (code_sha256, grant_id, client_id, user_id, session_id, redirect_uri, \
         scope, resource, nonce, code_challenge, auth_time, amr, expires_at, created_at, dpop_jkt) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(palisade_crypto::sha256_hex(code.as_bytes()))
    .bind(&grant.grant_id)
    .bind(&grant.client_id)
    .bind(&grant.user_id)
    .bind(&grant.session_id)
    .bind(&grant.redirect_uri)
    .bind(&grant.scope)
    .bind(&grant.resource)
    .bind(&grant.nonce)
    .bind(&grant.code_challenge)
    .bind(grant.auth_time)
    .bind(&grant.amr)
    .bind(grant.expires_at)
    .bind(now_ms())
    .bind(&grant.dpop_jkt)
    .execute(db.pool())
    .await?;
    Ok(code)
}

pub enum Redeemed {
    /// First use: the code's grant, now consumed.
    Fresh(Box<CodeGrant>),
    /// Used before: a replay. The grant id is returned so its tokens can be revoked.
    Replayed(String),
    Unknown,
}

/// Consumes a code atomically: of two concurrent exchanges only one gets `Fresh`.
pub async fn redeem(db: &Db, code: &str) -> Result<Redeemed, StoreError> {
    let digest = palisade_crypto::sha256_hex(code.as_bytes());
    let grant: Option<CodeGrant> = sqlx::query_as(
        "SELECT grant_id, client_id, user_id, session_id, redirect_uri, scope, resource, nonce, \
         code_challenge, auth_time, amr, expires_at, dpop_jkt FROM oauth_codes WHERE code_sha256 = $1",
    )
    .bind(&digest)
    .fetch_optional(db.pool())
    .await?;
    let Some(grant) = grant else {
        return Ok(Redeemed::Unknown);
    };
    let first = sqlx::query(
        "UPDATE oauth_codes SET used_at = $1 WHERE code_sha256 = $2 AND used_at IS NULL",
    )
    .bind(now_ms())
    .bind(&digest)
    .execute(db.pool())
    .await?;
    Ok(if first.rows_affected() == 1 {
        Redeemed::Fresh(Box::new(grant))
    } else {
        Redeemed::Replayed(grant.grant_id)
    })
}

/// Records the grant a code became, with how the user had authenticated.
pub async fn record_grant(db: &Db, grant: &CodeGrant) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO oauth_grants (grant_id, user_id, client_id, scope, created_at, auth_time, amr) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&grant.grant_id)
    .bind(&grant.user_id)
    .bind(&grant.client_id)
    .bind(&grant.scope)
    .bind(now_ms())
    .bind(grant.auth_time)
    .bind(&grant.amr)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Revokes a grant: every token issued under it stops being accepted (once the caller told
/// the resources, `Revocations::grant_revoked`).
pub async fn revoke_grant(db: &Db, grant_id: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE oauth_grants SET revoked_at = $1 WHERE grant_id = $2 AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(grant_id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// When and how the user authenticated for a grant (unix milliseconds, `amr` values).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Authentication {
    pub auth_time: i64,
    pub amr: String,
}

pub async fn authentication(db: &Db, grant_id: &str) -> Result<Option<Authentication>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT auth_time, amr FROM oauth_grants \
         WHERE grant_id = $1 AND auth_time IS NOT NULL AND amr IS NOT NULL",
    )
    .bind(grant_id)
    .fetch_optional(db.pool())
    .await?)
}

/// The scopes the user has already granted this client.
pub async fn consented(db: &Db, user_id: &str, client_id: &str) -> Result<Vec<String>, StoreError> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT scope FROM oauth_consents WHERE user_id = $1 AND client_id = $2")
            .bind(user_id)
            .bind(client_id)
            .fetch_optional(db.pool())
            .await?;
    Ok(row
        .map(|(s,)| {
            s.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default())
}

/// Remembers consent to `scopes` (added to what was granted before).
pub async fn remember_consent(
    db: &Db,
    user_id: &str,
    client_id: &str,
    scopes: &[String],
) -> Result<(), StoreError> {
    let mut all = consented(db, user_id, client_id).await?;
    for s in scopes {
        if !all.contains(s) {
            all.push(s.clone());
        }
    }
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM oauth_consents WHERE user_id = $1 AND client_id = $2")
        .bind(user_id)
        .bind(client_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO oauth_consents (user_id, client_id, scope, granted_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(user_id)
    .bind(client_id)
    .bind(all.join(" "))
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A refresh token's binding (OAU-5).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Refresh {
    pub grant_id: String,
    pub client_id: String,
    pub user_id: String,
    pub session_id: String,
    pub scope: String,
    pub resource: String,
    pub epoch: i64,
    pub expires_at: i64,
    /// A public client's DPoP key: every refresh must prove it (RFC 9449 §5).
    pub dpop_jkt: Option<String>,
}

/// Stores the first refresh token of a grant's family; returns the token.
pub async fn issue_refresh(db: &Db, refresh: &Refresh) -> Result<String, StoreError> {
    let token = palisade_crypto::random_token();
    store_refresh(db.pool(), &token, refresh).await?;
    Ok(token)
}

async fn store_refresh<'e, E>(executor: E, token: &str, refresh: &Refresh) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO oauth_refresh_tokens (token_sha256, grant_id, client_id, user_id, session_id, \
         scope, resource, epoch, expires_at, created_at, dpop_jkt) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(palisade_crypto::sha256_hex(token.as_bytes()))
    .bind(&refresh.grant_id)
    .bind(&refresh.client_id)
    .bind(&refresh.user_id)
    .bind(&refresh.session_id)
    .bind(&refresh.scope)
    .bind(&refresh.resource)
    .bind(refresh.epoch)
    .bind(refresh.expires_at)
    .bind(now_ms())
    .bind(&refresh.dpop_jkt)
    .execute(executor)
    .await?;
    Ok(())
}

/// The one successor of a refresh token: derived from it under a server key, so that every
/// refresh of one token — on any node, at any moment of the grace window — answers the same
/// successor, and no token is ever stored in clear.
pub fn successor(key: &[u8; 32], token: &str) -> String {
    let mac = palisade_crypto::hmac_sha256(key, format!("refresh successor\n{token}").as_bytes());
    data_encoding::BASE64URL_NOPAD.encode(&mac)
}

pub enum Rotated {
    /// The token's binding and its successor, to hand out: its first use, or a concurrent
    /// refresh within the grace window (which gets the same successor, or the newest
    /// descendant if that was refreshed meanwhile).
    Successor(Box<Refresh>, String),
    /// Used before, after the grace window: reuse. The grant id is returned.
    Reused(String),
    /// Bound to a DPoP key the request did not prove: left as it was, so whoever stole it
    /// cannot even spend it.
    WrongKey,
    Unknown,
}

/// Descendants followed at most when a concurrent refresh looks for the live one.
const MAX_DESCENDANTS: usize = 16;

/// Rotates a refresh token (OAU-5): the first use marks it used and stores its successor in
/// one transaction; a use within `grace_ms` of that is a concurrent refresh and gets the same
/// successor; a later one is reuse. A token presented by another client than `client_id`, an
/// expired one, and one bound to a DPoP key other than `proved_jkt` are not touched: spending
/// them would leave the owner holding a used token, whose next refresh looks like theft.
/// However many refreshes race, one refresh token of the family stays live.
pub async fn rotate_refresh(
    db: &Db,
    key: &[u8; 32],
    token: &str,
    client_id: &str,
    proved_jkt: Option<&str>,
    grace_ms: i64,
) -> Result<Rotated, StoreError> {
    let digest = palisade_crypto::sha256_hex(token.as_bytes());
    let now = now_ms();
    let Some((refresh, _)) = refresh_row(db, &digest)
        .await?
        .filter(|(r, _)| r.client_id == client_id && r.expires_at > now)
    else {
        return Ok(Rotated::Unknown);
    };
    if refresh
        .dpop_jkt
        .as_deref()
        .is_some_and(|jkt| Some(jkt) != proved_jkt)
    {
        return Ok(Rotated::WrongKey);
    }
    let next = successor(key, token);
    let mut tx = db.begin().await?;
    let first = sqlx::query(
        "UPDATE oauth_refresh_tokens SET rotated_at = $1 WHERE token_sha256 = $2 AND rotated_at IS NULL",
    )
    .bind(now)
    .bind(&digest)
    .execute(&mut *tx)
    .await?;
    if first.rows_affected() == 1 {
        store_refresh(&mut *tx, &next, &refresh).await?;
        tx.commit().await?;
        return Ok(Rotated::Successor(Box::new(refresh), next));
    }
    tx.rollback().await?;
    let rotated_at = refresh_row(db, &digest).await?.and_then(|(_, at)| at);
    if rotated_at.is_none_or(|at| now - at > grace_ms) {
        return Ok(Rotated::Reused(refresh.grant_id.clone()));
    }
    // A concurrent refresh: the live descendant (the successor, unless it was refreshed too).
    let mut live = next;
    for _ in 0..MAX_DESCENDANTS {
        let digest = palisade_crypto::sha256_hex(live.as_bytes());
        match refresh_row(db, &digest).await? {
            Some((_, Some(_))) => live = successor(key, &live),
            _ => break,
        }
    }
    Ok(Rotated::Successor(Box::new(refresh), live))
}

async fn refresh_row(db: &Db, digest: &str) -> Result<Option<(Refresh, Option<i64>)>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        refresh: Refresh,
        rotated_at: Option<i64>,
    }
    let row: Option<Row> = sqlx::query_as(
        "SELECT grant_id, client_id, user_id, session_id, scope, resource, epoch, expires_at, \
         dpop_jkt, rotated_at FROM oauth_refresh_tokens WHERE token_sha256 = $1",
    )
    .bind(digest)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(|r| (r.refresh, r.rotated_at)))
}

/// The grant a refresh token belongs to, without using it (revocation).
pub async fn refresh_grant(db: &Db, token: &str) -> Result<Option<(String, String)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT grant_id, client_id FROM oauth_refresh_tokens WHERE token_sha256 = $1",
    )
    .bind(palisade_crypto::sha256_hex(token.as_bytes()))
    .fetch_optional(db.pool())
    .await?)
}

/// The clients a user has consented to, with the scopes granted, newest first.
pub async fn consents_of(db: &Db, user_id: &str) -> Result<Vec<(String, String, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT client_id, scope, granted_at FROM oauth_consents WHERE user_id = $1 \
         ORDER BY granted_at DESC",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await?)
}

/// Withdraws a user's consent to a client and revokes every grant it has from that user, so
/// all its tokens stop working (OAU-6). Returns whether there was a consent, and the grants
/// revoked (to tell the resources).
pub async fn withdraw_consent(
    db: &Db,
    user_id: &str,
    client_id: &str,
) -> Result<(bool, Vec<String>), StoreError> {
    let mut tx = db.begin().await?;
    let removed = sqlx::query("DELETE FROM oauth_consents WHERE user_id = $1 AND client_id = $2")
        .bind(user_id)
        .bind(client_id)
        .execute(&mut *tx)
        .await?;
    let grants: Vec<(String,)> = sqlx::query_as(
        "SELECT grant_id FROM oauth_grants \
         WHERE user_id = $1 AND client_id = $2 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .bind(client_id)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE oauth_grants SET revoked_at = $1 \
         WHERE user_id = $2 AND client_id = $3 AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(user_id)
    .bind(client_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((
        removed.rows_affected() == 1,
        grants.into_iter().map(|(g,)| g).collect(),
    ))
}
