//! The append-only audit log (AUD-3, AUD-4): entries become RFC 6962 leaves in index order,
//! written by a single writer task that commits whole batches — every entry waiting at that
//! moment goes into one transaction, made durable once, and only then is each caller told its
//! index (group commit). Each batch also publishes a signed checkpoint of the new tree.
//!
//! The tree's complete subtrees are kept in memory ([`Tree`], about 64 bytes per entry) so
//! that proofs against any published size take microseconds; entries stay in the store.

use crate::merkle::{self, CompactRange, Hash, ProofError, Tree};
use crate::note::{Checkpoint, Signer};
use crate::{EventRow, placeholders};
use data_encoding::HEXLOWER;
use palisade_store::{Db, StoreError, now_ms};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tokio::sync::{mpsc, oneshot, watch};

/// Entries waiting beyond this make `append` callers wait for room (back-pressure).
const QUEUE: usize = 65_536;
const MAX_BATCH: usize = 8_192;
/// Parameters per multi-row INSERT: fewer means more statements, more means longer ones
/// (the SQLite driver's binding cost grows faster than linearly); 400 measured best.
const PARAMS_PER_INSERT: usize = 400;
/// Rows read per query when a log is opened.
const OPEN_PAGE: i64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum AuditLogError {
    #[error("audit store: {0}")]
    Store(#[from] StoreError),
    #[error("audit log is corrupt: {0}")]
    Corrupt(String),
    #[error("audit log writer stopped")]
    Stopped,
    #[error("audit batch not committed: {0}")]
    NotCommitted(String),
    #[error("checkpoint signing failed: {0}")]
    Signing(String),
}

struct State {
    tree: Tree,
    /// Leaf hash (its first 8 bytes) → first index with that hash, for proofs by hash. In
    /// memory because a database index on random hashes would cut append throughput threefold.
    by_hash: HashMap<u64, u64>,
    range: CompactRange,
    /// The latest signed checkpoint and the size it names.
    checkpoint: Option<(String, u64)>,
    /// The latest checkpoint carrying witness cosignatures, and its size.
    cosigned: Option<(String, u64)>,
}

struct Pending {
    entry: String,
    /// The event's searchable row, written in the same transaction.
    row: Option<EventRow>,
    /// The outbox row this entry comes from, deleted in the same transaction.
    outbox_id: Option<i64>,
    ack: oneshot::Sender<Result<u64, String>>,
}

#[derive(Clone)]
pub struct AuditLog {
    db: Db,
    state: Arc<RwLock<State>>,
    tx: mpsc::Sender<Pending>,
    /// The size of the latest checkpoint, for those who follow the log (the cosigner).
    published: Arc<watch::Sender<u64>>,
}

impl AuditLog {
    /// Loads the log from the store (checking that indexes run without gaps) and starts its
    /// writer. `origin` is the checkpoint's first line, conventionally the log's URL prefix.
    pub async fn open(db: Db, signer: Signer, origin: String) -> Result<Self, AuditLogError> {
        let mut tree = Tree::default();
        let mut by_hash = HashMap::new();
        let mut range = CompactRange::default();
        // Read in pages: a large log's rows are never all held at once.
        loop {
            let expected = range.size();
            let rows: Vec<(i64, String)> = sqlx::query_as(
                "SELECT idx, leaf_hash FROM audit_leaves WHERE idx >= $1 ORDER BY idx LIMIT $2",
            )
            .bind(expected as i64)
            .bind(OPEN_PAGE)
            .fetch_all(db.pool())
            .await
            .map_err(StoreError::from)?;
            if rows.is_empty() {
                break;
            }
            for (idx, hash) in rows {
                let expected = range.size();
                if idx != expected as i64 {
                    return Err(AuditLogError::Corrupt(format!(
                        "leaf {expected} is missing"
                    )));
                }
                let hash: Hash = HEXLOWER
                    .decode(hash.as_bytes())
                    .ok()
                    .and_then(|h| h.try_into().ok())
                    .ok_or_else(|| {
                        AuditLogError::Corrupt(format!("leaf {idx} has a malformed hash"))
                    })?;
                range.append(hash);
                by_hash.entry(hash_key(&hash)).or_insert(expected);
                tree.push(hash);
            }
        }
        let checkpoint: Option<(String, i64)> =
            sqlx::query_as("SELECT note, size FROM audit_checkpoints ORDER BY size DESC LIMIT 1")
                .fetch_optional(db.pool())
                .await
                .map_err(StoreError::from)?;
        let cosigned: Option<(String, i64)> = sqlx::query_as(
            "SELECT note, size FROM audit_checkpoints WHERE cosignatures > 0 \
             ORDER BY size DESC LIMIT 1",
        )
        .fetch_optional(db.pool())
        .await
        .map_err(StoreError::from)?;
        let state = Arc::new(RwLock::new(State {
            cosigned: cosigned.map(|(note, size)| (note, size as u64)),
            tree,
            by_hash,
            range,
            checkpoint: checkpoint.map(|(note, size)| (note, size as u64)),
        }));
        let (tx, rx) = mpsc::channel(QUEUE);
        let published = Arc::new(watch::Sender::new(range_size(&state)));
        tokio::spawn(write_batches(
            db.clone(),
            signer,
            origin,
            state.clone(),
            rx,
            published.clone(),
        ));
        Ok(Self {
            db,
            state,
            tx,
            published,
        })
    }

    /// Appends one entry and returns its index once it is durable.
    pub async fn append(&self, entry: String) -> Result<u64, AuditLogError> {
        acknowledged(self.submit(entry, None, None).await?).await
    }

    /// Appends security events' entries, each with its searchable row, in order; returns their
    /// indexes once all are durable.
    pub(crate) async fn append_events(
        &self,
        events: Vec<(String, EventRow)>,
    ) -> Result<Vec<u64>, AuditLogError> {
        // All queued before any is awaited: they keep their order and share batches.
        let mut acks = Vec::with_capacity(events.len());
        for (entry, row) in events {
            acks.push(self.submit(entry, Some(row), None).await?);
        }
        let mut indexes = Vec::with_capacity(acks.len());
        for done in acks {
            indexes.push(acknowledged(done).await?);
        }
        Ok(indexes)
    }

    /// Queues an entry; the receiver answers once it is durable.
    async fn submit(
        &self,
        entry: String,
        row: Option<EventRow>,
        outbox_id: Option<i64>,
    ) -> Result<oneshot::Receiver<Result<u64, String>>, AuditLogError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Pending {
                entry,
                row,
                outbox_id,
                ack,
            })
            .await
            .map_err(|_| AuditLogError::Stopped)?;
        Ok(done)
    }

    pub fn size(&self) -> u64 {
        self.state.read().expect("audit state").range.size()
    }

    /// The latest signed checkpoint (C2SP signed note), if anything was ever appended.
    pub fn checkpoint(&self) -> Option<String> {
        self.latest().map(|(note, _)| note)
    }

    /// The latest checkpoint with witness cosignatures, and its size.
    pub fn cosigned(&self) -> Option<(String, u64)> {
        self.state.read().expect("audit state").cosigned.clone()
    }

    /// Follows the size of the latest checkpoint.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.published.subscribe()
    }

    /// Stores `note` — the checkpoint of `size` with `cosignatures` witness signature lines
    /// appended — in place of the log's own, and serves it as the latest cosigned checkpoint.
    pub async fn store_cosigned(
        &self,
        size: u64,
        note: String,
        cosignatures: usize,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE audit_checkpoints SET note = $1, cosignatures = $2 WHERE size = $3")
            .bind(&note)
            .bind(cosignatures as i64)
            .bind(size as i64)
            .execute(self.db.pool())
            .await?;
        let mut state = self.state.write().expect("audit state");
        if state.cosigned.as_ref().is_none_or(|(_, s)| *s <= size) {
            state.cosigned = Some((note, size));
        }
        Ok(())
    }

    /// The latest signed checkpoint with the tree size it names.
    pub fn latest(&self) -> Option<(String, u64)> {
        self.state.read().expect("audit state").checkpoint.clone()
    }

    pub fn leaf_hash(&self, index: u64) -> Option<Hash> {
        self.state.read().expect("audit state").tree.leaf(index)
    }

    /// Inclusion proof of leaf `index` in the tree of the first `size` leaves.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        let state = self.state.read().expect("audit state");
        state.tree.inclusion_proof(index, size)
    }

    /// Consistency proof between the trees of the first `size1` and `size2` leaves.
    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Hash>, ProofError> {
        let state = self.state.read().expect("audit state");
        state.tree.consistency_proof(size1, size2)
    }

    /// The stored entry at `index`, exactly the bytes its leaf hash covers.
    pub async fn entry(&self, index: u64) -> Result<Option<String>, StoreError> {
        if index >= self.size() {
            return Ok(None);
        }
        let row: Option<(String,)> =
            sqlx::query_as("SELECT entry FROM audit_leaves WHERE idx = $1")
                .bind(index as i64)
                .fetch_optional(self.db.pool())
                .await?;
        Ok(row.map(|(e,)| e))
    }

    /// The first index whose leaf hash is `hash`, among the first `size` entries.
    pub fn index_of(&self, hash: &Hash, size: u64) -> Option<u64> {
        let state = self.state.read().expect("audit state");
        match state.by_hash.get(&hash_key(hash)) {
            Some(&i) if state.tree.leaf(i) == Some(*hash) => Some(i).filter(|&i| i < size),
            // Another hash with the same first 8 bytes (about one chance in 2^64 per entry):
            // fall back to a scan.
            Some(_) => {
                (0..size.min(state.tree.size())).find(|&i| state.tree.leaf(i) == Some(*hash))
            }
            None => None,
        }
    }
}

