use super::*;
use palisade_cluster::Cluster;
use palisade_jobs::Jobs;
use palisade_tlog::merkle::{self, verify_consistency, verify_inclusion};
use palisade_tlog::note::{Checkpoint, Verifier, open};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

async fn group_commit_proofs_and_reopen(db: Db) {
    let skey = Signer::generate("audit.test/log").unwrap();
    let first = CancellationToken::new();
    let log = AuditLog::open_single_node(
        db.clone(),
        Signer::from_skey(&skey).unwrap(),
        "audit.test/log".into(),
        first.clone(),
    )
    .await
    .unwrap();
    let verifier = Verifier::from_vkey(&Signer::from_skey(&skey).unwrap().vkey()).unwrap();
    assert_eq!(log.size(), 0);
    // A fresh log publishes the checkpoint of its empty tree at once.
    let (empty, size) = log.latest().expect("a checkpoint from the start");
    assert_eq!(size, 0);
    let (text, _) = open(&empty, std::slice::from_ref(&verifier)).unwrap();
    assert_eq!(Checkpoint::parse(text).unwrap().root, merkle::empty_root());

    // Concurrent appenders: every entry is acknowledged once with a distinct index.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..300 {
        let log = log.clone();
        tasks.spawn(async move { (i, log.append(format!("{{\"event\":{i}}}")).await.unwrap()) });
    }
    let mut indexes = Vec::new();
    while let Some(r) = tasks.join_next().await {
        indexes.push(r.unwrap().1);
    }
    indexes.sort_unstable();
    assert_eq!(indexes, (0..300).collect::<Vec<u64>>());
    assert_eq!(log.size(), 300);

    // The checkpoint is signed, names the full tree, and every proof checks against it.
    let note = log.checkpoint().unwrap();
    let (text, _) = open(&note, std::slice::from_ref(&verifier)).unwrap();
    let cp = Checkpoint::parse(text).unwrap();
    assert_eq!((cp.origin.as_str(), cp.size), ("audit.test/log", 300));
    for index in [0, 1, 150, 299] {
        let proof = log.inclusion_proof(index, 300).unwrap();
        verify_inclusion(index, 300, &log.leaf_hash(index).unwrap(), &proof, &cp.root).unwrap();
    }

    // Reopening from the store rebuilds the same tree; later growth stays consistent.
    first.cancel();
    drop(log);
    let log = AuditLog::open_single_node(
        db.clone(),
        Signer::from_skey(&skey).unwrap(),
        "audit.test/log".into(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(log.size(), 300);
    assert_eq!(log.checkpoint().unwrap(), note);
    log.append("later".into()).await.unwrap();
    let note2 = log.checkpoint().unwrap();
    let (text2, _) = open(&note2, std::slice::from_ref(&verifier)).unwrap();
    let cp2 = Checkpoint::parse(text2).unwrap();
    assert_eq!(cp2.size, 301);
    let proof = log.consistency_proof(300, 301).unwrap();
    verify_consistency(300, 301, &cp.root, &cp2.root, &proof).unwrap();

    // A missing row is detected when the log is opened.
    sqlx::query("DELETE FROM audit_leaves WHERE idx = 42")
        .execute(db.pool())
        .await
        .unwrap();
    let err = AuditLog::open(
        db.clone(),
        Signer::from_skey(&skey).unwrap(),
        "audit.test/log".into(),
        palisade_cluster::Bus::in_process(),
    )
    .await
    .err()
    .expect("a gap is refused");
    assert!(err.to_string().contains("leaf 42 is missing"), "{err}");
}
palisade_store::both_backends!(group_commit_proofs_and_reopen);

/// Two nodes of one deployment: A sequences, B appends through it; when A stops, B takes
/// over from where A left, and A's token can extend the log no more.
async fn a_second_node_appends_through_the_sequencer_and_takes_over(db: Db) {
    let skey = Signer::generate("audit.test/log").unwrap();
    let cluster = Cluster::in_process(db.clone());
    let node = |stop: CancellationToken| {
        let (db, cluster, skey) = (db.clone(), cluster.clone(), skey.clone());
        async move {
            let signer = Signer::from_skey(&skey).unwrap();
            let log = AuditLog::open(
                db.clone(),
                signer,
                "audit.test/log".into(),
                cluster.bus.clone(),
            )
            .await
            .unwrap();
            // Each node has its own lease holder id.
            let lease = Cluster::in_process(db.clone())
                .lease("audit.sequencer", Duration::from_millis(600));
            let jobs = Jobs::with_timing(
                db,
                cluster.bus.clone(),
                Duration::from_secs(5),
                Duration::from_millis(20),
            );
            tokio::spawn(jobs.clone().run(stop.clone(), Duration::from_secs(1)));
            tokio::spawn(log.clone().run(lease, jobs, stop));
            log
        }
    };
    let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
    let a = node(stop_a.clone()).await;
    a.0.role
        .subscribe()
        .wait_for(|r| matches!(r, Role::Sequencer(_)))
        .await
        .unwrap();
    let b = node(stop_b.clone()).await;
    let first = a.append("{\"on\":\"a\"}".into()).await.unwrap();
    // B queues its entries for A; it learns their indexes once A integrated them.
    let from_b = b
        .submit(vec![("{\"on\":\"b\"}".into(), None)], true)
        .await
        .unwrap();
    let from_b = from_b[0].unwrap();
    assert_eq!((first, from_b), (0, 1));
    assert_eq!(b.size(), 2, "B followed what A committed");
    let Role::Sequencer(old) = *a.0.role.borrow() else {
        panic!("A sequences")
    };

    stop_a.cancel();
    b.0.role
        .subscribe()
        .wait_for(|r| matches!(r, Role::Sequencer(_)))
        .await
        .unwrap();
    let Role::Sequencer(new) = *b.0.role.borrow() else {
        panic!("B sequences")
    };
    assert!(new > old, "the fencing token grew");
    assert_eq!(
        b.append("{\"on\":\"b\",\"now\":\"sequencer\"}".into())
            .await
            .unwrap(),
        2
    );
    // A's token is fenced off: a commit under it changes nothing.
    let stale =
        sqlx::query("UPDATE audit_head SET size = 99 WHERE id = 1 AND size = 3 AND token = $1")
            .bind(old as i64)
            .execute(db.pool())
            .await
            .unwrap();
    assert_eq!(stale.rows_affected(), 0);
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(DISTINCT idx) FROM audit_leaves")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(count, 3);
    stop_b.cancel();
}
palisade_store::both_backends!(a_second_node_appends_through_the_sequencer_and_takes_over);
