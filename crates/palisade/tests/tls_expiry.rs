//! Expiry monitoring (TLS-4), over the real server: the served certificate and a watched
//! loopback endpoint, both close to expiry, become metrics, log lines and Standard Webhooks
//! messages — one per certificate and threshold, whatever the rounds and restarts — and the
//! served certificate's last days make `/readyz` degraded while the node keeps serving.

use crate::common::*;
use rcgen::{CertificateParams, KeyPair};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A self-signed certificate for localhost valid from yesterday for `days` more days.
fn expiring_in(days: i64) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(days) - time::Duration::hours(1);
    (params.self_signed(&key).unwrap(), key)
}

/// A TLS endpoint on loopback presenting `certificate`; it completes handshakes and nothing else.
async fn endpoint(certificate: &rcgen::Certificate, key: &KeyPair) -> SocketAddr {
    let key = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![certificate.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move { drop(acceptor.accept(tcp).await) });
        }
    });
    addr
}

type Received = Arc<Mutex<Vec<(http::HeaderMap, String)>>>;

/// A webhook receiver on loopback, answering 204 to whatever it is sent.
async fn receiver() -> (SocketAddr, Received) {
    let received: Received = Arc::default();
    let kept = received.clone();
    #[allow(clippy::disallowed_methods)] // a stand-in receiver, not Palisade's routes
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: http::HeaderMap, body: String| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push((headers, body));
                http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, received)
}

/// The `v1` signature of a message, computed here from the specification's definition.
fn expected_signature(id: &str, timestamp: &str, body: &str) -> String {
    let key = data_encoding::BASE64
        .decode(SECRET.trim_start_matches("whsec_").as_bytes())
        .unwrap();
    let mac = palisade_crypto::hmac_sha256(&key, format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", data_encoding::BASE64.encode(&mac))
}

fn runs(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("palisade_tls_monitor_runs_total "))
        .map_or(0, |v| v.trim().parse().unwrap())
}

async fn rounds(server: &Server, at_least: u64) {
    eventually(Duration::from_secs(20), "monitor rounds", || async move {
        (runs(&server.metrics().await) >= at_least).then_some(())
    })
    .await;
}

#[tokio::test]
async fn expiring_certificates_are_reported_once_per_threshold() {
    let (watched, watched_key) = expiring_in(2);
    let watched_addr = endpoint(&watched, &watched_key).await;
    let watched_label = format!("localhost:{}", watched_addr.port());
    let (hook, received) = receiver().await;

    let dir = tempfile::tempdir().unwrap();
    let (served, served_key) = expiring_in(5);
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, served.pem()).unwrap();
    std::fs::write(&key_file, served_key.serialize_pem()).unwrap();

    let mut server = Server::start_with(
        Options::default()
            .env("PALISADE_TLS__CERT_FILE", cert_file.to_str().unwrap())
            .env("PALISADE_TLS__KEY_FILE", key_file.to_str().unwrap())
            .env("PALISADE_TLS__MONITOR", format!("[\"{watched_label}\"]"))
            .env("PALISADE_TLS__MONITOR_INTERVAL_SECONDS", "1")
            .env(
                "PALISADE_TLS__EXPIRY_WEBHOOKS",
                format!("[{{url = \"http://{hook}/hook\", secret = \"{SECRET}\"}}]"),
            ),
    )
    .await;

    // Still serving, but within its last seven days: degraded, not unready.
    let (status, readiness) = server.readiness().await;
    assert_eq!(status, 200);
    assert_eq!(readiness["status"], "degraded", "{readiness}");
    assert_eq!(readiness["checks"]["certificate"], "expiring");

    eventually(Duration::from_secs(20), "two warnings", || {
        let received = received.clone();
        async move { (received.lock().unwrap().len() >= 2).then_some(()) }
    })
    .await;
    rounds(&server, 3).await;

    let messages = received.lock().unwrap().clone();
    assert_eq!(
        messages.len(),
        2,
        "one per certificate and threshold: {messages:?}"
    );
    let mut seen = std::collections::BTreeMap::new();
    for (headers, body) in &messages {
        let header = |name: &str| headers[name].to_str().unwrap().to_owned();
        let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
        assert_eq!(
            header("webhook-signature"),
            expected_signature(&id, &timestamp, body)
        );
        assert_eq!(header("content-type"), "application/json");
        let message: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(message["type"], "tls.certificate.expiring");
        let data = &message["data"];
        seen.insert(
            data["certificate"].as_str().unwrap().to_owned(),
            (
                data["threshold_days"].as_u64().unwrap(),
                data["days_left"].as_i64().unwrap(),
                data["fingerprint_sha256"].as_str().unwrap().to_owned(),
            ),
        );
    }
    let fingerprint = |c: &rcgen::Certificate| palisade_crypto::sha256_hex(c.der());
    assert_eq!(seen["served"], (7, 4, fingerprint(&served)));
    assert_eq!(seen[&watched_label], (3, 1, fingerprint(&watched)));

    let metrics = server.metrics().await;
    let not_after = x509_parser::parse_x509_certificate(watched.der())
        .unwrap()
        .1
        .validity()
        .not_after
        .timestamp();
    for line in [
        format!(
            "palisade_tls_monitored_not_after_seconds{{certificate=\"{watched_label}\"}} {not_after}"
        ),
        format!("palisade_tls_monitored_trusted{{certificate=\"{watched_label}\"}} 0"),
        format!("palisade_tls_expiry_warning_days{{certificate=\"{watched_label}\"}} 3"),
        "palisade_tls_expiry_warning_days{certificate=\"served\"} 7".to_owned(),
    ] {
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
    let logs = server.logs();
    assert!(
        logs.lines().any(|l| l.contains("certificate expires soon")
            && l.contains(&watched_label)
            && l.contains("\"threshold_days\":3")),
        "{logs}"
    );
    assert!(logs.contains("a watched endpoint's certificate is not trusted"));

    // Another start of the node raises nothing already raised.
    server.restart().await;
    rounds(&server, 3).await;
    assert_eq!(received.lock().unwrap().len(), 2);
}
