//! ACME renewal (TLS-3) against Pebble: when it falls due (the window the CA suggests through
//! ACME Renewal Information, else half the lifetime of a short-lived certificate), what the new
//! order names (`replaces`), what happens when a CA fails or forgets the account (the next CA,
//! bound to its external account; a new account), and a node stopped while it holds the lease
//! (replaced, its late result refused by the fencing token).

use crate::common::pebble::*;
use crate::common::*;
use std::time::Duration;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn acme_table(directory: &str, more: &str) -> String {
    format!(
        "{{directory = \"{directory}\", identifiers = [\"{NAME}\"], challenge = \"http-01\", check_seconds = 1{more}}}"
    )
}

/// The CA suggests a window for the certificate in service: the node chooses a time inside it
/// (shown by `certs status`) and does not renew before; the CA moves the window into the past
/// (as for a revocation): the node renews within seconds, the new order names the certificate
/// it replaces by its ARI identifier, and a connection opened before keeps answering.
#[tokio::test]
async fn the_ari_window_decides_the_renewal_and_the_order_names_what_it_replaces() {
    let pebble = Pebble::start().await;
    let window = (now() + 600, now() + 900);
    let front = AriFront::start(&pebble, window).await;
    let server = pebble.node(&acme_table(&front.directory, "")).await;
    first_issued(&server).await;
    let root = pebble.root().await;
    let first = served_leaf(&server, &root).await;
    let id = ari_identifier(&first);
    let status = eventually(Duration::from_secs(30), "the ARI window asked", || {
        let (server, id) = (&server, &id);
        async move {
            let status = certs(server, "status");
            (status["certificate"]["renewal"]["ari"]["certificate"] == id.as_str())
                .then_some(status)
        }
    })
    .await;
    let certificate = &status["certificate"];
    let ari = &certificate["renewal"]["ari"];
    assert_eq!(ari["window_start"], window.0);
    assert_eq!(ari["window_end"], window.1);
    assert_eq!(ari["explanation"], "https://ca.test/why");
    let selected = ari["selected_at"].as_i64().unwrap();
    assert!((window.0..=window.1).contains(&selected), "{ari}");
    assert_eq!(certificate["renew_at"], selected, "ARI, not half the hour");
    assert_eq!(certificate["directory"], front.directory.as_str());
    assert!(front.asked().contains(&id));
    let orders = front.orders();
    assert_eq!(orders.len(), 1);
    assert!(orders[0].get("replaces").is_none(), "{}", orders[0]);

    let mut held = keep_alive(&server, &root).await;
    assert_eq!(status_on(&mut held).await, "HTTP/1.1 200 OK");
    front.suggest(&id, (now() - 120, now() - 60));
    let second = renewal(&server, &root, &first).await;
    let orders = front.orders();
    assert_eq!(orders.len(), 2, "one order for the renewal");
    assert_eq!(orders[1]["replaces"], id.as_str(), "{}", orders[1]);
    assert_eq!(
        status_on(&mut held).await,
        "HTTP/1.1 200 OK",
        "the connection outlived the renewal"
    );
    // The new certificate is asked about in turn, gets the window in the future, and waits.
    let next = ari_identifier(&second);
    assert_ne!(next, id);
    let status = eventually(
        Duration::from_secs(30),
        "the new certificate's window",
        || {
            let (server, next) = (&server, &next);
            async move {
                let status = certs(server, "status");
                (status["certificate"]["renewal"]["ari"]["certificate"] == next.as_str())
                    .then_some(status)
            }
        },
    )
    .await;
    let selected = status["certificate"]["renewal"]["ari"]["selected_at"]
        .as_i64()
        .unwrap();
    assert!((window.0..=window.1).contains(&selected), "{status}");
    assert_eq!(front.orders().len(), 2, "not renewed again");
    let events = server.events().await;
    assert!(
        events
            .iter()
            .filter(
                |(action, outcome, _)| action == "tls.certificate.issued" && outcome == "success"
            )
            .count()
            >= 2
    );
}

