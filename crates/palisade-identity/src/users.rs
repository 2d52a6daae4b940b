//! Accounts in the store.

use palisade_store::{Db, StoreError, new_id, now_ms};
use sqlx::FromRow;

#[derive(Clone, FromRow)]
pub struct User {
    pub id: String,
    pub tenant_id: String,
    pub email: String,
    pub password_hash: String,
    pub locked: i64,
    pub revocation_epoch: i64,
    /// Sealed (AES-GCM) base32 seed; pending until `totp_enabled` is 1.
    pub totp_secret: Option<String>,
    pub totp_enabled: i64,
    pub totp_last_step: i64,
    /// `member`, `moderator`, `tenant_admin` or `platform_admin`.
    pub role: String,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("locked", &self.locked)
            .field("totp_enabled", &self.totp_enabled)
            .finish_non_exhaustive()
    }
}

impl User {
    pub fn has_totp(&self) -> bool {
        self.totp_enabled == 1
    }

    pub fn is_locked(&self) -> bool {
        self.locked != 0
    }
}

const COLUMNS: &str = "id, tenant_id, email, password_hash, locked, revocation_epoch, totp_secret, totp_enabled, totp_last_step, role";

/// A syntactically plausible address, trimmed, with the form used for uniqueness (lowercase).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub display: String,
    pub normalized: String,
}

impl Email {
    pub fn parse(raw: &str) -> Option<Self> {
        let display = raw.trim();
        let (local, domain) = display.rsplit_once('@')?;
        let valid = !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && display.len() <= 254
            && !display
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>');
        valid.then(|| Self {
            display: display.to_owned(),
            normalized: display.to_lowercase(),
        })
    }
}

pub async fn create(
    db: &Db,
    tenant: &str,
    email: &Email,
    password_hash: &str,
) -> Result<String, StoreError> {
    let id = new_id();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO users (id, tenant_id, email, email_normalized, password_hash, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(&id)
    .bind(tenant)
    .bind(&email.display)
    .bind(&email.normalized)
    .bind(password_hash)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(id)
}

pub async fn find_by_email(
    db: &Db,
    tenant: &str,
    normalized: &str,
) -> Result<Option<User>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users WHERE tenant_id = $1 AND email_normalized = $2"
    ))
    .bind(tenant)
    .bind(normalized)
    .fetch_optional(db.pool())
    .await?)
}

pub async fn get(db: &Db, id: &str) -> Result<Option<User>, StoreError> {
    Ok(
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(db.pool())
            .await?,
    )
}

/// Replaces the password hash and raises the revocation epoch, so that every credential issued
/// before the change can be refused (TOK-4).
pub async fn set_password(db: &Db, id: &str, password_hash: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE users SET password_hash = $1, revocation_epoch = revocation_epoch + 1, updated_at = $2 WHERE id = $3",
    )
    .bind(password_hash)
    .bind(now_ms())
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Raises the account's revocation epoch (TOK-4): every access token issued before stops being
/// accepted at once ("log out everywhere").
pub async fn raise_epoch(db: &Db, id: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE users SET revocation_epoch = revocation_epoch + 1, updated_at = $1 WHERE id = $2",
    )
    .bind(now_ms())
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Gives the user `role`; returns whether there is such a user.
pub async fn set_role(db: &Db, id: &str, role: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE users SET role = $1, updated_at = $2 WHERE id = $3")
        .bind(role)
        .bind(now_ms())
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn set_locked(db: &Db, id: &str, locked: bool) -> Result<bool, StoreError> {
    let r = sqlx::query(
        "UPDATE users SET locked = $1, revocation_epoch = revocation_epoch + 1, updated_at = $2 WHERE id = $3",
    )
    .bind(i64::from(locked))
    .bind(now_ms())
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Stores a new, not yet confirmed TOTP seed (replacing any earlier pending one).
pub async fn set_pending_totp(db: &Db, id: &str, sealed: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE users SET totp_secret = $1, totp_enabled = 0, totp_last_step = 0 WHERE id = $2 AND totp_enabled = 0")
        .bind(sealed)
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn enable_totp(db: &Db, id: &str, step: i64) -> Result<bool, StoreError> {
    let r = sqlx::query(
        "UPDATE users SET totp_enabled = 1, totp_last_step = $1 WHERE id = $2 AND totp_enabled = 0 AND totp_secret IS NOT NULL",
    )
    .bind(step)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn disable_totp(db: &Db, id: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE users SET totp_enabled = 0, totp_secret = NULL, totp_last_step = 0 WHERE id = $1",
    )
    .bind(id)
    .execute(db.pool())
    .await?;
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Accepts a TOTP step only if it is later than every step accepted before: one atomic update,
/// so two concurrent logins with the same code cannot both succeed (IDN-6).
pub async fn accept_totp_step(db: &Db, id: &str, step: i64) -> Result<bool, StoreError> {
    let r = sqlx::query("UPDATE users SET totp_last_step = $1 WHERE id = $2 AND totp_enabled = 1 AND totp_last_step < $1")
        .bind(step)
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_parsing() {
        let e = Email::parse("  Alice@Example.COM ").unwrap();
        assert_eq!(e.display, "Alice@Example.COM");
        assert_eq!(e.normalized, "alice@example.com");
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@example",
            "a b@example.com",
            "a@.com",
            "<a>@x.com",
        ] {
            assert!(Email::parse(bad).is_none(), "{bad}");
        }
    }

    async fn account_lifecycle(db: Db) {
        let email = Email::parse("bob@example.com").unwrap();
        let id = create(&db, "default", &email, "hash-1").await.unwrap();
        let dup = create(
            &db,
            "default",
            &Email::parse("BOB@example.com").unwrap(),
            "x",
        )
        .await;
        assert!(
            dup.unwrap_err().is_unique_violation(),
            "emails are unique per tenant, case-insensitively"
        );
        create(&db, "other", &email, "x")
            .await
            .expect("another tenant may reuse the address");

        let u = find_by_email(&db, "default", "bob@example.com")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(u.id, id);
        assert_eq!(u.revocation_epoch, 0);
        set_password(&db, &id, "hash-2").await.unwrap();
        let u = get(&db, &id).await.unwrap().unwrap();
        assert_eq!(u.password_hash, "hash-2");
        assert_eq!(u.revocation_epoch, 1, "a password change raises the epoch");

        set_pending_totp(&db, &id, "sealed").await.unwrap();
        assert!(enable_totp(&db, &id, 100).await.unwrap());
        assert!(
            !accept_totp_step(&db, &id, 100).await.unwrap(),
            "the enrolment step cannot be replayed"
        );
        assert!(accept_totp_step(&db, &id, 101).await.unwrap());
        assert!(
            !accept_totp_step(&db, &id, 101).await.unwrap(),
            "a step is accepted once"
        );
        disable_totp(&db, &id).await.unwrap();
        assert!(!get(&db, &id).await.unwrap().unwrap().has_totp());
    }
    palisade_store::both_backends!(account_lifecycle);
}
