//! The audit log across nodes under failure (AUD-3, SCL-1, SCL-2): three nodes append
//! concurrently for 30 seconds while the sequencer is killed (SIGKILL) a third of the way in.
//! Afterwards the log verifies, its indexes run without a gap, and every event a node
//! acknowledged is in it exactly once.

use crate::common::nodes::Deployment;
use crate::common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY: &str = "ingest-key-of-the-failover-test-0123456789";
const APPENDERS_PER_NODE: usize = 4;
const RUN: Duration = Duration::from_secs(30);

/// Appends events through `node` until `until`; the trace ids of those it acknowledged.
async fn append(
    node: (reqwest::Client, String),
    tag: String,
    until: Instant,
    acknowledged: Arc<Mutex<BTreeSet<String>>>,
) {
    let (http, base) = node;
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let trace = format!("{tag}-{n}");
        let sent = http
            .post(format!("{base}/audit/events"))
            .bearer_auth(KEY)
            .json(&serde_json::json!({
                "action": "failover.test.appended", "outcome": "success", "trace_id": trace,
            }))
            .timeout(Duration::from_secs(40))
            .send()
            .await;
        match sent {
            Ok(r) if r.status() == 201 => {
                acknowledged.lock().unwrap().insert(trace);
            }
            // Not acknowledged: may or may not be in the log, never twice.
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                assert_eq!(status, 503, "come back later, never an error: {body}");
            }
            // The killed node.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test]
async fn the_log_survives_its_sequencer_being_killed_mid_append() {
    let digest = format!("[\"{}\"]", palisade_crypto::sha256_hex(KEY.as_bytes()));
    let d = Deployment::start(3, &[("PALISADE_AUDIT__INGEST_KEY_SHA256", &digest)]).await;
    let sequencer = eventually(Duration::from_secs(20), "a sequencer", || async {
        d.nodes
            .iter()
            .position(|n| n.logs().contains("sequencing the audit log"))
    })
    .await;

    let started = Instant::now();
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let mut appenders = tokio::task::JoinSet::new();
    for (i, node) in d.nodes.iter().enumerate() {
        for a in 0..APPENDERS_PER_NODE {
            appenders.spawn(append(
                (node.http_client(), node.base()),
                format!("n{i}-a{a}"),
                started + RUN,
                acknowledged.clone(),
            ));
        }
    }
    tokio::time::sleep_until((started + RUN / 3).into()).await;
    d.nodes[sequencer].signal("KILL");
    // Another node takes over.
    let survivors: Vec<&Server> = (0..3)
        .filter(|i| *i != sequencer)
        .map(|i| &d.nodes[i])
        .collect();
    eventually(Duration::from_secs(20), "a new sequencer", || async {
        survivors
            .iter()
            .any(|n| n.logs().matches("sequencing the audit log").count() > 0)
            .then_some(())
    })
    .await;
    while let Some(done) = appenders.join_next().await {
        done.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 100,
        "only {} events acknowledged",
        acknowledged.len()
    );

    // What was queued when the appenders stopped is integrated by the sequencer.
    let db = survivors[0].db().await;
    eventually(
        Duration::from_secs(60),
        "queued appends integrated",
        || async {
            let (pending,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM jobs WHERE kind = 'audit.append' AND state <> 'done'",
            )
            .fetch_one(db.pool())
            .await
            .unwrap();
            (pending == 0).then_some(())
        },
    )
    .await;

    let (count, next): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COALESCE(MAX(idx) + 1, 0) FROM audit_leaves")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(count, next, "indexes run without a gap");
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT trace_id, COUNT(*) FROM security_events \
         WHERE action = 'failover.test.appended' GROUP BY trace_id",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    let logged: BTreeMap<String, i64> = rows.into_iter().collect();
    let twice: Vec<_> = logged.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "events logged twice: {twice:?}");
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|t| !logged.contains_key(*t))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );

    let out = survivors[0].cli(&["audit", "verify"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "{report}");
    assert_eq!(report["entries"].as_i64(), Some(count));
}
