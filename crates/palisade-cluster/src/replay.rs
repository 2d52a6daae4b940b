//! Single-use identifiers across the cluster (OAU-4 client assertions, OAU-10 DPoP proofs):
//! the first use of an id is told apart from every later one, on any node, until the id's JWT
//! could no longer be accepted anyway. In Redis (`SET NX` with an expiry) when it is configured
//! and reachable; in the database — shared by every node too, and durable across restarts —
//! otherwise. Only digests of the ids are stored.

use crate::link::{Link, key};
use palisade_store::{Db, StoreError, now_ms};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// Expired ids are swept from the database once every this many uses.
const SWEEP_EVERY: u32 = 256;

#[derive(Clone)]
pub struct ReplayStore {
    db: Db,
    link: Option<Link>,
    uses: Arc<AtomicU32>,
}

impl ReplayStore {
    pub(crate) fn new(db: Db, link: Option<Link>) -> Self {
        Self {
            db,
            link,
            uses: Arc::default(),
        }
    }

    /// A store in the database only, for one node (and tests).
    pub fn in_database(db: Db) -> Self {
        Self::new(db, None)
    }

    /// Records `id` of `kind` until `keep_until_ms`; whether this was its first use. Of two
    /// concurrent uses exactly one is first.
    pub async fn first_use(
        &self,
        kind: &str,
        id: &str,
        keep_until_ms: i64,
    ) -> Result<bool, StoreError> {
        let keep_ms = (keep_until_ms - now_ms()).max(1);
        if let Some(link) = &self.link {
            let key = key("once", &[kind, id]);
            let set = link
                .run("single-use check", |mut conn| async move {
                    redis::cmd("SET")
                        .arg(key)
                        .arg(1)
                        .arg("NX")
                        .arg("PX")
                        .arg(keep_ms)
                        .query_async::<Option<String>>(&mut conn)
                        .await
                })
                .await;
            if let Some(set) = set {
                return Ok(set.is_some());
            }
        }
        if self
            .uses
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SWEEP_EVERY)
        {
            sqlx::query("DELETE FROM replay_ids WHERE expires_at < $1")
                .bind(now_ms())
                .execute(self.db.pool())
                .await?;
        }
        let digest = palisade_crypto::sha256_hex(format!("{kind}\n{id}").as_bytes());
        let fresh = sqlx::query(
            "INSERT INTO replay_ids (id_sha256, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(digest)
        .bind(keep_until_ms)
        .execute(self.db.pool())
        .await?;
        Ok(fresh.rows_affected() == 1)
    }
}
