//! Dynamic client registration (OAU-9): RFC 7591 to register, RFC 7592 to read, update and
//! delete one's own registration with the registration access token returned at registration.
//! Registration is closed unless configured open: an initial access token (configured as a
//! digest) is then required. The same policy as the CLI applies (known grants and scopes, safe
//! redirect URIs, optionally on allowed hosts only).

use crate::OAuth;
use crate::clients::{self, AuthMethod, Client, NewClient, Registrar};
use crate::endpoint::{Registered, no_store};
use crate::error::OAuthError;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use palisade_audit::{Action, Outcome};
use palisade_identity::RequestContext;
use serde::Deserialize;
use serde_json::{Value, json};

/// Client metadata as RFC 7591 §2 names it; other members are ignored, as it requires.
#[derive(Deserialize)]
pub(crate) struct Metadata {
    client_id: Option<String>,
    client_name: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    grant_types: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    scope: Option<String>,
    jwks: Option<JwkSet>,
    backchannel_logout_uri: Option<String>,
    /// RFC 8705 §2.1.2: the SPIFFE ID a `tls_client_auth` client's certificate names.
    tls_client_auth_san_uri: Option<String>,
    /// Checked, not stored: ID tokens are signed with the server's algorithm, never `none`.
    id_token_signed_response_alg: Option<String>,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<palisade_jose::Jwk>,
}

impl Metadata {
    /// The requested client authentication method, if named.
    pub(crate) fn auth_method(&self) -> Result<Option<AuthMethod>, OAuthError> {
        self.token_endpoint_auth_method
            .as_deref()
            .map(|m| {
                AuthMethod::parse(m).ok_or_else(|| {
                    OAuthError::InvalidClientMetadata(format!(
                        "unknown token_endpoint_auth_method `{m}`"
                    ))
                })
            })
            .transpose()
    }

    /// The client to create (or the new metadata of one), registered by `registrar`, under the
    /// registration policy. Asking for ID tokens signed otherwise than the server signs them —
    /// unsigned ones in particular — is refused.
    pub(crate) fn into_checked(
        self,
        oauth: &OAuth,
        auth_method: AuthMethod,
        registrar: Registrar,
    ) -> Result<NewClient, OAuthError> {
        let ours = oauth.0.keys.signing_key().alg.as_str();
        if let Some(alg) = self.id_token_signed_response_alg.as_deref()
            && alg != ours
        {
            return Err(OAuthError::InvalidClientMetadata(format!(
                "id_token_signed_response_alg must be {ours}"
            )));
        }
        let new = self.into_new(auth_method, registrar);
        checked(oauth, &new)?;
        Ok(new)
    }

    fn into_new(self, auth_method: AuthMethod, registered_by: Registrar) -> NewClient {
        NewClient {
            tenant_id: palisade_store::DEFAULT_TENANT.into(),
            name: self
                .client_name
                .unwrap_or_else(|| "Unnamed application".into()),
            auth_method,
            redirect_uris: self.redirect_uris,
            grant_types: self
                .grant_types
                .unwrap_or_else(|| vec!["authorization_code".into()]),
            scopes: self
                .scope
                .unwrap_or_default()
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            jwks: self.jwks.map(|j| j.keys).unwrap_or_default(),
            backchannel_logout_uri: self.backchannel_logout_uri,
            registered_by,
            resource: None,
            tls_client_certificate: self.tls_client_auth_san_uri,
        }
    }
}

pub(crate) fn checked(oauth: &OAuth, new: &NewClient) -> Result<(), OAuthError> {
    let config = oauth.config();
    let policy = clients::Policy {
        api_scopes: &config.scopes,
        allowed_hosts: &config.registration.allowed_hosts,
        resources: &config.resources,
    };
    new.check(&policy).map_err(|problem| {
        if problem.contains("redirect URI") {
            OAuthError::InvalidRedirectUri(problem)
        } else {
            OAuthError::InvalidClientMetadata(problem)
        }
    })
}

/// The registration as RFC 7591 §3.2.1 returns it (without secrets).
fn describe(oauth: &OAuth, client: &Client) -> Value {
    let issuer = &oauth.config().issuer;
    json!({
        "client_id": client.client_id,
        "client_id_issued_at": client.created_at / 1000,
        "client_name": client.name,
        "redirect_uris": client.redirect_uris,
        "grant_types": client.grant_types,
        "response_types": if client.allows_grant("authorization_code") { vec!["code"] } else { vec![] },
        "token_endpoint_auth_method": client.auth_method.as_str(),
        "scope": client.scopes.join(" "),
        "backchannel_logout_uri": client.backchannel_logout_uri.as_ref().map(|u| u.as_str()),
        "backchannel_logout_session_required": client.backchannel_logout_uri.is_some(),
        "registration_client_uri": format!("{issuer}/oauth/register/{}", client.client_id),
    })
}

