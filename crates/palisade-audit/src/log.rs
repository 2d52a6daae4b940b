//! The append-only audit log (AUD-3, AUD-4, SCL-1), shared by every node of a deployment.
//!
//! Every node appends; one node — the holder of the `audit.sequencer` lease — assigns indexes
//! and signs checkpoints ([`crate::sequencer`]). On that node, appends go straight to its
//! writer, which commits whole batches: every entry waiting at that moment goes into one
//! transaction with its searchable row and a signed checkpoint of the new tree, made durable
//! once, and only then is each caller told its index (group commit). On the other nodes, and
//! from command-line tools, a batch is queued as one durable job that the sequencer integrates
//! in one transaction with the job's completion, so an event is integrated exactly once even
//! if a node dies at any moment.
//!
//! Each node keeps the tree's complete subtrees in memory ([`Tree`], about 64 bytes per entry),
//! following what the sequencer commits, so that proofs against any published size take
//! microseconds on any node; entries stay in the store.

use crate::sequencer::{Intake, Role};
use crate::{AuditError, EventRow};
use data_encoding::HEXLOWER;
use palisade_store::{Db, StoreError};
use palisade_tlog::merkle::{CompactRange, Hash, ProofError, Tree};
use palisade_tlog::note::Signer;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tokio::sync::{mpsc, oneshot, watch};

/// Entries waiting beyond this make `append` callers wait for room (back-pressure).
const QUEUE: usize = 65_536;
/// Rows read per query when a log is opened or followed.
const PAGE: i64 = 100_000;

pub(crate) struct State {
    pub(crate) tree: Tree,
    /// Leaf hash (its first 8 bytes) → first index with that hash, for proofs by hash. In
    /// memory because a database index on random hashes would cut append throughput threefold.
    pub(crate) by_hash: HashMap<u64, u64>,
    pub(crate) range: CompactRange,
    /// The latest signed checkpoint and the size it names.
    pub(crate) checkpoint: Option<(String, u64)>,
    /// The latest checkpoint carrying witness cosignatures, and its size.
    pub(crate) cosigned: Option<(String, u64)>,
}

impl State {
    /// Appends leaves `start..` of `hashes` if they extend the tree exactly; returns whether
    /// anything was added.
    pub(crate) fn extend(&mut self, start: u64, hashes: &[Hash]) -> bool {
        let size = self.range.size();
        if start > size {
            return false;
        }
        let skip = (size - start) as usize;
        for (i, h) in hashes.iter().enumerate().skip(skip) {
            self.range.append(*h);
            self.by_hash.entry(hash_key(h)).or_insert(start + i as u64);
            self.tree.push(*h);
        }
        hashes.len() > skip
    }
}

#[derive(Clone)]
pub struct AuditLog(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub(crate) db: Db,
    pub(crate) state: RwLock<State>,
    pub(crate) tx: mpsc::Sender<Intake>,
    /// The size of the latest checkpoint, for those who follow the log (the cosigner).
    pub(crate) published: watch::Sender<u64>,
    pub(crate) role: watch::Sender<Role>,
    pub(crate) bus: palisade_cluster::Bus,
    /// The checkpoint key and the checkpoints' first line: every node has the same, any may
    /// become the sequencer.
    pub(crate) signer: Signer,
    pub(crate) origin: String,
}

impl AuditLog {
    /// Loads the log from the store (checking that indexes run without gaps) and starts its
    /// writer. The node appends through the sequencer until [`AuditLog::run`] makes it one.
    /// `origin` is the checkpoint's first line, conventionally the log's URL prefix.
    pub async fn open(
        db: Db,
        signer: Signer,
        origin: String,
        bus: palisade_cluster::Bus,
    ) -> Result<Self, AuditError> {
        let mut state = State {
            tree: Tree::default(),
            by_hash: HashMap::new(),
            range: CompactRange::default(),
            checkpoint: None,
            cosigned: None,
        };
        read_leaves(&db, &mut state).await?;
        read_checkpoints(&db, &mut state).await?;
        let size = state.range.size();
        let (tx, rx) = mpsc::channel(QUEUE);
        let log = Self(Arc::new(Inner {
            db,
            state: RwLock::new(state),
            tx,
            published: watch::Sender::new(size),
            role: watch::Sender::new(Role::Follower),
            bus,
            signer,
            origin,
        }));
        tokio::spawn(crate::sequencer::write(log.clone(), rx));
        Ok(log)
    }

    /// Appends one raw entry (without a searchable row) and returns its index once durable.
    pub async fn append(&self, entry: String) -> Result<u64, AuditError> {
        let index = self
            .submit(vec![(entry, None)], true)
            .await?
            .pop()
            .flatten();
        index.ok_or(AuditError::NotIntegrated)
    }

