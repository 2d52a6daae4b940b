//! Authentication before the upgrade (RTM-1, RTM-6): the guard of `Access::Realtime` routes.
//! In order, cheapest first, so a flood costs as little as possible:
//!
//! 1. nothing in the URL — a credential there ends up in proxy logs and browser history;
//! 2. the Origin, when present, must be allowed (cross-site WebSocket hijacking: a page of
//!    another site opening a socket with the victim's cookie);
//! 3. the network's and the node's allowances of new connections, and the node's capacity;
//! 4. one credential: a one-time ticket (bound to the Origin it was asked from), an access
//!    token in `Sec-WebSocket-Protocol` or `Authorization`, or the session cookie — the cookie
//!    only with an allowed Origin, since a browser sends it on every site's behalf;
//! 5. the user's connections across the cluster.
//!
//! Every refusal is an HTTP answer with the usual JSON error; authentication failures are
//! audited.

use crate::gateway::{Credential, Gateway};
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use http::HeaderMap;
use palisade_audit::{Action, Outcome, SecurityEvent};
use palisade_cluster::Rate;
use palisade_http::client_ip::{PeerAddr, network_key};
use palisade_http::{Access, AppError, Guard};
use palisade_principal::{AuthError, Credentials, Principal, Refusal, Scheme};
use palisade_realtime_client::protocol::{BEARER_PREFIX, SUBPROTOCOL, TICKET_PREFIX};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Query parameters that name a credential.
const CREDENTIAL_PARAMETERS: [&str; 6] = [
    "access_token",
    "token",
    "ticket",
    "jwt",
    "auth",
    "authorization",
];

/// A connection allowed in, with what it holds: a place on this node and among the user's
/// connections, given back when the last reference goes (the connection ends, or the upgrade
/// never happens).
pub(crate) struct Admitted {
    pub(crate) id: u64,
    pub(crate) principal: Principal,
    pub(crate) credential: Credential,
    pub(crate) origin: Option<String>,
    pub(crate) ip: IpAddr,
    gateway: Gateway,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let inner = self.gateway.inner();
        inner.open.fetch_sub(1, Ordering::AcqRel);
        let slots = inner.slots.clone();
        let (subject, holder) = (self.principal.subject.clone(), self.id.to_string());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { slots.release(USER_SLOTS, &subject, &holder).await });
        }
    }
}

pub(crate) const USER_SLOTS: &str = "realtime.connections";

/// The guard of `Access::Realtime`.
pub struct RealtimeGuard(pub Gateway);

impl Guard for RealtimeGuard {
    fn admit<'a>(
        &'a self,
        _: Access,
        request: Request,
    ) -> BoxFuture<'a, Result<Request, Response>> {
        Box::pin(async move {
            let mut request = request;
            let peer = request.extensions().get::<PeerAddr>().map(|p| p.0.ip());
            let admitted = self.0.admit(request.headers(), request.uri(), peer).await?;
            request.extensions_mut().insert(Arc::new(admitted));
            Ok(request)
        })
    }
}

fn refuse(status: http::StatusCode, code: &'static str, message: &str) -> Response {
    let error = match status {
        http::StatusCode::FORBIDDEN => AppError::forbidden(code, message),
        _ => AppError::bad_request(code, message),
    };
    error.into_response()
}

impl Gateway {
    async fn admit(
        &self,
        headers: &HeaderMap,
        uri: &http::Uri,
        peer: Option<IpAddr>,
    ) -> Result<Admitted, Response> {
        let inner = self.inner();
        let metrics = &inner.metrics;
        let ip = peer
            .ok_or_else(|| AppError::internal("upgrade without a peer address").into_response())?;
        if let Some(query) = uri.query().filter(|q| !q.is_empty()) {
            let names_credential = query.split('&').any(|pair| {
                let name = pair.split('=').next().unwrap_or_default();
                CREDENTIAL_PARAMETERS.contains(&name.to_ascii_lowercase().as_str())
            }) || query.contains("eyJ");
            metrics.refused("query");
            return Err(if names_credential {
                refuse(
                    http::StatusCode::BAD_REQUEST,
                    "token_in_url",
                    "Credentials are never accepted in the URL, where logs and browser history \
                     keep them: send a ticket or the access token in Sec-WebSocket-Protocol.",
                )
            } else {
                refuse(
                    http::StatusCode::BAD_REQUEST,
                    "unexpected_query",
                    "The WebSocket endpoint takes no query parameters.",
                )
            });
        }
        let origin = match headers.get(http::header::ORIGIN) {
            None => None,
            Some(value) => {
                let origin = value.to_str().ok().map(str::to_owned);
                if !origin.as_deref().is_some_and(|o| self.origin_allowed(o)) {
                    metrics.refused("origin");
                    return Err(refuse(
                        http::StatusCode::FORBIDDEN,
                        "origin_not_allowed",
                        "Connections from this Origin are not allowed.",
                    ));
                }
                origin
            }
        };
        let settings = &inner.settings;
        let per_minute = |n| Rate { per_minute: n };
        for (limit, key, rate) in [
            (
                "realtime.connect.network",
                network_key(ip),
                settings.network_connects_per_minute,
            ),
            (
                "realtime.connect.node",
                inner.node_id.clone(),
                settings.node_connects_per_minute,
            ),
        ] {
            if let Err(retry_after) = inner.counter.check(limit, &key, per_minute(rate)).await {
                metrics.refused("connect_rate");
                return Err(AppError::TooManyRequests { retry_after }.into_response());
            }
        }
        if inner.open.fetch_add(1, Ordering::AcqRel) >= settings.max_connections {
            inner.open.fetch_sub(1, Ordering::AcqRel);
            metrics.refused("capacity");
            return Err(AppError::Unavailable {
                retry_after: Duration::from_secs(5),
            }
            .into_response());
        }
        // From here on the node slot is held, and given back by `Admitted` or below.
        let authenticated = self.authenticate(headers, uri.path(), origin.as_deref());
        let (principal, credential) = match authenticated.await {
            Ok(found) => found,
            Err((reason, refusal)) => {
                inner.open.fetch_sub(1, Ordering::AcqRel);
                metrics.refused(reason);
                if reason != "missing" {
                    self.audit_refusal(ip, reason).await;
                }
                return Err(refusal);
            }
        };
        let admitted = Admitted {
            id: inner.next_id.fetch_add(1, Ordering::Relaxed),
            principal,
            credential,
            origin,
            ip,
            gateway: self.clone(),
        };
        let user_slot = inner
            .slots
            .acquire(
                USER_SLOTS,
                &admitted.principal.subject,
                &admitted.id.to_string(),
                settings.user_connections,
                self.slot_lifetime(),
            )
            .await;
        if !user_slot {
            metrics.refused("user_connections");
            return Err(AppError::TooManyRequests {
                retry_after: Duration::from_secs(5),
            }
            .into_response());
        }
        Ok(admitted)
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        self.inner().origins.iter().any(|o| o == origin)
    }

