//! OpenID Connect Back-Channel Logout 1.0 (OAU-8): when a browser session ends — signing out,
//! RP-initiated logout, a session revoked from the account page, a password change, "log out
//! everywhere", an account locked — every client that was issued tokens in that session and
//! registered a `backchannel_logout_uri` receives a signed logout token (`typ` `logout+jwt`,
//! with `sub`, `sid` and the back-channel logout event) by a direct POST.
//!
//! Identity notes ended sessions in `session_endings` in the transaction that ends them; a
//! worker turns each note into deliveries and deletes it in one transaction, then delivers
//! with exponential back-off until the client answers 2xx or the attempts run out. A crash at
//! any point loses nothing: the note or the delivery is still in the database.

use crate::OAuth;
use palisade_store::{StoreError, now_ms};
use serde_json::{Value, json};
use std::time::Duration;

/// How often the worker looks for work.
const POLL: Duration = Duration::from_millis(500);
/// Deliveries given up after this many failed attempts (the last about two hours after the
/// first, with the back-off doubling from 2 s and capped at an hour).
const MAX_ATTEMPTS: i64 = 12;
const MAX_BACKOFF_MS: i64 = 3_600_000;
/// A delivery is claimed for this long before another worker may try it.
const CLAIM_MS: i64 = 30_000;
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
const LOGOUT_TOKEN_LIFETIME_S: i64 = 120;
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

#[derive(sqlx::FromRow)]
struct Delivery {
    id: String,
    client_id: String,
    uri: String,
    logout_token: String,
    attempts: i64,
    next_attempt_at: i64,
}

impl OAuth {
    /// Runs the back-channel logout worker until the process ends.
    pub fn spawn_logout_worker(&self) -> tokio::task::JoinHandle<()> {
        let oauth = self.clone();
        tokio::spawn(async move {
            let http = match reqwest::Client::builder()
                .timeout(DELIVERY_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "back-channel logout disabled: no HTTP client");
                    return;
                }
            };
            let mut tick = tokio::time::interval(POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = oauth.plan_logouts().await {
                    tracing::warn!(error = %e, "back-channel logout: planning failed");
                }
                if let Err(e) = oauth.deliver_logouts(&http).await {
                    tracing::warn!(error = %e, "back-channel logout: delivery failed");
                }
            }
        })
    }

    /// Turns ended sessions into deliveries, one per client signed in through the session.
    async fn plan_logouts(&self) -> Result<(), StoreError> {
        let db = &self.0.db;
        let endings: Vec<(String, String)> = sqlx::query_as(
            "SELECT session_id, user_id FROM session_endings ORDER BY ended_at LIMIT 100",
        )
        .fetch_all(db.pool())
        .await?;
        for (session_id, user_id) in endings {
            let clients: Vec<(String, String)> = sqlx::query_as(
                "SELECT DISTINCT c.client_id, c.backchannel_logout_uri FROM oauth_codes k \
                 JOIN oauth_clients c ON c.client_id = k.client_id \
                 WHERE k.session_id = $1 AND k.used_at IS NOT NULL \
                 AND c.backchannel_logout_uri IS NOT NULL",
            )
            .bind(&session_id)
            .fetch_all(db.pool())
            .await?;
            let now = now_ms();
            let mut tx = db.pool().begin().await?;
            for (client_id, uri) in clients {
                let token = self.logout_token(&client_id, &user_id, &session_id);
                sqlx::query(
                    "INSERT INTO oauth_logout_deliveries \
                     (id, client_id, uri, logout_token, attempts, next_attempt_at, created_at) \
                     VALUES ($1, $2, $3, $4, 0, $5, $5)",
                )
                .bind(palisade_store::new_id())
                .bind(&client_id)
                .bind(&uri)
                .bind(&token)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            // Of two workers, only the one that deletes the note keeps its deliveries.
            let mine = sqlx::query("DELETE FROM session_endings WHERE session_id = $1")
                .bind(&session_id)
                .execute(&mut *tx)
                .await?;
            if mine.rows_affected() == 1 {
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
        }
        Ok(())
    }

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
        let Value::Object(claims) = claims else {
            unreachable!("a JSON object literal")
        };
        palisade_jose::jws::sign(&self.0.keys.signing_key(), "logout+jwt", &claims)
    }

    /// Delivers what is due; failures are retried later with a doubled wait.
    async fn deliver_logouts(&self, http: &reqwest::Client) -> Result<(), StoreError> {
        let db = &self.0.db;
        let now = now_ms();
        let due: Vec<Delivery> = sqlx::query_as(
            "SELECT id, client_id, uri, logout_token, attempts, next_attempt_at \
             FROM oauth_logout_deliveries WHERE next_attempt_at <= $1 \
             ORDER BY next_attempt_at LIMIT 50",
        )
        .bind(now)
        .fetch_all(db.pool())
        .await?;
        for d in due {
            // Claimed by moving its time forward, so that another worker leaves it alone.
            let claimed = sqlx::query(
                "UPDATE oauth_logout_deliveries SET next_attempt_at = $1 \
                 WHERE id = $2 AND next_attempt_at = $3",
            )
            .bind(now + CLAIM_MS)
            .bind(&d.id)
            .bind(d.next_attempt_at)
            .execute(db.pool())
            .await?;
            if claimed.rows_affected() != 1 {
                continue;
            }
            let sent = http
                .post(&d.uri)
                .form(&[("logout_token", d.logout_token.as_str())])
                .send()
                .await;
            let outcome = match &sent {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("answered {}", r.status())),
                Err(e) => Err(without_url(e)),
            };
            let attempts = d.attempts + 1;
            match outcome {
                Ok(()) => {
                    tracing::info!(client_id = %d.client_id, attempts, "back-channel logout delivered");
                }
                Err(problem) if attempts < MAX_ATTEMPTS => {
                    let wait = (1_000_i64 << attempts.min(22)).min(MAX_BACKOFF_MS);
                    tracing::warn!(client_id = %d.client_id, attempts, %problem, retry_in_ms = wait, "back-channel logout not delivered");
                    sqlx::query(
                        "UPDATE oauth_logout_deliveries SET attempts = $1, next_attempt_at = $2 \
                         WHERE id = $3",
                    )
                    .bind(attempts)
                    .bind(now_ms() + wait)
                    .bind(&d.id)
                    .execute(db.pool())
                    .await?;
                    continue;
                }
                Err(problem) => {
                    tracing::error!(client_id = %d.client_id, attempts, %problem, "back-channel logout given up");
                }
            }
            sqlx::query("DELETE FROM oauth_logout_deliveries WHERE id = $1")
                .bind(&d.id)
                .execute(db.pool())
                .await?;
        }
        Ok(())
    }
}

/// A transport error without the URL (which may carry a client's query secrets).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    kind.to_owned()
}
