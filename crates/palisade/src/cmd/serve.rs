//! `palisade serve`: wires the stores, the cluster, the TLS certificate, the guards, the routers
//! and the listeners, runs every background task under one supervisor until SIGTERM or SIGINT,
//! and shuts down gracefully (PLT-7).

use crate::config::{Config, PublicUrl};
use crate::node;
use crate::policies::Policies;
use anyhow::{Context, Result, bail};
use axum::Router;
use palisade_audit::log::AuditLog;
use palisade_audit::{Action, Auditor, Outcome, SecurityEvent};
use palisade_cluster::Cluster;
use palisade_http::egress::Egress;
use palisade_http::health::{self, Readiness};
use palisade_http::metrics::HttpMetrics;
use palisade_http::otlp::OtlpExporter;
use palisade_http::routes::Inventory;
use palisade_http::server::{self, ConnectionLimits};
use palisade_http::stack::{self, Limits, Observer};
use palisade_http::{Access, ApiKeys, Guards, Routes};
use palisade_identity::{Identity, IdentityMetrics, SessionGuard};
use palisade_jobs::{Jobs, Supervisor};
use palisade_principal::{
    AccessTokenGuard, Authenticator, AuthenticatorConfig, Dpop, Revocations, ServiceGuard,
    WorkloadGuard,
};
use palisade_tls::{CertFiles, CertMetrics, DevCertificate, SwappableResolver};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub(crate) async fn run(config: Config) -> Result<()> {
    let db = node::open_database(&config).await?;
    let sealing = node::sealing_key(&config)?;
    let mut registry = Registry::with_prefix("palisade");
    let mut supervisor = Supervisor::new();
    // Background work stops only after the listeners have drained (see `Supervisor`).
    let shutdown = supervisor.background();

    let (resolver, watched, development) = certificate(&config, cert_metrics(&mut registry))?;
    let https = TcpListener::bind(config.server.https_listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on server.https_listen {}",
                config.server.https_listen
            )
        })?;
    let https_addr = https.local_addr()?;
    let public = config.public_url(https_addr.port());
    let mtls = match config.ca.mtls_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on ca.mtls_listen {addr}"))?,
        ),
        None => None,
    };
    let mtls_addr = mtls.as_ref().map(TcpListener::local_addr).transpose()?;

    let cluster = Cluster::new(
        db.clone(),
        &config.cluster,
        &mut registry,
        Some(node::bus_socket(&config)),
    )?;
    supervisor.spawn("cluster", cluster.clone().maintain(shutdown.clone()));
    let egress = egress(&config)?;
    let jobs = Jobs::new(db.clone(), cluster.bus.clone(), &mut registry);
    let observer = Observer {
        metrics: HttpMetrics::register(&mut registry),
        otlp: otlp_exporter(&config, &mut registry, &egress, &mut supervisor)?,
    };

    let (signer, pseudonym_key) = node::audit_keys(&config)?;
    tracing::info!(vkey = %signer.vkey(), origin = %config.audit.origin, "audit log checkpoint key");
    let audit_log = AuditLog::open(
        db.clone(),
        signer,
        config.audit.origin.clone(),
        cluster.bus.clone(),
    )
    .await?;
    supervisor.spawn(
        "audit sequencing",
        audit_log.clone().run(
            cluster.lease("audit.sequencer", palisade_audit::SEQUENCER_LEASE),
            jobs.clone(),
            shutdown.clone(),
        ),
    );
    let auditor = Auditor::with_log(
        db.clone(),
        audit_log.clone(),
        pseudonym_key,
        node::sealing_key(&config)?,
        cluster.bus.clone(),
    );
    supervisor.spawn(
        "audit subject keys",
        auditor.clone().follow_erasures(shutdown.clone()),
    );
    if !config.audit.witnesses.is_empty() {
        let witnesses = config
            .audit
            .witnesses
            .iter()
            .map(|w| palisade_audit::cosign::WitnessEndpoint::new(&w.url, &w.vkey))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("audit.witnesses: {e}"))?;
        supervisor.spawn(
            "witness cosigning",
            palisade_audit::cosign::run(
                audit_log.clone(),
                witnesses,
                egress.clone(),
                shutdown.clone(),
            ),
        );
    }

    let key_ring = node::key_ring(&config, &db, &auditor).await?;
    if let Some(dev) = &development {
        record_development_certificate(&auditor, dev).await?;
    }
    supervisor.spawn(
        "signing keys",
        crate::signing::maintain(
            key_ring.clone(),
            cluster.clone(),
            auditor.clone(),
            shutdown.clone(),
        ),
    );
    let revocations = Revocations::new(db.clone(), cluster.bus.clone());
    supervisor.spawn("revocations", revocations.clone().follow(shutdown.clone()));
    let oauth_config = node::oauth_config(
        &config,
        &public,
        mtls_addr.map(|addr| config.ca.mtls_base(addr.port())),
    )?;
    let authenticator = authenticator(&config, &oauth_config, &key_ring, &cluster, &revocations)?;

    let identity = Identity::new(
        palisade_identity::Parts {
            db: db.clone(),
            auditor: auditor.clone(),
            sealing,
            metrics: IdentityMetrics::register(&mut registry),
            backoff: cluster.backoff.clone(),
            revocations: revocations.clone(),
            relying_party: public.relying_party(),
        },
        config.identity.clone(),
    )
    .map_err(anyhow::Error::msg)?;
    let oauth = palisade_oauth::OAuth::new(
        palisade_oauth::Parts {
            db: db.clone(),
            keys: key_ring.clone(),
            auditor: auditor.clone(),
            identity: identity.clone(),
            authenticator: authenticator.clone(),
            cluster: cluster.clone(),
            jobs: jobs.clone(),
            egress: egress.clone(),
        },
        oauth_config,
    );
    tracing::info!(issuer = %oauth.config().issuer, "OAuth issuer");
    supervisor.spawn(
        "client cache",
        oauth.client_cache().follow(shutdown.clone()),
    );
    for (kind, handler) in palisade_oauth::backchannel_jobs(&oauth) {
        jobs.register(kind, handler);
    }
    jobs.register(
        palisade_certs::WARNING_JOB,
        Arc::new(
            palisade_certs::WarningDelivery::new(egress.clone(), &config.tls.expiry_webhooks)
                .map_err(anyhow::Error::msg)?,
        ),
    );
    let drain = Duration::from_secs(config.server.drain_timeout_seconds);
    supervisor.spawn("jobs", jobs.clone().run(shutdown.clone(), drain));

    let policies = Policies::load(
        db.clone(),
        cluster.bus.clone(),
        auditor.clone(),
        config.authz.policy_file.as_deref(),
    )
    .await?;
    supervisor.spawn("policies", policies.clone().follow(shutdown.clone()));
    if let Some(path) = &config.authz.policy_file {
        supervisor.spawn(
            "policy file",
            policies
                .clone()
                .reload_on_hangup(path.clone(), shutdown.clone()),
        );
    }

    let fanout = palisade_realtime::Fanout::new(cluster.bus.clone());
    let social = palisade_social::Service::new(db.clone(), policies.authz.clone(), fanout);
    let gateway = palisade_realtime::Gateway::new(palisade_realtime::Parts {
        settings: config.realtime.clone(),
        own_origin: public.base.clone(),
        authenticator: authenticator.clone(),
        bus: cluster.bus.clone(),
        counter: cluster.counter.clone(),
        slots: cluster.slots.clone(),
        node_id: cluster.node_id.clone(),
        auditor: auditor.clone(),
        channels: Arc::new(social.channels()),
        sessions: Arc::new(crate::browser_sessions::BrowserSessions(identity.clone())),
        metrics: palisade_realtime::RealtimeMetrics::register(&mut registry),
    });
    supervisor.spawn_listener("realtime gateway", gateway.clone().run(supervisor.token()));

    let ca = palisade_ca::Ca::load_or_create(
        db.clone(),
        &node::sealing_key(&config)?,
        auditor.clone(),
        &config.ca,
    )
    .await
    .context("ca")?;
    let node_identity = match (&ca, config.ca.mtls_listen) {
        (Some(ca), Some(_)) => Some(
            palisade_ca::node::NodeIdentity::start(
                ca.clone(),
                cluster.node_id.clone(),
                config.ca.node_dns_names(),
                svid_metrics(&mut registry),
            )
            .await
            .context("this node's SVID")?,
        ),
        _ => None,
    };

    let admin_keys =
        ApiKeys::from_hex_digests(&config.admin.api_key_sha256).map_err(anyhow::Error::msg)?;
    let ingest_keys =
        ApiKeys::from_hex_digests(&config.audit.ingest_key_sha256).map_err(anyhow::Error::msg)?;
    let tokens =
        || AccessTokenGuard::new(authenticator.clone(), cluster.counter.clone(), config.api);
    let mut service_guard = ServiceGuard::new(ingest_keys, tokens());
    if let Some(ca) = &ca {
        let domain = ca.authority().trust_domain().clone();
        service_guard = service_guard.with_workloads(domain, config.ca.allow.clone());
    }
    let mut guards = Guards::new()
        .with("session", SessionGuard(identity.clone()))
        .with("client", palisade_oauth::ClientGuard(oauth.clone()))
        .with(
            "registration_token",
            palisade_oauth::RegistrationGuard(oauth.clone()),
        )
        .with("admin_key", admin_keys)
        .with("service_key", service_guard)
        .with("access_token", tokens())
        .with(
            "realtime",
            palisade_realtime::RealtimeGuard(gateway.clone()),
        );

    if let Some(ca) = &ca {
        let domain = ca.authority().trust_domain().clone();
        guards = guards
            .with("join_token", palisade_ca::JoinTokenGuard(ca.clone()))
            .with(
                "workload",
                WorkloadGuard::new(domain, config.ca.allow.clone()),
            );
    }

    let readiness = Readiness {
        db: db.clone(),
        cert: resolver.clone(),
        bus: cluster.bus.clone(),
        expiring_within_seconds: i64::from(config.tls.expiry_degraded_days) * 86_400,
    };
    let monitor = palisade_certs::Monitor::new(
        &config.tls,
        resolver.clone(),
        egress.clone(),
        db.clone(),
        jobs.clone(),
        palisade_certs::MonitorMetrics::register(&mut registry),
    )
    .map_err(anyhow::Error::msg)?;
    supervisor.spawn("certificate expiry", monitor.run(shutdown.clone()));
    if let Some(acme) = &config.tls.acme {
        let metrics = palisade_certs::acme::AcmeMetrics::register(&mut registry);
        for certificate in acme.certificates() {
            let lease = cluster.lease(
                &format!("acme:{}", certificate.name()),
                palisade_certs::acme::LEASE_TTL,
            );
            let acme = palisade_certs::acme::Acme::new(palisade_certs::acme::Parts {
                settings: certificate,
                db: db.clone(),
                sealing: node::sealing_key(&config)?,
                egress: egress.clone(),
                resolver: resolver.clone(),
                lease,
                bus: cluster.bus.clone(),
                auditor: auditor.clone(),
                metrics: metrics.clone(),
            });
            supervisor.spawn("acme", acme.maintain(shutdown.clone()));
        }
    }
    let published = crate::inventory::Published::default();
    let mut routes = Routes::new()
        .merge(palisade_identity::router(identity))
        .merge(health::router(readiness.clone()))
        .route(Access::Public, "GET /static/palisade.css", stylesheet)
        .merge(palisade_audit::routes::router(audit_log, auditor.clone()))
        .merge(palisade_audit::admin::router(auditor))
        .merge(palisade_oauth::admin::router(oauth.clone()))
        .merge(crate::policies::router(policies.clone()))
        .merge(crate::inventory::router(published.clone()))
        .merge(palisade_social::router(
            &social,
            palisade_http::shed::Shedder::new(config.api.max_in_flight),
        ))
        .merge(palisade_realtime::router(gateway))
        .merge(palisade_oauth::router(oauth))
        .merge(crate::signing::router(
            key_ring,
            config.tokens.jwks_cache_seconds,
        ));
    if let Some(ca) = &ca {
        routes = routes.merge(palisade_ca::router(ca.clone()));
    }
    let (app, inventory) = routes.finish();
    let unguarded = guards.unguarded(&inventory);
    if !unguarded.is_empty() {
        bail!("routes are declared with access no guard checks: {unguarded:?}");
    }
    let (admin, admin_inventory) = admin_router(Arc::new(registry), readiness);
    published.publish(&inventory, &admin_inventory, &public.base);
    let limits = Limits {
        body_bytes: config.server.body_limit_bytes,
        timeout: Duration::from_secs(config.server.request_timeout_seconds),
    };
    let app = stack::wrap(app, guards, observer.clone(), limits);
    let mut tls = palisade_tls::ServerConfigs::new(resolver.clone())?;
    if let Some(acme) = &config.tls.acme
        && acme.challenge == palisade_tls::AcmeChallenge::TlsAlpn01
    {
        tls = tls.with_alpn_challenges(Arc::new(palisade_certs::acme::AlpnAnswers(db.clone())));
    }
    let tls = Arc::new(tls);
    let connection_limits = ConnectionLimits {
        max_connections: config.server.max_connections,
        drain_timeout: drain,
        ..Default::default()
    };
    if let (Some(ca), Some(node_identity), Some(listener)) = (&ca, node_identity, mtls) {
        let peers = Arc::new(palisade_tls::ca::PeerVerifier::new(
            ca.authority().certificate(),
            true,
        )?);
        let mutual = Arc::new(palisade_tls::ServerConfigs::mutual(
            node_identity.resolver(),
            peers,
        )?);
        supervisor.spawn_listener(
            "mtls listener",
            server::serve_tls(
                listener,
                mutual,
                app.clone(),
                connection_limits,
                observer.metrics.tls_handshake_failures.clone(),
                supervisor.token(),
            ),
        );
        supervisor.spawn(
            "node svid",
            node_identity.maintain(cluster.bus.clone(), shutdown.clone()),
        );
    }
    supervisor.spawn_listener(
        "https listener",
        server::serve_tls(
            https,
            tls,
            app,
            connection_limits,
            observer.metrics.tls_handshake_failures.clone(),
            supervisor.token(),
        ),
    );
    let http_addr = listen_plain(&config, &public, &observer, limits, &db, &mut supervisor).await?;
    let mut admin_addr = None;
    if let Some(addr) = config.server.admin_listen {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on server.admin_listen {addr}"))?;
        admin_addr = Some(listener.local_addr()?);
        supervisor.spawn_listener(
            "admin listener",
            server::serve_plain(listener, admin, supervisor.token()),
        );
    }
    if let Some(files) = watched {
        let interval = Duration::from_secs(config.tls.reload_interval_seconds);
        supervisor.spawn(
            "certificate reload",
            palisade_tls::reload(files, resolver, interval, shutdown.clone()),
        );
    }
    tracing::info!(
        https = %https_addr,
        mtls = mtls_addr.map(|a| a.to_string()),
        http = http_addr.map(|a| a.to_string()),
        admin = admin_addr.map(|a| a.to_string()),
        database = ?db.backend(),
        "palisade listening"
    );

    let failed = tokio::select! {
        () = wait_for_signal() => None,
        task = supervisor.first_exit() => Some(task),
    };
    match &failed {
        None => tracing::info!("shutting down: no new connections, draining in-flight requests"),
        Some(task) => tracing::error!(task, "a background task stopped; shutting down"),
    }
    supervisor.shutdown(drain + Duration::from_secs(5)).await;
    db.close().await;
    if let Some(task) = failed {
        bail!("{task} stopped while the server was running");
    }
    tracing::info!("palisade stopped");
    Ok(())
}

