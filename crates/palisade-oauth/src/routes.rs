//! The provider's endpoints: RFC 8414 metadata, the token endpoint (RFC 6749 §3.2) and
//! introspection (RFC 7662). Requests are parsed strictly (form bodies only, no repeated
//! parameter); every answer carrying a token or its status is `no-store`.

use crate::OAuth;
use crate::clients::{self, AuthMethod, Presented};
use crate::error::OAuthError;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use palisade_audit::{Action, Outcome};
use palisade_identity::RequestContext;
use serde_json::{Value, json};
use std::collections::HashMap;

pub fn router(oauth: OAuth) -> Router {
    Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/oauth/token", post(token))
        .route("/oauth/introspect", post(introspect))
        .with_state(oauth)
}

async fn metadata(State(oauth): State<OAuth>) -> Json<Value> {
    let issuer = &oauth.config().issuer;
    let auth_methods =
        [AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost].map(AuthMethod::as_str);
    Json(json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/oauth/token"),
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "scopes_supported": oauth.config().scopes,
    }))
}

fn no_store(body: Value) -> Response {
    (
        [("cache-control", "no-store"), ("pragma", "no-cache")],
        Json(body),
    )
        .into_response()
}

/// The form parameters of a token-endpoint style request.
fn form(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    let form_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return Err(OAuthError::InvalidRequest(
            "The body must be application/x-www-form-urlencoded.".into(),
        ));
    }
    palisade_identity::csrf::parse_pairs(body)
        .map(|pairs| pairs.into_iter().collect())
        .map_err(|_| {
            OAuthError::InvalidRequest("The form is malformed or repeats a parameter.".into())
        })
}

/// Authenticates the calling client; failures are audited.
async fn client(
    oauth: &OAuth,
    ctx: &RequestContext,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<clients::Client, OAuthError> {
    let authorization = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let basic = match authorization {
        Some(h) if h.starts_with("Basic ") => {
            Some(clients::parse_basic(h).ok_or(OAuthError::InvalidClient { basic: true })?)
        }
        _ => None,
    };
    let attempted = basic
        .as_ref()
        .map(|(id, _)| id.clone())
        .or_else(|| params.get("client_id").cloned());
    let presented = Presented {
        basic,
        post_id: params.get("client_id").cloned(),
        post_secret: params.get("client_secret").cloned(),
    };
    let result = clients::authenticate(&oauth.0.db, presented).await;
    if let Err(OAuthError::InvalidClient { .. }) = &result {
        let mut event = ctx.event(
            Action::ClientAuthenticationFailed,
            Outcome::Failure,
            "default",
        );
        if let Some(id) = attempted {
            event = event.client(id);
        }
        oauth.0.auditor.record(event).await?;
    }
    result
}

async fn token(
    State(oauth): State<OAuth>,
    ctx: RequestContext,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match issue(&oauth, &ctx, &headers, &body).await {
        Ok(response) => response,
        Err(e) => e.respond(Some(&ctx.trace_id)),
    }
}

async fn issue(
    oauth: &OAuth,
    ctx: &RequestContext,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OAuthError> {
    let params = form(headers, body)?;
    let client = client(oauth, ctx, headers, &params).await?;
    let grant = params
        .get("grant_type")
        .ok_or_else(|| OAuthError::InvalidRequest("grant_type is required.".into()))?;
    if grant != "client_credentials" {
        return Err(OAuthError::UnsupportedGrantType);
    }
    if client.auth_method == AuthMethod::None || !client.allows_grant(grant) {
        return Err(OAuthError::UnauthorizedClient(
            "This client may not use the client_credentials grant.".into(),
        ));
    }
    // Scope minimisation: exactly what was asked, all of it registered for the client; with
    // no scope asked, the client's registered scopes.
    let scope = match params.get("scope") {
        Some(asked) => {
            let mut granted: Vec<&str> = Vec::new();
            for s in asked.split(' ').filter(|s| !s.is_empty()) {
                if !client.scopes.iter().any(|c| c == s) {
                    return Err(OAuthError::InvalidScope(format!(
                        "The scope `{s}` is not registered for this client."
                    )));
                }
                if !granted.contains(&s) {
                    granted.push(s);
                }
            }
            granted.join(" ")
        }
        None => client.scopes.join(" "),
    };
    let config = oauth.config();
    let audience = match params.get("resource") {
        Some(r) if config.resources.contains(r) => r.clone(),
        Some(_) => {
            return Err(OAuthError::InvalidTarget(
                "The resource is not served by this authorization server.".into(),
            ));
        }
        None => config.resources[0].clone(),
    };
    let issued = oauth.issue_access_token(&client.client_id, &client.client_id, &scope, &audience);
    oauth
        .0
        .auditor
        .record(
            ctx.event(Action::TokenIssued, Outcome::Success, "default")
                .client(client.client_id.clone())
                .detail("grant_type", grant.as_str())
                .detail("scope", scope.as_str())
                .detail("audience", audience.as_str()),
        )
        .await?;
    Ok(no_store(json!({
        "access_token": issued.token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": issued.scope,
    })))
}

async fn introspect(
    State(oauth): State<OAuth>,
    ctx: RequestContext,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = async {
        let params = form(&headers, &body)?;
        let client = client(&oauth, &ctx, &headers, &params).await?;
        if client.auth_method == AuthMethod::None {
            return Err(OAuthError::InvalidClient { basic: false });
        }
        let token = params
            .get("token")
            .ok_or_else(|| OAuthError::InvalidRequest("token is required.".into()))?;
        let body = match oauth.verify_access_token(token, None) {
            Ok(claims) => {
                let mut out = json!({ "active": true, "token_type": "Bearer" });
                for name in [
                    "scope",
                    "client_id",
                    "sub",
                    "aud",
                    "iss",
                    "exp",
                    "iat",
                    "jti",
                ] {
                    if let Some(v) = claims.get(name) {
                        out[name] = v.clone();
                    }
                }
                out
            }
            // RFC 7662 §2.2: nothing about why a token is not active.
            Err(_) => json!({ "active": false }),
        };
        Ok(no_store(body))
    };
    match answer.await {
        Ok(r) => r,
        Err(e) => e.respond(Some(&ctx.trace_id)),
    }
}
