//! The audit chain behind the identity flows (AUD-1, AUD-3, AUD-4, AUD-6): every security event
//! becomes a Merkle leaf, the server publishes a signed checkpoint of the whole log, and the
//! leaves carry pseudonyms, not account ids or addresses.

use crate::common::*;
use data_encoding::BASE64;
use palisade_tlog::merkle::{leaf_hash, root, verify_consistency, verify_inclusion};
use palisade_tlog::note::{Checkpoint, Verifier, open};

/// The events of a first start: two signing keys (active and next), the development CA and its
/// certificate.
const FIRST_START_EVENTS: u64 = 4;

fn base64_list(v: &serde_json::Value) -> Vec<Vec<u8>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| BASE64.decode(h.as_str().unwrap().as_bytes()).unwrap())
        .collect()
}

async fn identity_events_are_in_the_signed_log(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let mut a = server.agent();
    let email = unique_email("audited");
    a.sign_up(&email, PASSWORD).await;
    a.log_in(&email, PASSWORD).await;
    a.log_in(&email, "a wrong password").await;

    let verifier = log_verifier(&server);
    // The log was born with a signed checkpoint of its empty tree, as transparency logs are.
    let db = server.db().await;
    let (empty,): (String,) = sqlx::query_as("SELECT note FROM audit_checkpoints WHERE size = 0")
        .fetch_one(db.pool())
        .await
        .expect("a checkpoint of size 0");
    let (text, _) = open(&empty, std::slice::from_ref(&verifier)).expect("signed by the log key");
    assert_eq!(Checkpoint::parse(text).unwrap().size, 0);

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
    // AUD-1: the first start made the signing keys and the development certificate.
    let mut first_start = actions[..4].to_vec();
    first_start.sort();
    assert_eq!(
        first_start,
        [
            "keys.signing.created",
            "keys.signing.created",
            "tls.ca.created",
            "tls.certificate.issued"
        ]
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
        let proof = base64_list(&p["proof"]);
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
    let proof = base64_list(&r.json()["proof"]);
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

fn verify(server: &Server) -> (bool, serde_json::Value) {
    verify_with(server, &[])
}

/// Runs `palisade audit verify` beside the server with extra arguments.
fn verify_with(server: &Server, args: &[&str]) -> (bool, serde_json::Value) {
    let out = server.cli(&[&["audit", "verify"], args].concat());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|_| {
        panic!(
            "no JSON report: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    // Progress is reported as it goes, the last report at the end of a log that verified.
    let progress: Vec<(u64, u64)> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "audit entries verified")
        .map(|l| {
            let n = |k: &str| l["fields"][k].as_u64().unwrap();
            (n("done"), n("total"))
        })
        .collect();
    if let (true, Some(entries)) = (out.status.success(), report["entries"].as_u64()) {
        assert_eq!(progress.last(), Some(&(entries, entries)), "{progress:?}");
    }
    (out.status.success(), report)
}

fn first_problem(report: &serde_json::Value) -> (Option<u64>, String) {
    let p = &report["problems"][0];
    (
        p["index"].as_u64(),
        p["what"].as_str().unwrap_or_default().to_owned(),
    )
}

/// AUD-5: `palisade audit verify` passes on an honest log and fails — naming the index where it
/// can — when an entry is changed, deleted, swapped, truncated and re-appended, or a checkpoint
/// is forged.
async fn audit_verify_detects_tampering(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let mut a = server.agent();
    let email = unique_email("tamper");
    a.sign_up(&email, PASSWORD).await;
    for i in 0..5 {
        a.log_in(&email, &format!("wrong password {i}")).await;
    }
    let (ok, report) = verify(&server);
    assert!(ok, "{report}");
    assert_eq!(report["entries"], FIRST_START_EVENTS + 6);
    assert!(report["checkpoints"].as_u64().unwrap() >= 1);

    let db = server.db().await;
    let leaves: Vec<(i64, String, String, i64)> =
        sqlx::query_as("SELECT idx, leaf_hash, entry, created_at FROM audit_leaves ORDER BY idx")
            .fetch_all(db.pool())
            .await
            .unwrap();
    let checkpoints: Vec<(i64, String, i64)> =
        sqlx::query_as("SELECT size, note, created_at FROM audit_checkpoints")
            .fetch_all(db.pool())
            .await
            .unwrap();
    let restore = || async {
        sqlx::query("DELETE FROM audit_leaves")
            .execute(db.pool())
            .await
            .unwrap();
        sqlx::query("DELETE FROM audit_checkpoints")
            .execute(db.pool())
            .await
            .unwrap();
        for (idx, hash, entry, at) in &leaves {
            sqlx::query("INSERT INTO audit_leaves (idx, leaf_hash, entry, created_at) VALUES ($1, $2, $3, $4)")
                .bind(idx).bind(hash).bind(entry).bind(at)
                .execute(db.pool()).await.unwrap();
        }
        for (size, note, at) in &checkpoints {
            sqlx::query(
                "INSERT INTO audit_checkpoints (size, note, created_at) VALUES ($1, $2, $3)",
            )
            .bind(size)
            .bind(note)
            .bind(at)
            .execute(db.pool())
            .await
            .unwrap();
        }
    };
    let exec = |sql: String| {
        let db = db.clone();
        async move {
            sqlx::query(&sql).execute(db.pool()).await.unwrap();
        }
    };

    // Indices below are of the test's own events, after the first start's.
    let b = FIRST_START_EVENTS;
    // Changed entry: located exactly.
    exec(format!(
        "UPDATE audit_leaves SET entry = replace(entry, 'failure', 'success') WHERE idx = {}",
        b + 2
    ))
    .await;
    let (ok, report) = verify(&server);
    assert!(!ok);
    assert_eq!(
        first_problem(&report),
        (
            Some(b + 2),
            format!("entry {} does not match its recorded leaf hash", b + 2)
        )
    );
    restore().await;
    assert!(verify(&server).0, "restored");

    // Changed entry with a recomputed leaf hash: caught by the signed checkpoints.
    let forged = r#"{"action":"identity.login.succeeded"}"#;
    let forged_hash = data_encoding::HEXLOWER.encode(&leaf_hash(forged.as_bytes()));
    exec(format!(
        "UPDATE audit_leaves SET entry = '{forged}', leaf_hash = '{forged_hash}' WHERE idx = {}",
        b + 3
    ))
    .await;
    let (ok, report) = verify(&server);
    assert!(!ok);
    assert!(
        first_problem(&report).1.starts_with("checkpoint at size"),
        "{report}"
    );
    restore().await;

    // Deleted entry.
    exec(format!("DELETE FROM audit_leaves WHERE idx = {}", b + 3)).await;
    let (ok, report) = verify(&server);
    assert!(!ok);
    assert_eq!(first_problem(&report).0, Some(b + 3));
    restore().await;

    // Two entries swapped, hashes and all.
    exec(format!(
        "UPDATE audit_leaves SET idx = -1 WHERE idx = {}",
        b + 1
    ))
    .await;
    exec(format!(
        "UPDATE audit_leaves SET idx = {} WHERE idx = {}",
        b + 1,
        b + 2
    ))
    .await;
    exec(format!(
        "UPDATE audit_leaves SET idx = {} WHERE idx = -1",
        b + 2
    ))
    .await;
    let (ok, report) = verify(&server);
    assert!(!ok, "{report}");
    // A checkpoint was published after every entry here, so the change is located exactly.
    assert_eq!(first_problem(&report).0, Some(b + 1), "{report}");
    restore().await;

    // Truncated and re-appended with a different history.
    exec(format!("DELETE FROM audit_leaves WHERE idx >= {}", b + 4)).await;
    exec(format!("INSERT INTO audit_leaves (idx, leaf_hash, entry, created_at) VALUES ({}, '{forged_hash}', '{forged}', 0)", b + 4)).await;
    let (ok, report) = verify(&server);
    assert!(!ok, "{report}");
    assert_eq!(first_problem(&report).0, Some(b + 4), "{report}");
    restore().await;

    // The searchable row changed but not the leaf: verify names the row.
    let (idx, outcome): (i64, String) =
        sqlx::query_as("SELECT log_index, outcome FROM security_events WHERE log_index = $1")
            .bind(b as i64 + 2)
            .fetch_one(db.pool())
            .await
            .unwrap();
    exec(format!(
        "UPDATE security_events SET outcome = 'success' WHERE log_index = {}",
        b + 2
    ))
    .await;
    let (ok, report) = verify(&server);
    assert!(!ok, "{report}");
    assert_eq!(first_problem(&report).0, Some(b + 2), "{report}");
    sqlx::query("UPDATE security_events SET outcome = $1 WHERE log_index = $2")
        .bind(outcome)
        .bind(idx)
        .execute(db.pool())
        .await
        .unwrap();
    assert!(verify(&server).0, "row restored");

    // A forged checkpoint.
    exec("UPDATE audit_checkpoints SET note = replace(note, 'localhost/palisade/audit', 'localhost/palisade/audit2')".into()).await;
    let (ok, report) = verify(&server);
    assert!(!ok);
    assert!(
        first_problem(&report).1.contains("not validly signed"),
        "{report}"
    );
    restore().await;
    assert!(verify(&server).0);
}

on_both_backends!(audit_verify_detects_tampering);

/// AUD-3: kill -9 during a burst of audited requests. Every request that got its answer had
/// its event durable first: after the crash each answered trace id is in the log, and the log
/// verifies.
async fn acknowledged_events_survive_kill_9(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let mut setup = server.agent();
    setup.get("/login").await;
    let csrf = setup.csrf();
    let client = server.http_client();
    let base = server.base();
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let (client, base, csrf, acknowledged) = (
            client.clone(),
            base.clone(),
            csrf.clone(),
            acknowledged.clone(),
        );
        tasks.spawn(async move {
            for i in 0..1_000 {
                let body = encode_form(&[
                    ("csrf", &csrf),
                    ("email", &format!("w{worker}-{i}@example.com")),
                    ("password", "wrong password!"),
                ]);
                let sent = client
                    .post(format!("{base}/login"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("cookie", format!("__Host-palisade-csrf={csrf}"))
                    .body(body)
                    .send()
                    .await;
                match sent {
                    // 401: the failed login was recorded; 429: the throttled attempt was.
                    Ok(r) if r.status() == 401 || r.status() == 429 => acknowledged
                        .lock()
                        .unwrap()
                        .push(r.headers()["x-trace-id"].to_str().unwrap().to_owned()),
                    _ => return,
                }
            }
        });
    }
    eventually(
        std::time::Duration::from_secs(60),
        "a few dozen acknowledged events",
        || async { (acknowledged.lock().unwrap().len() >= 40).then_some(()) },
    )
    .await;
    server.signal("KILL");
    while tasks.join_next().await.is_some() {}

    let acknowledged = acknowledged.lock().unwrap().clone();
    let db = server.db().await;
    let entries: Vec<(String,)> = sqlx::query_as("SELECT entry FROM audit_leaves")
        .fetch_all(db.pool())
        .await
        .unwrap();
    let logged: std::collections::HashSet<String> = entries
        .iter()
        .filter_map(|(e,)| {
            serde_json::from_str::<serde_json::Value>(e).ok()?["trace_id"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    for trace in &acknowledged {
        assert!(
            logged.contains(trace),
            "acknowledged event {trace} lost in the crash"
        );
    }
    let (ok, report) = verify(&server);
    assert!(ok, "{report}");
}

on_both_backends!(acknowledged_events_survive_kill_9);

/// AUD-1 for other services: `POST /audit/events` needs a configured API key, validates the
/// event, and answers once it is durable with an inclusion proof against a signed checkpoint.
async fn services_ingest_events_with_proofs(backend: Backend) {
    let key = "ingest-key-for-the-test-suite-0123456789";
    let server = Server::start_with(
        Options::on(backend).accepting_key("PALISADE_AUDIT__INGEST_KEY_SHA256", key),
    )
    .await;
    let client = server.http_client();
    let post = |auth: Option<&str>, body: serde_json::Value| {
        let mut req = client
            .post(format!("{}/audit/events", server.base()))
            .json(&body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };
    let event = serde_json::json!({
        "action": "payments.refund.issued", "outcome": "success",
        "actor": "service-account-7", "details": { "amount": 12 },
    });

    for auth in [
        None,
        Some("Bearer wrong-key"),
        Some(&format!("Basic {key}") as &str),
    ] {
        let r = post(auth, event.clone()).await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
    }
    for bad in [
        serde_json::json!({ "action": "Bad Action", "outcome": "success" }),
        serde_json::json!({ "action": "ok.action", "outcome": "maybe" }),
        serde_json::json!({ "action": "ok.action", "outcome": "success", "unknown": 1 }),
        serde_json::json!({ "outcome": "success" }),
        serde_json::json!({ "action": "ok.action", "outcome": "success", "tenant": "Has Spaces" }),
    ] {
        let r = post(Some(&format!("Bearer {key}")), bad.clone())
            .await
            .unwrap();
        assert!(
            r.status() == 400 || r.status() == 422,
            "{bad}: {}",
            r.status()
        );
    }

    let r = post(Some(&format!("Bearer {key}")), event).await.unwrap();
    assert_eq!(r.status(), 201);
    let body: serde_json::Value = r.json().await.unwrap();
    let verifier = log_verifier(&server);
    let (text, _) = open(
        body["checkpoint"].as_str().unwrap(),
        std::slice::from_ref(&verifier),
    )
    .unwrap();
    let checkpoint = Checkpoint::parse(text).unwrap();
    assert_eq!(checkpoint.size, body["tree_size"].as_u64().unwrap());
    let index = body["index"].as_u64().unwrap();
    let db = server.db().await;
    let (entry,): (String,) = sqlx::query_as("SELECT entry FROM audit_leaves WHERE idx = $1")
        .bind(index as i64)
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert!(
        entry.contains("payments.refund.issued") && !entry.contains("service-account-7"),
        "{entry}"
    );
    // The writer is part of the leaf: a service's event names its key, Palisade's own say so.
    let leaf: serde_json::Value = serde_json::from_str(&entry).unwrap();
    assert!(
        leaf["origin"].as_str().unwrap().starts_with("key:"),
        "{entry}"
    );
    server
        .agent()
        .sign_up(&unique_email("ingest"), PASSWORD)
        .await;
    let (own,): (String,) =
        sqlx::query_as("SELECT entry FROM audit_leaves WHERE entry LIKE '%\"identity.%'")
            .fetch_one(db.pool())
            .await
            .unwrap();
    let own: serde_json::Value = serde_json::from_str(&own).unwrap();
    assert_eq!(own["origin"], "palisade", "{own}");

    // No service can write an event that passes for Palisade's own (a forged sign-in).
    let size: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_leaves")
        .fetch_one(db.pool())
        .await
        .unwrap();
    let forged = serde_json::json!({ "action": "identity.login.succeeded", "outcome": "success" });
    let r = post(Some(&format!("Bearer {key}")), forged).await.unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(text.contains("Palisade's own family `identity.`"), "{text}");
    let after: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_leaves")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(after, size, "nothing appended");
    let proof = base64_list(&body["inclusion_proof"]);
    verify_inclusion(
        index,
        checkpoint.size,
        &leaf_hash(entry.as_bytes()),
        &proof,
        &checkpoint.root,
    )
    .unwrap();

    // In bulk: all validated first (nothing appended when one is wrong), then appended in
    // order, each with its own proof against the one checkpoint of the answer.
    let bearer = format!("Bearer {key}");
    let (size_before,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_leaves")
        .fetch_one(db.pool())
        .await
        .unwrap();
    let size_before = size_before as u64;
    let mixed = serde_json::json!([
        { "action": "payments.refund.issued", "outcome": "success" },
        { "action": "Bad Action", "outcome": "success" },
    ]);
    let r = post(Some(&bearer), mixed).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("events[1]"));
    let r = post(Some(&bearer), serde_json::json!([])).await.unwrap();
    assert_eq!(r.status(), 400);
    let bulk: Vec<serde_json::Value> = (0..3)
        .map(|i| serde_json::json!({ "action": "payments.refund.issued", "outcome": "success", "details": { "n": i } }))
        .collect();
    let r = post(Some(&bearer), serde_json::Value::Array(bulk))
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: serde_json::Value = r.json().await.unwrap();
    let (text, _) = open(
        body["checkpoint"].as_str().unwrap(),
        std::slice::from_ref(&verifier),
    )
    .unwrap();
    let checkpoint = Checkpoint::parse(text).unwrap();
    let indexes: Vec<u64> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(
        indexes,
        [size_before, size_before + 1, size_before + 2],
        "nothing from the refused batch"
    );
    for e in body["events"].as_array().unwrap() {
        let index = e["index"].as_u64().unwrap();
        let (entry,): (String,) = sqlx::query_as("SELECT entry FROM audit_leaves WHERE idx = $1")
            .bind(index as i64)
            .fetch_one(db.pool())
            .await
            .unwrap();
        verify_inclusion(
            index,
            checkpoint.size,
            &leaf_hash(entry.as_bytes()),
            &base64_list(&e["inclusion_proof"]),
            &checkpoint.root,
        )
        .unwrap();
    }

    assert!(verify(&server).0);
    server.logs_flushed().await;
    assert!(
        !server.logs().contains(key),
        "the API key never reaches the logs"
    );
}

on_both_backends!(services_ingest_events_with_proofs);

fn log_verifier(server: &Server) -> Verifier {
    let logs = server.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("audit log checkpoint key"))
        .expect("vkey logged");
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    Verifier::from_vkey(v["fields"]["vkey"].as_str().unwrap()).unwrap()
}

/// AUD-4: a witness cosigns the log's checkpoints, the log serves the cosigned checkpoint and
/// `audit verify` checks the cosignatures; a second instance of the log holding less history
/// under the same key (a rollback to an old backup) is refused by the witness.
async fn witnesses_cosign_and_refuse_a_rolled_back_log(backend: Backend) {
    use palisade_tlog::note::{KeyKind, Signer};
    let origin = "localhost/palisade/audit";
    let log_skey = Signer::generate(origin).unwrap();
    let log_vkey = Signer::from_skey(&log_skey).unwrap().vkey();
    let witness_skey = Signer::generate_kind("witness.test", KeyKind::Cosignature).unwrap();
    let witness_vkey = Signer::from_skey(&witness_skey).unwrap().vkey();
    let witness = WitnessProcess::start("witness.test", &witness_skey, origin, &log_vkey);
    let options = Options::on(backend)
        .env("PALISADE_AUDIT__SIGNING_KEY", log_skey.as_str())
        .env(
            "PALISADE_AUDIT__WITNESSES",
            format!("[{{url=\"{}\", vkey=\"{witness_vkey}\"}}]", witness.url),
        );
    let server = Server::start_with(options.clone()).await;
    let mut a = server.agent();
    let email = unique_email("witnessed");
    a.sign_up(&email, PASSWORD).await;
    for _ in 0..3 {
        a.log_in(&email, "a wrong password").await;
    }
    let size = server.events().await.len() as u64;
    let trusted = [
        Verifier::from_vkey(&log_vkey).unwrap(),
        Verifier::from_vkey(&witness_vkey).unwrap(),
    ];
    let cosigned = eventually(
        std::time::Duration::from_secs(30),
        "a checkpoint cosigned at the full size",
        || {
            let mut a = server.agent();
            let trusted = trusted.clone();
            async move {
                let r = a.get_json("/audit/checkpoint/cosigned").await;
                if r.status != 200 {
                    return None;
                }
                let (text, names) = open(&r.body, &trusted).unwrap();
                (Checkpoint::parse(text).unwrap().size == size).then_some(names)
            }
        },
    )
    .await;
    assert_eq!(cosigned, ["localhost/palisade/audit", "witness.test"]);
    let (ok, report) = verify_with(
        &server,
        &["--vkey", &log_vkey, "--witness-vkey", &witness_vkey],
    );
    assert!(ok, "{report}");
    assert!(
        report["cosigned_checkpoints"].as_u64().unwrap() >= 1,
        "{report}"
    );

    // The same log key on a store restored from an older, shorter history.
    let rolled_back = Server::start_with(options).await;
    let mut b = rolled_back.agent();
    b.sign_up(&unique_email("restored"), PASSWORD).await;
    assert!(rolled_back.events().await.len() < size as usize);
    eventually(
        std::time::Duration::from_secs(30),
        "the witness's refusal",
        || async {
            rolled_back
                .logs()
                .contains("the log was rolled back")
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        b.get_json("/audit/checkpoint/cosigned").await.status,
        404,
        "nothing cosigned for the rolled-back log"
    );
    assert!(witness.logs().contains("checkpoint refused"));
}

on_both_backends!(witnesses_cosign_and_refuse_a_rolled_back_log);

/// AUD-3, AUD-7: proofs by leaf hash, C2SP tlog-proof bundles, and the admin API's search and
/// entry reads (which need the admin key).
async fn proofs_bundles_and_admin_search(backend: Backend) {
    let key = "admin-key-for-the-test-suite-0123456789";
    let server = Server::start_with(
        Options::on(backend).accepting_key("PALISADE_ADMIN__API_KEY_SHA256", key),
    )
    .await;
    let mut a = server.agent();
    let email = unique_email("searched");
    a.sign_up(&email, PASSWORD).await;
    let failed = a.log_in(&email, "a wrong password").await;
    let failed_trace = failed.headers["x-trace-id"].to_str().unwrap().to_owned();
    a.log_in(&email, PASSWORD).await;
    let verifier = log_verifier(&server);
    let client = server.http_client();
    let admin_get = |path: String, auth: Option<&str>| {
        let mut req = client.get(format!("{}{path}", server.base()));
        if let Some(a) = auth {
            req = req.header("authorization", format!("Bearer {a}"));
        }
        req.send()
    };

    // Search is for holders of the admin key only.
    for auth in [None, Some("wrong-key")] {
        let r = admin_get("/admin/audit/events".into(), auth).await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
    }
    let user_id = server.events().await.into_iter().find_map(|e| e.2).unwrap();
    let search = |query: String| {
        let admin_get = &admin_get;
        async move {
            let r = admin_get(format!("/admin/audit/events?{query}"), Some(key))
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{query}");
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    let by_actor = search(format!("actor={user_id}")).await;
    let actions: Vec<&str> = by_actor["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "identity.login.succeeded",
            "identity.login.failed",
            "identity.sign_up"
        ]
    );
    let by_trace = search(format!("trace_id={failed_trace}")).await;
    let hit = &by_trace["events"][0];
    assert_eq!(by_trace["events"].as_array().unwrap().len(), 1);
    assert_eq!(hit["action"], "identity.login.failed");
    let family = search("action=identity.login.*&limit=1".into()).await;
    assert_eq!(family["events"].as_array().unwrap().len(), 1);
    assert!(family["next"].is_i64(), "a full page has a next cursor");
    let now = palisade_store::now_ms();
    let window = search(format!("from={}&to={}", now - 600_000, now + 600_000)).await;
    let in_window = window["events"].as_array().unwrap().len() as u64;
    assert_eq!(in_window, FIRST_START_EVENTS + 3);
    assert_eq!(
        search(format!("from={}", now + 600_000)).await["events"],
        serde_json::json!([])
    );
    let bad = admin_get("/admin/audit/events?colour=red".into(), Some(key))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // The hit's log entry, read back with its payload opened.
    let index = hit["log_index"].as_u64().unwrap();
    let entry: serde_json::Value = admin_get(format!("/admin/audit/entries/{index}"), Some(key))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(entry["entry"]["action"], "identity.login.failed");
    assert_eq!(entry["payload"]["state"], "readable");
    assert_eq!(entry["payload"]["value"]["ip"], "127.0.0.0/24");
    let leaf = BASE64
        .decode(entry["leaf_hash"].as_str().unwrap().as_bytes())
        .unwrap();

    // Inclusion by leaf hash names the same index and verifies against the checkpoint.
    let r = a
        .get_json(&format!(
            "/audit/proof/inclusion?hash={}",
            entry["leaf_hash"]
                .as_str()
                .unwrap()
                .replace('+', "%2B")
                .replace('/', "%2F")
                .replace('=', "%3D")
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let proof = r.json();
    assert_eq!(proof["index"].as_u64(), Some(index));
    let checkpoint = a.get_json("/audit/checkpoint").await;
    let (text, _) = open(&checkpoint.body, std::slice::from_ref(&verifier)).unwrap();
    let cp = Checkpoint::parse(text).unwrap();
    verify_inclusion(
        index,
        cp.size,
        &leaf,
        &base64_list(&proof["proof"]),
        &cp.root,
    )
    .unwrap();
    let unknown = a
        .get_json("/audit/proof/inclusion?hash=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA%3D")
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(
        a.get_json("/audit/proof/inclusion?index=0&hash=x")
            .await
            .status,
        400
    );

    // The tlog-proof bundle checks offline with the entry bytes and the log key alone.
    let bundle = a.get(&format!("/audit/proof/bundle?index={index}")).await;
    assert_eq!(bundle.status, 200);
    let bundle = palisade_tlog::bundle::ProofBundle::parse(&bundle.body).unwrap();
    let db = server.db().await;
    let (stored,): (String,) = sqlx::query_as("SELECT entry FROM audit_leaves WHERE idx = $1")
        .bind(index as i64)
        .fetch_one(db.pool())
        .await
        .unwrap();
    bundle
        .verify(stored.as_bytes(), std::slice::from_ref(&verifier))
        .unwrap();
    assert!(
        bundle
            .verify(b"another entry", std::slice::from_ref(&verifier))
            .is_err()
    );
}

on_both_backends!(proofs_bundles_and_admin_search);

/// AUD-6: destroying a subject's key leaves its entries unreadable while `audit verify` still
/// passes — from the database and from an exported directory — reporting them as erased.
async fn erased_subjects_verify_as_payload_erased(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let mut a = server.agent();
    let email = unique_email("erased");
    a.sign_up(&email, PASSWORD).await;
    a.log_in(&email, PASSWORD).await;
    let mut b = server.agent();
    b.sign_up(&unique_email("kept"), PASSWORD).await;
    let events = server.events().await;
    let user_id = events.iter().find_map(|e| e.2.clone()).unwrap();
    let erased_count = events
        .iter()
        .filter(|e| e.2.as_deref() == Some(&user_id))
        .count() as u64;
    let (ok, before) = verify(&server);
    assert!(ok, "{before}");
    assert_eq!(before["payload_erased"], 0);

    // Crypto-shredding through `Auditor::erase_subject`, as the administrator's command runs it.
    let out = server.cli(&["admin", "erase-audit-trail", "--email", &email]);
    assert!(out.status.success(), "{}", said(&out));
    let erased: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&erased["user_id"], &erased["keys_destroyed"]),
        (&user_id.clone().into(), &1.into())
    );
    let db = server.db().await;
    let (named,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM security_events WHERE actor = $1 OR target = $1")
            .bind(&user_id)
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(named, 0, "the searchable rows forget the account");
    let (ip, device): (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT ip, device FROM security_events WHERE action = 'identity.login.succeeded' ORDER BY seq LIMIT 1",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!((ip, device), (None, None), "nor its address and device");
    // The erasure is itself in the log, naming no account (the command's entry is integrated
    // by the server).
    eventually(
        std::time::Duration::from_secs(30),
        "the erasure logged",
        || async {
            let events = server.events().await;
            events
                .iter()
                .any(|e| e.0 == "audit.subject.erased" && e.2.is_none())
                .then_some(())
        },
    )
    .await;

    let (ok, after) = verify(&server);
    assert!(ok, "{after}");
    assert_eq!(after["payload_erased"].as_u64(), Some(erased_count));
    assert_eq!(
        after["entries"].as_u64(),
        before["entries"].as_u64().map(|n| n + 1),
        "nothing removed, the erasure's own entry added"
    );

    let export = server.dir.path().join("export");
    let out = server.cli(&["audit", "export", export.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ok, offline) = verify_with(&server, &["--dir", export.to_str().unwrap()]);
    assert!(ok, "{offline}");
    assert_eq!(offline["payload_erased"], after["payload_erased"]);
    assert_eq!(offline["root"], after["root"]);
}

on_both_backends!(erased_subjects_verify_as_payload_erased);
