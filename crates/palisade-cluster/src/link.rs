//! The connection to Redis, when one is configured, and what the node believes about it. Every
//! command goes through [`Link::run`], which answers `None` — "use the local fallback" — while
//! Redis is believed unreachable, so a node in an outage never waits on a dead server for each
//! request. A failed command marks Redis down (one log line, a metric); [`Link::maintain`] probes
//! it and marks it up again (another line) when it answers.

use prometheus_client::metrics::gauge::Gauge;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long one command may take before Redis counts as unreachable.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
/// How often an unreachable Redis is probed.
const PROBE_EVERY: Duration = Duration::from_millis(250);

#[derive(Clone)]
pub(crate) struct Link(Arc<Inner>);

struct Inner {
    client: redis::Client,
    commands: ConnectionManager,
    up: AtomicBool,
    up_metric: Gauge,
}

impl Link {
    pub(crate) fn open(url: &str, up_metric: Gauge) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(100));
        let commands = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        Ok(Self(Arc::new(Inner {
            client,
            commands,
            // Down until the first probe answers: requests are served locally meanwhile.
            up: AtomicBool::new(false),
            up_metric,
        })))
    }

    pub(crate) fn is_up(&self) -> bool {
        self.0.up.load(Ordering::Acquire)
    }

    pub(crate) fn client(&self) -> &redis::Client {
        &self.0.client
    }

    /// Runs `command` on Redis when it is believed reachable; `None` means "fall back".
    pub(crate) async fn run<T, F, Fut>(&self, what: &'static str, command: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.is_up() {
            return None;
        }
        match tokio::time::timeout(COMMAND_TIMEOUT, command(self.0.commands.clone())).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(e)) if is_outage(&e) => {
                self.mark_down(what, &e.to_string());
                None
            }
            Ok(Err(e)) => {
                tracing::error!(command = what, error = %e, "Redis refused a command; answering locally");
                None
            }
            Err(_) => {
                self.mark_down(what, "timed out");
                None
            }
        }
    }

    pub(crate) fn mark_down(&self, what: &str, reason: &str) {
        if self.0.up.swap(false, Ordering::AcqRel) {
            self.0.up_metric.set(0);
            tracing::warn!(
                during = what,
                reason,
                "Redis unreachable: rate limits, throttles and single-use checks fall back to this node and the database, caches to the database"
            );
        }
    }

    fn mark_up(&self) {
        if !self.0.up.swap(true, Ordering::AcqRel) {
            self.0.up_metric.set(1);
            tracing::info!("Redis reachable: shared rate limits, throttles and bus in use");
        }
    }

    /// One PING: Redis counts as up if it answers.
    pub(crate) async fn probe(&self) {
        let mut conn = self.0.commands.clone();
        let ping = redis::cmd("PING");
        let answered = ping.query_async::<String>(&mut conn);
        if let Ok(Ok(_)) = tokio::time::timeout(COMMAND_TIMEOUT, answered).await {
            self.mark_up();
        }
    }

    /// Probes Redis while it is believed down, until `shutdown`.
    pub(crate) async fn maintain(self, shutdown: CancellationToken) {
        loop {
            if !self.is_up() {
                self.probe().await;
            }
            tokio::select! {
                _ = tokio::time::sleep(PROBE_EVERY) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

/// Whether an error means Redis cannot be reached (as opposed to a refused command).
pub(crate) fn is_outage(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal()
}

/// A Redis key for `parts`, hashed: keys stay short, and the values behind them (addresses,
/// account names) are not stored in Redis in the clear.
pub(crate) fn key(kind: &str, parts: &[&str]) -> String {
    let joined = parts.join("\u{0}");
    let digest = palisade_crypto::sha256_hex(joined.as_bytes());
    format!("palisade:{kind}:{}", &digest[..32])
}
