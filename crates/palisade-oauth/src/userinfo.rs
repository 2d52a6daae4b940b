//! OpenID Connect userinfo (GET or POST), for an access token of this server's own resource
//! granting `openid`: in the `Authorization` header (Bearer or DPoP) or, on POST, in the form
//! body (RFC 6750 §2.2) — all checked by the route's guard before this runs.

use crate::OAuth;
use crate::endpoint::no_store;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use palisade_http::AppError;
use palisade_principal::{AuthError, Principal, Refusal};
use serde_json::json;

pub(crate) async fn userinfo(
    State(oauth): State<OAuth>,
    principal: Principal,
) -> Result<Response, AppError> {
    // Only a user's token has an account to describe.
    if !principal.is_user() {
        return Ok(Refusal::new(principal.scheme(), AuthError::InvalidToken).into_response());
    }
    let Some(user) = palisade_identity::users::get(&oauth.0.db, &principal.subject).await? else {
        return Ok(Refusal::new(principal.scheme(), AuthError::InvalidToken).into_response());
    };
    let mut body = json!({ "sub": user.id });
    if principal.has_scope("email") {
        body["email"] = user.email.into();
        body["email_verified"] = false.into();
    }
    Ok(no_store(body))
}
