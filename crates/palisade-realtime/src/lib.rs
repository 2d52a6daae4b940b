//! The real-time gateway (RTM-1..8): authenticated WebSockets on the server's TLS listener,
//! speaking the `palisade.v1` protocol (`palisade_realtime_client::protocol`).
//!
//! - [`admission`]: authentication before the upgrade — a one-time ticket from
//!   `POST /api/realtime/ticket`, an access token in `Sec-WebSocket-Protocol`, or the session
//!   cookie from an allowed Origin; never a credential in the URL.
//! - [`channels`]: the domain's side — who may subscribe and publish (the same policies as the
//!   REST API) and the durable, numbered streams behind each channel.
//! - `connection`: one socket — delivery in stream order without gaps or duplicates, resume
//!   from an offset, idempotent publishes, heartbeats, the token's lifetime, limits.
//! - `outbox` and `hub`: bounded per-connection queues and this node's fan-out; [`fanout`]:
//!   publishing across nodes over the cluster's bus.
//! - [`gateway`]: the node's connections, closed on revocation and on shutdown.
// Library code handles every failure; tests and examples may unwrap.
#![warn(clippy::unwrap_used)]

pub mod admission;
pub mod channels;
mod connection;
pub mod fanout;
pub mod gateway;
mod hub;
mod metrics;
mod outbox;
pub mod settings;
pub mod streams;

pub use admission::RealtimeGuard;
pub use channels::{Accepted, ChannelError, Channels, Event, Grant};
pub use fanout::Fanout;
pub use gateway::{Gateway, Parts, Sessions};
pub use metrics::RealtimeMetrics;
pub use settings::Settings;

use admission::Admitted;
use axum::Extension;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use palisade_http::input::Json;
use palisade_http::{Access, AppError, Routes};
use palisade_principal::{Credentials, Principal};
use palisade_realtime_client::protocol::SUBPROTOCOL;
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::routes;

/// The scope a ticket needs (each channel needs its own as well).
pub const TICKET_SCOPE: &str = "social:read";

/// `GET /ws` (an HTTP/1.1 upgrade) and `POST /api/realtime/ticket`.
pub fn router(gateway: Gateway) -> Routes {
    Routes::new()
        .route(Access::Realtime, "GET /ws", upgrade)
        .route(Access::Public, "GET /static/realtime.js", || script(CLIENT))
        .route(Access::Public, "GET /static/messages.js", || {
            script(MESSAGES_PAGE)
        })
        .documented(
            Access::AccessToken {
                scope: TICKET_SCOPE,
            },
            routes!(ticket),
        )
        .with_state(gateway)
}

/// The browser client, an ES module.
const CLIENT: &str = include_str!("../static/realtime.js");
/// The script of the account's conversation page.
const MESSAGES_PAGE: &str = include_str!("../static/messages.js");

async fn script(source: &'static str) -> Response {
    (
        [
            (http::header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (http::header::CACHE_CONTROL, "public, max-age=300"),
        ],
        source,
    )
        .into_response()
}

/// Bytes a connection's reads are buffered in: small, because every idle connection holds
/// one (tungstenite's default is 128 KiB).
const READ_BUFFER: usize = 4096;
/// Bytes written before a flush is forced.
const WRITE_BUFFER: usize = 16 * 1024;

/// The WebSocket configuration of every connection: small buffers, the size limits.
fn configured(ws: WebSocketUpgrade, settings: &Settings) -> WebSocketUpgrade {
    ws.protocols([SUBPROTOCOL])
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(settings.queue_bytes + WRITE_BUFFER)
        .max_message_size(settings.max_message_bytes)
        .max_frame_size(settings.max_message_bytes)
}

async fn upgrade(
    State(gateway): State<Gateway>,
    Extension(admitted): Extension<Arc<Admitted>>,
    ws: WebSocketUpgrade,
) -> Response {
    let tracker = gateway.inner().tracker.clone();
    configured(ws, &gateway.inner().settings).on_upgrade(move |socket| {
        tracker.track_future(connection::serve(gateway, socket, admitted))
    })
}

/// What the Autobahn suite runs against (RTM-9), in test builds only: an echo over the
/// gateway's WebSocket configuration, limits and close handling, without the protocol on top.
#[cfg(feature = "conformance")]
pub mod conformance {
    use super::{Settings, configured, connection};
    use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};

    /// `GET /echo`, plain HTTP (the suite's client speaks `ws://`).
    pub fn echo_router(settings: Settings) -> axum::Router {
        palisade_http::Routes::new()
            .route(
                palisade_http::Access::Public,
                "GET /echo",
                move |ws: WebSocketUpgrade| {
                    let settings = settings.clone();
                    async move { configured(ws, &settings).on_upgrade(echo) }
                },
            )
            .finish()
            .0
    }

    async fn echo(mut socket: WebSocket) {
        loop {
            match socket.recv().await {
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                    if socket.send(message).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) => {
                    // The close reply goes out while the socket is read.
                    while let Some(Ok(_)) = socket.recv().await {}
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    if let Some((code, reason)) = connection::close_for(&e) {
                        connection::finish(&mut socket, code, reason).await;
                    }
                    return;
                }
                None => return,
            }
        }
    }
}

/// A one-time ticket for a WebSocket upgrade.
#[derive(Serialize, ToSchema)]
struct TicketView {
    /// Present as the `palisade.ticket.<ticket>` subprotocol within thirty seconds, from the
    /// Origin this request came from; it works once.
    ticket: String,
    /// Unix milliseconds.
    expires_at: i64,
}

/// Trades the request's access token (with its DPoP proof when bound) for a one-time ticket to
/// open a WebSocket with, bound to the Origin of this request.
#[utoipa::path(post, path = "/api/realtime/ticket", tag = "realtime",
    responses((status = 201, description = "The ticket", body = TicketView)))]
async fn ticket(
    State(gateway): State<Gateway>,
    _principal: Principal,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let origin = headers
        .get(http::header::ORIGIN)
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    if let Some(origin) = &origin
        && !gateway.inner().origins.iter().any(|o| o == origin)
    {
        return Err(AppError::forbidden(
            "origin_not_allowed",
            "Connections from this Origin are not allowed.",
        ));
    }
    // The guard authenticated this very token; the ticket carries it.
    let token = match palisade_principal::credentials(&headers, "POST", "", None) {
        Ok((_, Credentials::Bearer { token } | Credentials::Dpop { token, .. })) => token,
        _ => return Err(AppError::internal("ticket request without its token")),
    };
    let issued = gateway
        .inner()
        .authenticator
        .issue_ticket(token, origin.as_deref());
    Ok((
        StatusCode::CREATED,
        [(http::header::CACHE_CONTROL, "no-store")],
        Json(TicketView {
            ticket: issued.ticket,
            expires_at: issued.expires_at,
        }),
    )
        .into_response())
}
