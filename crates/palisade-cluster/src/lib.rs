//! What the nodes of one deployment share (SCL-1, SCL-2): a message bus, leases with fencing
//! tokens, rate and back-off counters, bounded slots, and single-use ids. Anything that must agree across nodes
//! goes through these, never through a node's own memory.
//!
//! With no Redis configured everything is in process (one node: the embedded default, PLT-2),
//! leases and single-use ids in the database. With `cluster.redis_url`, the bus, the counters
//! and single-use ids go through Redis; while it is unreachable each node degrades to local
//! behaviour, says so (a log line and `palisade_cluster_redis_up 0`), and rejoins by itself.
// Library code handles every failure; tests and examples may unwrap.
#![warn(clippy::unwrap_used)]

mod bus;
mod counter;
mod lease;
mod link;
mod replay;
mod slots;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;

pub use bus::{Bus, Delivery, Subscription};
pub use counter::{Backoff, BackoffPolicy, Counter, Rate};
pub use lease::Lease;
pub use replay::ReplayStore;
pub use slots::Slots;

use palisade_crypto::Secret;
use palisade_store::Db;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// `[cluster]` settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `redis://host:port/db`: shares the bus, rate limits, throttles and single-use ids among
    /// nodes. Without it, they are this node's own.
    pub redis_url: Option<Secret<String>>,
}

impl Settings {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(url) = &self.redis_url
            && !url.expose().starts_with("redis://")
        {
            return Err("cluster.redis_url must be a redis:// URL".into());
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster.redis_url: {0}")]
    Redis(String),
}

/// Everything shared, as one node sees it.
#[derive(Clone)]
pub struct Cluster {
    pub bus: Bus,
    pub counter: Counter,
    pub backoff: Backoff,
    pub replay: ReplayStore,
    pub slots: Slots,
    /// This process among the holders of leases.
    pub node_id: String,
    db: Db,
    link: Option<link::Link>,
}

impl Cluster {
    /// The shared state of a server node. Redis, when configured, is connected by
    /// [`Cluster::maintain`], which the caller runs for as long as the node does; without it,
    /// the server listens at `socket` for the messages of tools beside it.
    pub fn new(
        db: Db,
        settings: &Settings,
        registry: &mut Registry,
        socket: Option<PathBuf>,
    ) -> Result<Self, ClusterError> {
        let redis_up = Gauge::default();
        let bus_connected = Gauge::default();
        registry.register(
            "cluster_redis_up",
            "Whether Redis answers (1), or this node counts and checks on its own (0)",
            redis_up.clone(),
        );
        registry.register(
            "cluster_bus_connected",
            "Whether messages published on any node reach this one",
            bus_connected.clone(),
        );
        let link = settings
            .redis_url
            .as_ref()
            .map(|url| link::Link::open(url.expose(), redis_up))
            .transpose()
            .map_err(|e| ClusterError::Redis(e.to_string()))?;
        let relay = socket.filter(|_| link.is_none()).map(bus::Relay::Listen);
        Ok(Self::assemble(db, link, relay, bus_connected))
    }

    /// The shared state as a command-line tool beside a server sees it: what it publishes
    /// reaches the servers through Redis, or without Redis the server listening at `socket`.
    /// Tools run no background task: Redis is used once it answers a probe.
    pub fn tool(db: Db, settings: &Settings, socket: PathBuf) -> Result<Self, ClusterError> {
        let mut registry = Registry::default();
        let cluster = Self::new(db, settings, &mut registry, None)?;
        match cluster.link.clone() {
            Some(link) => Ok(Self {
                bus: Bus::new(Some(link), None, Gauge::default()),
                ..cluster
            }),
            None => Ok(Self {
                bus: Bus::new(None, Some(bus::Relay::Send(socket)), Gauge::default()),
                ..cluster
            }),
        }
    }

    /// One node on its own: an in-process bus, local counters, single-use ids in the database.
    pub fn in_process(db: Db) -> Self {
        Self::assemble(db, None, None, Gauge::default())
    }

    fn assemble(
        db: Db,
        link: Option<link::Link>,
        relay: Option<bus::Relay>,
        bus_connected: Gauge,
    ) -> Self {
        Self {
            bus: Bus::new(link.clone(), relay, bus_connected),
            counter: Counter::new(link.clone()),
            backoff: Backoff::new(link.clone()),
            replay: ReplayStore::new(db.clone(), link.clone()),
            slots: Slots::new(link.clone()),
            node_id: palisade_store::new_id(),
            db,
            link,
        }
    }

    /// The lease `name` as this node would hold it.
    pub fn lease(&self, name: &str, ttl: Duration) -> Lease {
        Lease::new(self.db.clone(), name, &self.node_id, ttl)
    }

    /// Keeps the connection to Redis (when configured), or the local tools' socket, until
    /// `shutdown`.
    pub async fn maintain(self, shutdown: CancellationToken) {
        match self.link.clone() {
            Some(link) => {
                tokio::join!(
                    link.maintain(shutdown.clone()),
                    self.bus.clone().maintain(shutdown)
                );
            }
            None => self.bus.clone().maintain(shutdown).await,
        }
    }

    /// For a tool: whether Redis answers now (its commands fall back to local state until it
    /// does, and a tool runs no probe of its own).
    pub async fn connect(&self) {
        if let Some(link) = &self.link {
            link.probe().await;
        }
    }
}

#[cfg(test)]
mod tests;
