//! The signing-key lifecycle (TOK-2, TOK-3), kept in the database so that every node and the
//! CLI agree. At any time there is one `active` key (it signs) and one `next` key (published in
//! the JWKS, not signing yet). Rotation retires the active key, activates the next one — only
//! once it has been published for at least a JWKS cache lifetime, so clients that cached the
//! JWKS already know it — and publishes a new next key. A retired key stays published until the
//! longest-lived token it signed has expired; a revoked key disappears at once. Private keys are
//! sealed at rest under the server's sealing key.

use crate::keys::{Algorithm, KeyError, PublicKey, SigningKey};
use data_encoding::BASE64URL_NOPAD;
use palisade_crypto::SealingKey;
use palisade_store::{Db, StoreError, now_ms};
use serde::Serialize;
use std::sync::{Arc, RwLock};

#[derive(Debug, Clone)]
pub struct KeyPolicy {
    pub algorithm: Algorithm,
    /// How long a key signs before scheduled rotation replaces it.
    pub rotation_interval_ms: i64,
    /// How long the next key is published before it may sign: at least the JWKS cache lifetime.
    pub publish_ahead_ms: i64,
    /// How long a retired key stays published: the longest lifetime of a token it signed.
    pub retire_after_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("stored key {0} cannot be opened with this sealing key")]
    Sealed(String),
    #[error(
        "the next key has been published for {published_s} s of the {needed_s} s clients may cache the JWKS; rotate with --force only in an emergency"
    )]
    TooEarly { published_s: i64, needed_s: i64 },
    #[error("no key {0}")]
    NoSuchKey(String),
}

/// A key as listed by `palisade keys list`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: String,
    pub state: String,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    pub retired_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

struct Loaded {
    signing: Arc<SigningKey>,
    published: Vec<PublicKey>,
}

#[derive(Clone)]
pub struct KeyRing {
    db: Db,
    sealing: Arc<SealingKey>,
    policy: KeyPolicy,
    loaded: Arc<RwLock<Loaded>>,
    created: Vec<CreatedKey>,
}

/// A key generated when a ring was opened (the first start of a deployment), for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedKey {
    pub kid: String,
    /// `active` or `next`.
    pub state: &'static str,
}

fn seal_context(kid: &str) -> Vec<u8> {
    format!("palisade-signing-key:{kid}").into_bytes()
}

impl KeyRing {
    /// Loads the keys, creating the first active and next keys when there are none.
    pub async fn open(
        db: Db,
        sealing: SealingKey,
        policy: KeyPolicy,
    ) -> Result<Self, KeyRingError> {
        let sealing = Arc::new(sealing);
        let now = now_ms();
        let mut created = Vec::new();
        // The very first key signs at once: no client can have cached an older JWKS.
        if active_kid(&db).await?.is_none() {
            created.extend(insert_key(&db, &sealing, policy.algorithm, "active", now).await?);
        }
        if next_kid(&db).await?.is_none() {
            created.extend(insert_key(&db, &sealing, policy.algorithm, "next", now).await?);
        }
        let loaded = load(&db, &sealing, &policy, now).await?;
        Ok(Self {
            db,
            sealing,
            policy,
            loaded: Arc::new(RwLock::new(loaded)),
            created,
        })
    }

    /// The keys generated when this ring was opened: none unless the deployment had none.
    pub fn created_on_open(&self) -> &[CreatedKey] {
        &self.created
    }

    /// Rereads the keys (after another node or the CLI rotated or revoked one).
    pub async fn reload(&self) -> Result<(), KeyRingError> {
        let loaded = load(&self.db, &self.sealing, &self.policy, now_ms()).await?;
        *self.loaded.write().expect("key ring") = loaded;
        Ok(())
    }

    /// The key that signs now.
    pub fn signing_key(&self) -> Arc<SigningKey> {
        self.loaded.read().expect("key ring").signing.clone()
    }

    /// The keys tokens may be verified with, and that the JWKS shows.
    pub fn published(&self) -> Vec<PublicKey> {
        self.loaded.read().expect("key ring").published.clone()
    }

