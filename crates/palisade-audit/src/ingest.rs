//! `POST /audit/events` (AUD-1 for other services): an authenticated service appends an event
//! and gets back, once it is durable, its index, the signed checkpoint that includes it and the
//! inclusion proof against that checkpoint. The route's guard admits an ingest API key or a
//! service client's own access token granting `audit:write`, and names the writer: its
//! [`Origin`] goes into every leaf it writes. Palisade's own families of actions are refused, so
//! no service can write an event that passes for Palisade's (a forged sign-in, say).

use crate::{Auditor, Origin, Outcome, SecurityEvent};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use data_encoding::BASE64;
use http::StatusCode;
use palisade_http::{AppError, TraceId};
use serde::Deserialize;
use serde_json::json;

/// The families of actions Palisade itself records: a service may not write any of them.
pub const RESERVED_FAMILIES: &[&str] = &[
    "identity.",
    "oauth.",
    "admin.",
    "audit.",
    "authz.",
    "privacy.",
    "keys.",
    "tenant.",
    "tls.",
    "realtime.",
    "palisade.",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestEvent {
    action: String,
    outcome: String,
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    trace_id: Option<String>,
    #[serde(default)]
    details: Option<serde_json::Map<String, serde_json::Value>>,
}

fn name_ok(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

fn invalid(message: &str) -> AppError {
    AppError::bad_request("invalid_event", message)
}

/// Turns one submitted event into a security event, or says what is wrong with it.
fn parse_event(e: IngestEvent, trace: Option<&TraceId>) -> Result<SecurityEvent, String> {
    if !name_ok(&e.action, 128) || !e.action.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(
            "`action` must be 1-128 characters of a-z, 0-9, '.', '_' and '-', starting with a letter.".into(),
        );
    }
    if let Some(family) = RESERVED_FAMILIES.iter().find(|f| e.action.starts_with(**f)) {
        return Err(format!(
            "`action` may not be in Palisade's own family `{family}`: name your service's actions under a prefix of its own."
        ));
    }
    let outcome = match e.outcome.as_str() {
        "success" => Outcome::Success,
        "failure" => Outcome::Failure,
        _ => return Err("`outcome` must be \"success\" or \"failure\".".into()),
    };
    let tenant = e.tenant.unwrap_or_else(|| "default".into());
    if !name_ok(&tenant, 64) {
        return Err("`tenant` must be 1-64 characters of a-z, 0-9, '.', '_' and '-'.".into());
    }
    for (field, value) in [
        ("actor", &e.actor),
        ("target", &e.target),
        ("trace_id", &e.trace_id),
    ] {
        if value
            .as_ref()
            .is_some_and(|v| v.is_empty() || v.len() > 256 || v.chars().any(char::is_control))
        {
            return Err(format!("`{field}` must be 1-256 printable characters."));
        }
    }
    let details = serde_json::Value::Object(e.details.unwrap_or_default());
    if details.to_string().len() > 8 * 1024 {
        return Err("`details` must be at most 8 KiB of JSON.".into());
    }
    let mut event = SecurityEvent::external(e.action, outcome, &tenant);
    event.actor = e.actor;
    event.target = e.target;
    event.trace_id = e.trace_id.or_else(|| trace.map(|t| t.0.clone()));
    event.details = details;
    Ok(event)
}

/// Events per request at most, when a service sends them in bulk.
const MAX_EVENTS: usize = 1_000;

/// One event (a JSON object) or up to [`MAX_EVENTS`] in order (a JSON array). Validation is all
/// or nothing; the answer comes once every event is durable.
pub async fn ingest(
    State(auditor): State<Auditor>,
    Extension(origin): Extension<Origin>,
    trace: Option<axum::Extension<TraceId>>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let Json(body) = Json::<serde_json::Value>::from_bytes(&body)
        .map_err(|_| AppError::bad_request("invalid_json", "The body is not a JSON value."))?;
    let trace = trace.as_ref().map(|t| &t.0);
    let parse = |value: serde_json::Value| {
        serde_json::from_value::<IngestEvent>(value)
            .map_err(|e| e.to_string())
            .and_then(|e| parse_event(e, trace))
            .map(|e| e.origin(origin.clone()))
    };
    let (events, bulk) = match body {
        serde_json::Value::Array(items) => {
            if items.is_empty() || items.len() > MAX_EVENTS {
                return Err(invalid(&format!("Send 1 to {MAX_EVENTS} events.")));
            }
            let events = items
                .into_iter()
                .enumerate()
                .map(|(i, item)| parse(item).map_err(|e| invalid(&format!("events[{i}]: {e}"))))
                .collect::<Result<Vec<_>, _>>()?;
            (events, true)
        }
        single => (vec![parse(single).map_err(|e| invalid(&e))?], false),
    };

    let indexes = auditor.record_proven(events).await?;
    let log = auditor
        .log()
        .ok_or_else(|| AppError::internal("ingest without a Merkle log"))?;
    let (note, size) = log
        .latest()
        .ok_or_else(|| AppError::internal("no checkpoint after an append"))?;
    let mut proven = Vec::with_capacity(indexes.len());
    for index in indexes {
        let proof = log
            .inclusion_proof(index, size)
            .map_err(|e| AppError::internal(format!("{e:?}")))?;
        proven.push(json!({
            "index": index,
            "inclusion_proof": proof.iter().map(|h| BASE64.encode(h)).collect::<Vec<_>>(),
        }));
    }
    let mut body = json!({ "tree_size": size, "checkpoint": note });
    if bulk {
        body["events"] = serde_json::Value::Array(proven);
    } else if let (Some(one), serde_json::Value::Object(map)) = (proven.pop(), &mut body) {
        map.extend(one.as_object().cloned().unwrap_or_default());
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}
