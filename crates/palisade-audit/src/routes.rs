//! The audit log's public read API, in the manner of Certificate Transparency: the latest
//! signed checkpoint and proofs against any tree size it has published. Leaves and proofs hold
//! hashes only, so this reveals nothing about accounts. Other services append through
//! `POST /audit/events` ([`crate::ingest`]).

use crate::ingest::Ingest;
use crate::log::AuditLog;
use crate::merkle::ProofError;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use data_encoding::BASE64;
use palisade_http::AppError;
use serde::Deserialize;
use serde_json::json;

pub fn router(log: AuditLog, ingest: Ingest) -> Router {
    Router::new()
        .route("/audit/checkpoint", get(checkpoint))
        .route("/audit/proof/inclusion", get(inclusion))
        .route("/audit/proof/consistency", get(consistency))
        .with_state(log)
        .merge(
            Router::new()
                .route("/audit/events", post(crate::ingest::ingest))
                .with_state(ingest),
        )
}

async fn checkpoint(State(log): State<AuditLog>) -> Response {
    match log.checkpoint() {
        Some(note) => (
            [
                ("content-type", "text/plain; charset=utf-8"),
                ("cache-control", "no-cache"),
            ],
            note,
        )
            .into_response(),
        None => AppError::NotFound.into_response(),
    }
}

fn proof_error(e: ProofError) -> AppError {
    match e {
        ProofError::OutOfRange => {
            AppError::bad_request("out_of_range", "The index or tree size is outside the log.")
        }
        other => AppError::internal(format!("proof generation: {other:?}")),
    }
}

#[derive(Deserialize)]
struct InclusionQuery {
    index: u64,
    /// Defaults to the current size.
    size: Option<u64>,
}

async fn inclusion(
    State(log): State<AuditLog>,
    Query(q): Query<InclusionQuery>,
) -> Result<Json<serde_json::Value>, AppError> {
    let size = q.size.unwrap_or_else(|| log.size());
    let proof = log.inclusion_proof(q.index, size).map_err(proof_error)?;
    let leaf = log.leaf_hash(q.index).ok_or(AppError::NotFound)?;
    Ok(Json(json!({
        "index": q.index,
        "tree_size": size,
        "leaf_hash": BASE64.encode(&leaf),
        "proof": proof.iter().map(|h| BASE64.encode(h)).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
struct ConsistencyQuery {
    from: u64,
    /// Defaults to the current size.
    to: Option<u64>,
}

async fn consistency(
    State(log): State<AuditLog>,
    Query(q): Query<ConsistencyQuery>,
) -> Result<Json<serde_json::Value>, AppError> {
    let to = q.to.unwrap_or_else(|| log.size());
    if q.from > to {
        return Err(proof_error(ProofError::OutOfRange));
    }
    let proof = log.consistency_proof(q.from, to).map_err(proof_error)?;
    Ok(Json(json!({
        "from": q.from,
        "to": to,
        "proof": proof.iter().map(|h| BASE64.encode(h)).collect::<Vec<_>>(),
    })))
}