fn cert_metrics(registry: &mut Registry) -> CertMetrics {
    register_cert_metrics(
        registry,
        [
            (
                "tls_certificate_not_after_seconds",
                "Expiry of the served certificate, seconds since the Unix epoch",
            ),
            (
                "tls_certificate_reload_failures",
                "Certificate reloads refused (unreadable, corrupt or mismatched files)",
            ),
            ("tls_certificate_reloads", "Certificates swapped in"),
        ],
    )
}

fn svid_metrics(registry: &mut Registry) -> CertMetrics {
    register_cert_metrics(
        registry,
        [
            (
                "tls_node_svid_not_after_seconds",
                "Expiry of this node's own X.509-SVID, seconds since the Unix epoch",
            ),
            (
                "tls_node_svid_rotation_failures",
                "Rotations of this node's SVID that failed (the current one stays in service)",
            ),
            ("tls_node_svid_rotations", "SVIDs of this node swapped in"),
        ],
    )
}

/// A served certificate's metrics under `names`: its expiry, failed and done replacements.
fn register_cert_metrics(registry: &mut Registry, names: [(&str, &str); 3]) -> CertMetrics {
    let metrics = CertMetrics::default();
    let [expiry, failures, swaps] = names;
    registry.register(expiry.0, expiry.1, metrics.not_after_seconds.clone());
    registry.register(failures.0, failures.1, metrics.reload_failures.clone());
    registry.register(swaps.0, swaps.1, metrics.reloads.clone());
    metrics
}

