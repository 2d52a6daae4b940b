//! Per-subject keys for the encrypted part of audit entries (AUD-6). Each account (by its
//! keyed pseudonym) gets a random AES-256-GCM key, stored sealed under the server's sealing key.
//! Erasing the subject destroys its keys: the entries and their hashes stay, every proof still
//! verifies, and their payloads can no longer be read by anyone (crypto-shredding). Nodes keep
//! live keys in memory; an erasure is announced on the bus so that every node forgets the key at
//! once, and no node seals a new entry with a key that was destroyed elsewhere.

use palisade_cluster::{Bus, Delivery};
use palisade_crypto::SealingKey;
use palisade_store::{Db, StoreError, new_id, now_ms};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Keys held in memory at most; past this the cache starts over (a cheap bound, not an LRU:
/// a miss costs one indexed read).
const CACHE_LIMIT: usize = 100_000;

/// Where erasures are announced.
const ERASED: &str = "audit.subject_erased";

#[derive(Clone)]
pub struct SubjectKeys {
    db: Db,
    master: Arc<SealingKey>,
    /// subject pseudonym → its live key, for the encrypting side.
    cache: Arc<Mutex<HashMap<String, SubjectKey>>>,
    bus: Bus,
}

#[derive(Clone)]
pub struct SubjectKey {
    pub id: String,
    key: Arc<SealingKey>,
}

impl SubjectKey {
    fn context(&self) -> Vec<u8> {
        format!("palisade-audit-payload:{}", self.id).into_bytes()
    }

    pub fn seal(&self, plaintext: &[u8]) -> String {
        self.key.seal_text(&self.context(), plaintext)
    }

    pub fn open(&self, sealed: &str) -> Option<Vec<u8>> {
        self.key.open_text(&self.context(), sealed).ok()
    }
}

fn wrap_context(key_id: &str) -> Vec<u8> {
    format!("palisade-audit-subject-key:{key_id}").into_bytes()
}

impl SubjectKeys {
    pub fn new(db: Db, master: SealingKey, bus: Bus) -> Self {
        Self {
            db,
            master: Arc::new(master),
            cache: Arc::default(),
            bus,
        }
    }

    /// Forgets the keys other nodes erase, until `shutdown`; after a gap in the bus, forgets
    /// them all (they are read again on use).
    pub async fn follow(&self, shutdown: tokio_util::sync::CancellationToken) {
        let mut erased = self.bus.subscribe(ERASED);
        loop {
            let delivery = tokio::select! {
                d = erased.recv() => d,
                _ = shutdown.cancelled() => return,
            };
            match delivery {
                Some(Delivery::Message(subject)) => {
                    let subject = String::from_utf8_lossy(&subject);
                    self.cache
                        .lock()
                        .expect("key cache")
                        .remove(subject.as_ref());
                }
                Some(Delivery::Resync) => self.cache.lock().expect("key cache").clear(),
                None => return,
            }
        }
    }

    /// The subject's live key, created on first use.
    pub async fn for_subject(&self, subject: &str) -> Result<SubjectKey, StoreError> {
        if let Some(k) = self.cache.lock().expect("key cache").get(subject) {
            return Ok(k.clone());
        }
        let key = match self.live(subject).await? {
            Some(k) => k,
            None => {
                let id = new_id();
                let raw = palisade_crypto::random_bytes::<32>();
                let sealed = self.master.seal_text(&wrap_context(&id), &raw);
                // Two first events of one subject may race: the unique index keeps one key.
                sqlx::query(
                    "INSERT INTO audit_subject_keys (key_id, subject, sealed_key, created_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(&id)
                .bind(subject)
                .bind(&sealed)
                .bind(now_ms())
                .execute(self.db.pool())
                .await?;
                self.live(subject).await?.ok_or_else(|| {
                    StoreError::Database(sqlx::Error::Protocol(
                        "audit subject key vanished while being created".into(),
                    ))
                })?
            }
        };
        let mut cache = self.cache.lock().expect("key cache");
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(subject.to_owned(), key.clone());
        Ok(key)
    }

    async fn live(&self, subject: &str) -> Result<Option<SubjectKey>, StoreError> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT key_id, sealed_key FROM audit_subject_keys \
             WHERE subject = $1 AND sealed_key IS NOT NULL",
        )
        .bind(subject)
        .fetch_optional(self.db.pool())
        .await?;
        row.map(|(id, sealed)| self.unwrap(id, &sealed)).transpose()
    }

    /// The key with this id, or `None` once it has been erased.
    pub async fn by_id(&self, key_id: &str) -> Result<Option<SubjectKey>, StoreError> {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT sealed_key FROM audit_subject_keys WHERE key_id = $1")
                .bind(key_id)
                .fetch_optional(self.db.pool())
                .await?;
        match row {
            Some((Some(sealed),)) => self.unwrap(key_id.to_owned(), &sealed).map(Some),
            _ => Ok(None),
        }
    }

    fn unwrap(&self, id: String, sealed: &str) -> Result<SubjectKey, StoreError> {
        let raw = self
            .master
            .open_text(&wrap_context(&id), sealed)
            .ok()
            .and_then(|raw| SealingKey::from_bytes(&raw).ok())
            .ok_or_else(|| {
                StoreError::Database(sqlx::Error::Protocol(format!(
                    "audit subject key {id} cannot be opened with this sealing key"
                )))
            })?;
        Ok(SubjectKey {
            id,
            key: Arc::new(raw),
        })
    }

    /// Destroys every key of `subject`; returns how many were destroyed.
    pub async fn erase(&self, subject: &str) -> Result<u64, StoreError> {
        self.cache.lock().expect("key cache").remove(subject);
        let done = sqlx::query(
            "UPDATE audit_subject_keys SET sealed_key = NULL, erased_at = $1 \
             WHERE subject = $2 AND sealed_key IS NOT NULL",
        )
        .bind(now_ms())
        .bind(subject)
        .execute(self.db.pool())
        .await?;
        self.bus.publish(ERASED, subject.to_owned()).await;
        Ok(done.rows_affected())
    }
}

/// Ids of keys that were erased, for the verifier's "payload erased" report.
pub async fn erased_key_ids(db: &Db) -> Result<Vec<String>, StoreError> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT key_id FROM audit_subject_keys WHERE sealed_key IS NULL")
            .fetch_all(db.pool())
            .await?;
    Ok(rows.into_iter().map(|(k,)| k).collect())
}
