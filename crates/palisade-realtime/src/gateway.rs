//! The gateway of one node: its connections, what each was authenticated with, and the two
//! things that reach into them from outside — revocation (RTM-2: every affected connection on
//! every node closes as soon as the change is announced) and shutdown (PLT-7: close frames with
//! 1001, then a drain).

use crate::channels::Channels;
use crate::fanout::REAUTHORIZE;
use crate::hub::Hub;
use crate::metrics::RealtimeMetrics;
use crate::outbox::{Outbox, Outgoing, Stop};
use crate::settings::Settings;
use futures_util::future::BoxFuture;
use palisade_audit::Auditor;
use palisade_cluster::{Bus, Counter, Delivery, Slots};
use palisade_http::AppError;
use palisade_principal::{AccessClaims, AuthError, Authenticator, Change, Principal};
use palisade_realtime_client::protocol::close;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Connections whose credentials are checked against the database at once after a revocation.
const RECHECKS_AT_ONCE: usize = 32;
/// How long a shutdown waits for connections to finish their close handshakes.
const DRAIN: Duration = Duration::from_secs(5);

/// What a connection was authenticated with, checked again when a revocation is announced.
#[derive(Debug, Clone)]
pub(crate) enum Credential {
    Token(Box<AccessClaims>),
    /// The browser session in the principal (`Principal::session`).
    Session,
}

/// First-party browser sessions, as the gateway needs them (the identity service provides it).
pub trait Sessions: Send + Sync + 'static {
    /// The principal of the request's session cookie, if it names a live session of an
    /// unlocked account.
    fn principal<'a>(
        &'a self,
        headers: &'a http::HeaderMap,
    ) -> BoxFuture<'a, Result<Option<Principal>, AppError>>;

    /// Whether the session `principal` was made from is still live and its account unlocked.
    fn is_live<'a>(&'a self, principal: &'a Principal) -> BoxFuture<'a, Result<bool, AppError>>;
}

/// What the gateway is built from.
pub struct Parts {
    pub settings: Settings,
    /// The server's own origin (`https://host[:port]`), allowed when `allowed_origins` is empty.
    pub own_origin: String,
    pub authenticator: Authenticator,
    pub bus: Bus,
    pub counter: Counter,
    pub slots: Slots,
    pub node_id: String,
    pub auditor: Auditor,
    pub channels: Arc<dyn Channels>,
    pub sessions: Arc<dyn Sessions>,
    pub metrics: RealtimeMetrics,
}

#[derive(Clone)]
pub struct Gateway(Arc<Inner>);

pub(crate) struct Inner {
    pub(crate) settings: Settings,
    pub(crate) origins: Vec<String>,
    pub(crate) authenticator: Authenticator,
    pub(crate) bus: Bus,
    pub(crate) counter: Counter,
    pub(crate) slots: Slots,
    pub(crate) node_id: String,
    pub(crate) auditor: Auditor,
    pub(crate) channels: Arc<dyn Channels>,
    pub(crate) sessions: Arc<dyn Sessions>,
    pub(crate) metrics: RealtimeMetrics,
    pub(crate) hub: Arc<Hub>,
    /// Connections admitted and not yet ended (the node's capacity).
    pub(crate) open: AtomicUsize,
    pub(crate) next_id: AtomicU64,
    connections: Mutex<HashMap<u64, Registered>>,
    pub(crate) tracker: TaskTracker,
    pub(crate) shutdown: CancellationToken,
}

/// A live connection as revocation sees it.
struct Registered {
    principal: Principal,
    credential: Credential,
    stop: Stop,
    outbox: Outbox,
}

/// A connection's entry in the registry; dropping it unregisters.
pub(crate) struct Registration {
    gateway: Gateway,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.gateway.registry().remove(&self.id);
    }
}