    /// Whether the key `kid` is published: tokens it signed still verify.
    pub fn is_published(&self, kid: &str) -> bool {
        let loaded = self.loaded.read().expect("key ring");
        loaded.published.iter().any(|k| k.kid == kid)
    }

    /// The JWKS document (RFC 7517).
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<_> = self.published().iter().map(PublicKey::jwk).collect();
        serde_json::json!({ "keys": keys })
    }

    /// Retires the active key and activates the next one, refusing when the next key has not
    /// been published long enough unless `force` (emergencies). Returns the new active kid.
    pub async fn rotate(&self, force: bool) -> Result<String, KeyRingError> {
        let now = now_ms();
        let next = next_kid(&self.db).await?;
        let Some((next, published_at)) = next else {
            return Err(KeyRingError::NoSuchKey("next".into()));
        };
        if !force && now - published_at < self.policy.publish_ahead_ms {
            return Err(KeyRingError::TooEarly {
                published_s: (now - published_at) / 1000,
                needed_s: self.policy.publish_ahead_ms / 1000,
            });
        }
        let mut tx = self.db.begin().await.map_err(StoreError::from)?;
        sqlx::query(
            "UPDATE signing_keys SET state = 'retired', retired_at = $1 WHERE state = 'active'",
        )
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        sqlx::query("UPDATE signing_keys SET state = 'active', activated_at = $1 WHERE kid = $2")
            .bind(now)
            .bind(&next)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        insert_key(&self.db, &self.sealing, self.policy.algorithm, "next", now).await?;
        self.reload().await?;
        tracing::info!(kid = %next, "signing key rotated");
        Ok(next)
    }

    /// Scheduled rotation: rotates when the active key is older than the rotation interval and
    /// the next key may sign. Returns whether it rotated.
    pub async fn rotate_if_due(&self) -> Result<bool, KeyRingError> {
        let row: Option<(Option<i64>,)> =
            sqlx::query_as("SELECT activated_at FROM signing_keys WHERE state = 'active'")
                .fetch_optional(self.db.pool())
                .await
                .map_err(StoreError::from)?;
        let activated = row.and_then(|(a,)| a).unwrap_or(0);
        if now_ms() - activated < self.policy.rotation_interval_ms {
            return Ok(false);
        }
        match self.rotate(false).await {
            Ok(_) => Ok(true),
            Err(KeyRingError::TooEarly { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Emergency revocation: the key disappears from the JWKS and verifies nothing from now on.
    /// Revoking the active key activates the next one at once.
    pub async fn revoke(&self, kid: &str) -> Result<(), KeyRingError> {
        let state: Option<(String,)> =
            sqlx::query_as("SELECT state FROM signing_keys WHERE kid = $1")
                .bind(kid)
                .fetch_optional(self.db.pool())
                .await
                .map_err(StoreError::from)?;
        let Some((state,)) = state else {
            return Err(KeyRingError::NoSuchKey(kid.to_owned()));
        };
        if state == "active" {
            self.rotate(true).await?;
        }
        sqlx::query("UPDATE signing_keys SET state = 'revoked', revoked_at = $1 WHERE kid = $2")
            .bind(now_ms())
            .bind(kid)
            .execute(self.db.pool())
            .await
            .map_err(StoreError::from)?;
        if state == "next" {
            // Its replacement, now that it no longer holds the slot.
            insert_key(
                &self.db,
                &self.sealing,
                self.policy.algorithm,
                "next",
                now_ms(),
            )
            .await?;
        }
        self.reload().await?;
        tracing::warn!(kid, "signing key revoked");
        Ok(())
    }

    pub async fn list(&self) -> Result<Vec<KeyInfo>, KeyRingError> {
        Ok(sqlx::query_as(
            "SELECT kid, alg, state, created_at, activated_at, retired_at, revoked_at \
             FROM signing_keys ORDER BY created_at",
        )
        .fetch_all(self.db.pool())
        .await
        .map_err(StoreError::from)?)
    }
}

async fn active_kid(db: &Db) -> Result<Option<String>, StoreError> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT kid FROM signing_keys WHERE state = 'active'")
            .fetch_optional(db.pool())
            .await?;
    Ok(row.map(|(k,)| k))
}

async fn next_kid(db: &Db) -> Result<Option<(String, i64)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT kid, created_at FROM signing_keys WHERE state = 'next'")
            .fetch_optional(db.pool())
            .await?,
    )
}

