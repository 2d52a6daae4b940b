//! The audit log's public read API, in the manner of Certificate Transparency: the latest
//! signed checkpoint and proofs against any tree size it has published. Leaves and proofs hold
//! hashes only, so this reveals nothing about accounts. Other services append through
//! `POST /audit/events` ([`crate::ingest`]).

use crate::Auditor;
use crate::log::AuditLog;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use data_encoding::BASE64;
use palisade_http::input::Query;
use palisade_http::{Access, AppError, Routes};
use palisade_tlog::bundle::ProofBundle;
use palisade_tlog::merkle::{Hash, ProofError};
use serde::Deserialize;
use serde_json::json;

pub fn router(log: AuditLog, auditor: Auditor) -> Routes {
    use Access::Public;
    Routes::new()
        .route(Public, "GET /audit/checkpoint", checkpoint)
        .route(Public, "GET /audit/checkpoint/cosigned", cosigned)
        .route(Public, "GET /audit/proof/inclusion", inclusion)
        .route(Public, "GET /audit/proof/consistency", consistency)
        .route(Public, "GET /audit/proof/bundle", bundle)
        .with_state(log)
        .merge(
            Routes::new()
                .route(
                    Access::ServiceKey,
                    "POST /audit/events",
                    crate::ingest::ingest,
                )
                .with_state(auditor),
        )
}

async fn checkpoint(State(log): State<AuditLog>) -> Response {
    note_response(log.checkpoint())
}

/// The latest checkpoint carrying witness cosignatures (AUD-4).
async fn cosigned(State(log): State<AuditLog>) -> Response {
    note_response(log.cosigned().map(|(note, _)| note))
}

fn note_response(note: Option<String>) -> Response {
    match note {
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

/// Names an entry by its index or by its leaf hash (base64), exactly one of the two.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InclusionQuery {
    index: Option<u64>,
    hash: Option<String>,
    /// Defaults to the current size.
    size: Option<u64>,
}

async fn inclusion(
    State(log): State<AuditLog>,
    Query(q): Query<InclusionQuery>,
) -> Result<Json<serde_json::Value>, AppError> {
    let size = q.size.unwrap_or_else(|| log.size());
    if size > log.size() {
        return Err(proof_error(ProofError::OutOfRange));
    }
    let index = match (q.index, q.hash) {
        (Some(index), None) => index,
        (None, Some(hash)) => {
            let hash: Hash = BASE64
                .decode(hash.as_bytes())
                .ok()
                .and_then(|h| h.try_into().ok())
                .ok_or_else(|| {
                    AppError::bad_request("invalid_hash", "`hash` must be 32 bytes of base64.")
                })?;
            log.index_of(&hash, size).ok_or(AppError::NotFound)?
        }
        _ => {
            return Err(AppError::bad_request(
                "invalid_request",
                "Give exactly one of `index` and `hash`.",
            ));
        }
    };
    let proof = log.inclusion_proof(index, size).map_err(proof_error)?;
    let leaf = log.leaf_hash(index).ok_or(AppError::NotFound)?;
    Ok(Json(json!({
        "index": index,
        "tree_size": size,
        "leaf_hash": BASE64.encode(&leaf),
        "proof": proof.iter().map(|h| BASE64.encode(h)).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleQuery {
    index: u64,
}

/// A C2SP tlog-proof bundle for one entry against the latest checkpoint.
async fn bundle(
    State(log): State<AuditLog>,
    Query(q): Query<BundleQuery>,
) -> Result<Response, AppError> {
    let (checkpoint, size) = log.latest().ok_or(AppError::NotFound)?;
    let proof = log.inclusion_proof(q.index, size).map_err(proof_error)?;
    let bundle = ProofBundle {
        extra: None,
        index: q.index,
        proof,
        checkpoint,
    };
    Ok((
        [("content-type", "text/plain; charset=utf-8")],
        bundle.to_text(),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
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
