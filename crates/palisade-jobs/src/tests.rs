use super::*;
use futures_util::future::BoxFuture;
use palisade_cluster::Bus;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const LEASE: Duration = Duration::from_millis(400);
const POLL: Duration = Duration::from_millis(20);

fn jobs(db: &Db) -> Jobs {
    Jobs::with_timing(db.clone(), Bus::in_process(), LEASE, POLL)
}

async fn effects(db: &Db, job: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM test_effects WHERE job_id = $1")
        .bind(job)
        .fetch_one(db.pool())
        .await
        .unwrap();
    n
}

async fn with_effects_table(db: &Db) {
    sqlx::query("CREATE TABLE test_effects (job_id TEXT NOT NULL)")
        .execute(db.pool())
        .await
        .unwrap();
}

async fn wait_finished(db: &Db, id: &str) -> JobState {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = state(db, id).await.unwrap().unwrap();
        if s.is_finished() {
            return s;
        }
        assert!(Instant::now() < deadline, "job {id} never finished: {s:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Writes one row per run, in the transaction that completes the job; reports each step it
/// reaches, and stops for good at `stop_at` (where the test then "crashes" the worker).
struct Effectful {
    stop_at: Option<&'static str>,
    steps: mpsc::UnboundedSender<&'static str>,
}

impl Effectful {
    async fn step(&self, name: &'static str) {
        let _ = self.steps.send(name);
        if self.stop_at == Some(name) {
            std::future::pending::<()>().await;
        }
    }
}

impl Handler for Effectful {
    fn run<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.step("started").await;
            let mut tx = job.db().begin().await.map_err(|e| e.to_string())?;
            sqlx::query("INSERT INTO test_effects (job_id) VALUES ($1)")
                .bind(&job.id)
                .execute(&mut *tx)
                .await
                .map_err(|e| e.to_string())?;
            self.step("written").await;
            if !job
                .complete_in(&mut tx, Some("ok"))
                .await
                .map_err(|e| e.to_string())?
            {
                return Err("lease lost".into());
            }
            tx.commit().await.map_err(|e| e.to_string())?;
            self.step("committed").await;
            Ok(())
        })
    }
}

async fn a_job_survives_a_crash_at_every_step_and_runs_exactly_once(db: Db) {
    with_effects_table(&db).await;
    for crash_at in ["started", "written", "committed"] {
        let id = enqueue(db.pool(), &NewJob::new("test.effect", &crash_at))
            .await
            .unwrap()
            .unwrap();
        // The first worker stops at the step, and its process "dies" there.
        let (steps, mut reached) = mpsc::unbounded_channel();
        let first = jobs(&db);
        first.register(
            "test.effect",
            Arc::new(Effectful {
                stop_at: Some(crash_at),
                steps,
            }),
        );
        let worker = tokio::spawn(first.run(CancellationToken::new(), Duration::ZERO));
        while reached.recv().await != Some(crash_at) {}
        worker.abort();
        let _ = worker.await;
        // A second worker takes over once the claim expires.
        let (steps, _reached) = mpsc::unbounded_channel();
        let second = jobs(&db);
        second.register(
            "test.effect",
            Arc::new(Effectful {
                stop_at: None,
                steps,
            }),
        );
        let stop = CancellationToken::new();
        let worker = tokio::spawn(second.run(stop.clone(), Duration::from_secs(5)));
        let s = wait_finished(&db, &id).await;
        stop.cancel();
        worker.await.unwrap();
        assert_eq!(s.state, "done", "crash at {crash_at}");
        assert_eq!(s.result.as_deref(), Some("ok"));
        assert_eq!(
            effects(&db, &id).await,
            1,
            "exactly once after a crash at {crash_at}"
        );
    }
}
palisade_store::both_backends!(a_job_survives_a_crash_at_every_step_and_runs_exactly_once);

struct Refusing {
    attempts: Arc<Mutex<Vec<Instant>>>,
}

