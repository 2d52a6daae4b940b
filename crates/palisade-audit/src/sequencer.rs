//! Sequencing the log across nodes (AUD-3, SCL-1, SCL-2). One node at a time — the holder of
//! the `audit.sequencer` lease — assigns indexes and signs checkpoints; the others follow.
//!
//! No index is ever reused and the tree never forks, whatever fails: every batch is committed
//! with a compare-and-swap on the log's head row (`audit_head`: its size and the fencing token
//! of the sequencer that may extend it). A new sequencer first raises the head's token to its
//! own, so a paused predecessor waking up can commit nothing more; then it reads what was
//! committed before it and continues from there. Entries queued by other nodes arrive as
//! `audit.append` jobs, integrated in one transaction with the job's completion — exactly once.

use crate::log::AuditLog;
use crate::{AuditError, EventRow, placeholders};
use data_encoding::HEXLOWER;
use futures_util::future::BoxFuture;
use palisade_cluster::Lease;
use palisade_jobs::{Completion, Handler, Job, Jobs, NewJob, Retry};
use palisade_store::{StoreError, now_ms};
use palisade_tlog::merkle::{self, Hash};
use palisade_tlog::note::Checkpoint;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

const MAX_BATCH: usize = 8_192;
/// Parameters per multi-row INSERT: fewer means more statements, more means longer ones
/// (the SQLite driver's binding cost grows faster than linearly); 400 measured best.
const PARAMS_PER_INSERT: usize = 400;
/// Entries per queued job at most: a job is one row.
const MAX_QUEUED: usize = 1_000;
/// The job kind of queued entries, handled by the sequencer.
pub(crate) const APPEND: &str = "audit.append";
/// Announced after every commit, so that other nodes follow at once.
const GREW: &str = "audit.grew";
/// How long an appender waits for the sequencer to integrate its queued entries.
const INTEGRATION_DEADLINE: Duration = Duration::from_secs(30);
/// The lease a sequencer holds: a node that dies is replaced within about this long.
pub const SEQUENCER_LEASE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Follower,
    /// Sequencing under this fencing token.
    Sequencer(u64),
}

type LocalAck = oneshot::Sender<Result<Option<u64>, AuditError>>;

pub(crate) enum Intake {
    /// An entry appended on this node.
    Local {
        entry: String,
        row: Option<Box<EventRow>>,
        /// The caller waits for its index even when it has to be queued.
        proven: bool,
        ack: LocalAck,
    },
    /// Entries another node queued, to integrate with the job's completion.
    Job {
        entries: Vec<QueuedEntry>,
        completion: Completion,
        ack: oneshot::Sender<Result<Vec<u64>, AuditError>>,
    },
}

/// The id of the key that sealed an entry's payload.
fn payload_key(entry: &str) -> Option<String> {
    let entry: serde_json::Value = serde_json::from_str(entry).ok()?;
    entry["payload"]["key"].as_str().map(str::to_owned)
}

/// Which of the payload `keys` (of a batch's security events) are destroyed.
async fn erased_keys(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: palisade_store::Backend,
    keys: &[Option<String>],
) -> Result<std::collections::HashSet<String>, sqlx::Error> {
    let keys: std::collections::BTreeSet<&String> = keys.iter().flatten().collect();
    let keys: Vec<&String> = keys.into_iter().collect();
    let mut erased = std::collections::HashSet::new();
    for chunk in keys.chunks(PARAMS_PER_INSERT) {
        let sql = format!(
            "SELECT key_id FROM audit_subject_keys WHERE sealed_key IS NULL AND key_id IN ({})",
            placeholders(backend, chunk.len(), 1)
        );
        let mut query = sqlx::query_scalar::<_, String>(&sql);
        for key in chunk {
            query = query.bind(key);
        }
        erased.extend(query.fetch_all(&mut **tx).await?);
    }
    Ok(erased)
}

#[derive(Serialize, Deserialize)]
pub(crate) struct QueuedEntry {
    entry: String,
    row: Option<Box<EventRow>>,
}

