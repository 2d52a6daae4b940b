//! The worker: claims due jobs of the kinds this node handles, runs them, records the outcome.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use palisade_cluster::Bus;
use palisade_store::{Db, StoreError, now_ms};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The bus topic that wakes workers when a job was enqueued.
const WAKE: &str = "jobs";
/// Finished jobs are kept this long (for idempotency keys and inspection), dead ones for good.
const DONE_KEPT_MS: i64 = 7 * 86_400_000;
const LAST_ERROR_MAX: usize = 1_000;

/// How a kind's failures are retried: `first` after the first failure, doubling up to `max`,
/// each wait jittered by ±25% so that jobs failing together do not retry together.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(2),
            max: Duration::from_secs(3600),
        }
    }
}

impl Retry {
    fn wait(self, failures: u32) -> Duration {
        let doubled = self
            .first
            .saturating_mul(1 << failures.saturating_sub(1).min(30))
            .min(self.max);
        let [r] = palisade_crypto::random_bytes::<1>();
        // 0.75 to 1.25 of the wait.
        doubled.mul_f64(0.75 + f64::from(r) / 510.0)
    }
}

/// The code that performs one kind of job.
pub trait Handler: Send + Sync + 'static {
    /// Performs the job; an error is retried (its text is kept as the job's last error, so it
    /// must not carry a secret).
    fn run<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<(), String>>;

    fn retry(&self) -> Retry {
        Retry::default()
    }

    /// How long a claim of this kind lasts (and so how long a job of a worker that died waits
    /// before another takes it); the runner's default when `None`.
    fn lease_for(&self) -> Option<Duration> {
        None
    }

    /// Whether jobs of this kind run one at a time on a node, in the order they were queued
    /// (a job retried after a failure comes after those queued meanwhile). Entries of a log are
    /// such a kind: their order is the order things happened.
    fn in_order(&self) -> bool {
        false
    }
}

/// A claimed job, as its handler sees it.
pub struct Job {
    pub id: String,
    pub kind: String,
    pub payload: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    lease: String,
    db: Db,
}

impl Job {
    pub fn payload<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_str(&self.payload).map_err(|e| format!("malformed payload: {e}"))
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Marks the job done inside `tx`, with the handler's effects, recording `result`. `false`
    /// when this worker no longer holds the job's lease: the caller must roll back.
    pub async fn complete_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        result: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.completion().complete_in(tx, result).await
    }

    /// What completing the job takes, to hand to whatever writes its effects.
    pub fn completion(&self) -> Completion {
        Completion {
            id: self.id.clone(),
            lease: self.lease.clone(),
        }
    }
}

/// The right to mark one claimed job done.
#[derive(Debug, Clone)]
pub struct Completion {
    id: String,
    lease: String,
}

impl Completion {
    /// As [`Job::complete_in`].
    pub async fn complete_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        result: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'done', result = $1, lease = NULL, leased_until = NULL, \
             finished_at = $2 WHERE id = $3 AND lease = $4 AND state = 'running'",
        )
        .bind(result)
        .bind(now_ms())
        .bind(&self.id)
        .bind(&self.lease)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Finished {
    kind: String,
    outcome: &'static str,
}

/// The job system of one node: what it handles, and its worker.
#[derive(Clone)]
pub struct Jobs(Arc<Inner>);

struct Inner {
    db: Db,
    bus: Bus,
    handlers: RwLock<HashMap<&'static str, Arc<dyn Handler>>>,
    /// Claimed and not finished: released when the worker stops.
    claimed: Mutex<HashMap<String, String>>,
    /// In-order kinds with jobs running on this node: none more of them is claimed meanwhile.
    busy: Mutex<HashSet<String>>,
    lease_for: Duration,
    poll: Duration,
    concurrency: usize,
    finished: Family<Finished, Counter>,
}

impl Jobs {
    pub fn new(db: Db, bus: Bus, registry: &mut Registry) -> Self {
        let jobs = Self::with_timing(db, bus, Duration::from_secs(60), Duration::from_millis(500));
        registry.register(
            "jobs_finished",
            "Job attempts by kind and outcome (done, retry, dead)",
            jobs.0.finished.clone(),
        );
        jobs
    }

    /// A job system whose claims last `lease_for` and whose worker looks for due jobs every
    /// `poll` (besides being woken when a job is enqueued).
    pub fn with_timing(db: Db, bus: Bus, lease_for: Duration, poll: Duration) -> Self {
        Self(Arc::new(Inner {
            db,
            bus,
            handlers: RwLock::default(),
            claimed: Mutex::default(),
            busy: Mutex::default(),
            lease_for,
            poll,
            concurrency: 16,
            finished: Family::default(),
        }))
    }