impl Handler for Refusing {
    fn run<'a>(&'a self, _: &'a Job) -> BoxFuture<'a, Result<(), String>> {
        self.attempts.lock().unwrap().push(Instant::now());
        Box::pin(async { Err("the receiver refused".to_owned()) })
    }

    fn retry(&self) -> Retry {
        Retry {
            first: Duration::from_millis(100),
            max: Duration::from_millis(300),
        }
    }
}

async fn a_failing_job_backs_off_and_dead_letters(db: Db) {
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let runner = jobs(&db);
    runner.register(
        "test.refused",
        Arc::new(Refusing {
            attempts: attempts.clone(),
        }),
    );
    let id = enqueue(db.pool(), &NewJob::new("test.refused", &()).max_attempts(4))
        .await
        .unwrap()
        .unwrap();
    let stop = CancellationToken::new();
    let worker = tokio::spawn(runner.run(stop.clone(), Duration::from_secs(5)));
    let s = wait_finished(&db, &id).await;
    stop.cancel();
    worker.await.unwrap();
    assert_eq!(s.state, "dead");
    assert_eq!(s.attempts, 4);
    assert_eq!(s.last_error.as_deref(), Some("the receiver refused"));
    let at = attempts.lock().unwrap().clone();
    assert_eq!(at.len(), 4, "no attempt after the last");
    // Each wait is at least three quarters of 100, 200, then 300 (capped) ms.
    for (i, least) in [75, 150, 225].into_iter().enumerate() {
        let gap = at[i + 1] - at[i];
        assert!(gap >= Duration::from_millis(least), "wait {i} was {gap:?}");
    }
}
palisade_store::both_backends!(a_failing_job_backs_off_and_dead_letters);

async fn enqueueing_the_same_work_twice_is_a_no_op(db: Db) {
    let job = NewJob::new("test.effect", &"x").key("session-1:client-1");
    assert!(enqueue(db.pool(), &job).await.unwrap().is_some());
    assert_eq!(enqueue(db.pool(), &job).await.unwrap(), None);
    let other = NewJob::new("test.effect", &"x").key("session-1:client-2");
    assert!(enqueue(db.pool(), &other).await.unwrap().is_some());
    // Enqueued inside a transaction that rolls back, it never existed.
    let mut tx = db.begin().await.unwrap();
    let id = enqueue(&mut *tx, &NewJob::new("test.effect", &"y"))
        .await
        .unwrap()
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(state(&db, &id).await.unwrap(), None);
}
palisade_store::both_backends!(enqueueing_the_same_work_twice_is_a_no_op);

/// Reports that it started, then finishes when told to (or never).
struct Slow {
    started: mpsc::UnboundedSender<String>,
    finish: Arc<tokio::sync::Notify>,
}

impl Handler for Slow {
    fn run<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let _ = self.started.send(job.payload.clone());
            if job.payload == "\"forever\"" {
                std::future::pending::<()>().await;
            }
            self.finish.notified().await;
            Ok(())
        })
    }
}

async fn shutdown_drains_running_jobs_and_hands_back_the_rest(db: Db) {
    let (started, mut got) = mpsc::unbounded_channel();
    let finish = Arc::new(tokio::sync::Notify::new());
    // Claims long enough that the stuck job is not timed out before shutdown.
    let runner = Jobs::with_timing(db.clone(), Bus::in_process(), Duration::from_secs(30), POLL);
    runner.register(
        "test.slow",
        Arc::new(Slow {
            started,
            finish: finish.clone(),
        }),
    );
    let quick = enqueue(db.pool(), &NewJob::new("test.slow", &"quick"))
        .await
        .unwrap()
        .unwrap();
    let stuck = enqueue(db.pool(), &NewJob::new("test.slow", &"forever"))
        .await
        .unwrap()
        .unwrap();
    let stop = CancellationToken::new();
    let worker = tokio::spawn(runner.run(stop.clone(), Duration::from_millis(500)));
    got.recv().await.unwrap();
    got.recv().await.unwrap();
    stop.cancel();
    // The running job may still finish during the drain.
    finish.notify_one();
    worker.await.unwrap();
    assert_eq!(state(&db, &quick).await.unwrap().unwrap().state, "done");
    let s = state(&db, &stuck).await.unwrap().unwrap();
    assert_eq!(
        (s.state.as_str(), s.attempts),
        ("queued", 0),
        "handed back, not counted"
    );
}
palisade_store::both_backends!(shutdown_drains_running_jobs_and_hands_back_the_rest);

