//! The provider's endpoints: the router, RFC 8414 / OpenID metadata, introspection (RFC 7662),
//! userinfo and revocation (RFC 7009), and what every back-channel endpoint shares: strict form
//! parsing (form bodies only, no repeated parameter), client authentication and RFC 6749 error
//! answers. Every answer carrying a token or its status is `no-store`. The token endpoint is in
//! `token.rs`.

use crate::OAuth;
use crate::clients::{self, AuthMethod, Presented};
use crate::codes;
use crate::error::OAuthError;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use palisade_audit::{Action, Outcome};
use palisade_http::{Access, Routes};
use palisade_identity::RequestContext;
use serde_json::{Value, json};
use std::collections::HashMap;

pub fn router(oauth: OAuth) -> Routes {
    use crate::{apps, authorize, logout, registration};
    use Access::{AccessToken, Client, Public, RegistrationToken, Session};
    let userinfo_access = AccessToken { scope: "openid" };
    Routes::new()
        .route(
            Public,
            "GET /.well-known/oauth-authorization-server",
            metadata,
        )
        .route(Public, "GET /.well-known/openid-configuration", metadata)
        // Sends anyone not signed in to the sign-in page first.
        .route(Public, "GET /oauth/authorize", authorize::get)
        .route(Public, "POST /oauth/authorize", authorize::post)
        .route(
            Session,
            "POST /oauth/authorize/decision",
            authorize::decision,
        )
        .route(Client, "POST /oauth/par", authorize::par)
        .route(Client, "POST /oauth/token", crate::token::token)
        .route(Client, "POST /oauth/introspect", introspect)
        .route(Client, "POST /oauth/revoke", revoke)
        // Open registration (RFC 7591), rate limited per network.
        .route(Public, "POST /oauth/register", registration::register)
        .route(
            RegistrationToken,
            "GET /oauth/register/{client_id}",
            registration::read,
        )
        .route(
            RegistrationToken,
            "PUT /oauth/register/{client_id}",
            registration::update,
        )
        .route(
            RegistrationToken,
            "DELETE /oauth/register/{client_id}",
            registration::delete,
        )
        // RP-initiated logout asks the signed-in user to confirm; without a session it says so.
        .route(Public, "GET /oauth/logout", logout::page)
        .route(Public, "POST /oauth/logout", logout::confirm)
        .route(Session, "GET /account/apps", apps::page)
        .route(Session, "POST /account/apps/revoke", apps::revoke)
        .route(userinfo_access, "GET /oauth/userinfo", userinfo)
        .route(userinfo_access, "POST /oauth/userinfo", userinfo)
        .with_state(oauth)
}

/// OpenID Connect discovery and RFC 8414 metadata: one document, served at both names.
async fn metadata(State(oauth): State<OAuth>) -> Json<Value> {
    let issuer = &oauth.config().issuer;
    let secret_methods =
        [AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost].map(AuthMethod::as_str);
    let mut scopes: Vec<&str> = clients::OIDC_SCOPES.to_vec();
    scopes.extend(oauth.config().scopes.iter().map(String::as_str));
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "userinfo_endpoint": format!("{issuer}/oauth/userinfo"),
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "end_session_endpoint": format!("{issuer}/oauth/logout"),
        "registration_endpoint": format!("{issuer}/oauth/register"),
        "pushed_authorization_request_endpoint": format!("{issuer}/oauth/par"),
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [oauth.0.keys.signing_key().alg.as_str()],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["EdDSA", "ES256"],
        "introspection_endpoint_auth_methods_supported": secret_methods,
        "scopes_supported": scopes,
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "email", "email_verified"],
        "prompt_values_supported": ["none", "login", "consent"],
        "acr_values_supported": [crate::token::ACR_PASSWORD, crate::token::ACR_MFA],
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
        "dpop_signing_alg_values_supported": ["EdDSA", "ES256"],
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
    }))
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub(crate) fn no_store(body: Value) -> Response {
    (
        [("cache-control", "no-store"), ("pragma", "no-cache")],
        Json(body),
    )
        .into_response()
}

