//! Single-use identifiers (client assertion and DPoP proof `jti`s): remembered, by digest, until
//! the JWT that carried them can no longer be accepted anyway.

use palisade_store::{Db, StoreError, now_ms};

/// Records `digest` until `keep_until_ms`; whether this is its first use. Of two concurrent
/// uses exactly one is first (the primary key decides).
pub async fn first_use(db: &Db, digest: &str, keep_until_ms: i64) -> Result<bool, StoreError> {
    sqlx::query("DELETE FROM oauth_assertion_ids WHERE expires_at < $1")
        .bind(now_ms())
        .execute(db.pool())
        .await?;
    let fresh = sqlx::query(
        "INSERT INTO oauth_assertion_ids (jti_sha256, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(digest)
    .bind(keep_until_ms)
    .execute(db.pool())
    .await?;
    Ok(fresh.rows_affected() == 1)
}
