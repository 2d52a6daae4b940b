//! Real-time clients as the tests play them: connections to `/ws` through the Rust client,
//! tickets from the API, and waiting for the frame a test expects.

use super::social::Member;
use super::*;
// What the real-time tests use, in one import (each test binary uses part of it).
#[allow(unused_imports)]
pub(crate) use palisade_realtime_client::protocol::{ClientFrame, Position, ServerFrame, close};
#[allow(unused_imports)]
pub(crate) use palisade_realtime_client::{ClientError, Connect, Connection, Incoming, Positions};
use serde_json::Value;

/// The server's own origin, which browsers on its pages send.
pub(crate) fn own_origin(server: &Server) -> String {
    format!("https://localhost:{}", server.https.port())
}

/// A connection to `server`'s `/ws` (extra path and query after it), not yet authenticated.
pub(crate) fn ws_at(server: &Server, suffix: &str) -> Connect {
    let ca = server.data_dir().join("tls/dev-ca.pem");
    Connect::new(
        format!("wss://localhost:{}/ws{suffix}", server.https.port()),
        http1_client(&[&ca]),
    )
    .at(server.https)
}

pub(crate) fn ws(server: &Server) -> Connect {
    ws_at(server, "")
}

/// A one-time ticket for `token`, asked from `origin`: the status and the JSON answer.
pub(crate) async fn ticket(server: &Server, token: &str, origin: Option<&str>) -> (u16, Value) {
    let mut request = server
        .http_client()
        .post(format!("{}/api/realtime/ticket", server.base()))
        .bearer_auth(token);
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// `member` connected with a fresh ticket, past the welcome.
pub(crate) async fn connected(server: &Server, member: &Member) -> Connection {
    let (status, issued) = ticket(server, &member.token, None).await;
    assert_eq!(status, 201, "{issued}");
    let mut connection = ws(server)
        .ticket(issued["ticket"].as_str().unwrap())
        .open()
        .await
        .unwrap();
    assert_eq!(connection.protocol(), Some("palisade.v1"));
    match connection.frame().await.unwrap() {
        ServerFrame::Welcome { subject, .. } => assert_eq!(subject, member.id),
        other => panic!("expected a welcome, got {other:?}"),
    }
    connection
}

/// Subscribes and returns the `subscribed` answer.
pub(crate) async fn subscribe(
    connection: &mut Connection,
    channel: &str,
    since: Option<Position>,
) -> ServerFrame {
    connection
        .send(&ClientFrame::Subscribe {
            channel: channel.to_owned(),
            since,
        })
        .await
        .unwrap();
    connection.frame().await.unwrap()
}

/// The next `message` frame's offset and data, skipping nothing else (another frame fails).
pub(crate) async fn message(connection: &mut Connection) -> (String, u64, Value) {
    match connection.frame().await.unwrap() {
        ServerFrame::Message {
            channel,
            offset,
            data,
            ..
        } => (channel, offset, data),
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Publishes to `channel` and returns the answer.
pub(crate) async fn publish(
    connection: &mut Connection,
    channel: &str,
    seq: u64,
    key: &str,
    data: Value,
) -> ServerFrame {
    connection
        .send(&ClientFrame::Publish {
            channel: channel.to_owned(),
            seq,
            key: key.to_owned(),
            data,
        })
        .await
        .unwrap();
    connection.frame().await.unwrap()
}

/// The status and JSON body of an upgrade the server refused.
pub(crate) async fn refused(connect: Connect) -> (u16, Value) {
    match connect.open().await {
        Err(ClientError::Refused { status, body }) => {
            (status, serde_json::from_str(&body).unwrap_or(Value::Null))
        }
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("the upgrade was accepted"),
    }
}

/// The code the connection closes with, reading past any frames before it.
pub(crate) async fn closed_with(connection: &mut Connection) -> (u16, String) {
    loop {
        match connection.recv().await.unwrap() {
            Incoming::Closed { code, reason } => return (code, reason),
            Incoming::Frame(_) => {}
        }
    }
}

/// The `Cookie` header of `agent`'s cookies.
pub(crate) fn cookie_header(agent: &Agent) -> String {
    agent
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The details of the audit events `action` in `server`'s log, oldest first.
pub(crate) async fn audited(server: &Server, action: &str) -> Vec<String> {
    let db = server.db().await;
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT details FROM security_events WHERE action = $1 ORDER BY seq")
            .bind(action)
            .fetch_all(db.pool())
            .await
            .unwrap();
    rows.into_iter().map(|(d,)| d).collect()
}
