//! `[realtime]` settings: where browsers may connect from, heartbeats, and every limit a
//! connection is held to (RTM-3, RTM-5, RTM-6), with defaults safe for a public deployment.

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Origins (`https://app.example.com`) a browser may open a connection from. Empty: the
    /// server's own public URL only. A connection carrying another Origin is refused whatever
    /// its credential, and a connection authenticated by the session cookie needs one of these.
    pub allowed_origins: Vec<String>,
    /// How often the server pings; a client that sends nothing (not even a pong) for this
    /// long plus `pong_timeout_seconds` is closed.
    pub ping_interval_seconds: u64,
    pub pong_timeout_seconds: u64,
    /// The largest frame or message a client may send.
    pub max_message_bytes: usize,
    /// What may wait to be sent to one connection, in messages and in bytes: past either, the
    /// connection is a slow consumer and is closed (others are not held back by it).
    pub queue_messages: usize,
    pub queue_bytes: usize,
    /// How long one write may wait on a client that does not read.
    pub write_timeout_seconds: u64,
    pub max_subscriptions: usize,
    /// Frames a connection may send per minute (any kind), in bursts of as many.
    pub messages_per_minute: u32,
    /// Publishes and subscriptions per user per minute, on all nodes together.
    pub user_messages_per_minute: u32,
    /// Connections per user on all nodes together.
    pub user_connections: u32,
    /// Connections this node holds at most.
    pub max_connections: usize,
    /// New connections per minute this node accepts, and from one network.
    pub node_connects_per_minute: u32,
    pub network_connects_per_minute: u32,
    /// Events replayed to a resuming subscriber at most; further behind, it is told that
    /// recovery is impossible and reloads the channel's history over REST.
    pub history_limit: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            ping_interval_seconds: 25,
            pong_timeout_seconds: 10,
            max_message_bytes: 64 * 1024,
            queue_messages: 1024,
            queue_bytes: 1024 * 1024,
            write_timeout_seconds: 10,
            max_subscriptions: 128,
            messages_per_minute: 1200,
            user_messages_per_minute: 3000,
            user_connections: 32,
            max_connections: 19_000,
            node_connects_per_minute: 60_000,
            network_connects_per_minute: 6_000,
            history_limit: 1000,
        }
    }
}

impl Settings {
    pub fn validate(&self) -> Result<(), String> {
        for origin in &self.allowed_origins {
            let host = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            if !host.is_some_and(|h| !h.is_empty() && !h.contains('/')) {
                return Err(format!(
                    "realtime.allowed_origins: {origin:?} is not an origin (scheme://host[:port])"
                ));
            }
        }
        let positive = [
            ("realtime.ping_interval_seconds", self.ping_interval_seconds),
            ("realtime.pong_timeout_seconds", self.pong_timeout_seconds),
            ("realtime.max_message_bytes", self.max_message_bytes as u64),
            ("realtime.queue_messages", self.queue_messages as u64),
            ("realtime.queue_bytes", self.queue_bytes as u64),
            ("realtime.write_timeout_seconds", self.write_timeout_seconds),
            ("realtime.max_subscriptions", self.max_subscriptions as u64),
            (
                "realtime.messages_per_minute",
                self.messages_per_minute.into(),
            ),
            (
                "realtime.user_messages_per_minute",
                self.user_messages_per_minute.into(),
            ),
            ("realtime.user_connections", self.user_connections.into()),
            ("realtime.max_connections", self.max_connections as u64),
            (
                "realtime.node_connects_per_minute",
                self.node_connects_per_minute.into(),
            ),
            (
                "realtime.network_connects_per_minute",
                self.network_connects_per_minute.into(),
            ),
            ("realtime.history_limit", self.history_limit),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(format!("{key} must be positive"));
            }
        }
        Ok(())
    }

    pub(crate) fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_interval_seconds)
    }

    pub(crate) fn silence_limit(&self) -> Duration {
        Duration::from_secs(self.ping_interval_seconds + self.pong_timeout_seconds)
    }

    pub(crate) fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.write_timeout_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_limits_are_checked() {
        assert!(Settings::default().validate().is_ok());
        for bad in [
            "app.example",
            "https://app.example/",
            "https://app.example/path",
        ] {
            let settings = Settings {
                allowed_origins: vec![bad.into()],
                ..Settings::default()
            };
            assert!(settings.validate().is_err(), "{bad}");
        }
        let settings = Settings {
            queue_bytes: 0,
            ..Settings::default()
        };
        assert_eq!(
            settings.validate(),
            Err("realtime.queue_bytes must be positive".into())
        );
    }
}
