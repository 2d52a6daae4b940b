//! Leases (SCL-1): one holder at a time for work that must have a single writer (audit
//! sequencing, ACME orders, key rotation, retention). A lease is a row in the shared database
//! with an expiry and a fencing token that grows with every change of holder. Holding a lease
//! is a belief that may be wrong by the time it is acted on — a paused node may wake after its
//! lease expired — so writers guard what they write with the token: a write carrying an older
//! token than the latest one taken is refused by the store, never applied.

use palisade_store::{Db, StoreError, now_ms};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct Lease {
    db: Db,
    name: String,
    holder: String,
    ttl: Duration,
}

impl Lease {
    /// The lease `name`, as held by `holder` (a node's id), for `ttl` at a time.
    pub fn new(db: Db, name: &str, holder: &str, ttl: Duration) -> Self {
        Self {
            db,
            name: name.to_owned(),
            holder: holder.to_owned(),
            ttl,
        }
    }

    fn ttl_ms(&self) -> i64 {
        self.ttl.as_millis() as i64
    }

    /// The lease's name (the row writers guard their writes with).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Takes the lease if nobody holds it (or its holder let it expire); its fencing token.
    pub async fn try_acquire(&self) -> Result<Option<u64>, StoreError> {
        let now = now_ms();
        let created = sqlx::query(
            "INSERT INTO cluster_leases (name, holder, token, expires_at) VALUES ($1, $2, 1, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&self.name)
        .bind(&self.holder)
        .bind(now + self.ttl_ms())
        .execute(self.db.pool())
        .await?;
        if created.rows_affected() == 0 {
            let taken = sqlx::query(
                "UPDATE cluster_leases SET holder = $1, token = token + 1, expires_at = $2 \
                 WHERE name = $3 AND expires_at < $4",
            )
            .bind(&self.holder)
            .bind(now + self.ttl_ms())
            .bind(&self.name)
            .bind(now)
            .execute(self.db.pool())
            .await?;
            if taken.rows_affected() == 0 {
                return Ok(None);
            }
        }
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT token FROM cluster_leases WHERE name = $1 AND holder = $2")
                .bind(&self.name)
                .bind(&self.holder)
                .fetch_optional(self.db.pool())
                .await?;
        Ok(row.map(|(t,)| t as u64))
    }

    /// Extends a held lease; whether it was still ours.
    pub async fn renew(&self, token: u64) -> Result<bool, StoreError> {
        let renewed = sqlx::query(
            "UPDATE cluster_leases SET expires_at = $1 \
             WHERE name = $2 AND holder = $3 AND token = $4 AND expires_at >= $5",
        )
        .bind(now_ms() + self.ttl_ms())
        .bind(&self.name)
        .bind(&self.holder)
        .bind(token as i64)
        .bind(now_ms())
        .execute(self.db.pool())
        .await?;
        Ok(renewed.rows_affected() == 1)
    }

    /// Gives the lease up at once, so that another node need not wait for it to expire.
    pub async fn release(&self, token: u64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE cluster_leases SET expires_at = 0 WHERE name = $1 AND holder = $2 AND token = $3",
        )
        .bind(&self.name)
        .bind(&self.holder)
        .bind(token as i64)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// Keeps trying to hold the lease until `shutdown`, renewing it a few times per lifetime;
    /// `held` says the token while this node holds it and `None` otherwise. A renewal that
    /// cannot reach the store counts the lease as lost before it expires, never after.
    pub async fn keep(self, held: watch::Sender<Option<u64>>, shutdown: CancellationToken) {
        let every = self.ttl / 3;
        let mut holding: Option<(u64, i64)> = None;
        loop {
            holding = match holding {
                Some((token, expires)) => match self.renew(token).await {
                    Ok(true) => Some((token, now_ms() + self.ttl_ms())),
                    Ok(false) => {
                        tracing::warn!(lease = %self.name, token, "lease lost to another node");
                        None
                    }
                    // The store did not answer: still ours until it would expire.
                    Err(e) if now_ms() + every.as_millis() as i64 * 2 < expires => {
                        tracing::warn!(lease = %self.name, error = %e, "lease not renewed yet");
                        Some((token, expires))
                    }
                    Err(e) => {
                        tracing::warn!(lease = %self.name, error = %e, "lease given up: the store cannot renew it");
                        None
                    }
                },
                None => match self.try_acquire().await {
                    Ok(Some(token)) => {
                        tracing::info!(lease = %self.name, token, "lease taken");
                        Some((token, now_ms() + self.ttl_ms()))
                    }
                    Ok(None) => None,
                    Err(e) => {
                        tracing::debug!(lease = %self.name, error = %e, "lease not taken");
                        None
                    }
                },
            };
            held.send_if_modified(|current| {
                let token = holding.map(|(t, _)| t);
                let changed = *current != token;
                *current = token;
                changed
            });
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        if let Some((token, _)) = holding {
            held.send_replace(None);
            if let Err(e) = self.release(token).await {
                tracing::warn!(lease = %self.name, error = %e, "lease not released; it will expire");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn one_holder_at_a_time_with_growing_tokens(db: Db) {
        let ttl = Duration::from_secs(60);
        let a = Lease::new(db.clone(), "work", "node-a", ttl);
        let b = Lease::new(db.clone(), "work", "node-b", ttl);
        let first = a.try_acquire().await.unwrap().expect("free lease taken");
        assert_eq!(b.try_acquire().await.unwrap(), None, "held by a");
        assert!(a.renew(first).await.unwrap());
        assert!(!b.renew(first).await.unwrap(), "b cannot renew a's lease");
        a.release(first).await.unwrap();
        let second = b
            .try_acquire()
            .await
            .unwrap()
            .expect("released lease taken");
        assert!(second > first, "the fencing token grows with each holder");
        assert!(!a.renew(first).await.unwrap(), "a's old token is dead");
        // An expired lease is taken over.
        sqlx::query("UPDATE cluster_leases SET expires_at = 1 WHERE name = 'work'")
            .execute(db.pool())
            .await
            .unwrap();
        let third = a.try_acquire().await.unwrap().expect("expired lease taken");
        assert!(third > second);
        assert!(!b.renew(second).await.unwrap());
    }
    palisade_store::both_backends!(one_holder_at_a_time_with_growing_tokens);

    async fn the_keeper_hands_over_on_release(db: Db) {
        let ttl = Duration::from_millis(600);
        let stop_a = CancellationToken::new();
        let (a_tx, mut a_rx) = watch::channel(None);
        let (b_tx, mut b_rx) = watch::channel(None);
        let a = tokio::spawn(Lease::new(db.clone(), "keep", "a", ttl).keep(a_tx, stop_a.clone()));
        let a_token = *a_rx.wait_for(Option::is_some).await.unwrap();
        let stop_b = CancellationToken::new();
        let b = tokio::spawn(Lease::new(db.clone(), "keep", "b", ttl).keep(b_tx, stop_b.clone()));
        stop_a.cancel();
        a.await.unwrap();
        let b_token = *b_rx.wait_for(Option::is_some).await.unwrap();
        assert!(b_token > a_token);
        stop_b.cancel();
        b.await.unwrap();
    }
    palisade_store::both_backends!(the_keeper_hands_over_on_release);
}
