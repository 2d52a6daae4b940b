//! The audit chain behind the identity flows (AUD-1, AUD-3, AUD-4, AUD-6): every security event
//! becomes a Merkle leaf, the server publishes a signed checkpoint of the whole log, and the
//! leaves carry pseudonyms, not account ids or addresses.

mod common;

use common::*;
use data_encoding::BASE64;
use palisade_audit::merkle::{leaf_hash, root, verify_consistency, verify_inclusion};
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

    // Proofs from the public API verify against the signed checkpoint.
    let size = checkpoint.size;
    for index in 0..size {
        let r = a
            .get_json(&format!("/audit/proof/inclusion?index={index}&size={size}"))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let p = r.json();
        let proof: Vec<Vec<u8>> = p["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| BASE64.decode(h.as_str().unwrap().as_bytes()).unwrap())
            .collect();
        assert_eq!(
            BASE64
                .decode(p["leaf_hash"].as_str().unwrap().as_bytes())
                .unwrap(),
            hashes[index as usize]
        );
        verify_inclusion(
            index,
            size,
            &hashes[index as usize],
            &proof,
            &checkpoint.root,
        )
        .unwrap();
        // The same proof does not vouch for another leaf.
        let other = ((index + 1) % size) as usize;
        assert!(verify_inclusion(index, size, &hashes[other], &proof, &checkpoint.root).is_err());
    }
    let r = a
        .get_json(&format!("/audit/proof/consistency?from=1&to={size}"))
        .await;
    let proof: Vec<Vec<u8>> = r.json()["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| BASE64.decode(h.as_str().unwrap().as_bytes()).unwrap())
        .collect();
    verify_consistency(1, size, &hashes[0], &checkpoint.root, &proof).unwrap();
    for bad in [
        format!("/audit/proof/inclusion?index={size}&size={size}"),
        format!("/audit/proof/inclusion?index=0&size={}", size + 5),
        "/audit/proof/inclusion?index=-1".to_string(),
        "/audit/proof/inclusion?index=abc".to_string(),
        format!("/audit/proof/consistency?from=0&to={size}"),
        format!("/audit/proof/consistency?from={size}&to=1"),
    ] {
        let r = a.get_json(&bad).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.json()["error"].is_string());
    }

    // A tampered leaf no longer matches the signed root.
    let mut tampered = hashes.clone();
    tampered[1] = leaf_hash(b"{\"action\":\"identity.login.succeeded\"}");
    assert_ne!(root(&tampered), checkpoint.root);
}

on_both_backends!(identity_events_are_in_the_signed_log);