    /// Appends security events' entries, each with its searchable row, in order; once all are
    /// durable returns their indexes — at once on the sequencer; elsewhere only when `proven`
    /// asks to wait for the sequencer to integrate them (`None` otherwise).
    pub(crate) async fn append_events(
        &self,
        events: Vec<(String, EventRow)>,
        proven: bool,
    ) -> Result<Vec<Option<u64>>, AuditError> {
        let entries = events.into_iter().map(|(e, r)| (e, Some(r))).collect();
        self.submit(entries, proven).await
    }

    async fn submit(
        &self,
        entries: Vec<(String, Option<EventRow>)>,
        proven: bool,
    ) -> Result<Vec<Option<u64>>, AuditError> {
        // All queued before any is awaited: they keep their order and share batches.
        let mut acks = Vec::with_capacity(entries.len());
        for (entry, row) in entries {
            let (ack, done) = oneshot::channel();
            self.0
                .tx
                .send(Intake::Local {
                    entry,
                    row: row.map(Box::new),
                    proven,
                    ack,
                })
                .await
                .map_err(|_| AuditError::Stopped)?;
            acks.push(done);
        }
        let mut indexes = Vec::with_capacity(acks.len());
        for done in acks {
            indexes.push(done.await.map_err(|_| AuditError::Stopped)??);
        }
        Ok(indexes)
    }

    pub fn size(&self) -> u64 {
        self.0.state.read().expect("audit state").range.size()
    }

    /// Whether this node sequences the log now.
    pub fn is_sequencer(&self) -> bool {
        matches!(*self.0.role.borrow(), Role::Sequencer(_))
    }

    /// The latest signed checkpoint (C2SP signed note).
    pub fn checkpoint(&self) -> Option<String> {
        self.latest().map(|(note, _)| note)
    }

    /// The latest checkpoint with witness cosignatures, and its size.
    pub fn cosigned(&self) -> Option<(String, u64)> {
        self.0.state.read().expect("audit state").cosigned.clone()
    }

    /// Follows the size of the latest checkpoint.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.published.subscribe()
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
            .execute(self.0.db.pool())
            .await?;
        let mut state = self.0.state.write().expect("audit state");
        if state.cosigned.as_ref().is_none_or(|(_, s)| *s <= size) {
            state.cosigned = Some((note, size));
        }
        Ok(())
    }

    /// The latest signed checkpoint with the tree size it names.
    pub fn latest(&self) -> Option<(String, u64)> {
        self.0.state.read().expect("audit state").checkpoint.clone()
    }

    pub fn leaf_hash(&self, index: u64) -> Option<Hash> {
        self.0.state.read().expect("audit state").tree.leaf(index)
    }

    /// Inclusion proof of leaf `index` in the tree of the first `size` leaves.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        let state = self.0.state.read().expect("audit state");
        state.tree.inclusion_proof(index, size)
    }

    /// Consistency proof between the trees of the first `size1` and `size2` leaves.
    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Hash>, ProofError> {
        let state = self.0.state.read().expect("audit state");
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
                .fetch_optional(self.0.db.pool())
                .await?;
        Ok(row.map(|(e,)| e))
    }

    /// The first index whose leaf hash is `hash`, among the first `size` entries.
    pub fn index_of(&self, hash: &Hash, size: u64) -> Option<u64> {
        let state = self.0.state.read().expect("audit state");
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

    /// Reads what the sequencer committed since this node last looked: new leaves and the
    /// latest checkpoints.
    pub(crate) async fn catch_up(&self) -> Result<(), AuditError> {
        let (mut staged, before) = {
            let s = self.0.state.read().expect("audit state");
            (
                State {
                    tree: Tree::default(),
                    by_hash: HashMap::new(),
                    range: s.range.clone(),
                    checkpoint: None,
                    cosigned: None,
                },
                s.range.size(),
            )
        };
        // Read outside the lock; the checkpoints first, so that the leaves read next cover
        // every size they name (a checkpoint is served only once its tree can be proven).
        read_checkpoints(&self.0.db, &mut staged).await?;
        let hashes = read_hashes(&self.0.db, before).await?;
        let size = {
            let mut s = self.0.state.write().expect("audit state");
            s.extend(before, &hashes);
            let tree = s.range.size();
            let newer = |staged: &Option<(String, u64)>, held: &Option<(String, u64)>| {
                staged.as_ref().is_some_and(|c| c.1 <= tree)
                    && staged.as_ref().map(|c| c.1) > held.as_ref().map(|c| c.1)
            };
            if newer(&staged.checkpoint, &s.checkpoint) {
                s.checkpoint = staged.checkpoint;
            }
            if newer(&staged.cosigned, &s.cosigned) {
                s.cosigned = staged.cosigned;
            }
            s.checkpoint.as_ref().map_or(0, |c| c.1)
        };
        self.0.published.send_if_modified(|published| {
            let grew = size > *published;
            *published = size.max(*published);
            grew
        });
        Ok(())
    }
}

