//! `palisade serve`: wires the stores, the TLS certificate, the routers and the listeners, then
//! runs until SIGTERM or SIGINT and shuts down gracefully (PLT-7).

use crate::config::Config;
use anyhow::{Context, Result};
use axum::Router;
use palisade_audit::Auditor;
use palisade_audit::ingest::Ingest;
use palisade_audit::log::AuditLog;
use palisade_http::health::{self, Readiness};
use palisade_http::metrics::HttpMetrics;
use palisade_http::otlp::OtlpExporter;
use palisade_http::server::{self, ConnectionLimits};
use palisade_http::stack::{self, Limits, Observer};
use palisade_http::{Access, ApiKeys, Routes};
use palisade_identity::{Identity, IdentityMetrics};
use palisade_tls::{CertFiles, CertMetrics, SwappableResolver};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub async fn run(config: Config) -> Result<()> {
    let db = crate::state::open_database(&config).await?;
    let sealing = crate::state::sealing_key(&config)?;
    let mut registry = Registry::with_prefix("palisade");

    let cert_metrics = CertMetrics::default();
    registry.register(
        "tls_certificate_not_after_seconds",
        "Expiry of the served certificate, seconds since the Unix epoch",
        cert_metrics.not_after_seconds.clone(),
    );
    registry.register(
        "tls_certificate_reload_failures",
        "Certificate reloads refused (unreadable, corrupt or mismatched files)",
        cert_metrics.reload_failures.clone(),
    );
    registry.register(
        "tls_certificate_reloads",
        "Certificates swapped in",
        cert_metrics.reloads.clone(),
    );
    let (resolver, watched) = certificate(&config, cert_metrics)?;

    let shutdown = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    let observer = Observer {
        metrics: HttpMetrics::register(&mut registry),
        otlp: otlp_exporter(&config, &mut registry, &shutdown, &mut tasks)?,
    };
    let identity_metrics = IdentityMetrics::register(&mut registry);
    let (signer, pseudonym_key) = crate::state::audit_keys(&config)?;
    tracing::info!(vkey = %signer.vkey(), origin = %config.audit.origin, "audit log checkpoint key");
    let audit_log = AuditLog::open(db.clone(), signer, config.audit.origin.clone()).await?;
    let auditor = Auditor::with_log(
        db.clone(),
        audit_log.clone(),
        pseudonym_key,
        crate::state::sealing_key(&config)?,
    );
    let https = TcpListener::bind(config.server.https_listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on server.https_listen {}",
                config.server.https_listen
            )
        })?;
    let https_addr = https.local_addr()?;
    let key_ring = crate::state::key_ring(&config, &db).await?;
    let identity = Identity::new(
        db.clone(),
        auditor.clone(),
        sealing,
        config.identity.clone(),
        identity_metrics,
    )
    .map_err(anyhow::Error::msg)?;
    let oauth = palisade_oauth::OAuth::new(
        db.clone(),
        key_ring.clone(),
        auditor.clone(),
        identity.clone(),
        crate::state::oauth_config(&config, https_addr.port())?,
    );
    tracing::info!(issuer = %oauth.config().issuer, "OAuth issuer");
    oauth.spawn_logout_worker();
    let ingest_oauth = oauth.clone();
    let ingest = Ingest {
        auditor: auditor.clone(),
        keys: ApiKeys::from_hex_digests(&config.audit.ingest_key_sha256)
            .map_err(anyhow::Error::msg)?,
        // Services may also present an access token granting `audit:write`.
        bearer: Some(Arc::new(move |token: String| {
            let oauth = ingest_oauth.clone();
            Box::pin(async move { oauth.token_grants(&token, "audit:write").await })
        })),
    };
    let admin_keys =
        ApiKeys::from_hex_digests(&config.admin.api_key_sha256).map_err(anyhow::Error::msg)?;
    let audit_admin = palisade_audit::admin::router(auditor.clone(), admin_keys.clone());
    let authz = crate::policies::load(config.authz.policy_file.as_deref())?;
    if let Some(path) = &config.authz.policy_file {
        tasks.spawn(crate::policies::reload_on_hangup(
            authz.clone(),
            path.clone(),
            auditor.clone(),
            shutdown.clone(),
        ));
    }
    tasks.spawn(crate::signing::maintain(
        key_ring.clone(),
        auditor.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(palisade_audit::log::drain_outbox(
        audit_log.clone(),
        shutdown.clone(),
    ));
    if !config.audit.witnesses.is_empty() {
        let witnesses = config
            .audit
            .witnesses
            .iter()
            .map(|w| palisade_audit::cosign::WitnessEndpoint::new(&w.url, &w.vkey))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("audit.witnesses: {e}"))?;
        tasks.spawn(palisade_audit::cosign::run(
            audit_log.clone(),
            witnesses,
            shutdown.clone(),
        ));
    }
    let registry = Arc::new(registry);
    let readiness = Readiness {
        db: db.clone(),
        cert: resolver.clone(),
    };

    let issuer = oauth.config().issuer.clone();
    let published = crate::inventory::Published::default();
    let routes = Routes::new()
        .merge(palisade_identity::router(identity))
        .merge(health::router(readiness.clone()))
        .route(Access::Public, "GET /static/palisade.css", stylesheet)
        .merge(palisade_audit::routes::router(audit_log, ingest))
        .merge(audit_admin)
        .merge(palisade_oauth::admin::router(
            oauth.clone(),
            admin_keys.clone(),
        ))
        .merge(crate::policies::router(
            authz.clone(),
            admin_keys.clone(),
            auditor.clone(),
        ))
        .merge(crate::inventory::router(published.clone(), admin_keys))
        .merge(palisade_social::router(
            oauth.clone(),
            db.clone(),
            authz.clone(),
            palisade_http::shed::Shedder::new(config.api.max_in_flight),
        ))
        .merge(palisade_oauth::router(oauth))
        .merge(crate::signing::router(
            key_ring,
            config.tokens.jwks_cache_seconds,
        ));
    let (app, inventory) = routes.finish();
    published.publish(&inventory, &issuer);
    let limits = Limits {
        body_bytes: config.server.body_limit_bytes,
        timeout: Duration::from_secs(config.server.request_timeout_seconds),
    };
    let app = stack::wrap(app, observer.clone(), limits);
    let tls = Arc::new(palisade_tls::server_config(resolver.clone())?);

    let connection_limits = ConnectionLimits {
        max_connections: config.server.max_connections,
        drain_timeout: Duration::from_secs(config.server.drain_timeout_seconds),
        ..Default::default()
    };
    tasks.spawn(server::serve_tls(
        https,
        tls,
        app,
        connection_limits,
        shutdown.clone(),
    ));

    let mut http_addr = None;
    if let Some(addr) = config.server.http_listen {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on server.http_listen {addr}"))?;
        http_addr = Some(listener.local_addr()?);
        let port = config.server.public_https_port.unwrap_or(https_addr.port());
        let redirect = stack::wrap(server::redirect_to_https(port), observer.clone(), limits);
        tasks.spawn(server::serve_plain(listener, redirect, shutdown.clone()));
    }
    let mut admin_addr = None;
    if let Some(addr) = config.server.admin_listen {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on server.admin_listen {addr}"))?;
        admin_addr = Some(listener.local_addr()?);
        let admin = admin_router(registry.clone(), readiness);
        tasks.spawn(server::serve_plain(listener, admin, shutdown.clone()));
    }
    if let Some(files) = watched {
        let interval = Duration::from_secs(config.tls.reload_interval_seconds);
        let reloader = palisade_tls::spawn_reloader(files, resolver.clone(), interval);
        let stop = shutdown.clone();
        tasks.spawn(async move {
            stop.cancelled().await;
            reloader.abort();
        });
    }
    tracing::info!(
        https = %https_addr,
        http = http_addr.map(|a| a.to_string()),
        admin = admin_addr.map(|a| a.to_string()),
        database = ?db.backend(),
        "palisade listening"
    );

    wait_for_signal().await;
    tracing::info!("shutting down: no new connections, draining in-flight requests");
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    db.close().await;
    tracing::info!("palisade stopped");
    Ok(())
}

