//! Two "nodes" (two `Cluster`s in one process) sharing one Redis and one database.

use super::*;
use crate::test_support::TestRedis;
use palisade_store::Backend;
use palisade_store::test_support::{TestDb, open};
use std::time::Instant;

struct Node {
    cluster: Cluster,
    stop: CancellationToken,
    registry: Registry,
}

impl Node {
    fn start(db: &Db, redis: &TestRedis) -> Self {
        let mut registry = Registry::default();
        let settings = Settings {
            redis_url: Some(Secret::new(redis.url())),
        };
        let cluster = Cluster::new(db.clone(), &settings, &mut registry, None).unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(cluster.clone().maintain(stop.clone()));
        Self {
            cluster,
            stop,
            registry,
        }
    }

    fn metric(&self, name: &str) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).unwrap();
        out.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the node uses Redis for commands and its bus subscription is live.
    async fn joined(&self) {
        eventually("the node joins Redis", || {
            self.metric("cluster_redis_up").ends_with(" 1") && self.cluster.bus.reliable()
        })
        .await;
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn db() -> TestDb {
    open(Backend::Postgres).await
}

#[tokio::test]
async fn nodes_share_the_bus_counters_back_off_and_single_use_ids() {
    let redis = TestRedis::start();
    let t = db().await;
    let (a, b) = (Node::start(&t.db, &redis), Node::start(&t.db, &redis));
    a.joined().await;
    b.joined().await;

    let mut on_b = b.cluster.bus.subscribe("revocation");
    a.cluster
        .bus
        .publish("revocation", &b"account:alice"[..])
        .await;
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match on_b.recv().await {
                Some(Delivery::Message(m)) => return m,
                Some(Delivery::Resync) => continue,
                None => panic!("bus closed"),
            }
        }
    })
    .await
    .expect("a message published on A reaches B");
    assert_eq!(&got[..], b"account:alice");

    // A limit of 5 a minute is 5 across both nodes, not 10.
    let rate = Rate { per_minute: 5 };
    let mut allowed = 0;
    for i in 0..10 {
        let node = if i % 2 == 0 { &a } else { &b };
        if node
            .cluster
            .counter
            .check("api.user", "alice", rate)
            .await
            .is_ok()
        {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 5);
    let wait = a
        .cluster
        .counter
        .check("api.user", "alice", rate)
        .await
        .unwrap_err();
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_secs(12),
        "{wait:?}"
    );

    // Failures on A make B wait too; a success on B clears it for A.
    let policy = BackoffPolicy {
        free_attempts: 2,
        base_delay: Duration::from_secs(30),
        max_delay: Duration::from_secs(300),
    };
    for _ in 0..3 {
        a.cluster.backoff.fail("login", "alice", policy).await;
    }
    let wait = b
        .cluster
        .backoff
        .wait("login", "alice")
        .await
        .expect("B sees A's failures");
    assert!(
        wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
        "{wait:?}"
    );
    b.cluster.backoff.clear("login", "alice").await;
    assert_eq!(a.cluster.backoff.wait("login", "alice").await, None);

    // An id used on A is used on B.
    let until = palisade_store::now_ms() + 60_000;
    assert!(
        a.cluster
            .replay
            .first_use("dpop", "proof-1", until)
            .await
            .unwrap()
    );
    assert!(
        !b.cluster
            .replay
            .first_use("dpop", "proof-1", until)
            .await
            .unwrap()
    );
    assert!(
        b.cluster
            .replay
            .first_use("dpop", "proof-2", until)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn without_redis_tools_reach_the_server_through_its_socket() {
    let t = db().await;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("bus.sock");
    let mut registry = Registry::default();
    let server = Cluster::new(
        t.db.clone(),
        &Settings::default(),
        &mut registry,
        Some(socket.clone()),
    )
    .unwrap();
    let mut keys = server.bus.subscribe("keys");
    let stop = CancellationToken::new();
    let listening = tokio::spawn(server.clone().maintain(stop.clone()));
    let tool = Cluster::tool(t.db.clone(), &Settings::default(), socket.clone()).unwrap();
    // The socket may not be bound yet: the tool publishes until the server hears.
    let heard = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            tool.bus.publish("keys", &b"revoked"[..]).await;
            if let Ok(Some(Delivery::Message(m))) =
                tokio::time::timeout(Duration::from_millis(50), keys.recv()).await
            {
                return m;
            }
        }
    })
    .await
    .expect("the server hears the tool");
    assert_eq!(&heard[..], b"revoked");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "only the server's user may publish");
    stop.cancel();
    listening.await.unwrap();
}

#[tokio::test]
async fn without_redis_a_node_degrades_to_local_behaviour_and_rejoins() {
    let mut redis = TestRedis::start();
    let t = db().await;
    let node = Node::start(&t.db, &redis);
    node.joined().await;
    let mut sub = node.cluster.bus.subscribe("keys");
    let epoch = node.cluster.bus.epoch();

    redis.stop();
    eventually("the subscription notices", || !node.cluster.bus.reliable()).await;
    assert_ne!(
        node.cluster.bus.epoch(),
        epoch,
        "subscribers must resynchronise"
    );
    // A command notices too, and answers locally: requests keep being served.
    let rate = Rate { per_minute: 2 };
    assert!(node.cluster.counter.check("t", "k", rate).await.is_ok());
    eventually("Redis counts as down", || {
        node.metric("cluster_redis_up").ends_with(" 0")
    })
    .await;
    assert!(node.cluster.counter.check("t", "k2", rate).await.is_ok());
    assert!(node.cluster.counter.check("t", "k2", rate).await.is_ok());
    assert!(
        node.cluster.counter.check("t", "k2", rate).await.is_err(),
        "the local counter limits"
    );
    // Single-use ids fall back to the database: still single use.
    let until = palisade_store::now_ms() + 60_000;
    assert!(
        node.cluster
            .replay
            .first_use("dpop", "x", until)
            .await
            .unwrap()
    );
    assert!(
        !node
            .cluster
            .replay
            .first_use("dpop", "x", until)
            .await
            .unwrap()
    );
    // Published messages still reach this node's subscribers.
    node.cluster.bus.publish("keys", &b"rotated"[..]).await;
    let mut saw = false;
    while let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(1), sub.recv()).await {
        if d == Delivery::Message(bytes::Bytes::from_static(b"rotated")) {
            saw = true;
            break;
        }
    }
    assert!(saw, "local delivery while Redis is down");

    redis.resume();
    node.joined().await;
    assert!(
        node.cluster.counter.check("t", "fresh", rate).await.is_ok(),
        "counting in Redis again"
    );
}