/// Every leaf hash from `from` on, in order, a page at a time (a large log's rows are never
/// all held at once), checking that indexes run without gaps.
async fn for_each_page(
    db: &Db,
    from: u64,
    mut each: impl FnMut(u64, &[Hash]),
) -> Result<(), AuditError> {
    let mut next = from;
    loop {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT idx, leaf_hash FROM audit_leaves WHERE idx >= $1 ORDER BY idx LIMIT $2",
        )
        .bind(next as i64)
        .bind(PAGE)
        .fetch_all(db.pool())
        .await
        .map_err(StoreError::from)?;
        if rows.is_empty() {
            return Ok(());
        }
        let start = next;
        let mut hashes = Vec::with_capacity(rows.len());
        for (idx, hash) in rows {
            if idx != next as i64 {
                return Err(AuditError::Corrupt(format!("leaf {next} is missing")));
            }
            hashes.push(
                HEXLOWER
                    .decode(hash.as_bytes())
                    .ok()
                    .and_then(|h| h.try_into().ok())
                    .ok_or_else(|| {
                        AuditError::Corrupt(format!("leaf {idx} has a malformed hash"))
                    })?,
            );
            next += 1;
        }
        each(start, &hashes);
    }
}

async fn read_leaves(db: &Db, state: &mut State) -> Result<(), AuditError> {
    for_each_page(db, 0, |start, hashes| {
        state.extend(start, hashes);
    })
    .await
}

async fn read_hashes(db: &Db, from: u64) -> Result<Vec<Hash>, AuditError> {
    let mut all = Vec::new();
    for_each_page(db, from, |_, hashes| all.extend_from_slice(hashes)).await?;
    Ok(all)
}

async fn read_checkpoints(db: &Db, state: &mut State) -> Result<(), AuditError> {
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
    state.checkpoint = checkpoint.map(|(note, size)| (note, size as u64));
    state.cosigned = cosigned.map(|(note, size)| (note, size as u64));
    Ok(())
}

/// Queues finished entries with their rows for the sequencer (tools beside the servers, and
/// nodes that do not sequence): one durable job, integrated exactly once. Returns its id.
pub(crate) async fn queue(db: &Db, entries: &[(String, EventRow)]) -> Result<String, AuditError> {
    let job = crate::sequencer::append_job(entries.iter().map(|(e, r)| (e.as_str(), Some(r))));
    palisade_jobs::enqueue(db.pool(), &job)
        .await?
        .ok_or_else(|| AuditError::Corrupt("an append job without a key collided".into()))
}

pub(crate) fn hash_key(hash: &Hash) -> u64 {
    u64::from_be_bytes(hash[..8].try_into().expect("8 bytes"))
}

impl AuditLog {
    /// A log sequenced by this process alone (tests, benchmarks): opened with an in-process
    /// bus, its sequencing task started, returned once it sequences. The task hands the
    /// sequencer's lease back at `shutdown`.
    pub async fn open_single_node(
        db: Db,
        signer: Signer,
        origin: String,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<Self, AuditError> {
        let cluster = palisade_cluster::Cluster::in_process(db.clone());
        let log = Self::open(db.clone(), signer, origin, cluster.bus.clone()).await?;
        let lease = cluster.lease("audit.sequencer", crate::SEQUENCER_LEASE);
        let jobs = palisade_jobs::Jobs::with_timing(
            db,
            cluster.bus.clone(),
            std::time::Duration::from_secs(60),
            std::time::Duration::from_millis(100),
        );
        tokio::spawn(log.clone().run(lease, jobs, shutdown));
        let mut role = log.0.role.subscribe();
        role.wait_for(|r| matches!(r, Role::Sequencer(_)))
            .await
            .map_err(|_| AuditError::Stopped)?;
        Ok(log)
    }
}

/// A fresh log for tests, with its signer key.
#[cfg(test)]
pub(crate) async fn open_for_test(db: &Db) -> (AuditLog, String) {
    let skey = Signer::generate("audit.test/log").unwrap();
    let signer = Signer::from_skey(&skey).unwrap();
    let log = AuditLog::open_single_node(
        db.clone(),
        signer,
        "audit.test/log".into(),
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap();
    (log, skey)
}

#[cfg(test)]
mod tests;
