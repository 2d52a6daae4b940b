//! The HTTP surface (PLT-4..9): typed errors for any malformed input, trace context, security
//! headers, the HTTPS redirect, health, metrics, configuration checks and graceful shutdown.

use crate::common::*;
use std::time::Duration;

/// PLT-9: unknown routes and methods get typed JSON for API clients and a page for browsers,
/// both carrying the trace id; no internal detail leaks.
async fn errors_are_typed_and_carry_the_trace_id(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let mut a = server.agent();
    let r = a.get_json("/no/such/route").await;
    assert_eq!(r.status, 404);
    let body = r.json();
    assert_eq!(body["error"], "not_found");
    assert_eq!(
        body["trace_id"].as_str().unwrap(),
        r.headers["x-trace-id"].to_str().unwrap()
    );

    let r = a.get("/no/such/route").await;
    assert_eq!(r.status, 404);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(r.body.contains(r.headers["x-trace-id"].to_str().unwrap()));

    let client = server.http_client();
    let r = client
        .put(format!("{}/login", server.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "method_not_allowed");
}

/// PLT-5: a valid W3C traceparent is continued; the trace id reaches the response and the logs.
async fn trace_context_is_propagated(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let client = server.http_client();
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = client
        .get(format!("{}/healthz", server.base()))
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-trace-id"], trace);
    let parent = r.headers()["traceparent"].to_str().unwrap().to_owned();
    assert!(
        parent.starts_with(&format!("00-{trace}-")) && parent.ends_with("-01"),
        "{parent}"
    );
    assert!(
        !parent.contains("00f067aa0ba902b7"),
        "the server's span has its own id"
    );
    eventually(
        std::time::Duration::from_secs(10),
        "trace id in logs",
        || async { server.logs().contains(trace).then_some(()) },
    )
    .await;

    let r = client
        .get(format!("{}/healthz", server.base()))
        .header("traceparent", "garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["x-trace-id"].to_str().unwrap().len(),
        32,
        "a fresh trace starts"
    );
}

/// PLT-5: with a collector configured, each request's server span is exported over OTLP/HTTP
/// with the trace id the client sent and the client's span as parent.
#[tokio::test]
#[allow(clippy::disallowed_methods)] // the collector is not a Palisade route
async fn request_spans_are_exported_over_otlp() {
    // A stand-in collector: accepts OTLP/HTTP JSON posts and hands the bodies to the test.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    let collector = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(serde_json::from_slice(&body).expect("OTLP JSON"));
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, collector).await.unwrap() });

    let server = Server::start_with(Options::default().env(
        "PALISADE_TELEMETRY__OTLP_ENDPOINT",
        format!("http://{collector_addr}"),
    ))
    .await;
    let client = server.http_client();
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let r = client
        .get(format!("{}/healthz", server.base()))
        .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
        .send()
        .await
        .unwrap();
    let our_span = r.headers()["traceparent"]
        .to_str()
        .unwrap()
        .split('-')
        .nth(2)
        .unwrap()
        .to_owned();

    let span = loop {
        let batch = tokio::time::timeout(std::time::Duration::from_secs(20), rx.recv())
            .await
            .expect("a span export within 20 s")
            .unwrap();
        assert_eq!(
            batch["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
            "palisade"
        );
        let spans = batch["resourceSpans"][0]["scopeSpans"][0]["spans"]
            .as_array()
            .unwrap()
            .clone();
        if let Some(s) = spans.into_iter().find(|s| s["traceId"] == trace) {
            break s;
        }
    };
    assert_eq!(span["spanId"], our_span.as_str());
    assert_eq!(span["parentSpanId"], "b7ad6b7169203331");
    assert_eq!(span["name"], "GET /healthz");
    let start: u128 = span["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
    let end: u128 = span["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
    assert!(end >= start && start > 0);
}

/// PLT-8: security headers on every page, error pages included.
async fn pages_carry_security_headers(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let mut a = server.agent();
    let email = unique_email("headers");
    a.sign_up(&email, PASSWORD).await;
    a.log_in(&email, PASSWORD).await;
    for path in [
        "/login",
        "/signup",
        "/account",
        "/account/mfa/totp",
        "/no/such/page",
    ] {
        let r = a.get(path).await;
        let h = |name: &str| {
            r.headers
                .get(name)
                .unwrap_or_else(|| panic!("{path}: {name} missing"))
                .to_str()
                .unwrap()
                .to_owned()
        };
        let csp = h("content-security-policy");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{path}: {csp}"
        );
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"),
            "{path}: {csp}"
        );
        assert!(
            h("strict-transport-security").contains("max-age=63072000"),
            "{path}"
        );
        assert_eq!(h("x-content-type-options"), "nosniff");
        assert_eq!(h("x-frame-options"), "DENY");
        assert_eq!(h("referrer-policy"), "same-origin");
        assert!(h("permissions-policy").contains("camera=()"));
        assert!(!r.body.contains("<script>"), "{path}: no inline script");
        assert!(!r.body.contains(" style="), "{path}: no inline style");
    }
}