/// The certificate to serve: configured files (watched for changes) or the development
/// certificate of the embedded default, whose fingerprint is logged so it can be checked.
fn certificate(
    config: &Config,
    metrics: CertMetrics,
) -> Result<(Arc<SwappableResolver>, Option<CertFiles>)> {
    match (&config.tls.cert_file, &config.tls.key_file) {
        (Some(cert), Some(key)) => {
            let loaded =
                palisade_tls::load_pair(cert, key).context("tls.cert_file / tls.key_file")?;
            tracing::info!(fingerprint = %loaded.fingerprint, not_after = loaded.not_after, "serving configured certificate");
            let files = CertFiles {
                cert: cert.clone(),
                key: key.clone(),
            };
            Ok((
                Arc::new(SwappableResolver::new(loaded, metrics)),
                Some(files),
            ))
        }
        _ => {
            let dev = palisade_tls::ensure_dev_certificate(&config.data_dir.join("tls"))?;
            let loaded = palisade_tls::load_pair(&dev.cert, &dev.key)?;
            tracing::info!(
                fingerprint = %dev.fingerprint,
                ca = %dev.ca.display(),
                "serving the development certificate; trust the CA file to avoid browser warnings"
            );
            Ok((Arc::new(SwappableResolver::new(loaded, metrics)), None))
        }
    }
}

/// The span exporter, when a collector is configured. It stops (after a last flush) with the
/// other tasks on shutdown.
fn otlp_exporter(
    config: &Config,
    registry: &mut Registry,
    shutdown: &CancellationToken,
    tasks: &mut tokio::task::JoinSet<()>,
) -> Result<Option<OtlpExporter>> {
    let Some(endpoint) = &config.telemetry.otlp_endpoint else {
        return Ok(None);
    };
    let dropped = prometheus_client::metrics::counter::Counter::default();
    registry.register(
        "otlp_spans_dropped",
        "Spans dropped because the export queue was full",
        dropped.clone(),
    );
    let (exporter, task) = OtlpExporter::spawn(
        endpoint,
        &config.telemetry.service_name,
        dropped,
        shutdown.clone(),
    )
    .map_err(anyhow::Error::msg)?;
    tasks.spawn(async move {
        let _ = task.await;
    });
    tracing::info!(endpoint = %endpoint, "exporting request spans over OTLP");
    Ok(Some(exporter))
}

/// The operator listener (`server.admin_listen`): metrics and health, for the machine's own
/// monitoring.
fn admin_router(registry: Arc<Registry>, readiness: Readiness) -> Router {
    let (router, _) = Routes::new()
        .route(Access::Public, "GET /metrics", move || {
            let registry = registry.clone();
            async move {
                (
                    [(
                        "content-type",
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    palisade_http::metrics::render(&registry),
                )
            }
        })
        .merge(health::router(readiness))
        .finish();
    router
}

async fn stylesheet() -> impl axum::response::IntoResponse {
    (
        [
            ("content-type", "text/css; charset=utf-8"),
            ("cache-control", "public, max-age=3600"),
        ],
        palisade_http::STYLESHEET,
    )
}

pub async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}