fn answered(status: StatusCode, body: Value) -> Response {
    let mut r = no_store(body);
    *r.status_mut() = status;
    r
}

/// Records a change to a registration, made through the registration endpoints.
async fn recorded(
    oauth: &OAuth,
    ctx: &RequestContext,
    action: Action,
    client: &Client,
) -> Result<(), OAuthError> {
    oauth
        .0
        .auditor
        .record(
            ctx.event(action, Outcome::Success, &client.tenant_id)
                .client(client.client_id.clone())
                .detail("by", "registration"),
        )
        .await?;
    Ok(())
}

pub(crate) async fn register(
    State(oauth): State<OAuth>,
    ctx: RequestContext,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    let policy = &oauth.config().registration;
    // The initial access token before the body: an anonymous caller learns nothing more.
    if !policy.open && policy.initial_tokens.presented(&headers).is_none() {
        let presented = headers.contains_key(http::header::AUTHORIZATION);
        return Err(OAuthError::InvalidToken {
            presented,
            description: if presented {
                "The initial access token is not valid."
            } else {
                "Registration needs an initial access token, sent as a Bearer token (RFC 7591 §3)."
            },
        });
    }
    let network = palisade_http::client_ip::network_key(ctx.ip);
    let rate = palisade_cluster::Rate {
        per_minute: policy.per_minute,
    };
    if let Err(wait) = oauth
        .0
        .cluster
        .counter
        .check("oauth.registration", &network, rate)
        .await
    {
        return Err(OAuthError::TooManyRequests(wait));
    }
    let Json(metadata) = Json::<Metadata>::from_bytes(&body).map_err(|e| {
        OAuthError::InvalidClientMetadata(format!("The body is not client metadata: {e}"))
    })?;
    let method = metadata
        .auth_method()?
        .unwrap_or(AuthMethod::ClientSecretBasic);
    let new = metadata.into_checked(&oauth, method, Registrar::Registration)?;
    let (client, secret) = clients::create(&oauth.0.db, new).await?;
    let token = clients::issue_registration_token(&oauth.0.db, &client.client_id).await?;
    recorded(&oauth, &ctx, Action::ClientRegistered, &client).await?;
    let mut body = describe(&oauth, &client);
    body["registration_access_token"] = token.into();
    if let Some(secret) = secret {
        body["client_secret"] = secret.into();
        body["client_secret_expires_at"] = 0.into();
    }
    Ok(answered(StatusCode::CREATED, body))
}

pub(crate) async fn read(State(oauth): State<OAuth>, Registered(client): Registered) -> Response {
    answered(StatusCode::OK, describe(&oauth, &client))
}

pub(crate) async fn update(
    State(oauth): State<OAuth>,
    ctx: RequestContext,
    Registered(client): Registered,
    Path(client_id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    let Json(metadata) = Json::<Metadata>::from_bytes(&body).map_err(|e| {
        OAuthError::InvalidClientMetadata(format!("The body is not client metadata: {e}"))
    })?;
    if metadata.client_id.as_deref() != Some(client_id.as_str()) {
        return Err(OAuthError::InvalidRequest(
            "The body must name the client being updated.".into(),
        ));
    }
    if metadata
        .token_endpoint_auth_method
        .as_deref()
        .is_some_and(|m| m != client.auth_method.as_str())
    {
        return Err(OAuthError::InvalidClientMetadata(
            "token_endpoint_auth_method cannot change; register a new client".into(),
        ));
    }
    let new = metadata.into_checked(&oauth, client.auth_method, client.registered_by)?;
    clients::update(&oauth.0.db, &client_id, &new).await?;
    oauth.0.clients.changed(&client_id).await;
    let updated = clients::find(&oauth.0.db, &client_id)
        .await?
        .ok_or(OAuthError::InvalidClient { basic: false })?;
    recorded(&oauth, &ctx, Action::ClientUpdated, &updated).await?;
    Ok(answered(StatusCode::OK, describe(&oauth, &updated)))
}

pub(crate) async fn delete(
    State(oauth): State<OAuth>,
    ctx: RequestContext,
    Registered(client): Registered,
) -> Result<Response, OAuthError> {
    clients::delete(
        &oauth.0.db,
        &oauth.0.clients,
        oauth.0.auth.revocations(),
        &client.client_id,
    )
    .await?;
    recorded(&oauth, &ctx, Action::ClientDeleted, &client).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
