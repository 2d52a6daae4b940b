//! Publish/subscribe by topic (SCL-1, RTM-8): in process by default, through Redis pub/sub when
//! a Redis URL is configured, so that a message published on one node reaches every node.
//! Without Redis, command-line tools running beside a server (`palisade keys revoke`) reach it
//! through a Unix socket in its data directory (mode 0600), so their changes apply at once too.
//!
//! Pub/sub delivers at most once: a message published while a node's subscription is down never
//! reaches it. So the bus tells subscribers when that may have happened — [`Delivery::Resync`]
//! when the subscription (re)connects, drops, or a subscriber fell behind — and exposes
//! [`Bus::reliable`] and an [`Bus::epoch`] that changes at each of those moments. A cache
//! invalidated through the bus trusts an entry only while the bus is reliable and the epoch is
//! the one it was loaded in; otherwise it reads its source again.

use crate::link::Link;
use bytes::Bytes;
use futures_util::StreamExt;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Messages a slow subscriber may fall behind by before it must resynchronise.
const BACKLOG: usize = 1024;
/// Topics kept before unused ones are dropped.
const PRUNE_FLOOR: usize = 1024;
const CHANNEL_PREFIX: &str = "palisade:bus:";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RECONNECT_EVERY: Duration = Duration::from_millis(250);

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Message(Bytes),
    /// Messages may have been missed: anything derived from earlier ones must be read again.
    Resync,
}

#[derive(Clone)]
pub struct Bus(Arc<Inner>);

struct Inner {
    topics: Mutex<HashMap<String, broadcast::Sender<Delivery>>>,
    /// `None`: in process only.
    link: Option<Link>,
    /// Without Redis: the socket a server listens on for local tools, or a tool sends to.
    relay: Option<Relay>,
    /// Redis mode: the node's subscription is live. In process: always.
    connected: AtomicBool,
    epoch: AtomicU64,
    connected_metric: Gauge,
    /// The number of topics at which unused ones are dropped next.
    prune_at: AtomicUsize,
}

/// The local socket of a bus without Redis.
#[derive(Debug, Clone)]
pub(crate) enum Relay {
    /// A server: local tools' messages arrive here.
    Listen(PathBuf),
    /// A tool: messages go to the server listening here (if one is).
    Send(PathBuf),
}

/// Bytes of a message relayed over the local socket at most.
const MAX_RELAYED: usize = 64 * 1024;

impl Bus {
    pub(crate) fn new(link: Option<Link>, relay: Option<Relay>, connected_metric: Gauge) -> Self {
        let in_process = link.is_none();
        connected_metric.set(i64::from(in_process));
        Self(Arc::new(Inner {
            topics: Mutex::new(HashMap::new()),
            link,
            relay,
            connected: AtomicBool::new(in_process),
            epoch: AtomicU64::new(0),
            connected_metric,
            prune_at: AtomicUsize::new(PRUNE_FLOOR),
        }))
    }

    /// An in-process bus, for one node (and tests).
    pub fn in_process() -> Self {
        Self::new(None, None, Gauge::default())
    }

    /// Whether every message published anywhere reaches this node's subscribers.
    pub fn reliable(&self) -> bool {
        self.0.connected.load(Ordering::Acquire)
    }

    /// Changes whenever messages may have been missed (see the module documentation).
    pub fn epoch(&self) -> u64 {
        self.0.epoch.load(Ordering::Acquire)
    }

    pub fn subscribe(&self, topic: &str) -> Subscription {
        Subscription(self.sender(topic).subscribe())
    }

    /// Publishes to every node's subscribers of `topic`. Without Redis (or while it is
    /// unreachable) only this node's subscribers receive it.
    pub async fn publish(&self, topic: &str, payload: impl Into<Bytes>) {
        let payload = payload.into();
        // Publishing needs Redis to answer, not this node's subscription (a tool has none).
        if let Some(link) = &self.0.link {
            let channel = format!("{CHANNEL_PREFIX}{topic}");
            let sent = link
                .run("publish", |mut conn| {
                    let payload = payload.clone();
                    async move {
                        redis::cmd("PUBLISH")
                            .arg(channel)
                            .arg(payload.as_ref())
                            .query_async::<i64>(&mut conn)
                            .await
                    }
                })
                .await;
            if sent.is_some() {
                return;
            }
        }
        if let Some(Relay::Send(path)) = &self.0.relay {
            relay(path, topic, &payload).await;
            return;
        }
        self.deliver(topic, Delivery::Message(payload));
    }

    fn sender(&self, topic: &str) -> broadcast::Sender<Delivery> {
        let mut topics = self.0.topics.lock().expect("bus topics");
        if let Some(sender) = topics.get(topic) {
            return sender.clone();
        }
        // Topics come and go (a conversation's, while someone here follows it): those nobody
        // listens to any more are dropped whenever the table has doubled since the last time.
        if topics.len() >= self.0.prune_at.load(Ordering::Relaxed) {
            topics.retain(|_, sender| sender.receiver_count() > 0);
            self.0
                .prune_at
                .store((topics.len() * 2).max(PRUNE_FLOOR), Ordering::Relaxed);
        }
        let sender = broadcast::channel(BACKLOG).0;
        topics.insert(topic.to_owned(), sender.clone());
        sender
    }

