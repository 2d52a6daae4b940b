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
    let now = palisade_store::now_ms() / 1000;
    let certificate = if r.cert.current().not_after > now {
        "ok"
    } else {
        "expired"
    };
    let bus = if r.bus.reliable() { "ok" } else { "degraded" };
    let ready = database == "ok" && certificate == "ok";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": { "database": database, "certificate": certificate, "bus": bus },
    });
    let mut response = (status, Json(body)).into_response();
    response.extensions_mut().insert(PassThrough);
    response
}
