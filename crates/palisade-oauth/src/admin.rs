//! Client administration on the admin API (issue: CLI and admin API), for holders of an admin
//! API key: list, register (the same policy as the CLI and dynamic registration; in the tenant
//! `?tenant=` names, the default one otherwise) and delete.

use crate::OAuth;
use crate::clients::{self, AuthMethod, NewClient, Registrar};
use crate::error::OAuthError;
use crate::registration::Metadata;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use palisade_audit::{Action, Outcome};
use palisade_http::input::Query;
use palisade_http::{Access, AppError, Routes};
use palisade_identity::RequestContext;

pub fn router(oauth: OAuth) -> Routes {
    Routes::new()
        .route(Access::AdminKey, "GET /admin/oauth/clients", list)
        .route(Access::AdminKey, "POST /admin/oauth/clients", create)
        .route(
            Access::AdminKey,
            "DELETE /admin/oauth/clients/{client_id}",
            remove,
        )
        .with_state(oauth)
}

async fn list(State(oauth): State<OAuth>) -> Result<Response, AppError> {
    Ok(Json(clients::list(&oauth.0.db).await?).into_response())
}

/// Where a client is registered, and for a resource server the resource it serves.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Target {
    tenant: Option<String>,
    resource: Option<String>,
}

async fn create(
    State(oauth): State<OAuth>,
    ctx: RequestContext,
    uri: Uri,
    body: Bytes,
) -> Result<Response, AppError> {
    let db = &oauth.0.db;
    let Query(target) = Query::<Target>::from_uri(&uri)?;
    let tenant = target
        .tenant
        .unwrap_or_else(|| palisade_store::DEFAULT_TENANT.into());
    if !palisade_identity::tenants::exists(db, &tenant).await? {
        return Err(AppError::bad_request(
            "unknown_tenant",
            "There is no such tenant.",
        ));
    }
    let new = match checked_metadata(&oauth, &body, tenant, target.resource) {
        Ok(new) => new,
        Err(e) => return Ok(e.into_response()),
    };
    let (client, secret) = clients::create(db, new).await?;
    oauth
        .0
        .auditor
        .record(
            ctx.event(
                Action::ClientRegistered,
                Outcome::Success,
                &client.tenant_id,
            )
            .client(client.client_id.clone())
            .detail("by", "admin_api"),
        )
        .await?;
    let mut body = serde_json::to_value(&client).map_err(AppError::internal)?;
    body["client_secret"] = secret.into();
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// The client the admin API's body describes, in `tenant`, checked as dynamic registration
/// is — except that an administrator may create service clients and resource servers.
fn checked_metadata(
    oauth: &OAuth,
    body: &[u8],
    tenant: String,
    resource: Option<String>,
) -> Result<NewClient, OAuthError> {
    let Json(metadata) = Json::<Metadata>::from_bytes(body).map_err(|e| {
        OAuthError::InvalidClientMetadata(format!("The body is not client metadata: {e}"))
    })?;
    let method = metadata
        .auth_method()?
        .unwrap_or(AuthMethod::ClientSecretBasic);
    let new = NewClient {
        tenant_id: tenant,
        resource,
        ..metadata.into_checked(oauth, method, Registrar::Admin)?
    };
    crate::registration::checked(oauth, &new)?;
    Ok(new)
}

async fn remove(
    State(oauth): State<OAuth>,
    ctx: RequestContext,
    Path(client_id): Path<String>,
) -> Result<Response, AppError> {
    let deleted = clients::delete(
        &oauth.0.db,
        &oauth.0.clients,
        oauth.0.auth.revocations(),
        &client_id,
    )
    .await?;
    let Some(tenant) = deleted else {
        return Err(AppError::NotFound);
    };
    oauth
        .0
        .auditor
        .record(
            ctx.event(Action::ClientDeleted, Outcome::Success, &tenant)
                .client(client_id)
                .detail("by", "admin_api"),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
