//! ACME's rows: accounts (sealed), http-01 answers, and the certificates obtained.

use palisade_crypto::SealingKey;
use palisade_store::{Db, StoreError, now_ms};

pub(crate) async fn account(
    db: &Db,
    sealing: &SealingKey,
    directory: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT sealed FROM acme_accounts WHERE directory = $1")
            .bind(directory)
            .fetch_optional(db.pool())
            .await?;
    let context = format!("acme account {directory}");
    Ok(row.and_then(|(text,)| sealing.open_text(context.as_bytes(), &text).ok()))
}

pub(crate) async fn save_account(
    db: &Db,
    sealing: &SealingKey,
    directory: &str,
    credentials: &[u8],
) -> Result<(), StoreError> {
    let sealed = sealing.seal_text(format!("acme account {directory}").as_bytes(), credentials);
    sqlx::query(
        "INSERT INTO acme_accounts (directory, sealed, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (directory) DO UPDATE SET sealed = excluded.sealed",
    )
    .bind(directory)
    .bind(sealed)
    .bind(now_ms())
    .execute(db.pool())
    .await?;
    Ok(())
}

pub(crate) async fn put_challenge(
    db: &Db,
    token: &str,
    key_authorization: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO acme_challenges (token, key_authorization, expires_at) VALUES ($1, $2, $3) \
         ON CONFLICT (token) DO UPDATE SET key_authorization = excluded.key_authorization",
    )
    .bind(token)
    .bind(key_authorization)
    .bind(now_ms() + 3_600_000)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub(crate) async fn challenge(db: &Db, token: &str) -> Result<Option<String>, StoreError> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT key_authorization FROM acme_challenges WHERE token = $1 AND expires_at > $2",
    )
    .bind(token)
    .bind(now_ms())
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(|(k,)| k))
}