    pub fn db(&self) -> &Db {
        &self.0.db
    }

    /// Runs `kind` here from now on. A node claims only the kinds it handles.
    pub fn register(&self, kind: &'static str, handler: Arc<dyn Handler>) {
        self.0
            .handlers
            .write()
            .expect("job handlers")
            .insert(kind, handler);
    }

    /// Stops claiming `kind` (jobs already running finish).
    pub fn unregister(&self, kind: &str) {
        self.0.handlers.write().expect("job handlers").remove(kind);
    }

    /// Wakes the workers of every node: call after committing an enqueue.
    pub async fn notify(&self) {
        self.0.bus.publish(WAKE, &b""[..]).await;
    }

    /// The worker, until `shutdown`; then it waits for the jobs running (until `drain`), and
    /// hands back the claims of those that did not finish.
    pub async fn run(self, shutdown: CancellationToken, drain: Duration) {
        let mut wake = self.0.bus.subscribe(WAKE);
        let mut running = JoinSet::new();
        let mut last_sweep = 0;
        loop {
            let free = self.0.concurrency.saturating_sub(running.len());
            if free > 0 {
                match self.claim(free).await {
                    Ok(jobs) => {
                        let mut in_order: HashMap<String, Vec<Job>> = HashMap::new();
                        for job in jobs {
                            if self.in_order(&job.kind) {
                                in_order.entry(job.kind.clone()).or_default().push(job);
                            } else {
                                let jobs = self.clone();
                                running.spawn(async move {
                                    jobs.execute(job).await;
                                });
                            }
                        }
                        for (kind, jobs) in in_order {
                            self.0.busy.lock().expect("busy kinds").insert(kind.clone());
                            running.spawn(self.clone().execute_in_order(kind, jobs));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "jobs not claimed"),
                }
            }
            if now_ms() - last_sweep > 60_000 {
                last_sweep = now_ms();
                if let Err(e) = self.sweep().await {
                    tracing::warn!(error = %e, "finished jobs not swept");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.0.poll) => {}
                _ = wake.recv() => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
        }
        let drained = tokio::time::timeout(drain, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            running.abort_all();
            while running.join_next().await.is_some() {}
        }
        let unfinished: Vec<(String, String)> =
            self.0.claimed.lock().expect("claims").drain().collect();
        for (id, lease) in unfinished {
            self.release(&id, &lease).await;
        }
    }

    /// Hands a claimed job back unrun, due as it was (so it keeps its place in the queue).
    /// Not an attempt: another worker may take it at once.
    async fn release(&self, id: &str, lease: &str) {
        let released = sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = attempts - 1, lease = NULL, \
             leased_until = NULL WHERE id = $1 AND lease = $2",
        )
        .bind(id)
        .bind(lease)
        .execute(self.0.db.pool())
        .await;
        if let Err(e) = released {
            tracing::warn!(job = %id, error = %e, "job claim not released; it will expire");
        }
    }

    fn in_order(&self, kind: &str) -> bool {
        let handlers = self.0.handlers.read().expect("job handlers");
        handlers.get(kind).is_some_and(|h| h.in_order())
    }

    /// The jobs of one in-order kind, one after the other; after a failure the rest are handed
    /// back, so that none overtakes it but by its retry wait.
    async fn execute_in_order(self, kind: String, jobs: Vec<Job>) {
        let mut jobs = jobs.into_iter();
        for job in jobs.by_ref() {
            if !self.clone().execute(job).await {
                break;
            }
        }
        for job in jobs {
            self.release(&job.id, &job.lease).await;
            self.0.claimed.lock().expect("claims").remove(&job.id);
        }
        self.0.busy.lock().expect("busy kinds").remove(&kind);
    }

    async fn claim(&self, at_most: usize) -> Result<Vec<Job>, StoreError> {
        let busy = self.0.busy.lock().expect("busy kinds").clone();
        let kinds: Vec<&'static str> = self
            .0
            .handlers
            .read()
            .expect("job handlers")
            .keys()
            .copied()
            .filter(|kind| !busy.contains(*kind))
            .collect();
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let sql = format!(
            "SELECT id, kind FROM jobs WHERE kind IN ({}) AND ((state = 'queued' AND run_at <= $1) \
             OR (state = 'running' AND leased_until < $1)) ORDER BY run_at, id LIMIT {at_most}",
            crate::placeholders(2, kinds.len())
        );
        let mut query = sqlx::query_as::<_, (String, String)>(&sql).bind(now);
        for kind in &kinds {
            query = query.bind(*kind);
        }
        let due = query.fetch_all(self.0.db.pool()).await?;
        let mut claimed = Vec::with_capacity(due.len());
        for (id, kind) in due {
            let lease_for = self
                .0
                .handlers
                .read()
                .expect("job handlers")
                .get(kind.as_str())
                .and_then(|h| h.lease_for())
                .unwrap_or(self.0.lease_for);
            let lease = palisade_crypto::random_token();
            let row: Option<(String, String, i64)> = sqlx::query_as(
                "UPDATE jobs SET state = 'running', lease = $1, leased_until = $2, \
                 attempts = attempts + 1 WHERE id = $3 AND ((state = 'queued' AND run_at <= $4) \
                 OR (state = 'running' AND leased_until < $4)) RETURNING kind, payload, attempts",
            )
            .bind(&lease)
            .bind(now + lease_for.as_millis() as i64)
            .bind(&id)
            .bind(now)
            .fetch_optional(self.0.db.pool())
            .await?;
            // Another worker claimed it between the two statements.
            let Some((kind, payload, attempts)) = row else {
                continue;
            };
            self.0
                .claimed
                .lock()
                .expect("claims")
                .insert(id.clone(), lease.clone());
            claimed.push(Job {
                id,
                kind,
                payload,
                attempt: attempts as u32,
                lease,
                db: self.0.db.clone(),
            });
        }
        Ok(claimed)
    }

    /// Runs one claimed job and records its outcome; whether it succeeded.
    async fn execute(self, job: Job) -> bool {
        let handler = self
            .0
            .handlers
            .read()
            .expect("job handlers")
            .get(job.kind.as_str())
            .cloned();
        let (outcome, retry) = match handler {
            None => (
                Err("no handler on this node any more".to_owned()),
                Retry::default(),
            ),
            Some(handler) => {
                // Done well within the lease, so that no other worker starts it meanwhile.
                let budget = handler.lease_for().unwrap_or(self.0.lease_for).mul_f64(0.8);
                let run = AssertUnwindSafe(handler.run(&job)).catch_unwind();
                let outcome = match tokio::time::timeout(budget, run).await {
                    Ok(Ok(result)) => result,
                    Ok(Err(_)) => Err("the handler panicked".to_owned()),
                    Err(_) => Err(format!("timed out after {budget:?}")),
                };
                (outcome, handler.retry())
            }
        };
        let succeeded = outcome.is_ok();
        if let Err(e) = self.finish(&job, outcome, retry).await {
            tracing::warn!(job = %job.id, error = %e, "job outcome not recorded; its claim will expire");
        }
        self.0.claimed.lock().expect("claims").remove(&job.id);
        succeeded
    }

    async fn finish(
        &self,
        job: &Job,
        outcome: Result<(), String>,
        retry: Retry,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let max: (i64,) = sqlx::query_as("SELECT max_attempts FROM jobs WHERE id = $1")
            .bind(&job.id)
            .fetch_one(self.0.db.pool())
            .await?;
        let (state, run_at, error, label) = match &outcome {
            Ok(()) => ("done", now, None, "done"),
            Err(e) if i64::from(job.attempt) < max.0 => {
                let wait = retry.wait(job.attempt);
                tracing::warn!(job = %job.id, kind = %job.kind, attempt = job.attempt, error = %e, retry_in_ms = wait.as_millis() as u64, "job failed; it will be retried");
                ("queued", now + wait.as_millis() as i64, Some(e), "retry")
            }
            Err(e) => {
                tracing::error!(job = %job.id, kind = %job.kind, attempts = job.attempt, error = %e, "job failed for the last time: dead");
                ("dead", now, Some(e), "dead")
            }
        };
        let error: Option<String> = error.map(|e| e.chars().take(LAST_ERROR_MAX).collect());
        let finished_at = (state != "queued").then_some(now);
        sqlx::query(
            "UPDATE jobs SET state = $1, run_at = $2, last_error = COALESCE($3, last_error), \
             lease = NULL, leased_until = NULL, finished_at = $4 WHERE id = $5 AND lease = $6",
        )
        .bind(state)
        .bind(run_at)
        .bind(error)
        .bind(finished_at)
        .bind(&job.id)
        .bind(&job.lease)
        .execute(self.0.db.pool())
        .await?;
        self.0
            .finished
            .get_or_create(&Finished {
                kind: job.kind.clone(),
                outcome: label,
            })
            .inc();
        Ok(())
    }

    async fn sweep(&self) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM jobs WHERE state = 'done' AND finished_at < $1")
            .bind(now_ms() - DONE_KEPT_MS)
            .execute(self.0.db.pool())
            .await?;
        Ok(())
    }
}
