//! OpenID Connect Back-Channel Logout 1.0 (OAU-8): when a browser session ends — signing out,
//! RP-initiated logout, a session revoked from the account page, a password change, "log out
//! everywhere", an account locked — every client that was issued tokens in that session and
//! registered a `backchannel_logout_uri` receives a signed logout token (`typ` `logout+jwt`,
//! with `sub`, `sid` and the back-channel logout event) by a direct POST.
//!
//! Two kinds of job (`palisade-jobs`): identity enqueues [`SESSION_ENDED`] in the transaction
//! that ends a session; its handler enqueues one [`DELIVERY`] per client signed in through the
//! session, in the transaction that completes it; each delivery signs a fresh logout token and
//! posts it through the egress client (which refuses private and loopback addresses unless
//! configured: a registered URI cannot aim the server at its own network), retried with
//! back-off until the client answers 2xx or the attempts run out. A crash at any point loses
//! nothing and plans nothing twice.

use crate::OAuth;
use futures_util::future::BoxFuture;
use palisade_identity::sessions::{SESSION_ENDED, SessionEnded};
use palisade_jobs::{Handler, Job, NewJob, Retry};
use palisade_store::now_ms;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// The job of delivering one logout token.
pub(crate) const DELIVERY: &str = "oauth.backchannel_logout";
/// Deliveries given up after this many failed attempts (the last about two hours after the
/// first, with the back-off doubling from 2 s and capped at an hour).
const MAX_ATTEMPTS: u32 = 12;
const LOGOUT_TOKEN_LIFETIME_S: i64 = 120;
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

#[derive(Debug, Serialize, Deserialize)]
struct Delivery {
    client_id: String,
    uri: String,
    user_id: String,
    session_id: String,
}

/// The job kinds this module handles, for the node's job system.
pub fn jobs(oauth: &OAuth) -> Vec<(&'static str, Arc<dyn Handler>)> {
    vec![
        (
            SESSION_ENDED,
            Arc::new(Plan(oauth.clone())) as Arc<dyn Handler>,
        ),
        (DELIVERY, Arc::new(Deliver(oauth.clone()))),
    ]
}

/// Turns an ended session into deliveries, one per client signed in through it.
struct Plan(OAuth);

impl Handler for Plan {
    fn run<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let ended: SessionEnded = job.payload()?;
            let db = &self.0.0.db;
            let clients: Vec<(String, String)> = sqlx::query_as(
                "SELECT DISTINCT c.client_id, c.backchannel_logout_uri FROM oauth_codes k \
                 JOIN oauth_clients c ON c.client_id = k.client_id \
                 WHERE k.session_id = $1 AND k.used_at IS NOT NULL \
                 AND c.backchannel_logout_uri IS NOT NULL",
            )
            .bind(&ended.session_id)
            .fetch_all(db.pool())
            .await
            .map_err(|e| e.to_string())?;
            let mut tx = db.begin().await.map_err(|e| e.to_string())?;
            for (client_id, uri) in clients {
                let key = format!("{}:{client_id}", ended.session_id);
                let delivery = Delivery {
                    client_id,
                    uri,
                    user_id: ended.user_id.clone(),
                    session_id: ended.session_id.clone(),
                };
                let job = NewJob::new(DELIVERY, &delivery)
                    .key(key)
                    .max_attempts(MAX_ATTEMPTS);
                palisade_jobs::enqueue(&mut *tx, &job)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            if !job
                .complete_in(&mut tx, None)
                .await
                .map_err(|e| e.to_string())?
            {
                return Err("the job's claim was lost; another worker plans it".into());
            }
            tx.commit().await.map_err(|e| e.to_string())?;
            self.0.0.jobs.notify().await;
            Ok(())
        })
    }
}

/// Delivers one logout token.
struct Deliver(OAuth);

impl Handler for Deliver {
    fn run<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let d: Delivery = job.payload()?;
            // Signed now, not when planned: a retry hours later still carries a fresh token.
            let token = self.0.logout_token(&d.client_id, &d.user_id, &d.session_id);
            let answer = self
                .0
                .0
                .egress
                .post_form(&d.uri, &[("logout_token", token.as_str())])
                .await
                .map_err(|e| e.to_string())?;
            if !answer.status.is_success() {
                return Err(format!("the client answered {}", answer.status));
            }
            tracing::info!(client_id = %d.client_id, attempt = job.attempt, "back-channel logout delivered");
            Ok(())
        })
    }

    fn retry(&self) -> Retry {
        Retry {
            first: Duration::from_secs(2),
            max: Duration::from_secs(3600),
        }
    }
}

impl OAuth {
    /// A logout token for `client_id` about the user's session (Back-Channel Logout §2.4).
    fn logout_token(&self, client_id: &str, user_id: &str, session_id: &str) -> String {
        let now = now_ms() / 1000;
        let claims = json!({
            "iss": self.0.config.issuer,
            "aud": client_id,
            "iat": now,
            "exp": now + LOGOUT_TOKEN_LIFETIME_S,
            "jti": palisade_crypto::random_token(),
            "sub": user_id,
            "sid": crate::token::session_handle(session_id),
            "events": { EVENT: {} },
        });
        palisade_jose::jws::sign(&self.0.keys.signing_key(), "logout+jwt", &claims)
    }
}