#[derive(Serialize, Deserialize)]
struct Queued {
    entries: Vec<QueuedEntry>,
}

/// The job that queues `entries` for the sequencer.
pub(crate) fn append_job<'a>(
    entries: impl Iterator<Item = (&'a str, Option<&'a EventRow>)>,
) -> NewJob {
    let queued = Queued {
        entries: entries
            .map(|(entry, row)| QueuedEntry {
                entry: entry.to_owned(),
                row: row.cloned().map(Box::new),
            })
            .collect(),
    };
    // Retried across a sequencer handover; never dropped while a sequencer may come.
    NewJob::new(APPEND, &queued).max_attempts(1_000)
}

/// The node's writer: commits batches while the node sequences, queues them otherwise.
pub(crate) async fn write(log: AuditLog, mut rx: mpsc::Receiver<Intake>) {
    let writer = Writer { log };
    while let Some(first) = rx.recv().await {
        let mut batch = Vec::new();
        let mut job = None;
        match first {
            Intake::Job { .. } => job = Some(first),
            local => batch.push(local),
        }
        while job.is_none() && batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next @ Intake::Job { .. }) => job = Some(next),
                Ok(local) => batch.push(local),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            writer.local(batch).await;
        }
        if let Some(Intake::Job {
            entries,
            completion,
            ack,
        }) = job
        {
            let _ = ack.send(writer.queued(entries, completion).await);
        }
    }
}

struct Writer {
    log: AuditLog,
}

/// Why a batch was not committed.
enum NotCommitted {
    /// Another node sequences now (this one lost its lease, or never had it).
    NotSequencer,
    Failed(AuditError),
}

impl Writer {
    fn role(&self) -> Role {
        *self.log.0.role.borrow()
    }

    /// This node's own entries: committed when it sequences, else queued.
    async fn local(&self, batch: Vec<Intake>) {
        let mut entries = Vec::with_capacity(batch.len());
        let mut acks = Vec::with_capacity(batch.len());
        for intake in batch {
            if let Intake::Local {
                entry,
                row,
                proven,
                ack,
            } = intake
            {
                entries.push(QueuedEntry { entry, row });
                acks.push((proven, ack));
            }
        }
        if let Role::Sequencer(token) = self.role() {
            match self.commit(token, &entries, None).await {
                Ok(start) => {
                    for (i, (_, ack)) in acks.into_iter().enumerate() {
                        let _ = ack.send(Ok(Some(start + i as u64)));
                    }
                    return;
                }
                Err(NotCommitted::Failed(e)) => {
                    tracing::error!(error = %e, entries = entries.len(), "audit batch not committed");
                    for (_, ack) in acks {
                        let _ = ack.send(Err(again(&e)));
                    }
                    return;
                }
                // Queued for the new sequencer instead.
                Err(NotCommitted::NotSequencer) => {}
            }
        }
        for (chunk, acks) in entries.chunks(MAX_QUEUED).zip(chunks_of(acks, MAX_QUEUED)) {
            self.hand_off(chunk, acks).await;
        }
    }

    /// Queues entries for the sequencer as one job; those whose callers wait for an index get
    /// it once the job is done.
    async fn hand_off(&self, entries: &[QueuedEntry], acks: Vec<(bool, LocalAck)>) {
        let job = append_job(entries.iter().map(|e| (e.entry.as_str(), e.row.as_deref())));
        let db = &self.log.0.db;
        let id = match palisade_jobs::enqueue(db.pool(), &job).await {
            Ok(Some(id)) => id,
            Ok(None) => unreachable!("append jobs have no idempotency key"),
            Err(e) => {
                let e = AuditError::from(e);
                for (_, ack) in acks {
                    let _ = ack.send(Err(again(&e)));
                }
                return;
            }
        };
        self.log.0.bus.publish("jobs", &b""[..]).await;
        let (waiting, durable): (Vec<_>, Vec<_>) = acks.into_iter().partition(|(p, _)| *p);
        for (_, ack) in durable {
            let _ = ack.send(Ok(None));
        }
        if !waiting.is_empty() {
            let log = self.log.clone();
            tokio::spawn(async move {
                match integrated(&log, &id).await {
                    Ok(indexes) => {
                        for (i, (_, ack)) in waiting.into_iter().enumerate() {
                            let _ = ack.send(Ok(indexes.get(i).copied()));
                        }
                    }
                    Err(e) => {
                        for (_, ack) in waiting {
                            let _ = ack.send(Err(again(&e)));
                        }
                    }
                }
            });
        }
    }