/// Leaves a finished entry and its searchable row for the server's writer ([`drain_outbox`]).
pub(crate) async fn to_outbox(db: &Db, entry: &str, row: &EventRow) -> Result<(), StoreError> {
    let row = serde_json::to_string(row).expect("an event row serializes");
    sqlx::query("INSERT INTO audit_outbox (entry, row_json, created_at) VALUES ($1, $2, $3)")
        .bind(entry)
        .bind(row)
        .bind(now_ms())
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Appends what tools beside the server left in the outbox: at once, then every second.
pub async fn drain_outbox(log: AuditLog, shutdown: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        match log.drain_once().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(entries = n, "audit outbox appended"),
            Err(e) => tracing::error!(error = %e, "audit outbox not appended"),
        }
    }
}

impl AuditLog {
    async fn drain_once(&self) -> Result<usize, AuditLogError> {
        let rows: Vec<(i64, String, String)> =
            sqlx::query_as("SELECT id, entry, row_json FROM audit_outbox ORDER BY id LIMIT 500")
                .fetch_all(self.db.pool())
                .await
                .map_err(StoreError::from)?;
        let count = rows.len();
        // Queued in order before any is awaited: they keep their order and share batches.
        let mut acks = Vec::with_capacity(count);
        for (id, entry, row) in rows {
            let row: EventRow = serde_json::from_str(&row)
                .map_err(|e| AuditLogError::Corrupt(format!("outbox row {id}: {e}")))?;
            acks.push(self.submit(entry, Some(row), Some(id)).await?);
        }
        for done in acks {
            acknowledged(done).await?;
        }
        Ok(count)
    }
}