    fn deliver(&self, topic: &str, delivery: Delivery) {
        let sender = self
            .0
            .topics
            .lock()
            .expect("bus topics")
            .get(topic)
            .cloned();
        if let Some(sender) = sender {
            // No receiver is not an error: nobody here listens to that topic now.
            let _ = sender.send(delivery);
        }
    }

    fn set_connected(&self, connected: bool) {
        self.0.connected.store(connected, Ordering::Release);
        self.0.epoch.fetch_add(1, Ordering::AcqRel);
        self.0.connected_metric.set(i64::from(connected));
        let senders: Vec<_> = self
            .0
            .topics
            .lock()
            .expect("bus topics")
            .values()
            .cloned()
            .collect();
        for sender in senders {
            let _ = sender.send(Delivery::Resync);
        }
    }

    /// Keeps the Redis subscription up until `shutdown`, resubscribing after every drop; or,
    /// without Redis, listens for local tools.
    pub(crate) async fn maintain(self, shutdown: CancellationToken) {
        let Some(link) = self.0.link.clone() else {
            if let Some(Relay::Listen(path)) = self.0.relay.clone() {
                self.listen(&path, shutdown).await;
            }
            return;
        };
        loop {
            let connected = async {
                let mut pubsub =
                    tokio::time::timeout(CONNECT_TIMEOUT, link.client().get_async_pubsub())
                        .await
                        .ok()?
                        .ok()?;
                pubsub.psubscribe(format!("{CHANNEL_PREFIX}*")).await.ok()?;
                Some(pubsub)
            };
            let pubsub = tokio::select! {
                p = connected => p,
                _ = shutdown.cancelled() => return,
            };
            if let Some(pubsub) = pubsub {
                self.set_connected(true);
                tracing::info!("message bus subscribed through Redis");
                let mut messages = pubsub.into_on_message();
                loop {
                    let message = tokio::select! {
                        m = messages.next() => m,
                        _ = shutdown.cancelled() => return,
                    };
                    let Some(message) = message else { break };
                    if let Some(topic) = message.get_channel_name().strip_prefix(CHANNEL_PREFIX) {
                        let payload = Bytes::copy_from_slice(message.get_payload_bytes());
                        self.deliver(topic, Delivery::Message(payload));
                    }
                }
                self.set_connected(false);
                link.mark_down("subscription", "the subscription dropped");
                tracing::warn!(
                    "message bus subscription lost: caches read the database until it is back"
                );
            }
            tokio::select! {
                _ = tokio::time::sleep(RECONNECT_EVERY) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

impl Bus {
    /// Delivers what local tools send to `path` until `shutdown`.
    async fn listen(&self, path: &Path, shutdown: CancellationToken) {
        use std::os::unix::fs::PermissionsExt;
        // A socket left by a process that died: nobody listens on it any more.
        let _ = std::fs::remove_file(path);
        let listener = match tokio::net::UnixListener::bind(path) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "local bus socket unavailable: tools' changes reach this server at its next resynchronisation");
                return shutdown.cancelled().await;
            }
        };
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
            tracing::warn!(error = %e, "local bus socket permissions not set");
        }
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shutdown.cancelled() => break,
            };
            let Ok((mut stream, _)) = accepted else {
                continue;
            };
            let bus = self.clone();
            tokio::spawn(async move {
                if let Ok(Ok((topic, payload))) =
                    tokio::time::timeout(CONNECT_TIMEOUT, read_frame(&mut stream)).await
                {
                    bus.deliver(&topic, Delivery::Message(payload));
                }
            });
        }
        let _ = std::fs::remove_file(path);
    }
}

/// One message to the server listening at `path`, if one is.
async fn relay(path: &Path, topic: &str, payload: &[u8]) {
    use tokio::io::AsyncWriteExt;
    let sent = async {
        let mut stream = tokio::net::UnixStream::connect(path).await?;
        let mut frame = Vec::with_capacity(6 + topic.len() + payload.len());
        frame.extend_from_slice(&(topic.len() as u16).to_be_bytes());
        frame.extend_from_slice(topic.as_bytes());
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(payload);
        stream.write_all(&frame).await?;
        stream.shutdown().await
    };
    // No server running is not an error: there is nobody to tell.
    if let Ok(Err(e)) = tokio::time::timeout(CONNECT_TIMEOUT, sent).await
        && e.kind() != std::io::ErrorKind::NotFound
        && e.kind() != std::io::ErrorKind::ConnectionRefused
    {
        tracing::warn!(error = %e, "message not relayed to the local server");
    }
}

async fn read_frame(stream: &mut tokio::net::UnixStream) -> std::io::Result<(String, Bytes)> {
    use tokio::io::AsyncReadExt;
    let topic_len = stream.read_u16().await? as usize;
    let mut topic = vec![0; topic_len];
    stream.read_exact(&mut topic).await?;
    let payload_len = stream.read_u32().await? as usize;
    if payload_len > MAX_RELAYED {
        return Err(std::io::ErrorKind::InvalidData.into());
    }
    let mut payload = vec![0; payload_len];
    stream.read_exact(&mut payload).await?;
    let topic = String::from_utf8(topic).map_err(|_| std::io::ErrorKind::InvalidData)?;
    Ok((topic, payload.into()))
}

pub struct Subscription(broadcast::Receiver<Delivery>);

impl Subscription {
    /// The next delivery; `None` once the bus is gone.
    pub async fn recv(&mut self) -> Option<Delivery> {
        match self.0.recv().await {
            Ok(d) => Some(d),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Delivery::Resync),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}
