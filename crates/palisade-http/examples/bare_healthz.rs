//! Diagnostic for bench/tls_vs_nginx.sh: the same TLS listener and `/healthz` handler as the
//! server, without the middleware stack, so the stack's share of the per-request cost can be
//! measured. Usage: `bare_healthz CERT_PEM KEY_PEM` — prints the bound address.

use palisade_http::server::{ConnectionLimits, serve_tls};
use palisade_tls::{CertMetrics, SwappableResolver};
use std::sync::Arc;

#[tokio::main]
async fn main() {
    palisade_tls::install_crypto_provider();
    let args: Vec<String> = std::env::args().collect();
    let loaded =
        palisade_tls::load_pair(args[1].as_ref(), args[2].as_ref()).expect("certificate pair");
    let resolver = Arc::new(SwappableResolver::new(loaded, CertMetrics::default()));
    let tls = Arc::new(palisade_tls::ServerConfigs::new(resolver).expect("server config"));
    let (router, _) = palisade_http::Routes::new()
        .route(palisade_http::Access::Public, "GET /healthz", || async {
            axum::Json(serde_json::json!({ "status": "ok" }))
        })
        .finish();
    // STACK=1 adds the production middleware stack, for a side-by-side measurement.
    let router = if std::env::var_os("STACK").is_some() {
        let mut registry = prometheus_client::registry::Registry::default();
        let observer = palisade_http::stack::Observer {
            metrics: palisade_http::metrics::HttpMetrics::register(&mut registry),
            otlp: None,
        };
        palisade_http::stack::wrap(
            router,
            palisade_http::Guards::new(),
            observer,
            palisade_http::stack::Limits::default(),
        )
    } else {
        router
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("{}", listener.local_addr().unwrap());
    serve_tls(
        listener,
        tls,
        router,
        ConnectionLimits::default(),
        Default::default(),
        tokio_util::sync::CancellationToken::new(),
    )
    .await;
}
