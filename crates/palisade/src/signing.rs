//! The server's side of the signing keys: the JWKS endpoint, and a task that picks up changes
//! made by the CLI or another node within seconds and performs scheduled rotation (TOK-3).

use axum::response::IntoResponse;
use palisade_audit::{Action, Auditor, Outcome, SecurityEvent};
use palisade_http::{Access, Routes};
use palisade_jose::keyring::KeyRing;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often keys are reread: an emergency revocation by the CLI takes effect within this.
const RELOAD_EVERY: Duration = Duration::from_secs(2);
/// How often scheduled rotation is considered.
const ROTATION_CHECK_EVERY: u32 = 30;

/// `GET /.well-known/jwks.json`. Clients may cache it as long as a key is published before it
/// signs, never longer.
pub fn router(ring: KeyRing, cache_seconds: u32) -> Routes {
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

pub async fn maintain(ring: KeyRing, auditor: Auditor, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(RELOAD_EVERY);
    let mut ticks = 0u32;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        ticks = ticks.wrapping_add(1);
        if ticks.is_multiple_of(ROTATION_CHECK_EVERY) {
            match ring.rotate_if_due().await {
                Ok(false) => {}
                Ok(true) => {
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
}
