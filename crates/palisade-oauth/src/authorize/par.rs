//! Pushed authorization requests (RFC 9126, OAU-10): a client pushes its authorization request
//! over an authenticated back channel and gets a one-time `request_uri` to send the browser
//! with instead of the parameters.

use super::request::{KNOWN, Params, validate};
use crate::OAuth;
use crate::endpoint::{Authenticated, no_store};
use crate::error::OAuthError;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use palisade_http::AppError;
use palisade_store::now_ms;

pub(crate) const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
/// Pushed requests must be used within this (RFC 9126 suggests well under a few minutes).
const PUSHED_LIFETIME_MS: i64 = 60_000;

pub(crate) async fn push(
    State(oauth): State<OAuth>,
    headers: HeaderMap,
    Authenticated {
        params: form,
        client,
        ..
    }: Authenticated,
) -> Response {
    let mut answer = pushed_request(&oauth, &headers, form, client)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    if let Some(nonce) = oauth.0.auth.dpop().nonce() {
        answer.headers_mut().insert(
            palisade_principal::dpop::NONCE_HEADER,
            http::HeaderValue::from_str(&nonce).expect("base64url is a valid header value"),
        );
    }
    answer
}

async fn pushed_request(
    oauth: &OAuth,
    headers: &HeaderMap,
    form: std::collections::HashMap<String, String>,
    client: crate::clients::Client,
) -> Result<Response, OAuthError> {
    if form.contains_key("request_uri") {
        return Err(OAuthError::InvalidRequest(
            "A pushed request cannot itself name a request_uri.".into(),
        ));
    }
    let mut params: Params = form
        .into_iter()
        .filter(|(k, _)| KNOWN.contains(&k.as_str()))
        .collect();
    params.insert("client_id".into(), client.client_id.clone());
    // RFC 9449 §10.1: a proof sent with the pushed request binds the code to its key.
    if let Some(proof) = oauth
        .0
        .auth
        .dpop()
        .proof_of(headers, "POST", "/oauth/par")
        .await?
    {
        if params.get("dpop_jkt").is_some_and(|j| *j != proof.jkt) {
            return Err(OAuthError::InvalidDpopProof(
                "dpop_jkt names another key than the proof's.".into(),
            ));
        }
        params.insert("dpop_jkt".into(), proof.jkt);
    }
    validate(oauth, &params)
        .await
        .map_err(|r| OAuthError::from(*r))?;
    let secret = palisade_crypto::random_token();
    sqlx::query(
        "INSERT INTO oauth_pushed_requests (request_sha256, client_id, params, expires_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(palisade_crypto::sha256_hex(secret.as_bytes()))
    .bind(&client.client_id)
    .bind(serde_json::to_string(&params).expect("strings serialize"))
    .bind(now_ms() + PUSHED_LIFETIME_MS)
    .execute(oauth.0.db.pool())
    .await?;
    let mut response = no_store(serde_json::json!({
        "request_uri": format!("{REQUEST_URI_PREFIX}{secret}"),
        "expires_in": PUSHED_LIFETIME_MS / 1000,
    }));
    *response.status_mut() = http::StatusCode::CREATED;
    Ok(response)
}

/// The parameters of a pushed request, consumed: a `request_uri` works once, for its client,
/// within its lifetime.
pub(crate) async fn take(oauth: &OAuth, params: &Params) -> Result<Params, AppError> {
    let unknown = || {
        AppError::bad_request(
            "invalid_request",
            "The pushed request is unknown, expired or already used.",
        )
    };
    let secret = params
        .get("request_uri")
        .and_then(|u| u.strip_prefix(REQUEST_URI_PREFIX))
        .ok_or_else(unknown)?;
    let client_id = params.get("client_id").ok_or_else(unknown)?;
    let digest = palisade_crypto::sha256_hex(secret.as_bytes());
    let db = &oauth.0.db;
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT params FROM oauth_pushed_requests \
         WHERE request_sha256 = $1 AND client_id = $2 AND expires_at > $3",
    )
    .bind(&digest)
    .bind(client_id)
    .bind(now_ms())
    .fetch_optional(db.pool())
    .await
    .map_err(palisade_store::StoreError::from)?;
    let (stored,) = row.ok_or_else(unknown)?;
    let consumed = sqlx::query("DELETE FROM oauth_pushed_requests WHERE request_sha256 = $1")
        .bind(&digest)
        .execute(db.pool())
        .await
        .map_err(palisade_store::StoreError::from)?;
    if consumed.rows_affected() != 1 {
        return Err(unknown());
    }
    serde_json::from_str(&stored).map_err(|_| unknown())
}
