//! The token endpoint (RFC 6749 §3.2, OAU-3): the `client_credentials`, `authorization_code`
//! and `refresh_token` grants, the tokens a user's grant yields (an RFC 9068 access token, an
//! ID token, a rotated refresh token), DPoP binding of what is issued (RFC 9449), and the
//! revocation of a grant whose code or refresh token is presented again.

use crate::OAuth;
use crate::clients::{self, AuthMethod};
use crate::codes;
use crate::error::OAuthError;
use crate::routes::{Authenticated, answer, no_store};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use palisade_audit::{Action, Outcome};
use palisade_identity::RequestContext;
use palisade_jose::dpop::Proof;
use palisade_store::now_ms;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

pub(crate) async fn token(
    State(oauth): State<OAuth>,
    ctx: RequestContext,
    headers: HeaderMap,
    Authenticated { params, client }: Authenticated,
) -> Response {
    let answered = answer(&ctx, issue(&oauth, &ctx, &headers, params, client).await);
    crate::dpop::with_nonce(&oauth, answered)
}

async fn issue(
    oauth: &OAuth,
    ctx: &RequestContext,
    headers: &HeaderMap,
    params: HashMap<String, String>,
    client: clients::Client,
) -> Result<Response, OAuthError> {
    let grant = params
        .get("grant_type")
        .ok_or_else(|| OAuthError::InvalidRequest("grant_type is required.".into()))?;
    // RFC 9449: with a proof, the tokens issued are bound to its key.
    let proof = oauth
        .dpop_proof(headers, "POST", "/oauth/token", None)
        .await?;
    match grant.as_str() {
        "client_credentials" => client_credentials(oauth, ctx, &params, client, proof).await,
        "authorization_code" => authorization_code(oauth, ctx, &params, client, proof).await,
        "refresh_token" => refresh(oauth, ctx, &params, client, proof).await,
        _ => Err(OAuthError::UnsupportedGrantType),
    }
}

/// Binds an access token to a DPoP key (RFC 9449 §6: `cnf.jkt`); its `token_type`.
fn bind(extra: &mut Map<String, Value>, proof: Option<&Proof>) -> &'static str {
    match proof {
        Some(proof) => {
            extra.insert("cnf".into(), json!({ "jkt": proof.jkt }));
            "DPoP"
        }
        None => "Bearer",
    }
}

fn audience(oauth: &OAuth, params: &HashMap<String, String>) -> Result<String, OAuthError> {
    let config = oauth.config();
    match params.get("resource") {
        Some(r) if config.resources.contains(r) => Ok(r.clone()),
        Some(_) => Err(OAuthError::InvalidTarget(
            "The resource is not served by this authorization server.".into(),
        )),
        None => Ok(config.resources[0].clone()),
    }
}

async fn client_credentials(
    oauth: &OAuth,
    ctx: &RequestContext,
    params: &HashMap<String, String>,
    client: clients::Client,
    proof: Option<Proof>,
) -> Result<Response, OAuthError> {
    let grant = "client_credentials";
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
    let audience = audience(oauth, params)?;
    let mut extra = Map::new();
    let token_type = bind(&mut extra, proof.as_ref());
    let issued = oauth.issue_access_token(
        &client.client_id,
        &client.tenant_id,
        &client.client_id,
        &scope,
        &audience,
        extra,
    );
    oauth
        .0
        .auditor
        .record(
            ctx.event(Action::TokenIssued, Outcome::Success, &client.tenant_id)
                .client(client.client_id.clone())
                .detail("grant_type", grant)
                .detail("scope", scope.as_str())
                .detail("audience", audience.as_str()),
        )
        .await?;
    Ok(no_store(json!({
        "access_token": issued.token,
        "token_type": token_type,
        "expires_in": issued.expires_in,
        "scope": issued.scope,
    })))
}