/// Creates a key in `state`; the key, when it was stored. Two nodes racing to create the same
/// slot are kept apart by the unique index on it: the loser's key is simply not stored.
async fn insert_key(
    db: &Db,
    sealing: &SealingKey,
    alg: Algorithm,
    state: &'static str,
    now: i64,
) -> Result<Option<CreatedKey>, KeyRingError> {
    let (key, pkcs8) = SigningKey::generate(alg)?;
    let sealed = sealing.seal_text(&seal_context(&key.kid), &pkcs8);
    let stored = sqlx::query(
        "INSERT INTO signing_keys (kid, alg, public_key, sealed_private, state, created_at, activated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(&key.kid)
    .bind(alg.as_str())
    .bind(BASE64URL_NOPAD.encode(&key.public().bytes))
    .bind(sealed)
    .bind(state)
    .bind(now)
    .bind((state == "active").then_some(now))
    .execute(db.pool())
    .await
    .map_err(StoreError::from)?;
    Ok((stored.rows_affected() == 1).then(|| CreatedKey {
        kid: key.kid.clone(),
        state,
    }))
}

async fn load(
    db: &Db,
    sealing: &SealingKey,
    policy: &KeyPolicy,
    now: i64,
) -> Result<Loaded, KeyRingError> {
    let rows: Vec<(String, String, String, String, String, Option<i64>)> = sqlx::query_as(
        "SELECT kid, alg, public_key, sealed_private, state, retired_at FROM signing_keys \
         WHERE state IN ('next', 'active', 'retired') ORDER BY created_at",
    )
    .fetch_all(db.pool())
    .await
    .map_err(StoreError::from)?;
    let mut signing = None;
    let mut published = Vec::new();
    for (kid, alg, public, sealed, state, retired_at) in rows {
        let alg = Algorithm::parse(&alg).ok_or_else(|| KeyRingError::Sealed(kid.clone()))?;
        if state == "retired" && retired_at.unwrap_or(0) + policy.retire_after_ms <= now {
            continue;
        }
        if state == "active" {
            let pkcs8 = sealing
                .open_text(&seal_context(&kid), &sealed)
                .ok()
                .ok_or_else(|| KeyRingError::Sealed(kid.clone()))?;
            signing = Some(Arc::new(SigningKey::from_pkcs8(alg, &pkcs8)?));
        }
        let bytes = BASE64URL_NOPAD
            .decode(public.as_bytes())
            .map_err(|_| KeyRingError::Sealed(kid.clone()))?;
        published.push(PublicKey { kid, alg, bytes });
    }
    let signing = signing.ok_or_else(|| KeyRingError::NoSuchKey("active".into()))?;
    Ok(Loaded { signing, published })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jws;
    use crate::verify::{Expectations, TokenError, verify};
    use serde_json::json;

    fn policy(publish_ahead_ms: i64, retire_after_ms: i64) -> KeyPolicy {
        KeyPolicy {
            algorithm: Algorithm::EdDSA,
            rotation_interval_ms: 30 * 86_400_000,
            publish_ahead_ms,
            retire_after_ms,
        }
    }

    fn sealing() -> SealingKey {
        SealingKey::from_bytes(&[3u8; 32]).unwrap()
    }

    fn token(ring: &KeyRing) -> String {
        let now = now_ms() / 1000;
        let claims = json!({"iss": "https://issuer.example", "exp": now + 600, "iat": now});
        jws::sign(&ring.signing_key(), "at+jwt", claims.as_object().unwrap())
    }

    fn check(token: &str, keys: &[PublicKey]) -> Result<(), TokenError> {
        let expect = Expectations {
            typ: "at+jwt",
            issuer: "https://issuer.example",
            audience: None,
            now: now_ms() / 1000,
            skew_seconds: 30,
        };
        verify(token, keys, &expect).map(|_| ())
    }

    async fn keys_are_pre_published_retired_late_and_revoked_at_once(db: Db) {
        let hour = 3_600_000;
        let ring = KeyRing::open(db.clone(), sealing(), policy(hour, hour))
            .await
            .unwrap();
        assert_eq!(ring.published().len(), 2, "the active key and the next one");
        let states: Vec<&str> = ring.created_on_open().iter().map(|k| k.state).collect();
        assert_eq!(states, ["active", "next"]);
        assert_eq!(ring.created_on_open()[0].kid, ring.signing_key().kid);
        let reopened = KeyRing::open(db.clone(), sealing(), policy(hour, hour)).await;
        assert!(
            reopened.unwrap().created_on_open().is_empty(),
            "kept, not made again"
        );
        let first = token(&ring);
        let cached_jwks = ring.published();

        // The next key has not been published for a JWKS cache lifetime yet.
        assert!(matches!(
            ring.rotate(false).await,
            Err(KeyRingError::TooEarly { .. })
        ));
        let old_kid = ring.signing_key().kid.clone();
        let new_kid = ring.rotate(true).await.unwrap();
        assert_ne!(new_kid, old_kid);
        assert_eq!(ring.signing_key().kid, new_kid);
        // A client that cached the JWKS before the rotation verifies the new tokens.
        let second = token(&ring);
        check(&second, &cached_jwks).unwrap();
        // The retired key stays published, so tokens it signed still verify.
        assert_eq!(ring.published().len(), 3);
        check(&first, &ring.published()).unwrap();

        // Once the longest token lifetime has passed since retirement, it is gone.
        let expired = KeyRing::open(db.clone(), sealing(), policy(hour, 0))
            .await
            .unwrap();
        assert_eq!(
            check(&first, &expired.published()),
            Err(TokenError::UnknownKey)
        );
        check(&second, &expired.published()).unwrap();

        // Emergency revocation of the active key: gone from the JWKS at once, and a new key signs.
        ring.revoke(&new_kid).await.unwrap();
        assert_eq!(
            check(&second, &ring.published()),
            Err(TokenError::UnknownKey)
        );
        assert_ne!(ring.signing_key().kid, new_kid);
        check(&token(&ring), &ring.published()).unwrap();
        let states: Vec<(String, String)> = ring
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|k| (k.kid, k.state))
            .collect();
        assert!(states.contains(&(new_kid.clone(), "revoked".into())));
        assert_eq!(states.iter().filter(|(_, s)| s == "active").count(), 1);
        assert_eq!(states.iter().filter(|(_, s)| s == "next").count(), 1);
        assert!(matches!(
            ring.revoke("no-such-key").await,
            Err(KeyRingError::NoSuchKey(_))
        ));

        // Private keys are sealed: not in the clear, and useless without the sealing key.
        let (sealed,): (String,) =
            sqlx::query_as("SELECT sealed_private FROM signing_keys WHERE state = 'active'")
                .fetch_one(db.pool())
                .await
                .unwrap();
        assert!(
            !sealed.starts_with("MC4CAQAwBQYDK2Vw"),
            "not a bare PKCS#8 Ed25519 key"
        );
        let stranger = SealingKey::from_bytes(&[4u8; 32]).unwrap();
        assert!(matches!(
            KeyRing::open(db, stranger, policy(hour, hour)).await,
            Err(KeyRingError::Sealed(_))
        ));
    }
    palisade_store::both_backends!(keys_are_pre_published_retired_late_and_revoked_at_once);

    async fn scheduled_rotation_waits_for_pre_publication(db: Db) {
        // Due at once, but the next key was just published: no rotation yet.
        let mut p = policy(3_600_000, 3_600_000);
        p.rotation_interval_ms = 0;
        let ring = KeyRing::open(db.clone(), sealing(), p.clone())
            .await
            .unwrap();
        assert!(!ring.rotate_if_due().await.unwrap());
        // Pre-published long enough (zero here): due rotation happens.
        p.publish_ahead_ms = 0;
        let ring = KeyRing::open(db, sealing(), p).await.unwrap();
        let before = ring.signing_key().kid.clone();
        assert!(ring.rotate_if_due().await.unwrap());
        assert_ne!(ring.signing_key().kid, before);
    }
    palisade_store::both_backends!(scheduled_rotation_waits_for_pre_publication);
}
