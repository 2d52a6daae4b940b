//! Listeners. The public one speaks HTTPS only (TLS-1): every connection is a rustls handshake
//! followed by HTTP/2 or HTTP/1.1. A plain-HTTP listener exists only to redirect to HTTPS, and
//! the admin listener serves metrics on loopback. All stop accepting on shutdown and drain what
//! is in flight (PLT-7).

use crate::client_ip::PeerAddr;
use crate::metrics::ReasonLabels;
use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Redirect, Response};
use http::{StatusCode, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use rustls::server::Acceptor;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::LazyConfigAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// `[server]` settings: the listeners and the limits every request is held to.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    pub https_listen: SocketAddr,
    /// Plain HTTP that only redirects to HTTPS; empty to disable.
    pub http_listen: Option<SocketAddr>,
    /// Metrics and health for operators; keep it on loopback or a private network.
    pub admin_listen: Option<SocketAddr>,
    pub max_connections: usize,
    pub body_limit_bytes: usize,
    pub request_timeout_seconds: u64,
    pub drain_timeout_seconds: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            https_listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            http_listen: Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
            admin_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9090))),
            max_connections: 10_000,
            body_limit_bytes: 64 * 1024,
            request_timeout_seconds: 30,
            drain_timeout_seconds: 20,
        }
    }
}

impl ServerSettings {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_connections == 0 || self.max_connections > 18_000 {
            return Err("server.max_connections must be between 1 and 18000 (the process may hold 20000 files)".into());
        }
        if self.body_limit_bytes < 1024 {
            return Err("server.body_limit_bytes must be at least 1024".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Open connections at most; further ones are closed at accept. Keeps the process well
    /// below its file-descriptor limit.
    pub max_connections: usize,
    pub handshake_timeout: Duration,
    pub header_read_timeout: Duration,
    /// How long shutdown waits for in-flight requests before giving up on them.
    pub drain_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(20),
        }
    }
}

/// Serves `router` over TLS on `listener` until `shutdown` is cancelled, then drains. On an
/// mTLS listener each request carries the client's `Arc<PeerCertificate>`.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<palisade_tls::ServerConfigs>,
    router: Router,
    limits: ConnectionLimits,
    failures: Family<ReasonLabels, Counter>,
    shutdown: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // One flat buffer per response: the TLS layer encrypts it as a single record instead of
        // one per header/body slice.
        .writev(false);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);

    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Usually EMFILE: back off briefly instead of spinning on the error.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!("connection limit reached; closing new connection");
            continue;
        };
        let tls = tls.clone();
        let failures = failures.clone();
        let router = router.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            let _ = tcp.set_nodelay(true);
            // `None`: an ACME tls-alpn-01 validation, answered by the handshake alone.
            let handshake = async {
                let start = LazyConfigAcceptor::new(Acceptor::default(), tcp).await?;
                let hello = start.client_hello();
                if let Some(name) = tls.validation_of(&hello) {
                    let config = tls.validation_config(&name).await.ok_or_else(|| {
                        std::io::Error::other("no tls-alpn-01 challenge for the name")
                    })?;
                    drop(start.into_stream(config).await?);
                    return Ok(None);
                }
                let config = tls.for_hello(&hello);
                start.into_stream(config).await.map(Some)
            };
            let failed = |reason: &str| {
                failures
                    .get_or_create(&ReasonLabels {
                        reason: reason.to_owned(),
                    })
                    .inc();
            };
            let stream = match tokio::time::timeout(limits.handshake_timeout, handshake).await {
                Ok(Ok(Some(stream))) => stream,
                Ok(Ok(None)) => return,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    failed(palisade_tls::failure_reason(&e));
                    return;
                }
                Err(_) => {
                    failed("timeout");
                    return;
                }
            };
            // On an mTLS listener, who the client certificate says the peer is, for every
            // request of the connection.
            let certificate = tls
                .peer(stream.get_ref().1.peer_certificates())
                .map(Arc::new);
            let service =
                hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(PeerAddr(peer));
                    if let Some(certificate) = &certificate {
                        req.extensions_mut().insert(certificate.clone());
                    }
                    router.clone().oneshot(req.map(axum::body::Body::new))
                });
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    drain(graceful, limits.drain_timeout).await;
}

async fn drain(graceful: GracefulShutdown, timeout: Duration) {
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(timeout) => tracing::warn!("drain timeout reached; closing remaining connections"),
    }
}

/// Serves a plain-HTTP router (the redirector or the admin listener) until shutdown.
pub async fn serve_plain(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    let app = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
    {
        tracing::error!(error = %e, "plain listener failed");
    }
}

/// A router that answers every plain-HTTP request with a permanent redirect to the same path
/// on the server's public HTTPS URL — never to a host the request named, so the redirect cannot
/// be pointed at a URL an attacker shaped.
pub fn redirect_to_https(public_url: &str) -> Router {
    let base = public_url.trim_end_matches('/').to_owned();
    #[allow(clippy::disallowed_methods)] // every path of the plain listener redirects
    Router::new().fallback(move |req: Request| {
        let base = base.clone();
        async move { redirect(req, &base) }
    })
}

fn redirect(req: Request, base: &str) -> Response {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    match format!("{base}{path}").parse::<Uri>() {
        Ok(uri) => Redirect::permanent(&uri.to_string()).into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "invalid path").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header;

    #[tokio::test]
    async fn plain_http_redirects_to_the_public_url_whatever_the_host_header() {
        let router = redirect_to_https("https://id.example:8443");
        let request = Request::builder()
            .uri("/account?x=1")
            .header(header::HOST, "evil.example")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(
            response.headers()[header::LOCATION],
            "https://id.example:8443/account?x=1"
        );
    }
}
