//! ACME (TLS-3) against Pebble and pebble-challtestsrv (Debian's, on loopback): the node
//! creates its account, proves the name by http-01 (answered by its plain-HTTP listener from
//! shared storage), tls-alpn-01 (answered by its HTTPS listener) or dns-01 (through the
//! configured hook writing to challtestsrv), stores the
//! certificate sealed in the database and serves it on the next handshake; a restart serves the
//! stored certificate without ordering again. Renewal by ARI, by the certificate's age, at
//! another CA and by another node: `acme_renewal`.

use crate::common::pebble::*;
use crate::common::*;

async fn obtains_and_serves(challenge: &str) -> (Server, Pebble, Vec<u8>) {
    let pebble = Pebble::start().await;
    let hook = pebble.dns_hook();
    let acme = format!(
        "{{directory = \"{}\", identifiers = [\"{NAME}\"], challenge = \"{challenge}\", dns_hook = \"{}\", contact = [\"mailto:ops@acme.test\"]}}",
        pebble.directory,
        hook.display()
    );
    let mut server = pebble.node(&acme).await;
    first_issued(&server).await;
    let root = pebble.root().await;
    let leaf = served_leaf(&server, &root).await;
    assert_eq!(names(&leaf), [format!("DNSName({NAME})")]);
    let lifetime = leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp();
    assert!(lifetime <= 3600, "Pebble's configured lifetime: {lifetime}");
    assert!(
        server
            .metrics()
            .await
            .contains("palisade_acme_orders_total 1"),
        "one order"
    );
    // The plain listener answers only pending challenges, and still redirects the rest.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let unknown = plain
        .get(format!(
            "http://{}/.well-known/acme-challenge/not-a-token",
            server.http
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let other = plain
        .get(format!("http://{}/account", server.http))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 308);
    // The key is sealed at rest; no answer is left behind.
    let db = server.db().await;
    let (sealed,): (String,) = sqlx::query_as("SELECT sealed_key FROM tls_certificates")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert!(!sealed.contains("PRIVATE KEY"));
    let (left,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM acme_challenges")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(left, 0);
    db.close().await;

    // After a restart the stored certificate is served, and nothing is ordered.
    let serial = leaf.raw_serial_as_string();
    server.restart().await;
    let again = served_leaf(&server, &root).await;
    assert_eq!(again.raw_serial_as_string(), serial);
    assert_eq!(issued(&server), 0);
    assert!(
        server
            .metrics()
            .await
            .contains("palisade_acme_orders_total 0")
    );
    let events = server.events().await;
    assert!(
        events
            .iter()
            .any(|(action, outcome, _)| action == "tls.certificate.issued" && outcome == "success")
    );
    (server, pebble, root)
}

/// http-01, then `palisade certs`: the status and schedule, and a renewal asked for by the
/// operator (served while a connection opened before it keeps working).
#[tokio::test]
async fn http_01_obtains_serves_and_renews_a_certificate() {
    let (server, _pebble, root) = obtains_and_serves("http-01").await;
    let before = served_leaf(&server, &root).await;
    let status = certs(&server, "status");
    let certificate = &status["certificate"];
    assert_eq!(certificate["name"], NAME);
    assert_eq!(certificate["serial"], before.raw_serial_as_string());
    let (not_before, not_after) = (
        certificate["not_before"].as_i64().unwrap(),
        certificate["not_after"].as_i64().unwrap(),
    );
    // A one-hour certificate is renewed at half its lifetime.
    assert_eq!(
        certificate["renew_at"],
        not_before + (not_after - not_before) / 2
    );
    assert_eq!(certificate["renewal"]["failures"], 0);
    assert_eq!(certs(&server, "list").as_array().unwrap().len(), 1);

    let mut held = keep_alive(&server, &root).await;
    assert_eq!(status_on(&mut held).await, "HTTP/1.1 200 OK");

    certs(&server, "renew");
    renewal(&server, &root, &before).await;
    assert_eq!(
        status_on(&mut held).await,
        "HTTP/1.1 200 OK",
        "the connection outlived the renewal"
    );
    assert_eq!(
        certs(&server, "status")["certificate"]["renewal"]["renew_requested"],
        0
    );
}

#[tokio::test]
async fn dns_01_obtains_and_serves_a_certificate() {
    obtains_and_serves("dns-01").await;
}

/// tls-alpn-01; then sslyze finds the node serving the Pebble-issued certificate compliant
/// with Mozilla's "intermediate" configuration, its chain valid against Pebble's root.
#[tokio::test]
async fn tls_alpn_01_obtains_and_serves_a_certificate() {
    let (server, _pebble, root) = obtains_and_serves("tls-alpn-01").await;
    let ca = server.dir.path().join("pebble-root.pem");
    std::fs::write(&ca, &root).unwrap();
    assert_mozilla_intermediate(
        &format!("{NAME}:{}{{127.0.0.1}}", server.https.port()),
        &ca,
        &server.dir.path().join("sslyze.json"),
    );
}

/// The DNS names of a certificate's leaf, as x509-parser shows them.
fn names(leaf: &x509_parser::prelude::X509Certificate<'_>) -> Vec<String> {
    leaf.subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|n| n.to_string())
        .collect()
}

/// Two certificates, one with a wildcard (dns-01): each is served to the handshakes naming one
/// of its names, the node's own certificate to the rest; `certs renew NAME` renews only the
/// certificate naming NAME.
#[tokio::test]
async fn each_certificate_is_served_for_its_names() {
    let pebble = Pebble::start().await;
    let acme = format!(
        "{{directory = \"{}\", identifiers = [\"{NAME}\"], more_certificates = [[\"other.test\", \"*.other.test\"]], challenge = \"dns-01\", dns_hook = \"{}\", check_seconds = 1}}",
        pebble.directory,
        pebble.dns_hook().display()
    );
    let server = pebble.node(&acme).await;
    eventually(
        std::time::Duration::from_secs(150),
        "both certificates",
        || {
            let server = &server;
            async move { (issued(server) == 2).then_some(()) }
        },
    )
    .await;
    let root = pebble.root().await;
    let first = leaf_for(&server, &root, NAME).await.unwrap();
    assert_eq!(names(&first), [format!("DNSName({NAME})")]);
    let other = leaf_for(&server, &root, "www.other.test").await.unwrap();
    assert_eq!(
        names(&other),
        ["DNSName(other.test)", "DNSName(*.other.test)"]
    );
    let bare = leaf_for(&server, &root, "other.test").await.unwrap();
    assert_eq!(bare.raw_serial_as_string(), other.raw_serial_as_string());
    // Any other name gets the node's own (development) certificate.
    assert!(leaf_for(&server, &root, "localhost").await.is_none());
    let own = connect(
        server.https,
        http1_client(&[&server.data_dir().join("tls/dev-ca.pem")]),
        "localhost",
    )
    .await
    .expect("the development certificate for localhost");
    drop(own);
    assert_eq!(certs(&server, "list").as_array().unwrap().len(), 2);
    let status = server.cli(&["certs", "status", "www.other.test"]);
    assert!(!status.status.success(), "a name no certificate lists");

    let out = server.cli(&["certs", "renew", "other.test"]);
    assert!(out.status.success());
    let renewed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        renewed["names"],
        serde_json::json!(["*.other.test,other.test"])
    );
    eventually(std::time::Duration::from_secs(150), "the renewal", || {
        let (server, root, other) = (&server, &root, other.raw_serial_as_string());
        async move {
            let leaf = leaf_for(server, root, "www.other.test").await?;
            (leaf.raw_serial_as_string() != other).then_some(())
        }
    })
    .await;
    assert_eq!(
        leaf_for(&server, &root, NAME)
            .await
            .unwrap()
            .raw_serial_as_string(),
        first.raw_serial_as_string(),
        "the other certificate stays"
    );
}

/// Three nodes on one database (SCL-1): one order between them, and every node serves its
/// certificate within seconds; an operator's renewal is again one order, served by all.
#[tokio::test]
async fn three_nodes_order_once_and_all_serve_the_certificate() {
    let pebble = Pebble::start().await;
    let acme = format!(
        "{{directory = \"{}\", identifiers = [\"{NAME}\"], challenge = \"dns-01\", dns_hook = \"{}\"}}",
        pebble.directory,
        pebble.dns_hook().display()
    );
    let deployment = pebble.deployment(3, &acme).await;
    let root = pebble.root().await;
    let nodes: Vec<&Server> = deployment.nodes.iter().collect();
    let first = all_serving(&nodes, &root, None).await;
    assert_eq!(
        total_orders(&deployment.nodes).await,
        1,
        "one order between three nodes"
    );

    let out = deployment.nodes[2].cli(&["certs", "renew"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    all_serving(&nodes, &root, Some(&first)).await;
    assert_eq!(
        total_orders(&deployment.nodes).await,
        2,
        "one order for the renewal"
    );
}
