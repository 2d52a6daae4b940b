//! The server's side of the authorization policies (RES-2, RES-5, SCL-1): built in, or read from
//! `authz.policy_file`, until a replacement is stored. An operator replaces them on the admin
//! API, or by editing the file and sending SIGHUP; a replacement is validated against the schema
//! first — an invalid one is refused and the policies in force stay — then stored, audited, and
//! announced on the bus, so every node swaps it in whole within moments, and every node starts
//! with it after a restart.

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use palisade_audit::{Action, Auditor, Outcome, SecurityEvent};
use palisade_authz::Authorizer;
use palisade_cluster::{Bus, Delivery};
use palisade_http::{Access, AppError, Routes};
use palisade_identity::RequestContext;
use palisade_store::{Db, now_ms};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

const TOPIC: &str = "policies";

/// The policies a node works with, and where replacements go.
#[derive(Clone)]
pub(crate) struct Policies {
    pub authz: Arc<Authorizer>,
    db: Db,
    bus: Bus,
    auditor: Auditor,
}

/// The latest stored replacement.
async fn stored(db: &Db) -> Result<Option<(i64, String)>, palisade_store::StoreError> {
    Ok(
        sqlx::query_as("SELECT version, text FROM authz_policies ORDER BY version DESC LIMIT 1")
            .fetch_optional(db.pool())
            .await?,
    )
}

impl Policies {
    /// The policies in force at start: the latest stored replacement, else the file's, else
    /// the built-in ones.
    pub(crate) async fn load(
        db: Db,
        bus: Bus,
        auditor: Auditor,
        policy_file: Option<&Path>,
    ) -> Result<Self> {
        let authz = match (stored(&db).await?, policy_file) {
            (Some((version, text)), _) => Authorizer::with_policies(&text)
                .with_context(|| format!("stored policies, version {version}"))?,
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("authz.policy_file: cannot read {}", path.display())
                })?;
                Authorizer::with_policies(&text)
                    .with_context(|| format!("authz.policy_file: {}", path.display()))?
            }
            (None, None) => Authorizer::new(),
        };
        Ok(Self {
            authz: Arc::new(authz),
            db,
            bus,
            auditor,
        })
    }

    /// Validates, stores, audits and announces a replacement; `Err` with the reason when the
    /// policies are refused (the ones in force stay).
    async fn replace(&self, text: &str, event: SecurityEvent, via: &str) -> Result<(), AppError> {
        // Validated before anything is stored; swapped in once stored.
        Authorizer::with_policies(text)
            .map_err(|e| AppError::bad_request("invalid_policies", e.to_string()))?;
        let digest = palisade_crypto::sha256_hex(text.as_bytes());
        let inserted = sqlx::query(
            "INSERT INTO authz_policies (version, text, sha256, via, replaced_at) \
             SELECT COALESCE(MAX(version), 0) + 1, $1, $2, $3, $4 FROM authz_policies",
        )
        .bind(text)
        .bind(&digest)
        .bind(via)
        .bind(now_ms())
        .execute(self.db.pool())
        .await
        .map_err(palisade_store::StoreError::from);
        match inserted {
            Err(e) if e.is_unique_violation() => {
                return Err(AppError::Conflict {
                    code: "concurrent_replacement",
                    message: "Another replacement was stored at the same moment; retry.".into(),
                });
            }
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        self.authz
            .reload(text)
            .map_err(|e| AppError::internal(format!("validated policies refused: {e}")))?;
        self.auditor
            .record(event.detail("via", via).detail("sha256", digest.as_str()))
            .await?;
        self.bus.publish(TOPIC, digest).await;
        Ok(())
    }

    /// Swaps in the latest stored policies on every announcement until `shutdown` (and after a
    /// gap in the bus, in case one was missed).
    pub(crate) async fn follow(self, shutdown: CancellationToken) {
        let mut announced = self.bus.subscribe(TOPIC);
        loop {
            let delivery = tokio::select! {
                d = announced.recv() => d,
                _ = shutdown.cancelled() => return,
            };
            if !matches!(delivery, Some(Delivery::Message(_) | Delivery::Resync)) {
                return;
            }
            match stored(&self.db).await {
                Ok(Some((version, text))) if text != self.authz.policies() => {
                    match self.authz.reload(&text) {
                        Ok(()) => tracing::info!(version, "stored policies swapped in"),
                        Err(e) => tracing::error!(version, error = %e, "stored policies refused"),
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "stored policies not read"),
            }
        }
    }

    /// Rereads the policy file on every SIGHUP and stores it as a replacement; a file that does
    /// not read or validate is logged and the policies in force stay.
    pub(crate) async fn reload_on_hangup(self, path: PathBuf, shutdown: CancellationToken) {
        let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("SIGHUP unavailable: authz.policy_file is read at start only");
            return shutdown.cancelled().await;
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
            let event = SecurityEvent::new(Action::PoliciesReplaced, Outcome::Success, "default");
            match self.replace(&text, event, "sighup").await {
                Ok(()) => tracing::info!(file = %path.display(), "policies reloaded"),
                Err(e) => {
                    tracing::error!(error = ?e, file = %path.display(), "policies refused; the policies in force stay");
                }
            }
        }
    }
}

/// `GET /admin/authz/policies` (the policies in force, as Cedar text) and `PUT` (replace them),
/// behind the admin API key.
pub(crate) fn router(policies: Policies) -> Routes {
    Routes::new()
        .route(Access::AdminKey, "GET /admin/authz/policies", current)
        .route(Access::AdminKey, "PUT /admin/authz/policies", replace)
        .with_state(policies)
}

async fn current(State(policies): State<Policies>) -> Response {
    (
        [("content-type", "text/plain; charset=utf-8")],
        policies.authz.policies(),
    )
        .into_response()
}

async fn replace(
    State(policies): State<Policies>,
    ctx: RequestContext,
    body: Bytes,
) -> Result<Response, AppError> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| AppError::bad_request("invalid_policies", "Policies must be UTF-8 text."))?;
    let event = ctx.event(Action::PoliciesReplaced, Outcome::Success, "default");
    policies.replace(text, event, "admin_api").await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
