//! Browser sessions (IDN-4) and the short-lived challenges between a password and a second
//! factor. Only SHA-256 digests of the random 256-bit tokens are stored.

use crate::assurance::SignInMethod;
use palisade_crypto::{random_token, sha256_hex};
use palisade_store::{Db, StoreError};
use sqlx::FromRow;
use std::time::Duration;

#[derive(Debug, Clone, FromRow)]
pub struct Session {
    /// SHA-256 of the cookie value; also the handle the account page uses to revoke it.
    pub id_hash: String,
    pub user_id: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub auth_time: i64,
    pub amr: String,
    pub ip: String,
    pub user_agent: String,
}

pub struct NewSession<'a> {
    pub user_id: &'a str,
    /// Stored as its RFC 8176 `amr` values.
    pub method: SignInMethod,
    pub ip: &'a str,
    pub user_agent: &'a str,
}

/// Creates a session and returns the token for the cookie — the only time it exists in clear.
pub async fn create(
    db: &Db,
    new: NewSession<'_>,
    now: i64,
    absolute: Duration,
) -> Result<String, StoreError> {
    let token = random_token();
    let user_agent: String = new.user_agent.chars().take(200).collect();
    sqlx::query(
        "INSERT INTO sessions (id_hash, user_id, created_at, last_seen_at, expires_at, auth_time, amr, ip, user_agent) \
         VALUES ($1, $2, $3, $3, $4, $3, $5, $6, $7)",
    )
    .bind(sha256_hex(token.as_bytes()))
    .bind(new.user_id)
    .bind(now)
    .bind(now + absolute.as_millis() as i64)
    .bind(new.method.amr())
    .bind(new.ip)
    .bind(user_agent)
    .execute(db.pool())
    .await?;
    Ok(token)
}

/// Only refresh `last_seen_at` this often, so reading pages does not mean a write per request.
const TOUCH_EVERY_MS: i64 = 60_000;

/// The live session for a cookie value, enforcing both the absolute and the idle timeout.
pub async fn lookup(
    db: &Db,
    token: &str,
    now: i64,
    idle: Duration,
) -> Result<Option<Session>, StoreError> {
    let id_hash = sha256_hex(token.as_bytes());
    let session: Option<Session> = sqlx::query_as(
        "SELECT id_hash, user_id, created_at, last_seen_at, expires_at, auth_time, amr, ip, user_agent \
         FROM sessions WHERE id_hash = $1",
    )
    .bind(&id_hash)
    .fetch_optional(db.pool())
    .await?;
    let Some(session) = session else {
        return Ok(None);
    };
    let idle_ms = idle.as_millis() as i64;
    if session.expires_at <= now || session.last_seen_at + idle_ms <= now {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(&id_hash)
            .execute(db.pool())
            .await?;
        return Ok(None);
    }
    if now - session.last_seen_at >= TOUCH_EVERY_MS {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2")
            .bind(now)
            .bind(&id_hash)
            .execute(db.pool())
            .await?;
    }
    Ok(Some(session))
}

/// Whether the session with this id (the digest of its cookie) still exists and has not
/// reached its absolute timeout: what an OAuth code bound to it checks at exchange (OAU-7).
pub async fn is_live(db: &Db, id_hash: &str, now: i64) -> Result<bool, StoreError> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT expires_at FROM sessions WHERE id_hash = $1")
        .bind(id_hash)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.is_some_and(|(expires_at,)| expires_at > now))
}

pub async fn list(db: &Db, user_id: &str) -> Result<Vec<Session>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id_hash, user_id, created_at, last_seen_at, expires_at, auth_time, amr, ip, user_agent \
         FROM sessions WHERE user_id = $1 ORDER BY created_at DESC",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await?)
}

/// Revokes one of the user's own sessions; another user's handle matches nothing.
pub async fn revoke(db: &Db, user_id: &str, id_hash: &str) -> Result<bool, StoreError> {
    Ok(end_where(db, "user_id = $1 AND id_hash = $2", user_id, Some(id_hash)).await? == 1)
}

/// Revokes every session of the user except `keep`.
pub async fn revoke_others(db: &Db, user_id: &str, keep: &str) -> Result<u64, StoreError> {
    end_where(db, "user_id = $1 AND id_hash <> $2", user_id, Some(keep)).await
}