/// The `authorization_code` grant (OAU-1, OAU-3, OAU-7): the code is consumed first — so a
/// stolen code tried with a wrong verifier is burnt — then must match the client, the redirect
/// URI and the PKCE challenge, be within its minute, and come from a browser session that is
/// still alive. A code presented twice revokes everything issued from it.
async fn authorization_code(
    oauth: &OAuth,
    ctx: &RequestContext,
    params: &HashMap<String, String>,
    client: clients::Client,
    proof: Option<Proof>,
) -> Result<Response, OAuthError> {
    if !client.allows_grant("authorization_code") {
        return Err(OAuthError::UnauthorizedClient(
            "This client may not use the authorization_code grant.".into(),
        ));
    }
    let required = |name: &str| {
        params
            .get(name)
            .ok_or_else(|| OAuthError::InvalidRequest(format!("{name} is required.")))
    };
    let (code, redirect_uri, verifier) = (
        required("code")?,
        required("redirect_uri")?,
        required("code_verifier")?,
    );
    let db = &oauth.0.db;
    let grant = match codes::redeem(db, code).await? {
        codes::Redeemed::Fresh(g) => g,
        codes::Redeemed::Unknown => {
            return Err(OAuthError::InvalidGrant("The code is not valid.".into()));
        }
        codes::Redeemed::Replayed(grant_id) => {
            return Err(revoke_on_reuse(
                oauth,
                ctx,
                &client,
                &grant_id,
                Action::CodeReplayed,
                "The code was already used; what it granted is revoked.",
            )
            .await);
        }
    };
    let now = now_ms();
    let challenge =
        data_encoding::BASE64URL_NOPAD.encode(&palisade_crypto::sha256(verifier.as_bytes()));
    let verifier_ok = (43..=128).contains(&verifier.len())
        && palisade_crypto::constant_time_eq(challenge.as_bytes(), grant.code_challenge.as_bytes());
    if grant.client_id != client.client_id
        || grant.redirect_uri != *redirect_uri
        || grant.expires_at <= now
        || !verifier_ok
    {
        return Err(OAuthError::InvalidGrant(
            "The code, redirect URI or code verifier does not match.".into(),
        ));
    }
    if !palisade_identity::sessions::is_live(db, &grant.session_id, now).await? {
        return Err(OAuthError::InvalidGrant(
            "The sign-in session that approved this code has ended.".into(),
        ));
    }
    // RFC 9449 §10: a code requested for a DPoP key is exchanged only with a proof of it.
    if let Some(jkt) = &grant.dpop_jkt
        && proof.as_ref().map(|p| &p.jkt) != Some(jkt)
    {
        return Err(OAuthError::InvalidDpopProof(
            "The code is bound to another DPoP key.".into(),
        ));
    }
    // Accounts and clients of different tenants never meet (IDN-8): the authorization endpoint
    // already refuses, and each grant checks again before anything is written.
    let user = palisade_identity::users::get(db, &grant.user_id)
        .await?
        .filter(|u| u.locked == 0 && u.tenant_id == client.tenant_id)
        .ok_or_else(|| OAuthError::InvalidGrant("The account is not available.".into()))?;
    codes::record_grant(db, &grant).await?;
    let sid = session_handle(&grant.session_id);
    let refresh = codes::Refresh {
        grant_id: grant.grant_id.clone(),
        client_id: client.client_id.clone(),
        user_id: user.id.clone(),
        session_id: grant.session_id.clone(),
        scope: grant.scope.clone(),
        resource: grant.resource.clone(),
        epoch: user.revocation_epoch,
        expires_at: now + i64::from(oauth.config().refresh_token_days) * 86_400_000,
        // RFC 9449 §5: a public client's refresh tokens are bound to its DPoP key; a
        // confidential client's are already bound to its credentials.
        dpop_jkt: proof
            .as_ref()
            .filter(|_| client.auth_method == AuthMethod::None)
            .map(|p| p.jkt.clone()),
    };
    let mut body = user_tokens(oauth, &client, &user, &refresh, proof.as_ref()).await?;
    if grant.scope.split(' ').any(|s| s == "openid") {
        let authenticated = codes::Authentication {
            auth_time: grant.auth_time,
            amr: grant.amr.clone(),
        };
        let mut claims = id_token_claims(&user.id, &client.client_id, &sid, &authenticated);
        if let Some(nonce) = &grant.nonce {
            claims.insert("nonce".into(), nonce.clone().into());
        }
        body["id_token"] = oauth.issue_id_token(claims).into();
    }
    oauth
        .0
        .auditor
        .record(
            ctx.event(Action::TokenIssued, Outcome::Success, &user.tenant_id)
                .actor(user.id.clone())
                .client(client.client_id.clone())
                .detail("grant_type", "authorization_code")
                .detail("scope", grant.scope.as_str()),
        )
        .await?;
    Ok(no_store(body))
}