    /// Another node's queued entries, integrated with the job's completion.
    async fn queued(
        &self,
        entries: Vec<QueuedEntry>,
        completion: Completion,
    ) -> Result<Vec<u64>, AuditError> {
        let Role::Sequencer(token) = self.role() else {
            return Err(AuditError::NotIntegrated);
        };
        match self.commit(token, &entries, Some(&completion)).await {
            Ok(start) => Ok((0..entries.len() as u64).map(|i| start + i).collect()),
            Err(NotCommitted::NotSequencer) => Err(AuditError::NotIntegrated),
            Err(NotCommitted::Failed(e)) => Err(e),
        }
    }

    /// Writes one batch and its checkpoint in a single transaction, extending the head under
    /// `token`; returns the index of the batch's first entry.
    async fn commit(
        &self,
        token: u64,
        entries: &[QueuedEntry],
        completion: Option<&Completion>,
    ) -> Result<u64, NotCommitted> {
        let failed = |e: AuditError| NotCommitted::Failed(e);
        let store = |e: sqlx::Error| NotCommitted::Failed(AuditError::from(e));
        let state = &self.log.0.state;
        let (start, mut range) = {
            let s = state.read().expect("audit state");
            (s.range.size(), s.range.clone())
        };
        let hashes: Vec<Hash> = entries
            .iter()
            .map(|e| merkle::leaf_hash(e.entry.as_bytes()))
            .collect();
        for h in &hashes {
            range.append(*h);
        }
        let size = range.size();
        let note = self.log.sign(size, range.root()).map_err(failed)?;
        let db = &self.log.0.db;
        let now = now_ms();
        let mut tx = db.begin().await.map_err(store)?;
        let head = sqlx::query(
            "UPDATE audit_head SET size = $1 WHERE id = 1 AND size = $2 AND token = $3",
        )
        .bind(size as i64)
        .bind(start as i64)
        .bind(token as i64)
        .execute(&mut *tx)
        .await
        .map_err(store)?;
        if head.rows_affected() != 1 {
            tracing::warn!(
                token,
                "the audit log's head moved on: another node sequences it now"
            );
            let _ = tx.rollback().await;
            return Err(NotCommitted::NotSequencer);
        }
        // Multi-row inserts: one statement per few hundred leaves instead of one per leaf.
        let rows: Vec<(usize, (&QueuedEntry, &Hash))> =
            entries.iter().zip(&hashes).enumerate().collect();
        for chunk in rows.chunks(PARAMS_PER_INSERT / 4) {
            let sql = format!(
                "INSERT INTO audit_leaves (idx, leaf_hash, entry, created_at) VALUES {}",
                placeholders(db.backend(), chunk.len(), 4)
            );
            let mut query = sqlx::query(&sql);
            for (i, (e, h)) in chunk {
                query = query
                    .bind((start + *i as u64) as i64)
                    .bind(HEXLOWER.encode(*h))
                    .bind(&e.entry)
                    .bind(now);
            }
            query.execute(&mut *tx).await.map_err(store)?;
        }
        // A subject erased while its events waited (queued by another process, or between
        // sealing and this commit) is not brought back by their rows.
        let keys: Vec<Option<String>> = entries
            .iter()
            .map(|e| e.row.as_ref().and_then(|_| payload_key(&e.entry)))
            .collect();
        let erased = erased_keys(&mut tx, db.backend(), &keys)
            .await
            .map_err(store)?;
        let events: Vec<(u64, EventRow)> = entries
            .iter()
            .zip(&keys)
            .enumerate()
            .filter_map(|(i, (e, key))| {
                let row = e.row.as_deref()?;
                let forgotten = key.as_ref().is_some_and(|k| erased.contains(k));
                Some((
                    start + i as u64,
                    if forgotten {
                        row.forgotten()
                    } else {
                        row.clone()
                    },
                ))
            })
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
            query.execute(&mut *tx).await.map_err(store)?;
        }
        sqlx::query("INSERT INTO audit_checkpoints (size, note, created_at) VALUES ($1, $2, $3)")
            .bind(size as i64)
            .bind(&note)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(store)?;
        if let Some(completion) = completion {
            let indexes: Vec<u64> = (start..size).collect();
            let result = serde_json::to_string(&indexes).expect("indexes serialize");
            let ours = completion
                .complete_in(&mut tx, Some(&result))
                .await
                .map_err(|e| failed(e.into()))?;
            if !ours {
                let _ = tx.rollback().await;
                return Err(failed(AuditError::NotIntegrated));
            }
        }
        tx.commit().await.map_err(store)?;
        {
            let mut s = state.write().expect("audit state");
            s.extend(start, &hashes);
            s.checkpoint = Some((note, size));
        }
        self.log.0.published.send_replace(size);
        self.log.0.bus.publish(GREW, size.to_string()).await;
        Ok(start)
    }
}

