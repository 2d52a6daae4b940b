//! The server's side of the authorization policies (RES-2, RES-5): built in, or read from
//! `authz.policy_file`; replaced by an operator on the admin API, or by editing the file and
//! sending SIGHUP. A replacement is validated against the schema first and swapped whole — an
//! invalid one is refused and the policies in force stay — and every replacement is audited.

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use palisade_audit::{Action, Auditor, Outcome, SecurityEvent};
use palisade_authz::Authorizer;
use palisade_http::{Access, ApiKeys, AppError, Routes};
use palisade_identity::RequestContext;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The authorizer the server starts with: the policy file's policies, or the built-in ones.
pub fn load(policy_file: Option<&Path>) -> Result<Arc<Authorizer>> {
    let Some(path) = policy_file else {
        return Ok(Arc::new(Authorizer::new()));
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("authz.policy_file: cannot read {}", path.display()))?;
    let authorizer = Authorizer::with_policies(&text)
        .with_context(|| format!("authz.policy_file: {}", path.display()))?;
    Ok(Arc::new(authorizer))
}

#[derive(Clone)]
struct Admin {
    authz: Arc<Authorizer>,
    keys: ApiKeys,
    auditor: Auditor,
}

/// `GET /admin/authz/policies` (the policies in force, as Cedar text) and `PUT` (replace them),
/// behind the admin API key.
pub fn router(authz: Arc<Authorizer>, keys: ApiKeys, auditor: Auditor) -> Routes {
    Routes::new()
        .route(Access::AdminKey, "GET /admin/authz/policies", current)
        .route(Access::AdminKey, "PUT /admin/authz/policies", replace)
        .with_state(Admin {
            authz,
            keys,
            auditor,
        })
}

async fn current(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    if let Err(refused) = admin.keys.check(&headers) {
        return refused;
    }
    (
        [("content-type", "text/plain; charset=utf-8")],
        admin.authz.policies(),
    )
        .into_response()
}

async fn replace(
    State(admin): State<Admin>,
    ctx: RequestContext,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    if let Err(refused) = admin.keys.check(&headers) {
        return Ok(refused);
    }
    let text = std::str::from_utf8(&body)
        .map_err(|_| AppError::bad_request("invalid_policies", "Policies must be UTF-8 text."))?;
    admin
        .authz
        .reload(text)
        .map_err(|e| AppError::bad_request("invalid_policies", e.to_string()))?;
    admin
        .auditor
        .record(replaced(
            ctx.event(Action::PoliciesReplaced, Outcome::Success, "default"),
            text,
            "admin_api",
        ))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The audit event of a replacement, naming the new policies by digest.
fn replaced(event: SecurityEvent, text: &str, via: &str) -> SecurityEvent {
    event.detail("via", via).detail(
        "sha256",
        palisade_crypto::sha256_hex(text.as_bytes()).as_str(),
    )
}

/// Rereads the policy file on every SIGHUP; a file that does not read or validate is logged
/// and the policies in force stay.
pub async fn reload_on_hangup(
    authz: Arc<Authorizer>,
    path: PathBuf,
    auditor: Auditor,
    shutdown: CancellationToken,
) {
    let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        tracing::warn!("SIGHUP unavailable: authz.policy_file is read at start only");
        return;
    };
    loop {
        tokio::select! {
            Some(()) = hangup.recv() => {}
            _ = shutdown.cancelled() => return,
        }
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, file = %path.display(), "policies not reloaded");
                continue;
            }
        };
        match authz.reload(&text) {
            Ok(()) => {
                tracing::info!(file = %path.display(), "policies reloaded");
                if let Err(e) = auditor
                    .record(replaced(
                        SecurityEvent::new(Action::PoliciesReplaced, Outcome::Success, "default"),
                        &text,
                        "sighup",
                    ))
                    .await
                {
                    tracing::error!(error = %e, "policy reload not audited");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, file = %path.display(), "policies refused; the policies in force stay");
            }
        }
    }
}
