//! The `palisade.v1` real-time protocol ([`protocol`]) and a small Rust client for it: a
//! connection over TLS ([`Connect`]), the positions a client resumes from ([`Positions`]), and
//! the reconnect delay ([`backoff`]). Palisade's own tests and benchmarks use it; it depends on
//! no part of the server.
// Library code handles every failure; tests and examples may unwrap.
#![warn(clippy::unwrap_used)]

pub mod protocol;

use futures_util::{SinkExt, StreamExt};
use protocol::{ClientFrame, Position, ServerFrame};
use rustls_pki_types::ServerName;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

pub use tokio_tungstenite::tungstenite::Message;
pub use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered the upgrade with an HTTP error: its status and JSON body.
    #[error("upgrade refused with {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("invalid request: {0}")]
    Request(String),
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("websocket: {0}")]
    WebSocket(tungstenite::Error),
    #[error("the server sent a frame that is not of the protocol: {0}")]
    Protocol(String),
}

impl From<tungstenite::Error> for ClientError {
    fn from(e: tungstenite::Error) -> Self {
        match e {
            tungstenite::Error::Http(response) => ClientError::Refused {
                status: response.status().as_u16(),
                body: response
                    .body()
                    .as_deref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default(),
            },
            tungstenite::Error::Io(e) => ClientError::Io(e),
            other => ClientError::WebSocket(other),
        }
    }
}

/// How to open a connection: the `wss://` URL, where to connect (when not the URL's host),
/// the TLS configuration, and what the upgrade request carries.
pub struct Connect {
    url: String,
    addr: Option<SocketAddr>,
    local: Option<std::net::IpAddr>,
    tls: Arc<rustls::ClientConfig>,
    protocols: Vec<String>,
    headers: Vec<(String, String)>,
    config: WebSocketConfig,
}

impl Connect {
    pub fn new(url: impl Into<String>, tls: Arc<rustls::ClientConfig>) -> Self {
        // Small buffers: a client holding many connections (a benchmark) pays for each.
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        Self {
            url: url.into(),
            addr: None,
            local: None,
            tls,
            protocols: vec![protocol::SUBPROTOCOL.to_owned()],
            headers: Vec::new(),
            config,
        }
    }

    /// Connects to `addr` instead of resolving the URL's host (which still names the server
    /// for TLS).
    pub fn at(mut self, addr: SocketAddr) -> Self {
        self.addr = Some(addr);
        self
    }

    /// Connects from `ip` (a load generator spreading its connections over loopback addresses,
    /// each with its own allowance of new connections).
    pub fn from(mut self, ip: std::net::IpAddr) -> Self {
        self.local = Some(ip);
        self
    }

    /// Authenticates with an unbound access token in `Sec-WebSocket-Protocol`.
    pub fn bearer(mut self, token: &str) -> Self {
        self.protocols
            .push(format!("{}{token}", protocol::BEARER_PREFIX));
        self
    }

    /// Authenticates with a one-time ticket in `Sec-WebSocket-Protocol`.
    pub fn ticket(mut self, ticket: &str) -> Self {
        self.protocols
            .push(format!("{}{ticket}", protocol::TICKET_PREFIX));
        self
    }

    /// Sends `Origin: origin`, as a browser would.
    pub fn origin(self, origin: &str) -> Self {
        self.header("origin", origin)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Replaces the subprotocols asked for.
    pub fn protocols(mut self, protocols: &[&str]) -> Self {
        self.protocols = protocols.iter().map(|p| (*p).to_owned()).collect();
        self
    }

    pub async fn open(self) -> Result<Connection, ClientError> {
        let mut request = self
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| ClientError::Request(e.to_string()))?;
        let host = request
            .uri()
            .host()
            .ok_or_else(|| ClientError::Request("the URL has no host".into()))?
            .to_owned();
        let port = request.uri().port_u16().unwrap_or(443);
        let headers = request.headers_mut();
        if !self.protocols.is_empty() {
            let value = self.protocols.join(", ");
            headers.insert(
                "sec-websocket-protocol",
                value
                    .parse()
                    .map_err(|_| ClientError::Request("invalid subprotocol".into()))?,
            );
        }
        for (name, value) in &self.headers {
            let name: http::HeaderName = name
                .parse()
                .map_err(|_| ClientError::Request(format!("invalid header {name}")))?;
            let value = value
                .parse()
                .map_err(|_| ClientError::Request(format!("invalid value of {name}")))?;
            headers.append(name, value);
        }
        let addr = match self.addr {
            Some(addr) => addr,
            None => tokio::net::lookup_host((host.as_str(), port))
                .await?
                .next()
                .ok_or_else(|| ClientError::Request(format!("{host} has no address")))?,
        };
        let tcp = match self.local {
            Some(ip) => {
                let socket = match ip {
                    std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                    std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
                };
                socket.bind(SocketAddr::new(ip, 0))?;
                socket.connect(addr).await?
            }
            None => TcpStream::connect(addr).await?,
        };
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from(host)
            .map_err(|_| ClientError::Request("invalid server name".into()))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls)
            .connect(name, tcp)
            .await?;
        let (socket, response) =
            tokio_tungstenite::client_async_with_config(request, tls, Some(self.config)).await?;
        let protocol = response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Connection { socket, protocol })
    }
}

/// What a connection received.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Frame(ServerFrame),
    /// The server closed the connection with this code and reason (1006: without a close frame).
    Closed {
        code: u16,
        reason: String,
    },
}

/// An open connection.
pub struct Connection {
    socket: WebSocketStream<TlsStream<TcpStream>>,
    protocol: Option<String>,
}

