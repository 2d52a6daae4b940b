//! The token endpoint (RFC 6749 §3.2, OAU-3): the `client_credentials`, `authorization_code`
//! and `refresh_token` grants, the tokens a user's grant yields (an RFC 9068 access token, an
//! ID token, a rotated refresh token), DPoP binding of what is issued (RFC 9449), and the
//! revocation of a grant whose code or refresh token is presented again.

use crate::clients::{AuthMethod, Client, Registrar, SERVICE_SCOPES};
use crate::codes;
use crate::endpoint::{Authenticated, no_store};
use crate::error::OAuthError;
use crate::{OAuth, TokenFor, UserBinding};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use palisade_audit::{Action, Outcome};
use palisade_identity::RequestContext;
use palisade_identity::assurance::Acr;
use palisade_jose::dpop::Proof;
use palisade_store::now_ms;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// The grants this endpoint knows (implicit and password grants do not exist, OAU-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "authorization_code" => Some(GrantType::AuthorizationCode),
            "refresh_token" => Some(GrantType::RefreshToken),
            "client_credentials" => Some(GrantType::ClientCredentials),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }
}

/// A token request, parsed from the form: exactly the parameters its grant takes.
enum TokenRequest {
    AuthorizationCode {
        code: String,
        redirect_uri: String,
        verifier: String,
    },
    RefreshToken {
        token: String,
        scope: Option<String>,
    },
    ClientCredentials {
        scope: Option<String>,
        resource: Option<String>,
    },
}

impl TokenRequest {
    fn parse(params: &HashMap<String, String>) -> Result<Self, OAuthError> {
        let required = |name: &str| {
            params
                .get(name)
                .cloned()
                .ok_or_else(|| OAuthError::InvalidRequest(format!("{name} is required.")))
        };
        let grant = required("grant_type")?;
        Ok(
            match GrantType::parse(&grant).ok_or(OAuthError::UnsupportedGrantType)? {
                GrantType::AuthorizationCode => TokenRequest::AuthorizationCode {
                    code: required("code")?,
                    redirect_uri: required("redirect_uri")?,
                    verifier: required("code_verifier")?,
                },
                GrantType::RefreshToken => TokenRequest::RefreshToken {
                    token: required("refresh_token")?,
                    scope: params.get("scope").cloned(),
                },
                GrantType::ClientCredentials => TokenRequest::ClientCredentials {
                    scope: params.get("scope").cloned(),
                    resource: params.get("resource").cloned(),
                },
            },
        )
    }

    fn grant(&self) -> GrantType {
        match self {
            TokenRequest::AuthorizationCode { .. } => GrantType::AuthorizationCode,
            TokenRequest::RefreshToken { .. } => GrantType::RefreshToken,
            TokenRequest::ClientCredentials { .. } => GrantType::ClientCredentials,
        }
    }
}

pub(crate) async fn token(
    State(oauth): State<OAuth>,
    ctx: RequestContext,
    headers: HeaderMap,
    Authenticated {
        params,
        client,
        certificate,
    }: Authenticated,
) -> Response {
    let answer = issue(
        &oauth,
        &ctx,
        &headers,
        &params,
        client,
        certificate.as_deref(),
    )
    .await;
    // Every answer carries a fresh nonce, so clients always hold one (RFC 9449 §8).
    let mut answer = match answer {
        Ok(r) => r,
        Err(e) => axum::response::IntoResponse::into_response(e),
    };
    if let Some(nonce) = oauth.0.auth.dpop().nonce() {
        answer.headers_mut().insert(
            palisade_principal::dpop::NONCE_HEADER,
            http::HeaderValue::from_str(&nonce).expect("base64url is a valid header value"),
        );
    }
    answer
}

async fn issue(
    oauth: &OAuth,
    ctx: &RequestContext,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    client: Client,
    certificate: Option<&str>,
) -> Result<Response, OAuthError> {
    let request = TokenRequest::parse(params)?;
    if !client.allows_grant(request.grant().as_str()) {
        return Err(OAuthError::UnauthorizedClient(format!(
            "This client may not use the {} grant.",
            request.grant().as_str()
        )));
    }
    // RFC 9449: with a proof, the tokens issued are bound to its key.
    let proof = oauth
        .0
        .auth
        .dpop()
        .proof_of(headers, "POST", "/oauth/token")
        .await?;
    match request {
        TokenRequest::ClientCredentials { scope, resource } => {
            client_credentials(oauth, ctx, scope, resource, client, proof, certificate).await
        }
        TokenRequest::AuthorizationCode {
            code,
            redirect_uri,
            verifier,
        } => {
            let presented = Presented {
                code: &code,
                redirect_uri: &redirect_uri,
                verifier: &verifier,
            };
            authorization_code(oauth, ctx, presented, client, proof, certificate).await
        }
        TokenRequest::RefreshToken { token, scope } => {
            refresh(oauth, ctx, &token, scope, client, proof, certificate).await
        }
    }
}