/// Revokes every session of the user (an account locked).
pub async fn revoke_all(db: &Db, user_id: &str) -> Result<u64, StoreError> {
    end_where(db, "user_id = $1", user_id, None).await
}

/// The job of telling the applications signed in through an ended session (back-channel
/// logout, OAU-8); the provider handles it.
pub const SESSION_ENDED: &str = "identity.session_ended";

/// The payload of a [`SESSION_ENDED`] job.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SessionEnded {
    /// The session's id (the digest of its cookie).
    pub session_id: String,
    pub user_id: String,
}

/// Deletes the sessions `filter` selects and, in the same transaction, enqueues for each the
/// job that tells the applications signed in through it: both happen, or neither.
async fn end_where(
    db: &Db,
    filter: &str,
    user_id: &str,
    id_hash: Option<&str>,
) -> Result<u64, StoreError> {
    let mut tx = db.begin().await?;
    let select_sql = format!("SELECT id_hash FROM sessions WHERE {filter}");
    let delete_sql = format!("DELETE FROM sessions WHERE {filter}");
    let mut select = sqlx::query_as::<_, (String,)>(&select_sql).bind(user_id);
    let mut delete = sqlx::query(&delete_sql).bind(user_id);
    if let Some(id_hash) = id_hash {
        select = select.bind(id_hash);
        delete = delete.bind(id_hash);
    }
    for (session_id,) in select.fetch_all(&mut *tx).await? {
        let ended = SessionEnded {
            session_id: session_id.clone(),
            user_id: user_id.to_owned(),
        };
        let job = palisade_jobs::NewJob::new(SESSION_ENDED, &ended).key(session_id);
        palisade_jobs::enqueue(&mut *tx, &job).await?;
    }
    let ended = delete.execute(&mut *tx).await?.rows_affected();
    tx.commit().await?;
    Ok(ended)
}

/// A pending second-factor step: five minutes and five tries.
const CHALLENGE_LIFETIME_MS: i64 = 5 * 60_000;
const CHALLENGE_ATTEMPTS: i64 = 5;

pub async fn create_challenge(db: &Db, user_id: &str, now: i64) -> Result<String, StoreError> {
    let token = random_token();
    sqlx::query("INSERT INTO mfa_challenges (id_hash, user_id, expires_at) VALUES ($1, $2, $3)")
        .bind(sha256_hex(token.as_bytes()))
        .bind(user_id)
        .bind(now + CHALLENGE_LIFETIME_MS)
        .execute(db.pool())
        .await?;
    Ok(token)
}

/// Counts one attempt against the challenge and returns its user while it is still usable.
pub async fn attempt_challenge(
    db: &Db,
    token: &str,
    now: i64,
) -> Result<Option<String>, StoreError> {
    let id_hash = sha256_hex(token.as_bytes());
    let r = sqlx::query(
        "UPDATE mfa_challenges SET attempts = attempts + 1 WHERE id_hash = $1 AND expires_at > $2 AND attempts < $3",
    )
    .bind(&id_hash)
    .bind(now)
    .bind(CHALLENGE_ATTEMPTS)
    .execute(db.pool())
    .await?;
    if r.rows_affected() != 1 {
        return Ok(None);
    }
    let user: Option<(String,)> =
        sqlx::query_as("SELECT user_id FROM mfa_challenges WHERE id_hash = $1")
            .bind(&id_hash)
            .fetch_optional(db.pool())
            .await?;
    Ok(user.map(|(u,)| u))
}

pub async fn is_challenge_live(db: &Db, token: &str, now: i64) -> Result<bool, StoreError> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT attempts FROM mfa_challenges WHERE id_hash = $1 AND expires_at > $2 AND attempts < $3",
    )
    .bind(sha256_hex(token.as_bytes()))
    .bind(now)
    .bind(CHALLENGE_ATTEMPTS)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.is_some())
}

