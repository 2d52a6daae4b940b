//! Client administration on the admin API (issue: CLI and admin API), for holders of an admin
//! API key: list, register (the same policy as the CLI and dynamic registration; in the tenant
//! `?tenant=` names, the default one otherwise) and delete.

use crate::OAuth;
use crate::clients::{self, AuthMethod, NewClient};
use crate::error::OAuthError;
use crate::registration::Metadata;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use palisade_audit::{Action, Outcome};
use palisade_http::{Access, ApiKeys, AppError, Routes};
use palisade_identity::RequestContext;

#[derive(Clone)]
struct Admin {
    oauth: OAuth,
    keys: ApiKeys,
}

pub fn router(oauth: OAuth, keys: ApiKeys) -> Routes {
    Routes::new()
        .route(Access::AdminKey, "GET /admin/oauth/clients", list)
        .route(Access::AdminKey, "POST /admin/oauth/clients", create)
        .route(
            Access::AdminKey,
            "DELETE /admin/oauth/clients/{client_id}",
            remove,
        )
        .with_state(Admin { oauth, keys })
}

async fn list(State(admin): State<Admin>, headers: HeaderMap) -> Result<Response, AppError> {
    if let Err(refused) = admin.keys.check(&headers) {
        return Ok(refused);
    }
    Ok(Json(clients::list(&admin.oauth.0.db).await?).into_response())
}

/// Where a client is registered.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Target {
    tenant: Option<String>,
}

async fn create(
    State(admin): State<Admin>,
    ctx: RequestContext,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Response, AppError> {
    // The key before anything is parsed: an anonymous caller learns nothing about the format.
    if let Err(refused) = admin.keys.check(&headers) {
        return Ok(refused);
    }
    let db = &admin.oauth.0.db;
    let Ok(Query(target)) = Query::<Target>::try_from_uri(&uri) else {
        return Err(AppError::bad_request(
            "invalid_request",
            "The only parameter is tenant.",
        ));
    };
    let tenant = target
        .tenant
        .unwrap_or_else(|| palisade_store::DEFAULT_TENANT.into());
    if !palisade_identity::tenants::exists(db, &tenant).await? {
        return Err(AppError::bad_request(
            "unknown_tenant",
            "There is no such tenant.",
        ));
    }
    let metadata = match Json::<Metadata>::from_bytes(&body) {
        Ok(Json(metadata)) => metadata,
        Err(e) => {
            return Ok(OAuthError::InvalidClientMetadata(format!(
                "The body is not client metadata: {e}"
            ))
            .respond(Some(&ctx.trace_id)));
        }
    };
    let method = match metadata.auth_method() {
        Ok(m) => m.unwrap_or(AuthMethod::ClientSecretBasic),
        Err(e) => return Ok(e.respond(Some(&ctx.trace_id))),
    };
    let new = match metadata.into_checked(&admin.oauth, method) {
        Ok(new) => NewClient {
            tenant_id: tenant,
            ..new
        },
        Err(e) => return Ok(e.respond(Some(&ctx.trace_id))),
    };
    let (client, secret) = clients::create(db, new).await?;
    admin
        .oauth
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

async fn remove(
    State(admin): State<Admin>,
    ctx: RequestContext,
    headers: HeaderMap,
    Path(client_id): Path<String>,
) -> Result<Response, AppError> {
    if let Err(refused) = admin.keys.check(&headers) {
        return Ok(refused);
    }
    let deleted = clients::delete(&admin.oauth.0.db, &client_id).await?;
    admin.oauth.0.clients.evict(&client_id);
    if !deleted {
        return Err(AppError::NotFound);
    }
    admin
        .oauth
        .0
        .auditor
        .record(
            ctx.event(Action::ClientDeleted, Outcome::Success, "default")
                .client(client_id)
                .detail("by", "admin_api"),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