    /// The principal of the one credential the upgrade presents.
    #[allow(clippy::result_large_err)] // the refusal is the answer, built once
    async fn authenticate(
        &self,
        headers: &HeaderMap,
        path: &str,
        origin: Option<&str>,
    ) -> Result<(Principal, Credential), (&'static str, Response)> {
        let inner = self.inner();
        let bad = |reason, code, message: &str| {
            Err((reason, refuse(http::StatusCode::BAD_REQUEST, code, message)))
        };
        let protocols: Vec<&str> = headers
            .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        if !protocols.contains(&SUBPROTOCOL) {
            return bad(
                "subprotocol",
                "subprotocol_required",
                "Ask for the palisade.v1 subprotocol.",
            );
        }
        let tickets: Vec<&str> = protocols
            .iter()
            .filter_map(|p| p.strip_prefix(TICKET_PREFIX))
            .collect();
        let bearers: Vec<&str> = protocols
            .iter()
            .filter_map(|p| p.strip_prefix(BEARER_PREFIX))
            .collect();
        let authorization = headers.contains_key(http::header::AUTHORIZATION);
        let presented = tickets.len() + bearers.len() + usize::from(authorization);
        if presented > 1 {
            return bad(
                "ambiguous",
                "ambiguous_credentials",
                "Present one credential.",
            );
        }
        let token_refusal = |scheme, error: AuthError| {
            let reason = match &error {
                AuthError::InvalidTicket(_) => "ticket",
                AuthError::Unavailable => "unavailable",
                _ => "token",
            };
            (reason, Refusal::new(scheme, error).into_response())
        };
        let credentials = if let Some(ticket) = tickets.first() {
            Credentials::Ticket { ticket, origin }
        } else if let Some(token) = bearers.first() {
            Credentials::Bearer { token }
        } else if authorization {
            palisade_principal::credentials(headers, "GET", path, None)
                .map_err(|r| ("token", r.into_response()))?
                .1
        } else if !headers.contains_key(http::header::COOKIE) {
            return Err((
                "missing",
                Refusal::new(Scheme::Bearer, AuthError::Missing).into_response(),
            ));
        } else {
            // The session cookie: a browser sends it whichever site opened the socket, so only
            // an allowed Origin (checked above) may use it, and it must be there.
            if origin.is_none() {
                return Err((
                    "origin",
                    refuse(
                        http::StatusCode::FORBIDDEN,
                        "origin_required",
                        "A connection authenticated by the session cookie must come from an \
                         allowed Origin.",
                    ),
                ));
            }
            return match inner.sessions.principal(headers).await {
                Ok(Some(principal)) => Ok((principal, Credential::Session)),
                Ok(None) => Err((
                    "missing",
                    Refusal::new(Scheme::Bearer, AuthError::Missing).into_response(),
                )),
                Err(e) => Err(("unavailable", e.into_response())),
            };
        };
        let live = inner
            .authenticator
            .authenticate_live(credentials)
            .await
            .map_err(|e| token_refusal(Scheme::Bearer, e))?;
        let claims = live.claims.clone();
        Ok((
            Principal::from_live(live),
            Credential::Token(Box::new(claims)),
        ))
    }

    async fn audit_refusal(&self, ip: IpAddr, reason: &'static str) {
        let event = SecurityEvent::new(
            Action::RealtimeRefused,
            Outcome::Failure,
            palisade_store::DEFAULT_TENANT,
        )
        .ip(ip)
        .detail("reason", reason);
        if let Err(e) = self.inner().auditor.record(event).await {
            tracing::error!(error = %e, "refused connection not audited");
        }
    }
}