pub(crate) async fn clear_challenge(db: &Db, token: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM acme_challenges WHERE token = $1")
        .bind(token)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// A certificate as stored: its chain (PEM), its key (PEM, unsealed) and the directory of the
/// CA that issued it.
pub(crate) struct Stored {
    pub chain: String,
    pub key: String,
    pub not_before: i64,
    pub not_after: i64,
    pub directory: Option<String>,
}

pub(crate) async fn certificate(
    db: &Db,
    sealing: &SealingKey,
    name: &str,
) -> Result<Option<Stored>, StoreError> {
    let row: Option<(String, String, i64, i64, Option<String>)> = sqlx::query_as(
        "SELECT chain, sealed_key, not_before, not_after, directory FROM tls_certificates \
         WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(db.pool())
    .await?;
    Ok(
        row.and_then(|(chain, sealed, not_before, not_after, directory)| {
            let context = format!("tls certificate {name}");
            let key = sealing.open_text(context.as_bytes(), &sealed).ok()?;
            Some(Stored {
                chain,
                key: String::from_utf8(key).ok()?,
                not_before,
                not_after,
                directory,
            })
        }),
    )
}

/// Stores a certificate obtained under the lease `lease` with the fencing token `token`: only
/// while that token is the lease's current one, so a node that lost the lease while ordering
/// (paused, partitioned) cannot replace what the new holder stored. Whether it was stored.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn store_certificate(
    db: &Db,
    sealing: &SealingKey,
    name: &str,
    certificate: &Stored,
    lease: &str,
    token: u64,
) -> Result<bool, StoreError> {
    let context = format!("tls certificate {name}");
    let sealed = sealing.seal_text(context.as_bytes(), certificate.key.as_bytes());
    let token = token as i64;
    let done = sqlx::query(
        "INSERT INTO tls_certificates \
           (name, chain, sealed_key, not_before, not_after, fencing, stored_at, directory) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $9 WHERE EXISTS \
           (SELECT 1 FROM cluster_leases WHERE name = $8 AND token = $6) \
         ON CONFLICT (name) DO UPDATE SET chain = excluded.chain, sealed_key = excluded.sealed_key, \
           not_before = excluded.not_before, not_after = excluded.not_after, \
           fencing = excluded.fencing, stored_at = excluded.stored_at, \
           directory = excluded.directory \
         WHERE tls_certificates.fencing <= excluded.fencing",
    )
    .bind(name)
    .bind(&certificate.chain)
    .bind(sealed)
    .bind(certificate.not_before)
    .bind(certificate.not_after)
    .bind(token)
    .bind(now_ms())
    .bind(lease)
    .bind(&certificate.directory)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Where a certificate's renewal stands.
#[derive(Debug, Default, Clone, serde::Serialize, sqlx::FromRow)]
pub struct RenewalState {
    pub failures: i64,
    /// Seconds since the Unix epoch; 0 when nothing holds an attempt back.
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub renew_requested: i64,
    #[sqlx(flatten)]
    pub ari: RenewalInformation,
}

/// What the CA said of the certificate in service through ACME Renewal Information (RFC 9773).
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct RenewalInformation {
    /// The ARI identifier of the certificate the rest is about.
    #[sqlx(rename = "ari_certificate")]
    pub certificate: Option<String>,
    /// The suggested window (seconds since the Unix epoch); none when the CA offers no ARI.
    #[sqlx(rename = "ari_window_start")]
    pub window_start: Option<i64>,
    #[sqlx(rename = "ari_window_end")]
    pub window_end: Option<i64>,
    /// The time chosen at random inside the window: when renewal falls due.
    #[sqlx(rename = "ari_selected_at")]
    pub selected_at: Option<i64>,
    /// When the CA is asked again.
    #[sqlx(rename = "ari_next_check")]
    pub next_check: i64,
    #[sqlx(rename = "ari_explanation")]
    pub explanation: Option<String>,
}

pub(crate) async fn state(db: &Db, name: &str) -> Result<RenewalState, StoreError> {
    let row: Option<RenewalState> = sqlx::query_as(
        "SELECT failures, next_attempt_at, last_error, renew_requested, ari_certificate, \
         ari_window_start, ari_window_end, ari_selected_at, ari_next_check, ari_explanation \
         FROM acme_state WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.unwrap_or_default())
}

pub(crate) async fn set_state(db: &Db, name: &str, state: &RenewalState) -> Result<(), StoreError> {
    let ari = &state.ari;
    sqlx::query(
        "INSERT INTO acme_state (name, failures, next_attempt_at, last_error, renew_requested, \
           ari_certificate, ari_window_start, ari_window_end, ari_selected_at, ari_next_check, \
           ari_explanation) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (name) DO UPDATE SET failures = excluded.failures, \
           next_attempt_at = excluded.next_attempt_at, last_error = excluded.last_error, \
           renew_requested = excluded.renew_requested, ari_certificate = excluded.ari_certificate, \
           ari_window_start = excluded.ari_window_start, ari_window_end = excluded.ari_window_end, \
           ari_selected_at = excluded.ari_selected_at, ari_next_check = excluded.ari_next_check, \
           ari_explanation = excluded.ari_explanation",
    )
    .bind(name)
    .bind(state.failures)
    .bind(state.next_attempt_at)
    .bind(&state.last_error)
    .bind(state.renew_requested)
    .bind(&ari.certificate)
    .bind(ari.window_start)
    .bind(ari.window_end)
    .bind(ari.selected_at)
    .bind(ari.next_check)
    .bind(&ari.explanation)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// What `palisade certs list` shows of a stored certificate.
#[derive(Debug, serde::Serialize, sqlx::FromRow)]
pub(crate) struct CertificateRow {
    pub(crate) name: String,
    pub(crate) not_before: i64,
    pub(crate) not_after: i64,
    pub(crate) stored_at: i64,
    pub(crate) chain: String,
    pub(crate) directory: Option<String>,
}

pub(crate) async fn certificates(db: &Db) -> Result<Vec<CertificateRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT name, not_before, not_after, stored_at, chain, directory FROM tls_certificates \
         ORDER BY name",
    )
    .fetch_all(db.pool())
    .await?)
}
