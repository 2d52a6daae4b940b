//! The CA's rows: the authority, join tokens (as digests) and the SVIDs signed.

use crate::ServiceError;
use palisade_store::{Db, StoreError, now_ms};
use palisade_tls::ca::{Authority, CaError, IssuedSvid, SpiffeId};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// The stored authority: trust domain, certificate and sealed key (`SealingKey::seal_text`).
pub(crate) async fn authority(
    db: &Db,
) -> Result<Option<(String, CertificateDer<'static>, String)>, ServiceError> {
    let row: Option<(String, String, String)> =
        sqlx::query_as("SELECT trust_domain, certificate, sealed_key FROM ca_authority")
            .fetch_optional(db.pool())
            .await
            .map_err(StoreError::from)?;
    let Some((domain, pem, sealed)) = row else {
        return Ok(None);
    };
    let certificate = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| CaError::Stored(format!("ca_authority.certificate: {e}")))?;
    Ok(Some((domain, certificate, sealed)))
}

pub(crate) async fn insert_authority(
    db: &Db,
    authority: &Authority,
    sealed_key: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO ca_authority (trust_domain, certificate, sealed_key, created_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(authority.trust_domain().as_str())
    .bind(pem(authority.certificate()))
    .bind(sealed_key)
    .bind(now_ms())
    .execute(db.pool())
    .await?;
    Ok(())
}

pub(crate) fn pem(certificate: &CertificateDer<'_>) -> String {
    palisade_crypto::pem("CERTIFICATE", certificate)
}

pub(crate) async fn insert_join_token(
    db: &Db,
    digest: &str,
    id: &SpiffeId,
    expires_at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO ca_join_tokens (digest, spiffe_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(digest)
    .bind(id.to_string())
    .bind(now_ms())
    .bind(expires_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub(crate) async fn join_token_is_live(
    db: &Db,
    digest: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT 1 FROM ca_join_tokens WHERE digest = $1 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(digest)
    .bind(now)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.is_some())
}

/// Marks a live token used and returns the SPIFFE ID it names; `None` if it is unknown, used
/// or expired. One statement, so two requests cannot both spend it.
pub(crate) async fn spend_join_token(
    db: &Db,
    digest: &str,
    now: i64,
) -> Result<Option<String>, StoreError> {
    let row: Option<(String,)> = sqlx::query_as(
        "UPDATE ca_join_tokens SET used_at = $2 \
         WHERE digest = $1 AND used_at IS NULL AND expires_at > $2 RETURNING spiffe_id",
    )
    .bind(digest)
    .bind(now)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(|(id,)| id))
}

pub(crate) async fn insert_svid(db: &Db, svid: &IssuedSvid, via: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO ca_svids (serial, spiffe_id, via, not_before, not_after, issued_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&svid.serial)
    .bind(svid.id.to_string())
    .bind(via)
    .bind(svid.not_before)
    .bind(svid.not_after)
    .bind(now_ms())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// One signed SVID, as `palisade ca list` shows it.
#[derive(Debug, serde::Serialize, sqlx::FromRow)]
pub struct SvidRecord {
    pub serial: String,
    pub spiffe_id: String,
    pub via: String,
    pub not_before: i64,
    pub not_after: i64,
    pub issued_at: i64,
}

pub(crate) async fn svids(db: &Db) -> Result<Vec<SvidRecord>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT serial, spiffe_id, via, not_before, not_after, issued_at FROM ca_svids \
         ORDER BY issued_at DESC, serial",
    )
    .fetch_all(db.pool())
    .await?)
}