/// The one outbound client; the hosts the operator configured (witnesses, a collector, the
/// expiry warning receivers, watched endpoints, the ACME directory) are trusted whatever their
/// addresses.
fn egress(config: &Config) -> Result<Egress> {
    let mut trusted: Vec<&str> = config
        .audit
        .witnesses
        .iter()
        .map(|w| w.url.as_str())
        .collect();
    if let Some(otlp) = &config.telemetry.otlp_endpoint {
        trusted.push(otlp);
    }
    trusted.extend(config.tls.expiry_webhooks.iter().map(|w| w.url.as_str()));
    let directories: Vec<String> = config
        .tls
        .acme
        .iter()
        .flat_map(|acme| acme.issuers())
        .map(|issuer| issuer.directory)
        .collect();
    trusted.extend(directories.iter().map(String::as_str));
    let watched: Vec<String> = config
        .tls
        .monitor
        .iter()
        .map(|endpoint| format!("tls://{endpoint}"))
        .collect();
    trusted.extend(watched.iter().map(String::as_str));
    Egress::new(&config.egress, &trusted).map_err(|e| anyhow::anyhow!("egress: {e}"))
}

/// The authenticator of this server's own resource: its API and userinfo accept tokens for
/// the first configured resource only.
fn authenticator(
    config: &Config,
    oauth: &palisade_oauth::OAuthConfig,
    keys: &palisade_jose::keyring::KeyRing,
    cluster: &Cluster,
    revocations: &Revocations,
) -> Result<Authenticator> {
    let nonce_key = if config.oauth.dpop_nonces {
        Some(node::derived_key(config, "dpop nonces")?)
    } else {
        None
    };
    let dpop = Dpop::new(
        &oauth.issuer,
        oauth.skew_seconds,
        nonce_key,
        cluster.replay.clone(),
    );
    Ok(Authenticator::new(
        keys.clone(),
        AuthenticatorConfig {
            issuer: oauth.issuer.clone(),
            audience: oauth.resources[0].clone(),
            resources: oauth.resources.clone(),
            skew_seconds: oauth.skew_seconds,
            ticket_key: node::derived_key(config, "realtime tickets")?,
        },
        dpop,
        revocations.clone(),
    ))
}