/// The form parameters of a token-endpoint style request.
pub(crate) fn form(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<HashMap<String, String>, OAuthError> {
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
pub(crate) async fn client(
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
    let assertion =
        match params.get("client_assertion_type").map(String::as_str) {
            None => None,
            Some(JWT_BEARER) => Some(params.get("client_assertion").cloned().ok_or_else(|| {
                OAuthError::InvalidRequest("client_assertion is missing.".into())
            })?),
            Some(_) => {
                return Err(OAuthError::InvalidRequest(
                    "Only jwt-bearer client assertions are supported.".into(),
                ));
            }
        };
    let presented = Presented {
        basic,
        post_id: params.get("client_id").cloned(),
        post_secret: params.get("client_secret").cloned(),
        assertion,
    };
    // A client assertion may name the issuer or the endpoint it is sent to.
    let issuer = &oauth.config().issuer;
    let audiences: Vec<String> = std::iter::once(issuer.clone())
        .chain(
            ["token", "introspect", "revoke", "par"]
                .iter()
                .map(|e| format!("{issuer}/oauth/{e}")),
        )
        .collect();
    let result = clients::authenticate(&oauth.0.db, &oauth.0.clients, &audiences, presented).await;
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

/// A back-channel request (token, introspection, revocation, PAR): its form parameters and
/// the client that authenticated it. Refused with an RFC 6749 error otherwise.
pub(crate) struct Authenticated {
    pub params: HashMap<String, String>,
    pub client: clients::Client,
}

impl axum::extract::FromRequest<OAuth> for Authenticated {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, oauth: &OAuth) -> Result<Self, Response> {
        use axum::extract::FromRequestParts;
        let (mut parts, body) = req.into_parts();
        let ctx = match RequestContext::from_request_parts(&mut parts, oauth).await {
            Ok(ctx) => ctx,
            Err(e) => return Err(e.into_response()),
        };
        let headers = parts.headers.clone();
        let request = axum::extract::Request::from_parts(parts, body);
        let body = Bytes::from_request(request, oauth)
            .await
            .map_err(IntoResponse::into_response)?;
        let authenticated = async {
            let params = form(&headers, &body)?;
            let client = client(oauth, &ctx, &headers, &params).await?;
            Ok(Authenticated { params, client })
        };
        authenticated
            .await
            .map_err(|e: OAuthError| e.respond(Some(&ctx.trace_id)))
    }
}

/// The answer of a back-channel handler: its response, or its error in RFC 6749 form.
pub(crate) fn answer(ctx: &RequestContext, result: Result<Response, OAuthError>) -> Response {
    match result {
        Ok(r) => r,
        Err(e) => e.respond(Some(&ctx.trace_id)),
    }
}

async fn introspect(
    State(oauth): State<OAuth>,
    ctx: RequestContext,
    Authenticated { params, client }: Authenticated,
) -> Response {
    let result = async {
        if client.auth_method == AuthMethod::None {
            return Err(OAuthError::InvalidClient { basic: false });
        }
        let token = params
            .get("token")
            .ok_or_else(|| OAuthError::InvalidRequest("token is required.".into()))?;
        let body = match oauth.verify_access_token(token, None).await {
            Ok(claims) => {
                let token_type = if claims.contains_key("cnf") {
                    "DPoP"
                } else {
                    "Bearer"
                };
                let mut out = json!({ "active": true, "token_type": token_type });
                for name in [
                    "cnf",
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
    answer(&ctx, result.await)
}

/// OpenID Connect userinfo (GET or POST), for an access token granting `openid`: in the
/// `Authorization` header (Bearer or DPoP) or, on POST, in the form body (RFC 6750 §2.2).
async fn userinfo(
    State(oauth): State<OAuth>,
    method: http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = if body.is_empty() {
        HashMap::new()
    } else {
        match form(&headers, &body) {
            Ok(f) => f,
            Err(_) => {
                return crate::resource::ResourceError::invalid_request(
                    "The body must be a form with at most an access_token.",
                )
                .into_response();
            }
        }
    };
    let crate::Verified { claims, user } = match oauth
        .authenticate_resource(
            &headers,
            method.as_str(),
            "/oauth/userinfo",
            form.get("access_token").map(String::as_str),
        )
        .await
    {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let scopes: Vec<&str> = claims
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .split(' ')
        .collect();
    if !scopes.contains(&"openid") {
        let scheme = crate::resource::Scheme::of(&claims);
        return crate::resource::ResourceError::insufficient_scope(scheme).into_response();
    }
    // Only a user's token has an account to describe.
    let Some(user) = user else {
        return crate::resource::ResourceError::invalid_token(crate::resource::Scheme::Bearer)
            .into_response();
    };
    let mut body = json!({ "sub": user.id });
    if scopes.contains(&"email") {
        body["email"] = user.email.into();
        body["email_verified"] = false.into();
    }
    no_store(body)
}

/// RFC 7009 revocation. A refresh token revokes its family; an access token revokes the grant
/// it was issued under. Unknown tokens and other clients' tokens change nothing and are
/// answered the same way, so the endpoint reveals nothing.
async fn revoke(
    State(oauth): State<OAuth>,
    ctx: RequestContext,
    Authenticated { params, client }: Authenticated,
) -> Response {
    let result = async {
        let token = params
            .get("token")
            .ok_or_else(|| OAuthError::InvalidRequest("token is required.".into()))?;
        let db = &oauth.0.db;
        let grant = match codes::refresh_grant(db, token).await? {
            Some((grant, owner)) => (owner == client.client_id).then_some(grant),
            None => oauth.verify_signed(token, None).ok().and_then(|claims| {
                let owner = claims.get("client_id").and_then(Value::as_str)?;
                let grant = claims.get("gid").and_then(Value::as_str)?;
                (owner == client.client_id).then(|| grant.to_owned())
            }),
        };
        if let Some(grant) = grant {
            codes::revoke_grant(db, &grant).await?;
            oauth
                .0
                .auditor
                .record(
                    ctx.event(Action::TokenRevoked, Outcome::Success, "default")
                        .client(client.client_id.clone())
                        .detail("grant", grant.as_str()),
                )
                .await?;
        }
        Ok::<_, OAuthError>(no_store(json!({})))
    };
    answer(&ctx, result.await)
}