fn token_type(proof: Option<&Proof>) -> &'static str {
    if proof.is_some() { "DPoP" } else { "Bearer" }
}

fn audience(oauth: &OAuth, resource: Option<&str>) -> Result<String, OAuthError> {
    let config = oauth.config();
    match resource {
        Some(r) if config.resources.iter().any(|c| c == r) => Ok(r.to_owned()),
        Some(_) => Err(OAuthError::InvalidTarget(
            "The resource is not served by this authorization server.".into(),
        )),
        None => Ok(config.resources[0].clone()),
    }
}

async fn client_credentials(
    oauth: &OAuth,
    ctx: &RequestContext,
    scope: Option<String>,
    resource: Option<String>,
    client: Client,
    proof: Option<Proof>,
    certificate: Option<&str>,
) -> Result<Response, OAuthError> {
    if client.auth_method == AuthMethod::None {
        return Err(OAuthError::UnauthorizedClient(
            "A public client may not use the client_credentials grant.".into(),
        ));
    }
    // Scope minimisation: exactly what was asked, all of it registered for the client; with
    // no scope asked, the client's registered scopes.
    let scope = match scope {
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
    // Service scopes are an administrator's to give (a client registered before this rule
    // keeps its registration, not the scope).
    if client.registered_by != Registrar::Admin
        && let Some(s) = scope.split(' ').find(|s| SERVICE_SCOPES.contains(s))
    {
        return Err(OAuthError::InvalidScope(format!(
            "The scope `{s}` is for service clients an administrator created."
        )));
    }
    let audience = audience(oauth, resource.as_deref())?;
    let issued = oauth.issue_access_token(TokenFor {
        subject: &client.client_id,
        tenant: &client.tenant_id,
        client_id: &client.client_id,
        scope: &scope,
        audience: &audience,
        user: None,
        jkt: proof.as_ref().map(|p| p.jkt.as_str()),
        x5t: certificate,
    });
    oauth
        .0
        .auditor
        .record(
            ctx.event(Action::TokenIssued, Outcome::Success, &client.tenant_id)
                .client(client.client_id.clone())
                .detail("grant_type", GrantType::ClientCredentials.as_str())
                .detail("scope", scope.as_str())
                .detail("audience", audience.as_str()),
        )
        .await?;
    Ok(no_store(json!({
        "access_token": issued.token,
        "token_type": token_type(proof.as_ref()),
        "expires_in": issued.expires_in,
        "scope": issued.scope,
    })))
}

/// What an `authorization_code` request presents.
struct Presented<'a> {
    code: &'a str,
    redirect_uri: &'a str,
    verifier: &'a str,
}