/// The plain-HTTP listener, which redirects to the public URL, and answers ACME http-01
/// challenges when ACME is configured.
async fn listen_plain(
    config: &Config,
    public: &PublicUrl,
    observer: &Observer,
    limits: Limits,
    db: &palisade_store::Db,
    supervisor: &mut Supervisor,
) -> Result<Option<std::net::SocketAddr>> {
    let Some(addr) = config.server.http_listen else {
        return Ok(None);
    };
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on server.http_listen {addr}"))?;
    let bound = listener.local_addr()?;
    let mut plain = server::redirect_to_https(&public.base);
    if config.tls.acme.is_some() {
        plain = palisade_certs::acme::challenge_router(db.clone())
            .finish()
            .0
            .merge(plain);
    }
    let redirect = stack::wrap(plain, Guards::new(), observer.clone(), limits);
    supervisor.spawn_listener(
        "http redirect listener",
        server::serve_plain(listener, redirect, supervisor.token()),
    );
    Ok(Some(bound))
}

/// The certificate to serve: configured files (watched for changes) or the development
/// certificate of the embedded default, whose fingerprint is logged so it can be checked.
fn certificate(
    config: &Config,
    metrics: CertMetrics,
) -> Result<(
    Arc<SwappableResolver>,
    Option<CertFiles>,
    Option<DevCertificate>,
)> {
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
                None,
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
            let resolver = Arc::new(SwappableResolver::new(loaded, metrics));
            Ok((resolver, None, Some(dev)))
        }
    }
}