async fn acknowledged(done: oneshot::Receiver<Result<u64, String>>) -> Result<u64, AuditLogError> {
    match done.await {
        Ok(Ok(index)) => Ok(index),
        Ok(Err(e)) => Err(AuditLogError::NotCommitted(e)),
        Err(_) => Err(AuditLogError::Stopped),
    }
}

fn hash_key(hash: &Hash) -> u64 {
    u64::from_be_bytes(hash[..8].try_into().expect("8 bytes"))
}

fn range_size(state: &RwLock<State>) -> u64 {
    state.read().expect("audit state").range.size()
}

async fn write_batches(
    db: Db,
    signer: Signer,
    origin: String,
    state: Arc<RwLock<State>>,
    mut rx: mpsc::Receiver<Pending>,
    published: Arc<watch::Sender<u64>>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let (start, mut range) = {
            let s = state.read().expect("audit state");
            (s.range.size(), s.range.clone())
        };
        let hashes: Vec<Hash> = batch
            .iter()
            .map(|p| merkle::leaf_hash(p.entry.as_bytes()))
            .collect();
        for h in &hashes {
            range.append(*h);
        }
        let result = commit(&db, &signer, &origin, start, &batch, &hashes, &range).await;
        match result {
            Ok(note) => {
                {
                    let mut s = state.write().expect("audit state");
                    for (i, h) in hashes.iter().enumerate() {
                        s.by_hash.entry(hash_key(h)).or_insert(start + i as u64);
                        s.tree.push(*h);
                    }
                    s.checkpoint = Some((note, range.size()));
                    s.range = range;
                }
                published.send_replace(start + batch.len() as u64);
                for (i, p) in batch.into_iter().enumerate() {
                    let _ = p.ack.send(Ok(start + i as u64));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, entries = batch.len(), "audit batch not committed");
                for p in batch {
                    let _ = p.ack.send(Err(e.to_string()));
                }
            }
        }
    }
}

