//! This node's subscribers by stream (RTM-8). One task follows the bus's real-time topic,
//! encodes each event's frame once, and offers it to the queue of every local subscriber of
//! its stream; it never waits on any of them ([`crate::outbox`]).

use crate::fanout::{BusEvent, TOPIC, message_frame};
use crate::outbox::{Delivered, Outbox, Outgoing};
use palisade_cluster::{Bus, Delivery};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

type Subscribers = HashMap<u64, Outbox>;

#[derive(Default)]
pub(crate) struct Hub {
    streams: Mutex<HashMap<Arc<str>, Subscribers>>,
}

/// A connection's place among a stream's subscribers; dropping it leaves.
pub(crate) struct Membership {
    hub: Arc<Hub>,
    stream: Arc<str>,
    connection: u64,
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut streams = self.hub.streams.lock().expect("hub");
        if let Some(subscribers) = streams.get_mut(&self.stream) {
            subscribers.remove(&self.connection);
            if subscribers.is_empty() {
                streams.remove(&self.stream);
            }
        }
    }
}

impl Hub {
    /// Adds `connection` to `stream`'s subscribers: every event published from now on reaches
    /// `outbox`.
    pub(crate) fn join(
        self: &Arc<Self>,
        stream: &str,
        connection: u64,
        outbox: Outbox,
    ) -> Membership {
        let mut streams = self.streams.lock().expect("hub");
        let (key, subscribers) = match streams.get_key_value(stream) {
            Some((key, _)) => (key.clone(), streams.get_mut(stream).expect("present")),
            None => {
                let key: Arc<str> = Arc::from(stream);
                (key.clone(), streams.entry(key).or_default())
            }
        };
        subscribers.insert(connection, outbox);
        Membership {
            hub: self.clone(),
            stream: key,
            connection,
        }
    }

    /// The stream key a membership holds (shared, so outgoing events name it without copying).
    pub(crate) fn stream_of(membership: &Membership) -> &Arc<str> {
        &membership.stream
    }

    /// Hands the bus's events to local subscribers until `shutdown`.
    pub(crate) async fn run(self: Arc<Self>, bus: Bus, shutdown: CancellationToken) {
        let mut events = bus.subscribe(TOPIC);
        loop {
            let delivery = tokio::select! {
                d = events.recv() => d,
                _ = shutdown.cancelled() => return,
            };
            match delivery {
                Some(Delivery::Message(bytes)) => self.dispatch(&bytes),
                Some(Delivery::Resync) => self.resync(),
                None => return,
            }
        }
    }

    fn dispatch(&self, bytes: &[u8]) {
        let event: BusEvent = match serde_json::from_slice(bytes) {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable real-time event ignored");
                return;
            }
        };
        let streams = self.streams.lock().expect("hub");
        let Some((stream, subscribers)) = streams.get_key_value(event.stream) else {
            return;
        };
        let delivered = Arc::new(Delivered {
            offset: event.offset,
            audience: event.audience.map(str::to_owned),
            frame: message_frame(event.channel, event.epoch, event.offset, event.data).into(),
        });
        for outbox in subscribers.values() {
            outbox.offer(Outgoing::Event {
                stream: stream.clone(),
                delivered: delivered.clone(),
            });
        }
    }

    fn resync(&self) {
        let streams = self.streams.lock().expect("hub");
        let mut told = std::collections::HashSet::new();
        for subscribers in streams.values() {
            for (connection, outbox) in subscribers {
                if told.insert(*connection) {
                    outbox.offer(Outgoing::Resync);
                }
            }
        }
    }
}
