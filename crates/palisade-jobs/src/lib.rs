//! Background work (SCL-2), of one kind: durable jobs.
//!
//! A job is a row, written by [`enqueue`] in the transaction of the change that needs it, so
//! that the change and the work it implies commit together or not at all. Workers on every node
//! claim due jobs of the kinds they handle; a claim is a lease on the row (a random lease id and
//! an expiry), so one worker at a time runs a job, and a job whose worker died is claimed again
//! once its lease expires. A failing job is retried with jittered exponential back-off and, after
//! its last attempt, left `dead` with the last error for an operator. An idempotency key per kind
//! makes enqueueing the same work twice a no-op.
//!
//! Exactly once: a handler whose effect is in the database writes it in one transaction with
//! [`Job::complete_in`], which marks the job done only if this worker still holds its lease — a
//! worker that lost it (it was paused past the expiry and another took over) rolls its effect
//! back. Effects outside the database (an HTTP delivery) happen at least once; their receivers
//! get an id to deduplicate by.
//!
//! [`Supervisor`] owns every long-lived task of a server, this runner included, under one
//! cancellation, and drains them on shutdown.
// Library code handles every failure; tests and examples may unwrap.
#![warn(clippy::unwrap_used)]

mod runner;
mod supervisor;

pub use runner::{Completion, Handler, Job, Jobs, Retry};
pub use supervisor::Supervisor;

use palisade_store::{Db, StoreError, now_ms};
use std::time::Duration;

/// Work to do.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: &'static str,
    /// Enqueueing a second job of this kind with the same key does nothing.
    pub key: Option<String>,
    /// JSON.
    pub payload: String,
    /// Not before this long from now.
    pub delay: Duration,
    /// Attempts before the job is dead.
    pub max_attempts: u32,
}

impl NewJob {
    pub fn new(kind: &'static str, payload: &impl serde::Serialize) -> Self {
        Self {
            kind,
            key: None,
            payload: serde_json::to_string(payload).expect("job payloads serialize"),
            delay: Duration::ZERO,
            max_attempts: 12,
        }
    }

    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }
}

/// Stores `job` through `executor` — a transaction, so that it commits with the change that
/// needs it. Returns its id, or `None` when a job of its kind with its key exists already.
pub async fn enqueue<'e, E>(executor: E, job: &NewJob) -> Result<Option<String>, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let id = palisade_store::new_id();
    let now = now_ms();
    let done = sqlx::query(
        "INSERT INTO jobs (id, kind, idempotency_key, payload, state, attempts, max_attempts, \
         run_at, created_at) VALUES ($1, $2, $3, $4, 'queued', 0, $5, $6, $7) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&id)
    .bind(job.kind)
    .bind(&job.key)
    .bind(&job.payload)
    .bind(i64::from(job.max_attempts))
    .bind(now + job.delay.as_millis() as i64)
    .bind(now)
    .execute(executor)
    .await?;
    Ok((done.rows_affected() == 1).then_some(id))
}

/// Where a job stands.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct JobState {
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// What a handler recorded with [`Job::complete_in`].
    pub result: Option<String>,
}

impl JobState {
    pub fn is_finished(&self) -> bool {
        self.state == "done" || self.state == "dead"
    }
}

pub async fn state(db: &Db, id: &str) -> Result<Option<JobState>, StoreError> {
    Ok(
        sqlx::query_as("SELECT state, attempts, last_error, result FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(db.pool())
            .await?,
    )
}

/// `$first, $first+1, …` for `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