/// A CA without ARI: a 40-second certificate is renewed by itself once half its lifetime has
/// passed, not before.
#[tokio::test]
async fn a_short_lived_certificate_renews_by_itself_at_half_its_lifetime() {
    let pebble = Pebble::start_with(Setup {
        validity: Some(40),
        ..Setup::default()
    })
    .await;
    let server = pebble.node(&acme_table(&pebble.directory, "")).await;
    first_issued(&server).await;
    let root = pebble.root().await;
    let first = served_leaf(&server, &root).await;
    let (not_before, not_after) = (
        first.validity().not_before.timestamp(),
        first.validity().not_after.timestamp(),
    );
    let due = not_before + (not_after - not_before) / 2;
    let status = certs(&server, "status");
    assert_eq!(status["certificate"]["renew_at"], due);
    assert!(
        status["certificate"]["renewal"]["ari"]["window_start"].is_null(),
        "Pebble has no ARI"
    );
    let second = renewal(&server, &root, &first).await;
    assert!(
        second.validity().not_before.timestamp() >= due,
        "renewed at {} before it fell due at {due}",
        second.validity().not_before.timestamp()
    );
    assert_eq!(orders(&server.metrics().await), 2);
}

/// The CA goes away: the operator's renewal fails and is retried on a schedule that doubles
/// (a minute, two, four — less up to a fifth of jitter), each failure counted, logged and
/// audited while the certificate in service stays; the node's clock is moved past each retry
/// time rather than waited for. The CA comes back: the next retry succeeds and the failures are
/// cleared.
#[tokio::test]
async fn an_unavailable_ca_is_retried_with_back_off_until_it_returns() {
    let mut pebble = Pebble::start().await;
    let clock = Clock::new();
    let server =
        Server::start_with(clock.on(pebble.options(&acme_table(&pebble.directory, "")))).await;
    first_issued(&server).await;
    let root = pebble.root().await;
    let first = served_leaf(&server, &root).await;

    pebble.stop();
    certs(&server, "renew");
    let mut ahead = 0;
    for failures in 1..=3 {
        let renewal = eventually(Duration::from_secs(60), "the failure recorded", || {
            let server = &server;
            async move {
                let status = certs(server, "status");
                let renewal = status["certificate"]["renewal"].clone();
                (renewal["failures"] == failures).then_some(renewal)
            }
        })
        .await;
        let wait = renewal["next_attempt_at"].as_i64().unwrap() - (now() + ahead);
        let full = 60 << (failures - 1);
        assert!(
            (full * 4 / 5 - 2..=full).contains(&wait),
            "failure {failures}: the next attempt in {wait} s"
        );
        assert_eq!(
            served_leaf(&server, &root).await.raw_serial_as_string(),
            first.raw_serial_as_string(),
            "the certificate in service stays"
        );
        assert!(
            server
                .metrics()
                .await
                .contains(&format!("palisade_acme_failures_total {failures}"))
        );
        if failures == 3 {
            pebble.restart().await;
        }
        ahead += wait + 2;
        clock
            .advance(&server, Duration::from_secs(ahead as u64))
            .await;
    }
    let root = pebble.root().await;
    eventually(
        Duration::from_secs(60),
        "a certificate of the returned CA",
        || {
            let (server, root) = (&server, &root);
            async move { chained_leaf(server, root).await }
        },
    )
    .await;
    let renewal = &certs(&server, "status")["certificate"]["renewal"];
    assert_eq!(renewal["failures"], 0, "{renewal}");
    assert!(renewal["last_error"].is_null(), "{renewal}");
    let logged = server
        .logs()
        .lines()
        .filter(|l| l.contains("ACME order failed; the certificate in service stays"))
        .count();
    assert_eq!(logged, 3);
    let audited = server
        .events()
        .await
        .iter()
        .filter(|(a, o, _)| a == "tls.certificate.renewal_failed" && o == "failure")
        .count();
    assert_eq!(audited, 3);
}