impl AuditLog {
    /// The signed checkpoint of a tree of `size` entries with `root`.
    fn sign(&self, size: u64, root: Hash) -> Result<String, AuditError> {
        let checkpoint = Checkpoint {
            origin: self.0.origin.clone(),
            size,
            root,
            extensions: Vec::new(),
        };
        self.0
            .signer
            .sign(&checkpoint.to_text())
            .map_err(|e| AuditError::Signing(e.to_string()))
    }
}

fn chunks_of<T>(items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        out.push(items.by_ref().take(size).collect());
    }
    out
}

/// The same failure, for one more of the callers it concerns: "come back later" stays that.
fn again(e: &AuditError) -> AuditError {
    if e.is_unavailable() {
        AuditError::NotIntegrated
    } else {
        AuditError::Corrupt(e.to_string())
    }
}

/// The indexes a queued job's entries got, once the sequencer integrated it (and this node
/// followed, so that it can prove them).
async fn integrated(log: &AuditLog, job: &str) -> Result<Vec<u64>, AuditError> {
    let mut grew = log.0.bus.subscribe(GREW);
    let deadline = tokio::time::Instant::now() + INTEGRATION_DEADLINE;
    loop {
        match palisade_jobs::state(&log.0.db, job).await? {
            Some(s) if s.state == "done" => {
                log.catch_up().await?;
                let result = s.result.unwrap_or_default();
                return serde_json::from_str(&result)
                    .map_err(|_| AuditError::Corrupt(format!("append job {job} has no indexes")));
            }
            Some(s) if s.state == "dead" => {
                return Err(AuditError::Corrupt(format!(
                    "append job {job} failed: {}",
                    s.last_error.unwrap_or_default()
                )));
            }
            Some(_) => {}
            None => return Err(AuditError::Corrupt(format!("append job {job} vanished"))),
        }
        tokio::select! {
            _ = grew.recv() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = tokio::time::sleep_until(deadline) => return Err(AuditError::NotIntegrated),
        }
    }
}

/// Integrates other nodes' queued entries, on the sequencer.
struct Append(AuditLog);

impl Handler for Append {
    fn run<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let queued: Queued = job.payload()?;
            let (ack, done) = oneshot::channel();
            self.0
                .0
                .tx
                .send(Intake::Job {
                    entries: queued.entries,
                    completion: job.completion(),
                    ack,
                })
                .await
                .map_err(|_| "the audit writer stopped".to_owned())?;
            done.await
                .map_err(|_| "the audit writer stopped".to_owned())?
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }

    fn retry(&self) -> Retry {
        // A handover takes a lease lifetime: try again soon after.
        Retry {
            first: Duration::from_millis(500),
            max: Duration::from_secs(5),
        }
    }

    fn lease_for(&self) -> Option<Duration> {
        // A sequencer that dies mid-integration is replaced within a lease; its claim should
        // not outlive that by much.
        Some(Duration::from_secs(10))
    }

    fn in_order(&self) -> bool {
        true
    }
}

