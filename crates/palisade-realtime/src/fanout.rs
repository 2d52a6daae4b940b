//! Fan-out across nodes (RTM-8): once the domain has stored an event, it publishes it on the
//! cluster's bus — in process on one node, through Redis between nodes — and every node's
//! [`crate::hub::Hub`] hands it to its own subscribers. All streams share one bus topic: a
//! node follows one subscription however many channels its clients watch.
//!
//! The bus delivers at most once; that is enough, because the stream is durable and numbered:
//! a subscriber that sees a gap (or is told the bus may have dropped something) reads the
//! missing events from the store.

use crate::channels::Event;
use palisade_cluster::Bus;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub(crate) const TOPIC: &str = "realtime";
/// Accounts whose subscriptions are to be decided again.
pub(crate) const REAUTHORIZE: &str = "realtime.reauthorize";

/// An event on the bus.
#[derive(Serialize, Deserialize)]
pub(crate) struct BusEvent<'a> {
    #[serde(borrow)]
    pub(crate) stream: &'a str,
    #[serde(borrow)]
    pub(crate) channel: &'a str,
    #[serde(borrow)]
    pub(crate) epoch: &'a str,
    pub(crate) offset: u64,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub(crate) audience: Option<&'a str>,
    #[serde(borrow)]
    pub(crate) data: &'a RawValue,
}

/// How the domain tells every node about an event it stored.
#[derive(Clone)]
pub struct Fanout {
    bus: Bus,
}

impl Fanout {
    pub fn new(bus: Bus) -> Self {
        Self { bus }
    }

    /// Publishes `event` of `stream`, which subscribers see as `channel`. Call after the
    /// event is committed: a subscriber that sees it may read the store for what came before.
    pub async fn publish(&self, stream: &str, channel: &str, epoch: &str, event: &Event) {
        let message = BusEvent {
            stream,
            channel,
            epoch,
            offset: event.offset,
            audience: event.audience.as_deref(),
            data: &event.data,
        };
        match serde_json::to_vec(&message) {
            Ok(bytes) => self.bus.publish(TOPIC, bytes).await,
            Err(e) => tracing::error!(error = %e, "real-time event not encoded"),
        }
    }

    /// Tells every node that what decides `user`'s subscriptions changed (a block or a follow,
    /// by or of them): their open subscriptions are decided again, and dropped if refused.
    pub async fn reauthorize(&self, user: &str) {
        self.bus.publish(REAUTHORIZE, user.to_owned()).await;
    }
}

/// The `message` frame of an event, encoded once however many subscribers receive it.
pub(crate) fn message_frame(channel: &str, epoch: &str, offset: u64, data: &RawValue) -> String {
    #[derive(Serialize)]
    struct Frame<'a> {
        r#type: &'static str,
        channel: &'a str,
        offset: u64,
        epoch: &'a str,
        data: &'a RawValue,
    }
    serde_json::to_string(&Frame {
        r#type: "message",
        channel,
        offset,
        epoch,
        data,
    })
    .expect("a frame of valid JSON serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_realtime_client::protocol::ServerFrame;

    #[test]
    fn the_encoded_frame_is_the_protocol_s_message() {
        let data = RawValue::from_string(r#"{"body":"hi"}"#.into()).unwrap();
        let text = message_frame("conversation:c", "d1", 7, &data);
        let frame: ServerFrame = serde_json::from_str(&text).unwrap();
        assert_eq!(
            frame,
            ServerFrame::Message {
                channel: "conversation:c".into(),
                offset: 7,
                epoch: "d1".into(),
                data: serde_json::json!({"body": "hi"}),
            }
        );
    }
}
