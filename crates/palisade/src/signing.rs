//! The server's side of the signing keys (TOK-3, SCL-1): the JWKS endpoint, and a task that
//! rereads the keys whenever any node or the CLI announces a change on the bus (a rotation, an
//! emergency revocation), and performs scheduled rotation on the one node holding the rotation
//! lease.

use axum::response::IntoResponse;
use palisade_audit::{Action, Auditor, Outcome, SecurityEvent};
use palisade_cluster::{Bus, Cluster, Delivery};
use palisade_http::{Access, Routes};
use palisade_jose::keyring::KeyRing;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The bus topic on which key changes are announced.
pub(crate) const TOPIC: &str = "keys";
/// How often scheduled rotation is considered, and the keys reread even without an
/// announcement (a change made where no bus reaches).
const RESYNC_EVERY: Duration = Duration::from_secs(30);
const ROTATION_LEASE: Duration = Duration::from_secs(30);

/// `GET /.well-known/jwks.json`. Clients may cache it as long as a key is published before it
/// signs, never longer.
pub(crate) fn router(ring: KeyRing, cache_seconds: u32) -> Routes {
    Routes::new().route(Access::Public, "GET /.well-known/jwks.json", move || {
        let ring = ring.clone();
        async move {
            (
                [
                    ("content-type", "application/jwk-set+json".to_owned()),
                    ("cache-control", format!("public, max-age={cache_seconds}")),
                ],
                ring.jwks().to_string(),
            )
                .into_response()
        }
    })
}

/// Tells every node that the keys changed.
pub(crate) async fn announce(bus: &Bus) {
    bus.publish(TOPIC, &b"changed"[..]).await;
}

pub(crate) async fn maintain(
    ring: KeyRing,
    cluster: Cluster,
    auditor: Auditor,
    shutdown: CancellationToken,
) {
    let mut changes = cluster.bus.subscribe(TOPIC);
    let (held, rotation) = watch::channel(None);
    let lease = cluster.lease("keys.rotation", ROTATION_LEASE);
    let keeper = tokio::spawn(lease.keep(held, shutdown.clone()));
    let mut tick = tokio::time::interval(RESYNC_EVERY);
    loop {
        let announced = tokio::select! {
            d = changes.recv() => matches!(d, Some(Delivery::Message(_) | Delivery::Resync)),
            _ = tick.tick() => false,
            _ = shutdown.cancelled() => break,
        };
        if !announced && rotation.borrow().is_some() {
            match ring.rotate_if_due().await {
                Ok(false) => {}
                Ok(true) => {
                    announce(&cluster.bus).await;
                    let event =
                        SecurityEvent::new(Action::SigningKeyRotated, Outcome::Success, "default")
                            .target(ring.signing_key().kid.clone())
                            .detail("scheduled", true);
                    if let Err(e) = auditor.record(event).await {
                        tracing::error!(error = %e, "key rotation not audited");
                    }
                }
                Err(e) => tracing::error!(error = %e, "scheduled key rotation failed"),
            }
        }
        if let Err(e) = ring.reload().await {
            tracing::error!(error = %e, "signing keys not reloaded");
        }
    }
    let _ = keeper.await;
}
