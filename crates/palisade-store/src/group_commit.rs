//! Group commit: the writes of many callers in one transaction, made durable by one commit.
//!
//! SQLite with `synchronous = FULL` makes every commit wait for the disk, so one transaction
//! per request caps a table near a thousand writes a second on this kind of machine. A
//! [`GroupCommit`] has one task take every request waiting when it becomes free (up to a
//! batch), run each in a savepoint of one transaction — a request that fails is rolled back
//! alone — commit once, and only then answer each caller. Nothing is acknowledged before it is
//! durable; an idle writer commits a single request at once, and a busy one gets larger
//! batches rather than a longer queue. PostgreSQL saves the per-transaction round trips too.

use crate::{Db, StoreError};
use sqlx::AnyConnection;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Requests waiting beyond this make callers wait for room (back-pressure).
const QUEUE: usize = 4096;
/// Requests in one transaction at most.
const BATCH: usize = 256;

type Step<'c, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'c>>;
type Work<T> = Box<dyn for<'c> FnOnce(&'c mut AnyConnection) -> Step<'c, T> + Send>;
type Request<T> = (Work<T>, oneshot::Sender<Result<T, StoreError>>);

/// The writer of one kind of request, producing a `T` each.
pub struct GroupCommit<T> {
    queue: mpsc::Sender<Request<T>>,
}

impl<T> Clone for GroupCommit<T> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<T: Send + 'static> GroupCommit<T> {
    /// Starts the writer's task (it ends when every handle is dropped).
    pub fn start(db: Db) -> Self {
        let (queue, requests) = mpsc::channel(QUEUE);
        tokio::spawn(write(db, requests));
        Self { queue }
    }

    /// Runs `work` inside the next transaction and returns its result once that committed.
    pub async fn run<F>(&self, work: F) -> Result<T, StoreError>
    where
        F: for<'c> FnOnce(&'c mut AnyConnection) -> Step<'c, T> + Send + 'static,
    {
        let (ack, done) = oneshot::channel();
        self.queue
            .send((Box::new(work), ack))
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::PoolClosed))?;
        done.await
            .map_err(|_| StoreError::Database(sqlx::Error::PoolClosed))?
    }
}

async fn write<T>(db: Db, mut requests: mpsc::Receiver<Request<T>>) {
    let mut batch = Vec::with_capacity(BATCH);
    while requests.recv_many(&mut batch, BATCH).await > 0 {
        commit(&db, std::mem::take(&mut batch)).await;
    }
}

/// One transaction for `batch`; each caller is answered after the commit, or with the
/// failure that ended the transaction.
async fn commit<T>(db: &Db, batch: Vec<Request<T>>) {
    let mut tx = match db.begin().await {
        Ok(tx) => tx,
        Err(e) => return fail(batch.into_iter().map(|(_, ack)| ack), e.into()),
    };
    let mut answers = Vec::with_capacity(batch.len());
    let mut requests = batch.into_iter();
    while let Some((work, ack)) = requests.next() {
        match isolated(&mut tx, work).await {
            Ok(result) => answers.push((ack, result)),
            // The transaction itself broke: nobody's work is kept.
            Err(e) => {
                let acks = answers.into_iter().map(|(ack, _)| ack);
                let acks = acks.chain(std::iter::once(ack));
                return fail(acks.chain(requests.map(|(_, ack)| ack)), e);
            }
        }
    }
    match tx.commit().await {
        Ok(()) => {
            for (ack, result) in answers {
                let _ = ack.send(result);
            }
        }
        Err(e) => fail(answers.into_iter().map(|(ack, _)| ack), e.into()),
    }
}

/// `work` in a savepoint: its own failure is undone and returned as its result; a failure
/// of the savepoint statements is the transaction's (the outer `Err`).
async fn isolated<T>(
    conn: &mut AnyConnection,
    work: Work<T>,
) -> Result<Result<T, StoreError>, StoreError> {
    sqlx::query("SAVEPOINT group_commit_item")
        .execute(&mut *conn)
        .await?;
    let result = work(&mut *conn).await;
    if result.is_err() {
        sqlx::query("ROLLBACK TO SAVEPOINT group_commit_item")
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query("RELEASE SAVEPOINT group_commit_item")
        .execute(&mut *conn)
        .await?;
    Ok(result)
}

fn fail<T>(acks: impl Iterator<Item = oneshot::Sender<Result<T, StoreError>>>, e: StoreError) {
    let shared = Arc::new(e);
    for ack in acks {
        let _ = ack.send(Err(StoreError::Shared(shared.clone())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::both_backends;

    /// Concurrent requests share transactions; a failing one is undone alone; everything
    /// acknowledged is stored.
    async fn requests_share_commits_and_fail_alone(db: Db) {
        sqlx::query("CREATE TABLE gc_test (id BIGINT PRIMARY KEY)")
            .execute(db.pool())
            .await
            .unwrap();
        let writer = GroupCommit::<i64>::start(db.clone());
        let calls: Vec<_> = (0..200i64)
            .map(|i| {
                let writer = writer.clone();
                // Every tenth inserts the id of the one before it: one of the two is refused.
                let id = if i % 10 == 9 { i - 1 } else { i };
                tokio::spawn(async move {
                    writer
                        .run(move |conn| {
                            Box::pin(async move {
                                sqlx::query("INSERT INTO gc_test (id) VALUES ($1)")
                                    .bind(id)
                                    .execute(conn)
                                    .await?;
                                Ok(id)
                            })
                        })
                        .await
                })
            })
            .collect();
        let mut results = Vec::new();
        for call in calls {
            results.push(call.await.unwrap());
        }
        let refused: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert_eq!(refused.len(), 20);
        assert!(refused.iter().all(|e| e.is_unique_violation()));
        let mut stored: Vec<(i64,)> = sqlx::query_as("SELECT id FROM gc_test ORDER BY id")
            .fetch_all(db.pool())
            .await
            .unwrap();
        let mut acknowledged: Vec<i64> = results.into_iter().flatten().collect();
        acknowledged.sort_unstable();
        assert_eq!(
            stored.drain(..).map(|(id,)| id).collect::<Vec<_>>(),
            acknowledged
        );
        assert_eq!(acknowledged.len(), 180);
    }
    both_backends!(requests_share_commits_and_fail_alone);
}
