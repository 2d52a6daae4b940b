//! The `palisade.v1` protocol (RTM-1..7): JSON text frames, one object each, told apart by
//! `type`. `PROTOCOL.md` beside this crate describes it for people and `protocol.schema.json`
//! for machines; a test checks the three agree.
//!
//! A client subscribes to channels and may publish to those that take messages; every message
//! delivered on a channel carries the channel's `offset` (1, 2, 3, … without gaps) and its
//! `epoch`, so a client that reconnects asks for what came after its last offset and gets
//! exactly that, or an explicit `recovered: false`. A client's publish carries its own
//! sequence number (`seq`, increasing on the connection) and an idempotency `key`, so that a
//! retried publish is acknowledged again instead of being stored twice.

use serde::{Deserialize, Serialize};

/// The subprotocol a client asks for and the server selects.
pub const SUBPROTOCOL: &str = "palisade.v1";
/// `Sec-WebSocket-Protocol: palisade.v1, palisade.bearer.<access token>`: an unbound access
/// token where a client cannot set headers (a browser).
pub const BEARER_PREFIX: &str = "palisade.bearer.";
/// `Sec-WebSocket-Protocol: palisade.v1, palisade.ticket.<ticket>`: a one-time ticket.
pub const TICKET_PREFIX: &str = "palisade.ticket.";

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Start receiving `channel`; with `since`, first everything after that position.
    Subscribe {
        channel: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<Position>,
    },
    Unsubscribe {
        channel: String,
    },
    /// A message to `channel`, answered by [`ServerFrame::Published`] or an error naming `seq`.
    Publish {
        channel: String,
        /// Greater than every `seq` this connection sent before.
        seq: u64,
        /// The same key for every retry of one message (1 to 64 characters), on any connection.
        key: String,
        data: serde_json::Value,
    },
    /// This device has seen `channel` up to `offset`.
    Ack {
        channel: String,
        offset: u64,
    },
    /// A fresh credential before the current one expires: an unbound access token, or a ticket.
    Refresh {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ticket: Option<String>,
    },
}

/// Whether `key` may be an idempotency key: 1 to 64 letters, digits, `-`, `_`, `.` or `:` (the
/// rule for the `key` of a publish and for REST's `Idempotency-Key` alike).
pub fn valid_key(key: &str) -> bool {
    (1..=64).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// A position in a channel's stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Position {
    pub offset: u64,
    pub epoch: String,
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServerFrame {
    /// The first frame on a connection.
    Welcome {
        protocol: String,
        connection: String,
        /// The account (or client) the connection acts for.
        subject: String,
        /// When the credential expires (Unix seconds): refresh before, or the connection closes
        /// with [`close::TOKEN_EXPIRED`].
        expires_at: i64,
        limits: Limits,
    },
    /// Subscribed. `offset` is the channel's last offset now; with `since`, `recovered` says
    /// whether every message after it follows (before any newer one), or recovery was
    /// impossible (then `reason` says why, and nothing was replayed).
    Subscribed {
        channel: String,
        epoch: String,
        offset: u64,
        recovered: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A message on a channel.
    Message {
        channel: String,
        offset: u64,
        epoch: String,
        data: serde_json::Value,
    },
    /// The server stopped a subscription (the policies no longer allow it).
    Unsubscribed { channel: String, reason: String },
    /// A publish was stored as `offset` (or had been: `duplicate`).
    Published {
        seq: u64,
        channel: String,
        offset: u64,
        duplicate: bool,
    },
    /// The new credential is in force.
    Refreshed { expires_at: i64 },
    /// A command was refused; the connection stays open.
    Error {
        code: String,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<String>,
    },
}

/// The limits a connection is held to, told in its welcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub max_subscriptions: usize,
    pub messages_per_minute: u32,
}

/// Close codes (RFC 6455 §7.4; 4000–4999 are the application's own).
pub mod close {
    /// The server is shutting down: reconnect elsewhere or later.
    pub const GOING_AWAY: u16 = 1001;
    /// A frame or message larger than the limit.
    pub const TOO_BIG: u16 = 1009;
    /// No frame from the client (not even a pong) within the heartbeat timeout.
    pub const HEARTBEAT_TIMEOUT: u16 = 4000;
    /// The credential expired and no fresh one came in band.
    pub const TOKEN_EXPIRED: u16 = 4001;
    /// The credential was revoked: password change, sign-out everywhere, lock, consent
    /// revoked, session ended or account erased. Do not reconnect with the same credential.
    pub const REVOKED: u16 = 4003;
    /// The client did not read its messages fast enough; reconnect and resume.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// The client kept sending past its allowance.
    pub const RATE_LIMITED: u16 = 4029;
    /// The client kept sending frames that are not of the protocol.
    pub const PROTOCOL_ERRORS: u16 = 4400;

    /// Whether a client should reconnect after `code` (with back-off).
    pub fn should_reconnect(code: u16) -> bool {
        !matches!(code, REVOKED | TOKEN_EXPIRED | PROTOCOL_ERRORS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_read_what_the_documentation_shows() {
        let subscribe: ClientFrame = serde_json::from_str(
            r#"{"type":"subscribe","channel":"conversation:c1","since":{"offset":3,"epoch":"e"}}"#,
        )
        .unwrap();
        assert_eq!(
            subscribe,
            ClientFrame::Subscribe {
                channel: "conversation:c1".into(),
                since: Some(Position {
                    offset: 3,
                    epoch: "e".into()
                })
            }
        );
        // Unknown fields and types are refused, not ignored.
        for bad in [
            r#"{"type":"subscribe","channel":"x","extra":1}"#,
            r#"{"type":"shout","channel":"x"}"#,
            r#"{"channel":"x"}"#,
        ] {
            assert!(serde_json::from_str::<ClientFrame>(bad).is_err(), "{bad}");
        }
        let message = ServerFrame::Message {
            channel: "notifications".into(),
            offset: 1,
            epoch: "e".into(),
            data: serde_json::json!({"kind": "follower"}),
        };
        assert_eq!(
            serde_json::to_value(&message).unwrap(),
            serde_json::json!({"type":"message","channel":"notifications","offset":1,"epoch":"e",
                "data":{"kind":"follower"}})
        );
    }
}
