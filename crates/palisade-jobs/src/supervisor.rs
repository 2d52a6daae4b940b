//! The owner of every long-lived task of a server (PLT-7): listeners, the job worker, the
//! cluster link, reloaders. Shutting down happens in two steps, within one deadline: the
//! listeners stop accepting and drain the requests in flight, and only then does the work
//! those requests depend on stop (the audit sequencer, jobs, the cluster link), so a request
//! answered during the drain is as durable and as audited as any other. A task that ends while
//! the server is running is a failure the server reports and stops on, rather than running on
//! without it.

use std::future::Future;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub struct Supervisor {
    shutdown: CancellationToken,
    background: CancellationToken,
    listeners: JoinSet<&'static str>,
    tasks: JoinSet<&'static str>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl Supervisor {
    pub fn new() -> Self {
        Self {
            shutdown: CancellationToken::new(),
            background: CancellationToken::new(),
            listeners: JoinSet::new(),
            tasks: JoinSet::new(),
        }
    }

    /// The token listeners watch: cancelled when shutdown begins.
    pub fn token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The token background tasks watch: cancelled once every listener has drained.
    pub fn background(&self) -> CancellationToken {
        self.background.clone()
    }

    /// Runs a listener until it ends; it must stop accepting when [`Self::token`] is
    /// cancelled and end once its connections are drained.
    pub fn spawn_listener(
        &mut self,
        name: &'static str,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        self.listeners.spawn(named(name, task));
    }

    /// Runs a background task until it ends; it must end soon after [`Self::background`] is
    /// cancelled.
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(named(name, task));
    }

    /// Waits for the first task to end on its own (a failure, before shutdown), and names it.
    /// Pending forever when there is no task.
    pub async fn first_exit(&mut self) -> String {
        let done = tokio::select! {
            Some(done) = self.listeners.join_next() => done,
            Some(done) = self.tasks.join_next() => done,
            else => std::future::pending().await,
        };
        match done {
            Ok(name) => name.to_owned(),
            Err(e) if e.is_panic() => "a task that panicked".to_owned(),
            Err(_) => "a cancelled task".to_owned(),
        }
    }

    /// Stops the listeners and lets them drain, then stops the background tasks, all within
    /// `within`; whatever still runs then is aborted, and the log says so.
    pub async fn shutdown(mut self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        self.shutdown.cancel();
        finish(&mut self.listeners, deadline, "listeners").await;
        self.background.cancel();
        finish(&mut self.tasks, deadline, "background tasks").await;
    }
}

async fn named(name: &'static str, task: impl Future<Output = ()>) -> &'static str {
    task.await;
    name
}

/// Waits for every task of `set` until `deadline`, then aborts the rest.
async fn finish(set: &mut JoinSet<&'static str>, deadline: tokio::time::Instant, what: &str) {
    let drained = tokio::time::timeout_at(deadline, async {
        while let Some(done) = set.join_next().await {
            if let Err(e) = done
                && e.is_panic()
            {
                tracing::error!("a task panicked during shutdown");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            tasks = set.len(),
            "{what} did not stop in time; aborting them"
        );
        set.abort_all();
        while set.join_next().await.is_some() {}
    }
}
