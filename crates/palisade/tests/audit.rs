//! The audit chain behind the identity flows (AUD-1, AUD-3, AUD-4, AUD-6): every security event
//! becomes a Merkle leaf, the server publishes a signed checkpoint of the whole log, and the
//! leaves carry pseudonyms, not account ids or addresses.

mod common;

use common::*;
use palisade_audit::merkle::{leaf_hash, root};
use palisade_audit::note::{Checkpoint, Verifier, open};

async fn identity_events_are_in_the_signed_log(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let mut a = server.agent();
    assert_eq!(
        a.get_json("/audit/checkpoint").await.status,
        404,
        "nothing logged yet"
    );
    let email = unique_email("audited");
    a.sign_up(&email, PASSWORD).await;
    a.log_in(&email, PASSWORD).await;
    a.log_in(&email, "a wrong password").await;

    let logs = server.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("audit log checkpoint key"))
        .expect("vkey logged");
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let verifier = Verifier::from_vkey(v["fields"]["vkey"].as_str().unwrap()).unwrap();

    let r = a.get_json("/audit/checkpoint").await;
    assert_eq!(r.status, 200);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let (text, signers) =
        open(&r.body, std::slice::from_ref(&verifier)).expect("signed by the log key");
    assert_eq!(signers, vec!["localhost/palisade/audit".to_string()]);
    let checkpoint = Checkpoint::parse(text).unwrap();

    // Exactly one leaf per recorded event, and the checkpoint commits to all of them.
    let events = server.events().await;
    assert_eq!(checkpoint.size, events.len() as u64);
    let db = server.db().await;
    let leaves: Vec<(String,)> = sqlx::query_as("SELECT entry FROM audit_leaves ORDER BY idx")
        .fetch_all(db.pool())
        .await
        .unwrap();
    let hashes: Vec<_> = leaves.iter().map(|(e,)| leaf_hash(e.as_bytes())).collect();
    assert_eq!(root(&hashes), checkpoint.root);
    let actions: Vec<String> = leaves
        .iter()
        .map(|(e,)| {
            serde_json::from_str::<serde_json::Value>(e).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let recorded: Vec<String> = events.iter().map(|e| e.0.clone()).collect();
    assert_eq!(
        actions, recorded,
        "the log holds the same events in the same order"
    );

    // No personal data in leaves: no address, no account id, no IP.
    let user_id = events.iter().find_map(|e| e.2.clone()).unwrap();
    for (entry,) in &leaves {
        assert!(
            !entry.contains(&email) && !entry.contains(&user_id) && !entry.contains("127.0.0"),
            "{entry}"
        );
    }

    // A tampered leaf no longer matches the signed root.
    let mut tampered = hashes.clone();
    tampered[1] = leaf_hash(b"{\"action\":\"identity.login.succeeded\"}");
    assert_ne!(root(&tampered), checkpoint.root);
}

on_both_backends!(identity_events_are_in_the_signed_log);
