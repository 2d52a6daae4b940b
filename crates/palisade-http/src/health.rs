//! Liveness and readiness (PLT-6). `/healthz` says the process answers; `/readyz` checks what a
//! request depends on: the database answers and the served certificate is still valid. The
//! bus is reported too, without failing readiness: a node that lost Redis keeps serving on its
//! own (SCL-2), and taking every node out of rotation at once would be the outage.

use crate::error::PassThrough;
use crate::routes::{Access, Routes};
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use palisade_store::Db;
use palisade_tls::SwappableResolver;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct Readiness {
    pub db: Db,
    pub cert: Arc<SwappableResolver>,
    pub bus: palisade_cluster::Bus,
    /// The served certificate's last seconds in which the node reports itself degraded
    /// (`tls.expiry_degraded_days`): still serving, but someone must look.
    pub expiring_within_seconds: i64,
}

pub fn router(readiness: Readiness) -> Routes {
    Routes::new()
        .route(Access::Public, "GET /healthz", healthz)
        .route(Access::Public, "GET /readyz", readyz)
        .with_state(readiness)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(r): State<Readiness>) -> Response {
    let database = match tokio::time::timeout(Duration::from_secs(2), r.db.ping()).await {
        Ok(Ok(())) => "ok",
        Ok(Err(_)) => "error",
        Err(_) => "timeout",
    };
    let first = r.cert.served().iter().map(|(_, c)| c.not_after).min();
    let left = first.unwrap_or_default() - palisade_store::now_ms() / 1000;
    let certificate = match left {
        ..=0 => "expired",
        left if left <= r.expiring_within_seconds => "expiring",
        _ => "ok",
    };
    let bus = if r.bus.reliable() { "ok" } else { "degraded" };
    let ready = database == "ok" && certificate != "expired";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": match (ready, certificate) {
            (false, _) => "not_ready",
            (true, "expiring") => "degraded",
            (true, _) => "ready",
        },
        "checks": { "database": database, "certificate": certificate, "bus": bus },
    });
    let mut response = (status, Json(body)).into_response();
    response.extensions_mut().insert(PassThrough);
    response
}
