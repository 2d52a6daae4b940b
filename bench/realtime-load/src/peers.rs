//! The Node peers of the fan-out benchmark (bench/realtime-peers), over the same TLS and
//! WebSocket stack as Palisade's client: a bare `ws` server and socket.io, each authenticating
//! a connection by an HS256 token before it may subscribe.

use anyhow::{Context, Result, bail};
use data_encoding::BASE64URL_NOPAD;
use futures_util::{FutureExt, SinkExt, StreamExt};
use rustls_pki_types::ServerName;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::TcpSocket;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub(crate) type Socket = WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

pub(crate) const ROOM: &str = "room";

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Flavor {
    /// bench/realtime-peers/ws-server.js: JSON frames of its own.
    Ws,
    /// bench/realtime-peers/socketio-server.js: Engine.IO 4 over WebSocket.
    Socketio,
}

/// One peer deployment: its processes' ports, the token every connection presents.
pub(crate) struct Peer {
    pub flavor: Flavor,
    pub ports: Vec<u16>,
    pub tls: Arc<rustls::ClientConfig>,
    pub token: String,
}

/// An HS256 token for `secret`, valid for an hour: what the peers verify on connect.
pub(crate) fn token(secret: &str, subject: &str) -> Result<String> {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 3600;
    let header = BASE64URL_NOPAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = BASE64URL_NOPAD.encode(
        serde_json::json!({"sub": subject, "exp": exp})
            .to_string()
            .as_bytes(),
    );
    let input = format!("{header}.{claims}");
    let tag = palisade_crypto::hmac_sha256(secret.as_bytes(), input.as_bytes());
    Ok(format!("{input}.{}", BASE64URL_NOPAD.encode(&tag)))
}

impl Peer {
    fn url(&self, port: u16) -> String {
        match self.flavor {
            Flavor::Ws => format!("wss://localhost:{port}/ws"),
            Flavor::Socketio => {
                format!("wss://localhost:{port}/socket.io/?EIO=4&transport=websocket")
            }
        }
    }

    async fn connect(&self, port: u16, from: IpAddr) -> Result<Socket> {
        let mut request = self.url(port).into_client_request()?;
        if self.flavor == Flavor::Ws {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {}", self.token).parse()?);
        }
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(from, 0))?;
        let tcp = socket
            .connect(SocketAddr::from(([127, 0, 0, 1], port)))
            .await?;
        tcp.set_nodelay(true)?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(ServerName::try_from("localhost")?, tcp)
            .await?;
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let (mut socket, _) =
            tokio_tungstenite::client_async_with_config(request, tls, Some(config)).await?;
        if self.flavor == Flavor::Socketio {
            expect_prefix(&mut socket, "0").await?;
            let auth = serde_json::json!({"token": self.token});
            socket.send(Message::text(format!("40{auth}"))).await?;
            expect_prefix(&mut socket, "40").await?;
        }
        Ok(socket)
    }

    /// The `i`-th subscriber (processes take turns), subscribed to the room.
    pub(crate) async fn subscriber(&self, i: usize, from: IpAddr) -> Result<Socket> {
        let port = self.ports[i % self.ports.len()];
        let mut socket = self.connect(port, from).await?;
        match self.flavor {
            Flavor::Ws => {
                let frame = serde_json::json!({"type": "subscribe", "channel": ROOM});
                socket.send(Message::text(frame.to_string())).await?;
                expect_prefix(&mut socket, r#"{"type":"subscribed""#).await?;
            }
            Flavor::Socketio => {
                socket
                    .send(Message::text(format!(r#"42["subscribe","{ROOM}"]"#)))
                    .await?;
                expect_prefix(&mut socket, r#"42["subscribed""#).await?;
            }
        }
        Ok(socket)
    }

    /// Counts the messages a subscriber receives (each parsed, as a client would), answering
    /// Engine.IO's pings.
    pub(crate) async fn count(&self, mut socket: Socket, delivered: Arc<AtomicU64>) {
        while let Some(Ok(message)) = socket.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let payload = match self.flavor {
                Flavor::Ws => Some(text.as_str()),
                Flavor::Socketio if text.as_str() == "2" => {
                    if socket.send(Message::text("3")).await.is_err() {
                        return;
                    }
                    None
                }
                Flavor::Socketio => text.as_str().strip_prefix("42"),
            };
            let Some(payload) = payload else { continue };
            let parsed: serde_json::Value = serde_json::from_str(payload).unwrap_or_default();
            let is_message = match self.flavor {
                Flavor::Ws => parsed["type"] == "message",
                Flavor::Socketio => parsed[0] == "message",
            };
            if is_message {
                delivered.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Where messages are published from: one connection to each `ws` process (the split
    /// deployment), or one to the first socket.io process (its Redis adapter reaches the rest).
    pub(crate) async fn publishers(&self) -> Result<Vec<Socket>> {
        let from = IpAddr::from([127, 0, 0, 1]);
        let ports = match self.flavor {
            Flavor::Ws => &self.ports[..],
            Flavor::Socketio => &self.ports[..1],
        };
        let mut sockets = Vec::new();
        for port in ports {
            sockets.push(self.connect(*port, from).await?);
        }
        Ok(sockets)
    }

    pub(crate) async fn publish(&self, publishers: &mut [Socket], n: u64) -> Result<()> {
        let data = serde_json::json!({"n": n, "body": "a post to every follower"});
        let frame = match self.flavor {
            Flavor::Ws => {
                serde_json::json!({"type": "publish", "channel": ROOM, "data": data}).to_string()
            }
            Flavor::Socketio => format!(
                "42{}",
                serde_json::json!(["publish", {"channel": ROOM, "data": data}])
            ),
        };
        for socket in publishers {
            // A publisher reads nothing else, but Engine.IO closes a connection that leaves its
            // pings unanswered.
            while let Some(Some(incoming)) = socket.next().now_or_never() {
                if matches!(incoming?, Message::Text(t) if t.as_str() == "2") {
                    socket.send(Message::text("3")).await?;
                }
            }
            socket.send(Message::text(frame.clone())).await?;
        }
        Ok(())
    }
}

/// Reads until a text frame that starts with `prefix` (anything else first is an error).
async fn expect_prefix(socket: &mut Socket, prefix: &str) -> Result<()> {
    let message = socket
        .next()
        .await
        .context("closed during the handshake")??;
    match message {
        Message::Text(text) if text.as_str().starts_with(prefix) => Ok(()),
        other => bail!("expected {prefix}…, got {other:?}"),
    }
}