pub async fn finish_challenge(db: &Db, token: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM mfa_challenges WHERE id_hash = $1")
        .bind(sha256_hex(token.as_bytes()))
        .execute(db.pool())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::{Email, create as create_user};

    const IDLE: Duration = Duration::from_secs(600);
    const ABSOLUTE: Duration = Duration::from_secs(3600);

    async fn new_session(db: &Db, user: &str, now: i64) -> String {
        let s = NewSession {
            user_id: user,
            method: SignInMethod::Password,
            ip: "127.0.0.1",
            user_agent: "test",
        };
        create(db, s, now, ABSOLUTE).await.unwrap()
    }

    async fn timeouts_and_revocation(db: Db) {
        let alice = create_user(&db, "default", &Email::parse("a@example.com").unwrap(), "h")
            .await
            .unwrap();
        let bob = create_user(&db, "default", &Email::parse("b@example.com").unwrap(), "h")
            .await
            .unwrap();
        let t0 = 1_000_000;
        let token = new_session(&db, &alice, t0).await;
        let stored: (String,) = sqlx::query_as("SELECT id_hash FROM sessions")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_ne!(stored.0, token, "the token itself is never stored");

        assert!(
            lookup(&db, &token, t0 + 1_000, IDLE)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            lookup(&db, "not-a-session", t0, IDLE)
                .await
                .unwrap()
                .is_none()
        );
        // Idle: nothing for longer than the idle timeout ends the session.
        assert!(
            lookup(&db, &token, t0 + 1_000 + IDLE.as_millis() as i64, IDLE)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            lookup(&db, &token, t0 + 2_000, IDLE)
                .await
                .unwrap()
                .is_none(),
            "expired sessions are deleted"
        );

        // Absolute: activity does not extend a session beyond its absolute lifetime.
        let token = new_session(&db, &alice, t0).await;
        let mut now = t0;
        while now < t0 + ABSOLUTE.as_millis() as i64 - 300_000 {
            now += 300_000;
            assert!(lookup(&db, &token, now, IDLE).await.unwrap().is_some());
        }
        assert!(
            lookup(&db, &token, t0 + ABSOLUTE.as_millis() as i64, IDLE)
                .await
                .unwrap()
                .is_none()
        );

        // Revocation is scoped to the owner.
        let a1 = new_session(&db, &alice, t0).await;
        let a2 = new_session(&db, &alice, t0).await;
        let b1 = new_session(&db, &bob, t0).await;
        let h = |t: &str| sha256_hex(t.as_bytes());
        assert!(
            !revoke(&db, &bob, &h(&a1)).await.unwrap(),
            "bob cannot revoke alice's session"
        );
        assert!(revoke(&db, &alice, &h(&a1)).await.unwrap());
        assert!(lookup(&db, &a1, t0 + 1, IDLE).await.unwrap().is_none());
        let a3 = new_session(&db, &alice, t0).await;
        assert_eq!(revoke_others(&db, &alice, &h(&a3)).await.unwrap(), 1);
        assert!(lookup(&db, &a2, t0 + 1, IDLE).await.unwrap().is_none());
        assert!(lookup(&db, &a3, t0 + 1, IDLE).await.unwrap().is_some());
        assert!(lookup(&db, &b1, t0 + 1, IDLE).await.unwrap().is_some());
        assert_eq!(list(&db, &alice).await.unwrap().len(), 1);
    }
    palisade_store::both_backends!(timeouts_and_revocation);

    async fn challenges_allow_five_attempts(db: Db) {
        let alice = create_user(&db, "default", &Email::parse("a@example.com").unwrap(), "h")
            .await
            .unwrap();
        let t0 = 5_000_000;
        let c = create_challenge(&db, &alice, t0).await.unwrap();
        for _ in 0..5 {
            assert_eq!(
                attempt_challenge(&db, &c, t0).await.unwrap().as_deref(),
                Some(alice.as_str())
            );
        }
        assert_eq!(attempt_challenge(&db, &c, t0).await.unwrap(), None);
        let c2 = create_challenge(&db, &alice, t0).await.unwrap();
        assert_eq!(
            attempt_challenge(&db, &c2, t0 + CHALLENGE_LIFETIME_MS)
                .await
                .unwrap(),
            None,
            "expired"
        );
    }
    palisade_store::both_backends!(challenges_allow_five_attempts);
}
