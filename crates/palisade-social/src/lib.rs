//! The protected social API (SOC-*, RES-*). Every handler takes a [`Principal`]: a request
//! without a valid access token never reaches one.
//!
//! So far: `GET /api/me`, the principal a token acts as; profiles, follows, blocks, mutes and
//! friends (SOC-1); posts and the home timeline (SOC-2); direct messages (SOC-3) — each decided
//! by the Cedar policies.

mod decide;
mod graph;
mod messages;
mod posts;
mod profiles;

use axum::extract::FromRef;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use palisade_oauth::OAuth;
use palisade_oauth::principal::Principal;
use palisade_oauth::resource::{ResourceError, Scheme};
use serde_json::json;
use std::sync::Arc;

#[derive(Clone)]
struct Social {
    oauth: OAuth,
    db: palisade_store::Db,
    authz: Arc<palisade_authz::Authorizer>,
}

impl FromRef<Social> for OAuth {
    fn from_ref(social: &Social) -> OAuth {
        social.oauth.clone()
    }
}

pub fn router(
    oauth: OAuth,
    db: palisade_store::Db,
    authz: Arc<palisade_authz::Authorizer>,
) -> Router {
    use profiles::*;
    Router::new()
        .route("/api/me", get(me))
        .route("/api/profiles/{id}", get(read).put(update))
        .route("/api/profiles/{id}/follow", put(follow).delete(unfollow))
        .route("/api/profiles/{id}/block", put(block).delete(unblock))
        .route("/api/profiles/{id}/mute", put(mute).delete(unmute))
        .route("/api/profiles/{id}/friends", get(friends))
        .route("/api/posts", post(posts::create))
        .route("/api/posts/{id}", get(posts::read).delete(posts::delete))
        .route("/api/posts/{id}/hide", post(posts::hide))
        .route("/api/timeline", get(posts::timeline))
        .route(
            "/api/conversations",
            get(messages::list).post(messages::start),
        )
        .route(
            "/api/conversations/{id}/messages",
            get(messages::history).post(messages::send),
        )
        .route("/api/conversations/{id}/read", put(messages::mark_read))
        .with_state(Social { oauth, db, authz })
}

/// The principal the request's token acts as: subject, tenant, role, scopes, client, session
/// and key binding. Needs `social:read`.
async fn me(principal: Principal) -> Response {
    if !principal.has_scope("social:read") {
        let scheme = if principal.key_binding.is_some() {
            Scheme::DPoP
        } else {
            Scheme::Bearer
        };
        return ResourceError::insufficient_scope(scheme).into_response();
    }
    Json(json!({
        "subject": principal.subject,
        "tenant": principal.tenant,
        "role": principal.role.map(|r| r.as_str()),
        "scopes": principal.scopes,
        "client_id": principal.client_id,
        "session": principal.session,
        "key_binding": principal.key_binding,
    }))
    .into_response()
}