/// The claims of an ID token for `user_id` at `client_id` (OpenID Connect §2): the session,
/// when and how the user authenticated, and the assurance level that follows (`acr`: a
/// second factor or a passkey counts as multi-factor).
fn id_token_claims(
    user_id: &str,
    client_id: &str,
    sid: &str,
    authenticated: &codes::Authentication,
) -> Map<String, Value> {
    let amr: Vec<&str> = authenticated
        .amr
        .split(' ')
        .filter(|a| !a.is_empty())
        .collect();
    let acr = if amr.iter().any(|a| ["mfa", "hwk"].contains(a)) {
        ACR_MFA
    } else {
        ACR_PASSWORD
    };
    let Value::Object(claims) = json!({
        "sub": user_id,
        "aud": client_id,
        "auth_time": authenticated.auth_time / 1000,
        "sid": sid,
        "amr": amr,
        "acr": acr,
    }) else {
        unreachable!("a JSON object literal")
    };
    claims
}

pub(crate) const ACR_PASSWORD: &str = "urn:palisade:acr:password";
pub(crate) const ACR_MFA: &str = "urn:palisade:acr:mfa";

/// A session id for clients (`sid`), derived so that it reveals nothing of the cookie's digest.
pub(crate) fn session_handle(session_id: &str) -> String {
    palisade_crypto::sha256_hex(format!("sid:{session_id}").as_bytes())[..32].to_owned()
}

/// The token response for a user's grant: an access token carrying the grant and revocation
/// epoch, and a new refresh token of the grant's family when the client may refresh.
async fn user_tokens(
    oauth: &OAuth,
    client: &clients::Client,
    user: &palisade_identity::users::User,
    refresh: &codes::Refresh,
    proof: Option<&Proof>,
) -> Result<Value, OAuthError> {
    let mut extra = Map::new();
    let token_type = bind(&mut extra, proof);
    extra.insert("sid".into(), session_handle(&refresh.session_id).into());
    extra.insert("gid".into(), refresh.grant_id.clone().into());
    extra.insert("rev".into(), user.revocation_epoch.into());
    let access = oauth.issue_access_token(
        &user.id,
        &user.tenant_id,
        &client.client_id,
        &refresh.scope,
        &refresh.resource,
        extra,
    );
    let mut body = json!({
        "access_token": access.token,
        "token_type": token_type,
        "expires_in": access.expires_in,
        "scope": access.scope,
    });
    if client.allows_grant("refresh_token") {
        body["refresh_token"] = codes::issue_refresh(&oauth.0.db, refresh).await?.into();
    }
    Ok(body)
}

