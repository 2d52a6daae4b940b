//! The audit part of the admin API, for operators holding an admin API key: search of the
//! security events (AUD-7) and any log entry with its sealed payload opened.

use crate::Auditor;
use crate::search::{Search, search};
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use palisade_http::input::Query;
use palisade_http::{Access, AppError, Routes};
use serde_json::json;

pub fn router(auditor: Auditor) -> Routes {
    Routes::new()
        .route(Access::AdminKey, "GET /admin/audit/events", events)
        .route(Access::AdminKey, "GET /admin/audit/entries/{index}", entry)
        .with_state(auditor)
}

async fn events(
    State(auditor): State<Auditor>,
    Query(q): Query<Search>,
) -> Result<Response, AppError> {
    let events = search(auditor.db(), &q).await?;
    // A full page may have a successor; a short one is the last.
    let next = events
        .last()
        .filter(|_| events.len() as u32 == q.page_size())
        .map(|e| e.seq);
    Ok(Json(json!({ "events": events, "next": next })).into_response())
}

async fn entry(
    State(auditor): State<Auditor>,
    Path(index): Path<String>,
) -> Result<Response, AppError> {
    let index: u64 = index.parse().map_err(|_| AppError::NotFound)?;
    let entry = auditor.read_entry(index).await?.ok_or(AppError::NotFound)?;
    Ok(Json(entry).into_response())
}
