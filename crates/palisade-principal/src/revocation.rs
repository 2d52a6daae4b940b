//! Revocation as a resource sees it (TOK-4, OAU-5, SCL-1): an account's revocation epoch, lock,
//! role and tenant, and whether a grant is still live — read on every request, so that a
//! password change, "log out everywhere", a lock, a demotion or a revoked consent applies to the
//! very next request on every node.
//!
//! Reading the database for each request would cost a round trip each, so the state is cached
//! per node and invalidated through the bus: whoever changes it calls [`Revocations::account_changed`]
//! or [`Revocations::grant_revoked`] after committing, which evicts it here at once and
//! publishes the change to every other node. A cached entry is trusted only while the bus is
//! reliable and its epoch is the one the entry was loaded in (a dropped subscription may have
//! missed an eviction), and for at most a second in any case — the bound on a change made where
//! no bus reaches (a command-line tool on a node without Redis). While the bus is unreachable,
//! every check reads the database: never a stale cache.

use crate::claims::TenantId;
use palisade_authz::Role;
use palisade_cluster::{Bus, Delivery};
use palisade_store::{Db, StoreError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const TOPIC: &str = "revocation";
/// The longest any node serves an entry without reading it again.
const MAX_AGE: Duration = Duration::from_secs(1);
const MAX_ENTRIES: usize = 100_000;

/// What a user's token is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    pub epoch: i64,
    pub locked: bool,
    pub role: Role,
    pub tenant: TenantId,
}

struct Entry<T> {
    value: T,
    bus_epoch: u64,
    loaded: Instant,
}

type Table<T> = Mutex<HashMap<String, Entry<T>>>;

#[derive(Clone)]
pub struct Revocations(Arc<Inner>);

struct Inner {
    db: Db,
    bus: Bus,
    accounts: Table<Option<AccountState>>,
    grants: Table<bool>,
    /// Bumped by every eviction: a read that started before one does not fill the cache.
    evictions: AtomicU64,
}

impl Revocations {
    pub fn new(db: Db, bus: Bus) -> Self {
        Self(Arc::new(Inner {
            db,
            bus,
            accounts: Mutex::default(),
            grants: Mutex::default(),
            evictions: AtomicU64::new(0),
        }))
    }

    /// The account's state, or `None` when there is no such account.
    pub async fn account(&self, user_id: &str) -> Result<Option<AccountState>, StoreError> {
        if let Some(state) = self.cached(&self.0.accounts, user_id) {
            return Ok(state);
        }
        let (evictions, bus_epoch) = self.snapshot();
        let row: Option<(i64, i64, String, String)> = sqlx::query_as(
            "SELECT revocation_epoch, locked, role, tenant_id FROM users WHERE id = $1",
        )
        .bind(user_id)
        .fetch_optional(self.0.db.pool())
        .await?;
        let state = row.map(|(epoch, locked, role, tenant)| AccountState {
            epoch,
            locked: locked != 0,
            // An unknown role grants nothing beyond a member's.
            role: Role::parse(&role).unwrap_or(Role::Member),
            tenant: TenantId::new(tenant),
        });
        self.fill(
            &self.0.accounts,
            user_id,
            state.clone(),
            evictions,
            bus_epoch,
        );
        Ok(state)
    }

    /// Whether the grant exists and was not revoked.
    pub async fn grant_is_live(&self, grant_id: &str) -> Result<bool, StoreError> {
        if let Some(live) = self.cached(&self.0.grants, grant_id) {
            return Ok(live);
        }
        let (evictions, bus_epoch) = self.snapshot();
        let row: Option<(Option<i64>,)> =
            sqlx::query_as("SELECT revoked_at FROM oauth_grants WHERE grant_id = $1")
                .bind(grant_id)
                .fetch_optional(self.0.db.pool())
                .await?;
        let live = matches!(row, Some((None,)));
        self.fill(&self.0.grants, grant_id, live, evictions, bus_epoch);
        Ok(live)
    }

    /// [`Self::account`], read from the database whatever is cached: for a check that runs
    /// because a change was announced, and must not race the eviction it announced.
    pub async fn account_now(&self, user_id: &str) -> Result<Option<AccountState>, StoreError> {
        self.evict(&self.0.accounts, user_id);
        self.account(user_id).await
    }

    /// [`Self::grant_is_live`], read from the database whatever is cached.
    pub async fn grant_is_live_now(&self, grant_id: &str) -> Result<bool, StoreError> {
        self.evict(&self.0.grants, grant_id);
        self.grant_is_live(grant_id).await
    }

    /// The changes announced from now on, on every node.
    pub fn changes(&self) -> Changes {
        Changes(self.0.bus.subscribe(TOPIC))
    }