/// Writes one batch and its checkpoint in a single transaction.
async fn commit(
    db: &Db,
    signer: &Signer,
    origin: &str,
    start: u64,
    batch: &[Pending],
    hashes: &[Hash],
    range: &CompactRange,
) -> Result<String, AuditLogError> {
    let now = now_ms();
    let checkpoint = Checkpoint {
        origin: origin.to_owned(),
        size: range.size(),
        root: range.root(),
        extensions: Vec::new(),
    };
    let note = signer
        .sign(&checkpoint.to_text())
        .map_err(|e| AuditLogError::Signing(e.to_string()))?;
    let mut tx = db.pool().begin().await.map_err(StoreError::from)?;
    // Multi-row inserts: one statement per few hundred leaves instead of one per leaf.
    let rows: Vec<(usize, (&Pending, &Hash))> = batch.iter().zip(hashes).enumerate().collect();
    for chunk in rows.chunks(PARAMS_PER_INSERT / 4) {
        let sql = format!(
            "INSERT INTO audit_leaves (idx, leaf_hash, entry, created_at) VALUES {}",
            placeholders(db.backend(), chunk.len(), 4)
        );
        let mut query = sqlx::query(&sql);
        for (i, (p, h)) in chunk {
            query = query
                .bind((start + *i as u64) as i64)
                .bind(HEXLOWER.encode(*h))
                .bind(&p.entry)
                .bind(now);
        }
        query.execute(&mut *tx).await.map_err(StoreError::from)?;
    }
    let events: Vec<(u64, &EventRow)> = batch
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((start + i as u64, p.row.as_ref()?)))
        .collect();
    for chunk in events.chunks(PARAMS_PER_INSERT / EventRow::COLUMNS) {
        let sql = format!(
            "{}{}",
            EventRow::INSERT,
            placeholders(db.backend(), chunk.len(), EventRow::COLUMNS)
        );
        let mut query = sqlx::query(&sql);
        for (index, row) in chunk {
            query = row.bind(query, Some(*index));
        }
        query.execute(&mut *tx).await.map_err(StoreError::from)?;
    }
    for id in batch.iter().filter_map(|p| p.outbox_id) {
        sqlx::query("DELETE FROM audit_outbox WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
    }
    sqlx::query("INSERT INTO audit_checkpoints (size, note, created_at) VALUES ($1, $2, $3)")
        .bind(range.size() as i64)
        .bind(&note)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(note)
}