impl Gateway {
    pub fn new(parts: Parts) -> Self {
        let origins = if parts.settings.allowed_origins.is_empty() {
            vec![parts.own_origin]
        } else {
            parts.settings.allowed_origins.clone()
        };
        Self(Arc::new(Inner {
            settings: parts.settings,
            origins,
            authenticator: parts.authenticator,
            bus: parts.bus,
            counter: parts.counter,
            slots: parts.slots,
            node_id: parts.node_id,
            auditor: parts.auditor,
            channels: parts.channels,
            sessions: parts.sessions,
            metrics: parts.metrics,
            hub: Arc::default(),
            open: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            connections: Mutex::default(),
            tracker: TaskTracker::new(),
            shutdown: CancellationToken::new(),
        }))
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.0
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Registered>> {
        self.0.connections.lock().expect("connections")
    }

    /// How long a user's connection slot lives without renewal (each heartbeat renews it).
    pub(crate) fn slot_lifetime(&self) -> Duration {
        self.0.settings.ping_interval() * 3
    }

    pub(crate) fn register(
        &self,
        id: u64,
        principal: Principal,
        credential: Credential,
        stop: Stop,
        outbox: Outbox,
    ) -> Registration {
        self.registry().insert(
            id,
            Registered {
                principal,
                credential,
                stop,
                outbox,
            },
        );
        Registration {
            gateway: self.clone(),
            id,
        }
    }

    /// A connection refreshed its credential in band.
    pub(crate) fn reauthenticated(&self, id: u64, principal: Principal, credential: Credential) {
        if let Some(entry) = self.registry().get_mut(&id) {
            entry.principal = principal;
            entry.credential = credential;
        }
    }

    /// Runs the node's fan-out and revocation watch until `shutdown` (the listeners' token),
    /// then closes every connection with 1001 and waits for them to finish.
    pub async fn run(self, shutdown: CancellationToken) {
        let stop_tasks = CancellationToken::new();
        let hub = tokio::spawn(
            self.0
                .hub
                .clone()
                .run(self.0.bus.clone(), stop_tasks.clone()),
        );
        let watch = tokio::spawn(self.clone().watch_revocations(stop_tasks.clone()));
        let relations = tokio::spawn(self.clone().watch_relations(stop_tasks.clone()));
        shutdown.cancelled().await;
        self.0.shutdown.cancel();
        self.0.tracker.close();
        if tokio::time::timeout(DRAIN, self.0.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = self.0.tracker.len(),
                "real-time connections still closing at the end of the drain"
            );
        }
        stop_tasks.cancel();
        let _ = tokio::join!(hub, watch, relations);
    }

    /// Asks the connections of accounts whose relations changed to decide their subscriptions
    /// again; after a resync (announcements may be lost), all of them.
    async fn watch_relations(self, shutdown: CancellationToken) {
        let mut changes = self.0.bus.subscribe(REAUTHORIZE);
        loop {
            let delivery = tokio::select! {
                d = changes.recv() => d,
                _ = shutdown.cancelled() => return,
            };
            let user = match delivery {
                None => return,
                Some(Delivery::Resync) => None,
                Some(Delivery::Message(user)) => Some(String::from_utf8_lossy(&user).into_owned()),
            };
            for entry in self.registry().values() {
                if user.as_ref().is_none_or(|u| *u == entry.principal.subject) {
                    entry.outbox.offer(Outgoing::Reauthorize);
                }
            }
        }
    }

    async fn watch_revocations(self, shutdown: CancellationToken) {
        let mut changes = self.0.authenticator.revocations().changes();
        let checks = Arc::new(tokio::sync::Semaphore::new(RECHECKS_AT_ONCE));
        loop {
            let change = tokio::select! {
                c = changes.next() => c,
                _ = shutdown.cancelled() => return,
            };
            let affected: Vec<(Principal, Credential, Stop)> = {
                let registry = self.registry();
                let matches = |r: &&Registered| match &change {
                    Some(Change::Account(user)) => r.principal.subject == *user,
                    Some(Change::Grant(grant)) => matches!(
                        &r.credential,
                        Credential::Token(claims) if claims.gid.as_deref() == Some(grant.as_str())
                    ),
                    Some(Change::Resync) => true,
                    None => false,
                };
                registry
                    .values()
                    .filter(matches)
                    .map(|r| (r.principal.clone(), r.credential.clone(), r.stop.clone()))
                    .collect()
            };
            if change.is_none() {
                return;
            }
            for (principal, credential, stop) in affected {
                let gateway = self.clone();
                let checks = checks.clone();
                tokio::spawn(async move {
                    // A resync rechecks every connection: a bounded number at once, so the
                    // database is not flooded.
                    let Ok(_permit) = checks.acquire().await else {
                        return;
                    };
                    if !gateway.still_valid(&principal, &credential).await {
                        stop.stop(close::REVOKED, "revoked");
                    }
                });
            }
        }
    }

    /// Whether a connection's credential still holds, read from the store; a store that does
    /// not answer keeps the connection (its token's expiry still ends it).
    async fn still_valid(&self, principal: &Principal, credential: &Credential) -> bool {
        match credential {
            Credential::Token(claims) => !matches!(
                self.0.authenticator.recheck(claims).await,
                Err(AuthError::InvalidToken)
            ),
            Credential::Session => self.0.sessions.is_live(principal).await.unwrap_or(true),
        }
    }
}