    /// Call after committing a change to the account (password, epoch, lock, role, erasure,
    /// a session ended).
    pub async fn account_changed(&self, user_id: &str) {
        self.evict(&self.0.accounts, user_id);
        self.0.bus.publish(TOPIC, format!("a:{user_id}")).await;
    }

    /// Call after committing the revocation of a grant.
    pub async fn grant_revoked(&self, grant_id: &str) {
        self.evict(&self.0.grants, grant_id);
        self.0.bus.publish(TOPIC, format!("g:{grant_id}")).await;
    }

    /// Applies other nodes' changes until `shutdown`.
    pub async fn follow(self, shutdown: CancellationToken) {
        let mut changes = self.0.bus.subscribe(TOPIC);
        loop {
            let delivery = tokio::select! {
                d = changes.recv() => d,
                _ = shutdown.cancelled() => return,
            };
            match delivery.map(Change::read) {
                Some(Some(Change::Account(user))) => self.evict(&self.0.accounts, &user),
                Some(Some(Change::Grant(grant))) => self.evict(&self.0.grants, &grant),
                Some(Some(Change::Resync)) => {
                    self.0.evictions.fetch_add(1, Ordering::AcqRel);
                    self.0.accounts.lock().expect("revocation cache").clear();
                    self.0.grants.lock().expect("revocation cache").clear();
                }
                Some(None) => tracing::warn!("unreadable revocation message ignored"),
                None => return,
            }
        }
    }

    fn snapshot(&self) -> (u64, u64) {
        (self.0.evictions.load(Ordering::Acquire), self.0.bus.epoch())
    }

    fn cached<T: Clone>(&self, table: &Table<T>, key: &str) -> Option<T> {
        let bus = &self.0.bus;
        if !bus.reliable() {
            return None;
        }
        let epoch = bus.epoch();
        let entries = table.lock().expect("revocation cache");
        entries
            .get(key)
            .filter(|e| e.bus_epoch == epoch && e.loaded.elapsed() < MAX_AGE)
            .map(|e| e.value.clone())
    }

    fn fill<T>(&self, table: &Table<T>, key: &str, value: T, evictions: u64, bus_epoch: u64) {
        let (now_evictions, now_epoch) = self.snapshot();
        if !self.0.bus.reliable() || now_evictions != evictions || now_epoch != bus_epoch {
            return;
        }
        let mut entries = table.lock().expect("revocation cache");
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            key.to_owned(),
            Entry {
                value,
                bus_epoch,
                loaded: Instant::now(),
            },
        );
    }

    fn evict<T>(&self, table: &Table<T>, key: &str) {
        self.0.evictions.fetch_add(1, Ordering::AcqRel);
        table.lock().expect("revocation cache").remove(key);
    }
}

/// A revocation change announced on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The account changed (its epoch, lock, role or sessions): check its tokens again.
    Account(String),
    Grant(String),
    /// Changes may have been missed: check everything again.
    Resync,
}

impl Change {
    fn read(delivery: Delivery) -> Option<Self> {
        match delivery {
            Delivery::Resync => Some(Change::Resync),
            Delivery::Message(m) => {
                let m = std::str::from_utf8(&m).ok()?;
                if let Some(user) = m.strip_prefix("a:") {
                    Some(Change::Account(user.to_owned()))
                } else {
                    m.strip_prefix("g:").map(|g| Change::Grant(g.to_owned()))
                }
            }
        }
    }
}

/// A subscription to revocation changes.
pub struct Changes(palisade_cluster::Subscription);

impl Changes {
    /// The next change; `None` once the bus is gone. Unreadable messages are skipped.
    pub async fn next(&mut self) -> Option<Change> {
        loop {
            if let Some(change) = Change::read(self.0.recv().await?) {
                return Some(change);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn a_change_applies_to_the_next_read(db: Db) {
        sqlx::query(
            "INSERT INTO users (id, tenant_id, email, email_normalized, password_hash, created_at, updated_at) \
             VALUES ('u1', 'default', 'a@example.com', 'a@example.com', 'x', 0, 0)",
        )
        .execute(db.pool())
        .await
        .unwrap();
        let revocations = Revocations::new(db.clone(), Bus::in_process());
        let first = revocations.account("u1").await.unwrap().unwrap();
        assert_eq!(
            (first.epoch, first.locked, first.role),
            (0, false, Role::Member)
        );
        sqlx::query("UPDATE users SET revocation_epoch = 1, role = 'moderator' WHERE id = 'u1'")
            .execute(db.pool())
            .await
            .unwrap();
        revocations.account_changed("u1").await;
        let now = revocations.account("u1").await.unwrap().unwrap();
        assert_eq!((now.epoch, now.role), (1, Role::Moderator));
        assert_eq!(revocations.account("nobody").await.unwrap(), None);
        assert!(!revocations.grant_is_live("no-grant").await.unwrap());
    }
    palisade_store::both_backends!(a_change_applies_to_the_next_read);
}