/// PLT-2: plain HTTP only redirects to HTTPS, and never to a host an attacker shaped.
async fn plain_http_redirects_to_https(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .get(format!("http://{}/login?x=1", server.http))
        .send()
        .await
        .unwrap();
    let public = format!("https://localhost:{}", server.https.port());
    assert_eq!(r.status(), 308);
    assert_eq!(
        r.headers()["location"],
        format!("{public}/login?x=1").as_str()
    );
    // The Host header names nothing: the redirect goes to the public URL whatever it says.
    for host in ["evil.example", "evil.example/path@x", "127.0.0.1"] {
        let r = client
            .get(format!("http://{}/account", server.http))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 308, "{host}");
        assert_eq!(
            r.headers()["location"],
            format!("{public}/account").as_str(),
            "{host}"
        );
    }
}

/// PLT-5, PLT-6, TLS-4: health on both listeners, metrics on the admin listener only.
async fn health_and_metrics(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let mut a = server.agent();
    let r = a.get_json("/healthz").await;
    assert_eq!((r.status, r.json()["status"].clone()), (200, "ok".into()));
    let r = a.get_json("/readyz").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["checks"]["database"], "ok");
    assert_eq!(r.json()["checks"]["certificate"], "ok");
    assert_eq!(r.json()["checks"]["bus"], "ok");
    assert_eq!(
        a.get_json("/metrics").await.status,
        404,
        "metrics are not public"
    );

    let metrics = server.metrics().await;
    assert!(
        metrics.contains(
            "palisade_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"
        ),
        "{metrics}"
    );
    let pem = std::fs::read(server.data_dir().join("tls/dev-cert.pem")).unwrap();
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(&pem)
        .map(|d: rustls_pki_types::CertificateDer| d.to_vec())
        .unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let expected = format!(
        "palisade_tls_certificate_not_after_seconds {}",
        cert.validity().not_after.timestamp()
    );
    assert!(metrics.contains(&expected), "{metrics}");
    let r = reqwest::get(format!("http://{}/readyz", server.admin))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// PLT-7: SIGTERM with a connection open: the server drains and exits 0.
async fn sigterm_drains_and_exits_zero(backend: Backend) {
    // A drain limit far beyond the harness's 30 s stop deadline: if an idle connection held
    // shutdown up, the stop would fail rather than be cut short by the limit.
    let server = Server::start_with(
        Options::on(backend).env("PALISADE_SERVER__DRAIN_TIMEOUT_SECONDS", "600"),
    )
    .await;
    let mut a = server.agent();
    assert_eq!(a.get_json("/healthz").await.status, 200);
    let logs = server.logs_handle();
    let status = server.stop().await;
    assert!(status.success(), "exit status {status:?}");
    let logs = logs.lock().unwrap().join("\n");
    assert!(logs.contains("all connections drained"), "{logs}");
    assert!(logs.contains("palisade stopped"));
}