impl Connection {
    /// The subprotocol the server selected.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    pub async fn send(&mut self, frame: &ClientFrame) -> Result<(), ClientError> {
        let text = serde_json::to_string(frame).map_err(|e| ClientError::Request(e.to_string()))?;
        self.send_raw(Message::text(text)).await
    }

    /// Sends any WebSocket message, protocol or not (tests of what the server refuses).
    pub async fn send_raw(&mut self, message: Message) -> Result<(), ClientError> {
        Ok(self.socket.send(message).await?)
    }

    /// The next frame of the protocol, or the close. Pings are answered on the way.
    pub async fn recv(&mut self) -> Result<Incoming, ClientError> {
        loop {
            match self.socket.next().await {
                None => {
                    return Ok(Incoming::Closed {
                        code: 1006,
                        reason: String::new(),
                    });
                }
                Some(Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::Io(_))) => {
                    return Ok(Incoming::Closed {
                        code: 1006,
                        reason: String::new(),
                    });
                }
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(&text)
                        .map(Incoming::Frame)
                        .map_err(|e| ClientError::Protocol(format!("{e}: {}", text.as_str())));
                }
                Some(Ok(Message::Close(frame))) => {
                    // Keep reading so the close reply goes out, then report.
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    while let Some(Ok(_)) = self.socket.next().await {}
                    return Ok(Incoming::Closed { code, reason });
                }
                Some(Ok(Message::Binary(_))) => {
                    return Err(ClientError::Protocol("binary frame".into()));
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next protocol frame, failing on a close.
    pub async fn frame(&mut self) -> Result<ServerFrame, ClientError> {
        match self.recv().await? {
            Incoming::Frame(frame) => Ok(frame),
            Incoming::Closed { code, reason } => Err(ClientError::Protocol(format!(
                "closed with {code} {reason}"
            ))),
        }
    }

    /// Closes from the client's side and waits for the server's reply.
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.socket.close(None).await?;
        while let Some(Ok(_)) = self.socket.next().await {}
        Ok(())
    }

    /// Drops the TCP connection without a close frame: a network that went away.
    pub fn abort(self) {
        drop(self.socket);
    }
}

/// The last position a client saw on each channel: what it resubscribes with after a
/// reconnect, so that it receives exactly what it missed.
#[derive(Debug, Clone, Default)]
pub struct Positions(BTreeMap<String, Position>);

impl Positions {
    /// Takes note of a received frame; a message out of order is reported as an error.
    pub fn observe(&mut self, frame: &ServerFrame) -> Result<(), String> {
        match frame {
            ServerFrame::Subscribed {
                channel,
                epoch,
                offset,
                recovered,
                ..
            } => {
                let known = self.0.get(channel);
                // A fresh subscription, or a recovery that failed: the client starts over from
                // where the channel is now.
                if known.is_none() || !recovered || known.is_some_and(|p| p.epoch != *epoch) {
                    self.0.insert(
                        channel.clone(),
                        Position {
                            offset: *offset,
                            epoch: epoch.clone(),
                        },
                    );
                }
                Ok(())
            }
            ServerFrame::Message {
                channel,
                offset,
                epoch,
                ..
            } => {
                let entry = self.0.entry(channel.clone()).or_insert(Position {
                    offset: offset.saturating_sub(1),
                    epoch: epoch.clone(),
                });
                if *offset != entry.offset + 1 {
                    return Err(format!("{channel}: offset {offset} after {}", entry.offset));
                }
                entry.offset = *offset;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    pub fn get(&self, channel: &str) -> Option<&Position> {
        self.0.get(channel)
    }

    /// The subscriptions that resume every channel from its last position.
    pub fn resubscribe(&self) -> Vec<ClientFrame> {
        self.0
            .iter()
            .map(|(channel, position)| ClientFrame::Subscribe {
                channel: channel.clone(),
                since: Some(position.clone()),
            })
            .collect()
    }
}

/// The delay before reconnect attempt `attempt` (0 for the first): exponential from 250 ms,
/// capped at 30 s, with full jitter so that clients dropped together do not return together.
/// `random` is uniform in [0, 1).
pub fn backoff(attempt: u32, random: f64) -> Duration {
    let ceiling = (250.0 * 2f64.powi(attempt.min(16) as i32)).min(30_000.0);
    Duration::from_millis((ceiling * random.clamp(0.0, 1.0)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_follow_messages_and_catch_gaps() {
        let mut positions = Positions::default();
        let subscribed = ServerFrame::Subscribed {
            channel: "c".into(),
            epoch: "e".into(),
            offset: 4,
            recovered: false,
            reason: None,
        };
        positions.observe(&subscribed).unwrap();
        let message = |offset| ServerFrame::Message {
            channel: "c".into(),
            offset,
            epoch: "e".into(),
            data: serde_json::Value::Null,
        };
        positions.observe(&message(5)).unwrap();
        assert!(positions.observe(&message(7)).is_err(), "a gap is seen");
        assert!(positions.observe(&message(5)).is_err(), "so is a duplicate");
        assert_eq!(
            positions.resubscribe(),
            vec![ClientFrame::Subscribe {
                channel: "c".into(),
                since: Some(Position {
                    offset: 5,
                    epoch: "e".into()
                })
            }]
        );
    }

    #[test]
    fn backoff_grows_to_its_cap_and_is_jittered() {
        assert_eq!(backoff(0, 0.999), Duration::from_millis(249));
        assert_eq!(backoff(3, 0.5), Duration::from_millis(1000));
        assert_eq!(backoff(40, 0.999), Duration::from_millis(29_970));
        assert_eq!(backoff(5, 0.0), Duration::ZERO);
    }
}
