//! The audit part of the admin API, for operators holding an admin API key: search of the
//! security events (AUD-7) and any log entry with its sealed payload opened.

use crate::Auditor;
use crate::search::{Search, search};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use palisade_http::{Access, ApiKeys, AppError, Routes};
use serde_json::json;

#[derive(Clone)]
struct Admin {
    auditor: Auditor,
    keys: ApiKeys,
}

pub fn router(auditor: Auditor, keys: ApiKeys) -> Routes {
    Routes::new()
        .route(Access::AdminKey, "GET /admin/audit/events", events)
        .route(Access::AdminKey, "GET /admin/audit/entries/{index}", entry)
        .with_state(Admin { auditor, keys })
}

async fn events(
    State(admin): State<Admin>,
    headers: HeaderMap,
    Query(q): Query<Search>,
) -> Result<Response, AppError> {
    if let Err(refused) = admin.keys.check(&headers) {
        return Ok(refused);
    }
    let events = search(admin.auditor.db(), &q).await?;
    // A full page may have a successor; a short one is the last.
    let next = events
        .last()
        .filter(|_| events.len() as u32 == q.page_size())
        .map(|e| e.seq);
    Ok(Json(json!({ "events": events, "next": next })).into_response())
}

async fn entry(
    State(admin): State<Admin>,
    headers: HeaderMap,
    Path(index): Path<String>,
) -> Result<Response, AppError> {
    // The key first: an anonymous caller learns nothing, not even how indexes are parsed.
    if let Err(refused) = admin.keys.check(&headers) {
        return Ok(refused);
    }
    let index: u64 = index.parse().map_err(|_| AppError::NotFound)?;
    let entry = admin
        .auditor
        .read_entry(index)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Json(entry).into_response())
}