/// The `authorization_code` grant (OAU-1, OAU-3, OAU-7): the code is consumed first — so a
/// stolen code tried with a wrong verifier is burnt — then must match the client, the redirect
/// URI and the PKCE challenge, be within its minute, and come from a browser session that is
/// still alive. A code presented twice revokes everything issued from it.
async fn authorization_code(
    oauth: &OAuth,
    ctx: &RequestContext,
    presented: Presented<'_>,
    client: Client,
    proof: Option<Proof>,
    certificate: Option<&str>,
) -> Result<Response, OAuthError> {
    let db = &oauth.0.db;
    let grant = match codes::redeem(db, presented.code).await? {
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
    let verifier = presented.verifier;
    let challenge =
        data_encoding::BASE64URL_NOPAD.encode(&palisade_crypto::sha256(verifier.as_bytes()));
    let verifier_ok = (43..=128).contains(&verifier.len())
        && palisade_crypto::constant_time_eq(challenge.as_bytes(), grant.code_challenge.as_bytes());
    if grant.client_id != client.client_id
        || grant.redirect_uri != presented.redirect_uri
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
    let refresh_token = if client.allows_grant(GrantType::RefreshToken.as_str()) {
        Some(codes::issue_refresh(db, &refresh).await?)
    } else {
        None
    };
    let mut body = user_tokens(
        oauth,
        &client,
        &user,
        &refresh,
        &grant.scope,
        proof.as_ref(),
        certificate,
    );
    if let Some(token) = refresh_token {
        body["refresh_token"] = token.into();
    }
    if grant.scope.split(' ').any(|s| s == "openid") {
        let authenticated = codes::Authentication {
            auth_time: grant.auth_time,
            amr: grant.amr.clone(),
        };
        let sid = session_handle(&grant.session_id);
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
                .detail("grant_type", GrantType::AuthorizationCode.as_str())
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
    let acr = Acr::of(&authenticated.amr).uri();
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

/// A session id for clients (`sid`), derived so that it reveals nothing of the cookie's digest.
pub(crate) fn session_handle(session_id: &str) -> String {
    palisade_crypto::sha256_hex(format!("sid:{session_id}").as_bytes())[..32].to_owned()
}

/// The access token of a user's grant (with its session, grant and revocation epoch) for
/// `scope`, as a token response without its refresh token.
fn user_tokens(
    oauth: &OAuth,
    client: &Client,
    user: &palisade_identity::users::User,
    refresh: &codes::Refresh,
    scope: &str,
    proof: Option<&Proof>,
    certificate: Option<&str>,
) -> Value {
    let sid = session_handle(&refresh.session_id);
    let access = oauth.issue_access_token(TokenFor {
        subject: &user.id,
        tenant: &user.tenant_id,
        client_id: &client.client_id,
        scope,
        audience: &refresh.resource,
        user: Some(UserBinding {
            sid: &sid,
            grant: &refresh.grant_id,
            epoch: user.revocation_epoch,
        }),
        jkt: proof.map(|p| p.jkt.as_str()),
        x5t: certificate,
    });
    json!({
        "access_token": access.token,
        "token_type": token_type(proof),
        "expires_in": access.expires_in,
        "scope": access.scope,
    })
}

/// The `refresh_token` grant (OAU-5): rotation on every use, the one successor for every
/// refresh within the grace window, reuse after it revoking the whole family. A revoked user
/// (epoch raised, account locked) or an ended session (unless the grant includes
/// `offline_access`) refreshes nothing. A narrower scope narrows the access token issued; the
/// refresh token keeps the grant's.
async fn refresh(
    oauth: &OAuth,
    ctx: &RequestContext,
    token: &str,
    asked: Option<String>,
    client: Client,
    proof: Option<Proof>,
    certificate: Option<&str>,
) -> Result<Response, OAuthError> {
    let db = &oauth.0.db;
    let config = oauth.config();
    let invalid = || OAuthError::InvalidGrant("The refresh token is not valid.".into());
    let proved = proof.as_ref().map(|p| p.jkt.as_str());
    let (refresh, successor) = match codes::rotate_refresh(
        db,
        &config.refresh_key,
        token,
        &client.client_id,
        proved,
        config.refresh_grace_ms,
    )
    .await?
    {
        codes::Rotated::Successor(r, successor) => (r, successor),
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
    if !oauth
        .0
        .auth
        .revocations()
        .grant_is_live(&refresh.grant_id)
        .await?
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
    let scope = match asked {
        Some(asked) => {
            let granted: Vec<&str> = refresh.scope.split(' ').collect();
            let asked: Vec<&str> = asked.split(' ').filter(|s| !s.is_empty()).collect();
            if let Some(extra) = asked.iter().find(|s| !granted.contains(s)) {
                return Err(OAuthError::InvalidScope(format!(
                    "The scope `{extra}` was not granted."
                )));
            }
            asked.join(" ")
        }
        None => refresh.scope.clone(),
    };
    let mut body = user_tokens(
        oauth,
        &client,
        &user,
        &refresh,
        &scope,
        proof.as_ref(),
        certificate,
    );
    body["refresh_token"] = successor.into();
    // OpenID Connect §12.2: a fresh ID token for the same user and original authentication.
    if scope.split(' ').any(|s| s == "openid")
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
    client: &Client,
    grant_id: &str,
    action: Action,
    message: &str,
) -> OAuthError {
    let revoked = async {
        oauth.revoke_grant(grant_id).await?;
        oauth
            .0
            .auditor
            .record(
                ctx.event(action, Outcome::Failure, &client.tenant_id)
                    .client(client.client_id.clone())
                    .detail("grant", grant_id),
            )
            .await
            .map_err(OAuthError::from)
    };
    match revoked.await {
        Ok(()) => OAuthError::InvalidGrant(message.into()),
        Err(e) => e,
    }
}

impl OAuth {
    /// Revokes a grant and tells every node's resources (its tokens stop working at once).
    pub(crate) async fn revoke_grant(&self, grant_id: &str) -> Result<(), OAuthError> {
        codes::revoke_grant(&self.0.db, grant_id).await?;
        self.0.auth.revocations().grant_revoked(grant_id).await;
        Ok(())
    }
}
