//! The owner of every long-lived task of a server (PLT-7): listeners, the job worker, the
//! cluster link, reloaders. All run under one cancellation token; shutting down cancels it and
//! waits for each to finish its work, within a deadline. A task that ends while the server is
//! running is a failure the server reports and stops on, rather than running on without it.

use std::future::Future;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub struct Supervisor {
    shutdown: CancellationToken,
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
            tasks: JoinSet::new(),
        }
    }

    /// The token every task watches: cancelled when shutdown begins.
    pub fn token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Runs `task` until it ends; it must end soon after the token is cancelled.
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(async move {
            task.await;
            name
        });
    }

    /// Waits for the first task to end on its own (a failure, before shutdown), and names it.
    /// Pending forever when there is no task.
    pub async fn first_exit(&mut self) -> String {
        match self.tasks.join_next().await {
            Some(Ok(name)) => name.to_owned(),
            Some(Err(e)) if e.is_panic() => "a task that panicked".to_owned(),
            Some(Err(_)) => "a cancelled task".to_owned(),
            None => std::future::pending().await,
        }
    }

    /// Cancels every task and waits for them, at most `within`; those still running are
    /// aborted and named in the log.
    pub async fn shutdown(mut self, within: Duration) {
        self.shutdown.cancel();
        let drained = tokio::time::timeout(within, async {
            while let Some(done) = self.tasks.join_next().await {
                if let Err(e) = done
                    && e.is_panic()
                {
                    tracing::error!("a background task panicked during shutdown");
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                tasks = self.tasks.len(),
                "background tasks did not stop in time; aborting them"
            );
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
    }
}
