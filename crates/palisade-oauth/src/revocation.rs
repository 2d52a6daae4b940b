//! RFC 7009 revocation (OAU-8). A refresh token revokes its family; an access token revokes the
//! grant it was issued under. Unknown tokens and other clients' tokens change nothing and are
//! answered the same way, so the endpoint reveals nothing.

use crate::OAuth;
use crate::codes;
use crate::endpoint::{Authenticated, no_store};
use crate::error::OAuthError;
use axum::extract::State;
use axum::response::Response;
use palisade_audit::{Action, Outcome};
use palisade_identity::RequestContext;
use serde_json::json;

pub(crate) async fn revoke(
    State(oauth): State<OAuth>,
    ctx: RequestContext,
    Authenticated { params, client, .. }: Authenticated,
) -> Result<Response, OAuthError> {
    let token = params
        .get("token")
        .ok_or_else(|| OAuthError::InvalidRequest("token is required.".into()))?;
    let db = &oauth.0.db;
    let grant = match codes::refresh_grant(db, token).await? {
        Some((grant, owner)) => (owner == client.client_id).then_some(grant),
        // An access token of ours, even one already revoked: its grant.
        None => oauth
            .0
            .auth
            .inspect(token)
            .await
            .ok()
            .filter(|live| live.claims.client_id == client.client_id)
            .and_then(|live| live.claims.gid),
    };
    if let Some(grant) = grant {
        oauth.revoke_grant(&grant).await?;
        oauth
            .0
            .auditor
            .record(
                ctx.event(Action::TokenRevoked, Outcome::Success, &client.tenant_id)
                    .client(client.client_id.clone())
                    .detail("grant", grant.as_str()),
            )
            .await?;
    }
    Ok(no_store(json!({})))
}