/// The `refresh_token` grant (OAU-5): rotation on every use; a rotated token presented again
/// within the grace window is a concurrent refresh and also answered, after it a reuse that
/// revokes the whole family. A revoked user (epoch raised, account locked) or an ended session
/// (unless the grant includes `offline_access`) refreshes nothing.
async fn refresh(
    oauth: &OAuth,
    ctx: &RequestContext,
    params: &HashMap<String, String>,
    client: clients::Client,
    proof: Option<Proof>,
) -> Result<Response, OAuthError> {
    if !client.allows_grant("refresh_token") {
        return Err(OAuthError::UnauthorizedClient(
            "This client may not use refresh tokens.".into(),
        ));
    }
    let token = params
        .get("refresh_token")
        .ok_or_else(|| OAuthError::InvalidRequest("refresh_token is required.".into()))?;
    let db = &oauth.0.db;
    let invalid = || OAuthError::InvalidGrant("The refresh token is not valid.".into());
    let proved = proof.as_ref().map(|p| p.jkt.as_str());
    let mut refresh =
        match codes::rotate_refresh(db, token, proved, oauth.config().refresh_grace_ms).await? {
            codes::Rotated::Fresh(r) | codes::Rotated::Concurrent(r) => r,
            codes::Rotated::Unknown => return Err(invalid()),
            codes::Rotated::WrongKey => {
                return Err(OAuthError::InvalidDpopProof(
                    "The refresh token is bound to another DPoP key.".into(),
                ));
            }
            codes::Rotated::Reused(grant_id) => {
                return Err(revoke_on_reuse(
                    oauth,
                    ctx,
                    &client,
                    &grant_id,
                    Action::RefreshReused,
                    "The refresh token was already used; its family is revoked.",
                )
                .await);
            }
        };
    let now = now_ms();
    if refresh.client_id != client.client_id
        || refresh.expires_at <= now
        || !codes::grant_is_live(db, &refresh.grant_id).await?
    {
        return Err(invalid());
    }
    let offline = refresh.scope.split(' ').any(|s| s == "offline_access");
    if !offline && !palisade_identity::sessions::is_live(db, &refresh.session_id, now).await? {
        return Err(OAuthError::InvalidGrant(
            "The sign-in session of this grant has ended.".into(),
        ));
    }
    let user = palisade_identity::users::get(db, &refresh.user_id)
        .await?
        .filter(|u| {
            u.locked == 0 && u.revocation_epoch == refresh.epoch && u.tenant_id == client.tenant_id
        })
        .ok_or_else(invalid)?;
    // A client may narrow the scope of a refresh, never widen it.
    if let Some(asked) = params.get("scope") {
        let granted: Vec<&str> = refresh.scope.split(' ').collect();
        let asked: Vec<&str> = asked.split(' ').filter(|s| !s.is_empty()).collect();
        if let Some(extra) = asked.iter().find(|s| !granted.contains(s)) {
            return Err(OAuthError::InvalidScope(format!(
                "The scope `{extra}` was not granted."
            )));
        }
        refresh.scope = asked.join(" ");
    }
    let mut body = user_tokens(oauth, &client, &user, &refresh, proof.as_ref()).await?;
    // OpenID Connect §12.2: a fresh ID token for the same user and original authentication.
    if refresh.scope.split(' ').any(|s| s == "openid")
        && let Some(authenticated) = codes::authentication(db, &refresh.grant_id).await?
    {
        let sid = session_handle(&refresh.session_id);
        let claims = id_token_claims(&user.id, &client.client_id, &sid, &authenticated);
        body["id_token"] = oauth.issue_id_token(claims).into();
    }
    oauth
        .0
        .auditor
        .record(
            ctx.event(Action::TokenRefreshed, Outcome::Success, &user.tenant_id)
                .actor(user.id.clone())
                .client(client.client_id.clone()),
        )
        .await?;
    Ok(no_store(body))
}

/// A code or refresh token presented again: revokes everything issued under its grant, audits
/// the attempt, and returns the error to answer.
pub(crate) async fn revoke_on_reuse(
    oauth: &OAuth,
    ctx: &RequestContext,
    client: &clients::Client,
    grant_id: &str,
    action: Action,
    message: &str,
) -> OAuthError {
    let revoked = async {
        codes::revoke_grant(&oauth.0.db, grant_id).await?;
        oauth
            .0
            .auditor
            .record(
                ctx.event(action, Outcome::Failure, "default")
                    .client(client.client_id.clone())
                    .detail("grant", grant_id),
            )
            .await
            .map(|_| ())
    };
    match revoked.await {
        Ok(()) => OAuthError::InvalidGrant(message.into()),
        Err(e) => e.into(),
    }
}