impl AuditLog {
    /// Takes part in sequencing until `shutdown`: sequences while holding `lease` (registering
    /// the integration of queued entries with `jobs`), follows otherwise.
    pub async fn run(self, lease: Lease, jobs: Jobs, shutdown: CancellationToken) {
        let (held_tx, mut held) = watch::channel(None);
        let keeper = tokio::spawn(lease.keep(held_tx, shutdown.clone()));
        let mut grew = self.0.bus.subscribe(GREW);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                changed = held.changed() => if changed.is_err() { break },
                d = grew.recv() => if d.is_none() { break },
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => break,
            }
            let token = *held.borrow();
            let role = *self.0.role.borrow();
            match (token, role) {
                (Some(t), Role::Sequencer(current)) if t == current => {}
                (Some(t), _) => match self.take_over(t).await {
                    Ok(()) => {
                        self.0.role.send_replace(Role::Sequencer(t));
                        jobs.register(APPEND, Arc::new(Append(self.clone())));
                        jobs.notify().await;
                        tracing::info!(token = t, size = self.size(), "sequencing the audit log");
                    }
                    Err(e) => tracing::warn!(token = t, error = %e, "audit log not taken over yet"),
                },
                (None, Role::Sequencer(t)) => {
                    self.0.role.send_replace(Role::Follower);
                    jobs.unregister(APPEND);
                    tracing::warn!(token = t, "no longer sequencing the audit log");
                }
                (None, Role::Follower) => {
                    if let Err(e) = self.catch_up().await {
                        tracing::warn!(error = %e, "audit log not followed");
                    }
                }
            }
        }
        jobs.unregister(APPEND);
        self.0.role.send_replace(Role::Follower);
        let _ = keeper.await;
    }

    /// Becomes the sequencer under `token`: fences off every earlier one, reads what they
    /// committed, and publishes a checkpoint of the log as it stands if none names it yet (a
    /// fresh log's first checkpoint is of size 0).
    async fn take_over(&self, token: u64) -> Result<(), AuditError> {
        let db = &self.0.db;
        let fenced = sqlx::query(
            "UPDATE audit_head SET token = $1, \
             size = (SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_leaves) \
             WHERE id = 1 AND token < $1",
        )
        .bind(token as i64)
        .execute(db.pool())
        .await
        .map_err(StoreError::from)?;
        if fenced.rows_affected() != 1 {
            return Err(AuditError::Corrupt(
                "a newer sequencer holds the log's head".into(),
            ));
        }
        self.catch_up().await?;
        let (head,): (i64,) = sqlx::query_as("SELECT size FROM audit_head WHERE id = 1")
            .fetch_one(db.pool())
            .await
            .map_err(StoreError::from)?;
        let size = self.size();
        if head as u64 != size {
            return Err(AuditError::Corrupt(format!(
                "the head names {head} entries, the log holds {size}"
            )));
        }
        self.publish_current().await
    }

    /// Publishes a signed checkpoint of the log as it stands when none names its size (a
    /// fresh log's first checkpoint, of size 0): every log serves one from its creation.
    async fn publish_current(&self) -> Result<(), AuditError> {
        let (size, root, current) = {
            let s = self.0.state.read().expect("audit state");
            (
                s.range.size(),
                s.range.root(),
                s.checkpoint.as_ref().map(|c| c.1),
            )
        };
        if current == Some(size) {
            return Ok(());
        }
        let note = self.sign(size, root)?;
        sqlx::query(
            "INSERT INTO audit_checkpoints (size, note, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(size as i64)
        .bind(&note)
        .bind(now_ms())
        .execute(self.0.db.pool())
        .await
        .map_err(StoreError::from)?;
        self.catch_up().await
    }
}