/// A fresh log for tests, with its signer key.
#[cfg(test)]
pub(crate) async fn open_for_test(db: &Db) -> (AuditLog, String) {
    let skey = Signer::generate("audit.test/log").unwrap();
    let signer = Signer::from_skey(&skey).unwrap();
    let log = AuditLog::open(db.clone(), signer, "audit.test/log".into())
        .await
        .unwrap();
    (log, skey)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{verify_consistency, verify_inclusion};
    use crate::note::{Verifier, open};

    async fn group_commit_proofs_and_reopen(db: Db) {
        let (log, skey) = open_for_test(&db).await;
        let verifier = Verifier::from_vkey(&Signer::from_skey(&skey).unwrap().vkey()).unwrap();
        assert_eq!(log.size(), 0);
        assert!(log.checkpoint().is_none());

        // Concurrent appenders: every entry is acknowledged once with a distinct index.
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..300 {
            let log = log.clone();
            tasks
                .spawn(async move { (i, log.append(format!("{{\"event\":{i}}}")).await.unwrap()) });
        }
        let mut indexes = Vec::new();
        while let Some(r) = tasks.join_next().await {
            indexes.push(r.unwrap().1);
        }
        indexes.sort_unstable();
        assert_eq!(indexes, (0..300).collect::<Vec<u64>>());
        assert_eq!(log.size(), 300);

        // The checkpoint is signed, names the full tree, and every proof checks against it.
        let note = log.checkpoint().unwrap();
        let (text, _) = open(&note, std::slice::from_ref(&verifier)).unwrap();
        let cp = Checkpoint::parse(text).unwrap();
        assert_eq!((cp.origin.as_str(), cp.size), ("audit.test/log", 300));
        for index in [0, 1, 150, 299] {
            let proof = log.inclusion_proof(index, 300).unwrap();
            verify_inclusion(index, 300, &log.leaf_hash(index).unwrap(), &proof, &cp.root).unwrap();
        }
        let index_of_event_7: (i64,) =
            sqlx::query_as("SELECT idx FROM audit_leaves WHERE entry = $1")
                .bind("{\"event\":7}")
                .fetch_one(db.pool())
                .await
                .unwrap();
        assert_eq!(
            log.leaf_hash(index_of_event_7.0 as u64).unwrap(),
            merkle::leaf_hash(b"{\"event\":7}")
        );

        // Reopening from the store rebuilds the same tree; later growth stays consistent.
        drop(log);
        let log = AuditLog::open(
            db.clone(),
            Signer::from_skey(&skey).unwrap(),
            "audit.test/log".into(),
        )
        .await
        .unwrap();
        assert_eq!(log.size(), 300);
        assert_eq!(log.checkpoint().unwrap(), note);
        log.append("later".into()).await.unwrap();
        let note2 = log.checkpoint().unwrap();
        let (text2, _) = open(&note2, std::slice::from_ref(&verifier)).unwrap();
        let cp2 = Checkpoint::parse(text2).unwrap();
        assert_eq!(cp2.size, 301);
        let proof = log.consistency_proof(300, 301).unwrap();
        verify_consistency(300, 301, &cp.root, &cp2.root, &proof).unwrap();

        // A missing row is detected when the log is opened.
        sqlx::query("DELETE FROM audit_leaves WHERE idx = 42")
            .execute(db.pool())
            .await
            .unwrap();
        let err = AuditLog::open(
            db,
            Signer::from_skey(&skey).unwrap(),
            "audit.test/log".into(),
        )
        .await
        .err()
        .expect("a gap is refused");
        assert!(err.to_string().contains("leaf 42 is missing"), "{err}");
    }
    palisade_store::both_backends!(group_commit_proofs_and_reopen);
}
