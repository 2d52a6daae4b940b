//! RFC 7662 introspection (OAU-8): a confidential client asks whether a token is active. It
//! learns about tokens of its own tenant only, and a resource server (a client registered with
//! the resource it serves) about tokens for its own audience only; every other token — and
//! every token that is not valid — is `active: false`, with nothing about why (§2.2).

use crate::OAuth;
use crate::clients::AuthMethod;
use crate::endpoint::{Authenticated, no_store};
use crate::error::OAuthError;
use axum::extract::State;
use axum::response::Response;
use serde_json::json;

pub(crate) async fn introspect(
    State(oauth): State<OAuth>,
    Authenticated { params, client, .. }: Authenticated,
) -> Result<Response, OAuthError> {
    if client.auth_method == AuthMethod::None {
        return Err(OAuthError::InvalidClient { basic: false });
    }
    let token = params
        .get("token")
        .ok_or_else(|| OAuthError::InvalidRequest("token is required.".into()))?;
    let live = oauth.0.auth.inspect(token).await.ok().filter(|live| {
        live.claims.tenant == *client.tenant_id.as_str()
            && client
                .resource
                .as_deref()
                .is_none_or(|resource| live.claims.aud.contains(resource))
    });
    let Some(live) = live else {
        return Ok(no_store(json!({ "active": false })));
    };
    let c = live.claims;
    let token_type = if c.cnf.is_some() { "DPoP" } else { "Bearer" };
    let mut body = json!({
        "active": true,
        "token_type": token_type,
        "scope": c.scope,
        "client_id": c.client_id,
        "sub": c.sub,
        "aud": c.aud,
        "iss": c.iss,
        "exp": c.exp,
        "iat": c.iat,
        "jti": c.jti,
    });
    if let Some(cnf) = c.cnf {
        body["cnf"] = json!(cnf);
    }
    Ok(no_store(body))
}