/// The first CA is down and the second requires an external account binding: the node gets its
/// certificate from the second, bound to the external account. That CA then forgets everything
/// (a restart): the node's next order meets `accountDoesNotExist`, makes a new account and
/// succeeds.
#[tokio::test]
async fn an_order_goes_to_the_next_ca_and_a_forgotten_account_is_replaced() {
    let mac_key = data_encoding::BASE64URL_NOPAD.encode(&palisade_crypto::random_bytes::<32>());
    let mut pebble = Pebble::start_with(Setup {
        eab: Some(("kid-1".into(), mac_key.clone())),
        ..Setup::default()
    })
    .await;
    let down = "https://127.0.0.1:1/dir";
    let issuers = format!(
        ", issuers = [{{directory = \"{}\", eab = {{kid = \"kid-1\", hmac_key = \"{mac_key}\"}}}}]",
        pebble.directory
    );
    let server = pebble.node(&acme_table(down, &issuers)).await;
    first_issued(&server).await;
    let root = pebble.root().await;
    let first = served_leaf(&server, &root).await;
    let logs = server.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("ACME order failed at this CA") && l.contains(down)),
        "the first CA was tried"
    );
    let status = certs(&server, "status");
    assert_eq!(status["issuers"][0], down);
    assert_eq!(status["issuers"][1], pebble.directory.as_str());
    assert_eq!(
        status["certificate"]["directory"],
        pebble.directory.as_str()
    );
    assert_eq!(status["certificate"]["renewal"]["failures"], 0);

    pebble.restart().await;
    let root = pebble.root().await;
    certs(&server, "renew");
    let second = eventually(
        Duration::from_secs(150),
        "a certificate of the restarted CA",
        || {
            let (server, root) = (&server, &root);
            async move { chained_leaf(server, root).await }
        },
    )
    .await;
    assert_ne!(second.raw_serial_as_string(), first.raw_serial_as_string());
    let logs = server.logs();
    assert!(logs.contains("the CA no longer knows the ACME account"));
    assert_eq!(
        logs.lines()
            .filter(|l| l.contains("ACME account created"))
            .count(),
        2
    );
    assert_eq!(
        certs(&server, "status")["certificate"]["renewal"]["failures"],
        0,
        "the renewal succeeded at its first attempt"
    );
    assert!(
        !logs.contains(&mac_key),
        "the EAB key stays out of the logs"
    );
}

/// Three nodes; the one holding the lease for a renewal is stopped (SIGSTOP) in the middle of
/// its order. Once its lease lapses another node orders and every running node serves the new
/// certificate; the stopped node, continued, finds its lease gone, stores nothing, records no
/// failure, and serves what the other node stored.
#[tokio::test]
async fn a_stopped_lease_holder_is_replaced_and_its_late_result_refused() {
    let pebble = Pebble::start().await;
    let gate = pebble.dir.path().join("gate");
    let holder = pebble.dir.path().join("holder");
    let acme = format!(
        "{{directory = \"{}\", identifiers = [\"{NAME}\"], challenge = \"dns-01\", check_seconds = 1, dns_hook = \"{}\"}}",
        pebble.directory,
        pebble.gated_dns_hook(&gate, &holder).display()
    );
    let deployment = pebble.deployment(3, &acme).await;
    let root = pebble.root().await;
    let all: Vec<&Server> = deployment.nodes.iter().collect();
    let first = all_serving(&all, &root, None).await;

    let made = std::process::Command::new("mkfifo")
        .arg(&gate)
        .status()
        .unwrap();
    assert!(made.success());
    certs(&deployment.nodes[0], "renew");
    let pid: i32 = eventually(Duration::from_secs(60), "a node ordering", || {
        let holder = &holder;
        async move { std::fs::read_to_string(holder).ok()?.trim().parse().ok() }
    })
    .await;
    let stopped = deployment
        .nodes
        .iter()
        .position(|n| n.pid() == pid)
        .expect("the hook runs under a node");
    deployment.nodes[stopped].signal("STOP");
    // Let the stopped node's hook finish (it publishes its record, which its node, stopped,
    // never tells the CA about) and let the others' run straight through.
    drop(std::fs::OpenOptions::new().write(true).open(&gate).unwrap());
    std::fs::remove_file(&gate).unwrap();
    let others: Vec<&Server> = deployment
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != stopped)
        .map(|(_, n)| n)
        .collect();
    let renewed = all_serving(&others, &root, Some(&first)).await;

    let late = &deployment.nodes[stopped];
    late.signal("CONT");
    eventually(Duration::from_secs(60), "the late node refused", || async {
        late.logs()
            .contains("the lease was lost while ordering; the certificate was not stored")
            .then_some(())
    })
    .await;
    assert_eq!(all_serving(&all, &root, None).await, renewed);
    assert_eq!(
        total_orders(&deployment.nodes).await,
        2,
        "the first certificate and the renewal"
    );
    assert!(
        late.metrics()
            .await
            .contains("palisade_acme_failures_total 0"),
        "the late node's lost lease is not a failed renewal"
    );
    let renewal = &certs(late, "status")["certificate"]["renewal"];
    assert_eq!(renewal["failures"], 0, "{renewal}");
    assert_eq!(renewal["renew_requested"], 0, "{renewal}");
}