/// PLT-7: SIGTERM while a request is half sent: new connections are refused at once, the
/// request in flight completes (a token issued), its audit event is stored, and the server
/// exits 0.
async fn sigterm_completes_the_request_in_flight(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let service = server.register_client(&[
        "--name",
        "in flight",
        "--grant",
        "client_credentials",
        "--scope",
        "social:read",
    ]);
    let body = encode_form(&[("grant_type", "client_credentials")]);
    let basic = data_encoding::BASE64.encode(
        format!(
            "{}:{}",
            service["client_id"].as_str().unwrap(),
            service["client_secret"].as_str().unwrap()
        )
        .as_bytes(),
    );
    // The server has the request (its handler waits for the rest of the body) before the
    // signal: an idle connection would rightly be closed instead.
    let authorization = format!("Basic {basic}");
    let held = server
        .request_in_flight(
            "POST /oauth/token",
            &[
                ("authorization", &authorization),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            &body,
        )
        .await;
    server.signal("TERM");
    eventually(
        Duration::from_secs(10),
        "new connections refused",
        || async {
            tokio::net::TcpStream::connect(server.https)
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;
    let answer = held.finish().await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (_, json) = answer.split_once("\r\n\r\n").unwrap();
    let tokens: serde_json::Value = serde_json::from_str(json).unwrap();
    assert!(tokens["access_token"].is_string(), "{tokens}");

    // Audited before it was answered, and the log stays whole through the shutdown.
    let db = server.db().await;
    let issued: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM security_events WHERE action = 'oauth.token.issued' AND client = $1",
    )
    .bind(service["client_id"].as_str().unwrap())
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(issued, 1, "the request's audit event is in the log");
    let logs = server.logs_handle();
    let status = server.exited().await;
    assert!(status.success(), "exit status {status:?}");
    assert!(logs.lock().unwrap().join("\n").contains("palisade stopped"));
}

/// PLT-4: `config check` validates, masks secrets and names the offending key.
#[test]
fn config_check_masks_secrets_and_names_bad_keys() {
    let dir = tempfile::tempdir().unwrap();
    let run = |env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(binary());
        cmd.args(["config", "check"])
            .current_dir(dir.path())
            .env_clear();
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let out = run(&[
        (
            "PALISADE_DATABASE__URL",
            "postgres://app:hunter2secret@db.internal/palisade",
        ),
        (
            "PALISADE_SECRETS__SEALING_KEY",
            "c2VhbGluZy1rZXktc2VjcmV0LXZhbHVlLTMyYnl0ZXM=",
        ),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("postgres://app:[redacted]@db.internal/palisade"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("hunter2secret") && !stdout.contains("c2VhbGluZy1rZXkt"),
        "{stdout}"
    );
    assert!(stdout.contains("https_listen = \"127.0.0.1:8443\""));

    let out = run(&[("PALISADE_SERVER__HTTPS_LISTEN", "not-an-address")]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.to_lowercase().contains("server.https_listen"),
        "{stderr}"
    );

    let out = run(&[("PALISADE_SERVER__HTTPS_LISTN", "127.0.0.1:1")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("https_listn"));

    std::fs::write(
        dir.path().join("bad.toml"),
        "[identity]\nargon2_memory_kib = 16\n",
    )
    .unwrap();
    let mut cmd = std::process::Command::new(binary());
    let out = cmd
        .args(["--config", "bad.toml", "config", "check"])
        .current_dir(dir.path())
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("identity.argon2_memory_kib"));
}

on_both_backends!(
    errors_are_typed_and_carry_the_trace_id,
    trace_context_is_propagated,
    pages_carry_security_headers,
    plain_http_redirects_to_https,
    health_and_metrics,
    sigterm_drains_and_exits_zero,
    sigterm_completes_the_request_in_flight,
);