async fn two_workers_run_each_job_once(db: Db) {
    with_effects_table(&db).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(
            enqueue(db.pool(), &NewJob::new("test.effect", &i))
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let stop = CancellationToken::new();
    let mut workers = Vec::new();
    for _ in 0..2 {
        let (steps, _) = mpsc::unbounded_channel();
        let runner = jobs(&db);
        runner.register(
            "test.effect",
            Arc::new(Effectful {
                stop_at: None,
                steps,
            }),
        );
        workers.push(tokio::spawn(
            runner.run(stop.clone(), Duration::from_secs(5)),
        ));
    }
    for id in &ids {
        assert_eq!(wait_finished(&db, id).await.state, "done");
    }
    stop.cancel();
    for w in workers {
        w.await.unwrap();
    }
    for id in &ids {
        assert_eq!(effects(&db, id).await, 1);
    }
}
palisade_store::both_backends!(two_workers_run_each_job_once);

/// Records the order it runs jobs in, yielding in between so that jobs run at once would
/// interleave; fails the job whose payload is `fail` once.
struct Ordered {
    seen: Arc<Mutex<Vec<i64>>>,
    fail: i64,
}

impl Handler for Ordered {
    fn run<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let n: i64 = job.payload()?;
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            self.seen.lock().unwrap().push(n);
            if n == self.fail && job.attempt == 1 {
                return Err("the first attempt fails".into());
            }
            Ok(())
        })
    }

    fn retry(&self) -> Retry {
        Retry {
            first: Duration::from_millis(10),
            max: Duration::from_millis(10),
        }
    }

    fn in_order(&self) -> bool {
        true
    }
}

/// Jobs of an in-order kind run one at a time in the order they were queued; after a failure
/// the rest wait their turn instead of running beside the retry.
async fn in_order_jobs_run_one_at_a_time_in_queue_order(db: Db) {
    let mut ids = Vec::new();
    for i in 0..30i64 {
        ids.push(
            enqueue(db.pool(), &NewJob::new("test.ordered", &i))
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let runner = jobs(&db);
    runner.register(
        "test.ordered",
        Arc::new(Ordered {
            seen: seen.clone(),
            fail: 12,
        }),
    );
    let stop = CancellationToken::new();
    let worker = tokio::spawn(runner.run(stop.clone(), Duration::from_secs(5)));
    for id in &ids {
        assert_eq!(wait_finished(&db, id).await.state, "done");
    }
    stop.cancel();
    worker.await.unwrap();
    let seen = seen.lock().unwrap().clone();
    // Up to the failure in order; the failed job ran again, and nothing was lost or doubled.
    assert_eq!(seen[..13], (0..13).collect::<Vec<i64>>()[..], "{seen:?}");
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    let mut expected: Vec<i64> = (0..30).collect();
    expected.push(12);
    expected.sort_unstable();
    assert_eq!(sorted, expected, "{seen:?}");
    // Everything after the failure ran in order too, the retry taking its place among them.
    let after: Vec<i64> = seen[13..].iter().copied().filter(|n| *n != 12).collect();
    assert_eq!(after, (13..30).collect::<Vec<i64>>(), "{seen:?}");
}
palisade_store::both_backends!(in_order_jobs_run_one_at_a_time_in_queue_order);