/// A development CA or certificate made at this start is a certificate event (AUD-1).
async fn record_development_certificate(auditor: &Auditor, dev: &DevCertificate) -> Result<()> {
    let event = |action| {
        SecurityEvent::new(action, Outcome::Success, palisade_store::DEFAULT_TENANT)
            .detail("kind", "development")
    };
    if dev.generated.ca {
        auditor.record(event(Action::TlsCaCreated)).await?;
    }
    if dev.generated.leaf {
        let issued =
            event(Action::TlsCertificateIssued).detail("fingerprint", dev.fingerprint.as_str());
        auditor.record(issued).await?;
    }
    Ok(())
}

/// The span exporter, when a collector is configured, supervised with the other tasks (it
/// flushes what is queued when they stop).
fn otlp_exporter(
    config: &Config,
    registry: &mut Registry,
    egress: &Egress,
    supervisor: &mut Supervisor,
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
    let (exporter, task) = OtlpExporter::new(
        endpoint,
        &config.telemetry.service_name,
        dropped,
        egress.clone(),
    )
    .map_err(anyhow::Error::msg)?;
    supervisor.spawn("span export", task.run(supervisor.background()));
    tracing::info!(endpoint = %endpoint, "exporting request spans over OTLP");
    Ok(Some(exporter))
}

/// The operator listener (`server.admin_listen`): metrics and health, for the machine's own
/// monitoring.
/// The admin listener's routes (metrics and health), with their inventory.
fn admin_router(registry: Arc<Registry>, readiness: Readiness) -> (Router, Inventory) {
    Routes::new()
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
        .finish()
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

pub(crate) async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}
