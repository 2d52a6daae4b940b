//! A connection's send queue (RTM-5): bounded in messages and in bytes. The fan-out never waits
//! on a connection: it offers each delivery, and a connection whose queue is full is stopped
//! as a slow consumer — closed with its own code — while every other connection goes on.

use crate::metrics::RealtimeMetrics;
use axum::extract::ws::Utf8Bytes;
use palisade_realtime_client::protocol::close;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// An event as every subscriber of its stream receives it: its frame encoded once.
#[derive(Debug)]
pub(crate) struct Delivered {
    pub(crate) offset: u64,
    pub(crate) audience: Option<String>,
    pub(crate) frame: Utf8Bytes,
}

pub(crate) enum Outgoing {
    Event {
        stream: Arc<str>,
        delivered: Arc<Delivered>,
    },
    /// The bus may have dropped events: every subscription is checked against its store.
    Resync,
    /// The relations deciding the connection's subscriptions changed (a block, a follow):
    /// each is decided again.
    Reauthorize,
}

/// Why a connection is being closed from outside its own task.
#[derive(Clone, Default)]
pub(crate) struct Stop {
    token: CancellationToken,
    why: Arc<OnceLock<(u16, &'static str)>>,
}

impl Stop {
    /// Closes the connection with `code`; the first reason given wins.
    pub(crate) fn stop(&self, code: u16, reason: &'static str) {
        let _ = self.why.set((code, reason));
        self.token.cancel();
    }

    pub(crate) async fn stopped(&self) -> (u16, &'static str) {
        self.token.cancelled().await;
        self.why
            .get()
            .copied()
            .unwrap_or((close::GOING_AWAY, "stopped"))
    }
}

#[derive(Clone)]
pub(crate) struct Outbox {
    tx: mpsc::Sender<Outgoing>,
    queued_bytes: Arc<AtomicUsize>,
    max_bytes: usize,
    stop: Stop,
    metrics: RealtimeMetrics,
}

pub(crate) struct Inbox {
    rx: mpsc::Receiver<Outgoing>,
    queued_bytes: Arc<AtomicUsize>,
    metrics: RealtimeMetrics,
}

pub(crate) fn bounded(
    messages: usize,
    max_bytes: usize,
    stop: Stop,
    metrics: RealtimeMetrics,
) -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::channel(messages);
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    (
        Outbox {
            tx,
            queued_bytes: queued_bytes.clone(),
            max_bytes,
            stop,
            metrics: metrics.clone(),
        },
        Inbox {
            rx,
            queued_bytes,
            metrics,
        },
    )
}

fn size(item: &Outgoing) -> usize {
    match item {
        Outgoing::Event { delivered, .. } => delivered.frame.len(),
        Outgoing::Resync | Outgoing::Reauthorize => 0,
    }
}

impl Outbox {
    /// Queues `item`, or stops the connection as a slow consumer when its queue is full.
    pub(crate) fn offer(&self, item: Outgoing) {
        let bytes = size(&item);
        let before = self.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
        let fits = before + bytes <= self.max_bytes;
        if fits && self.tx.try_send(item).is_ok() {
            self.metrics.queued.inc();
            return;
        }
        self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
        self.metrics.dropped.inc();
        self.stop.stop(close::SLOW_CONSUMER, "slow consumer");
    }
}

impl Inbox {
    pub(crate) async fn recv(&mut self) -> Option<Outgoing> {
        let item = self.rx.recv().await?;
        Some(self.taken(item))
    }

    pub(crate) fn try_recv(&mut self) -> Option<Outgoing> {
        let item = self.rx.try_recv().ok()?;
        Some(self.taken(item))
    }

    fn taken(&self, item: Outgoing) -> Outgoing {
        self.queued_bytes.fetch_sub(size(&item), Ordering::AcqRel);
        self.metrics.queued.dec();
        item
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        // What was still queued is no longer waiting.
        self.rx.close();
        while let Ok(item) = self.rx.try_recv() {
            let _ = self.taken(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(bytes: usize) -> Outgoing {
        Outgoing::Event {
            stream: Arc::from("s"),
            delivered: Arc::new(Delivered {
                offset: 1,
                audience: None,
                frame: Utf8Bytes::from("x".repeat(bytes)),
            }),
        }
    }

    #[tokio::test]
    async fn a_full_queue_stops_its_connection_and_nothing_else() {
        let metrics = RealtimeMetrics::default();
        let (slow_stop, other_stop) = (Stop::default(), Stop::default());
        let (slow, mut slow_inbox) = bounded(2, 1000, slow_stop.clone(), metrics.clone());
        let (other, mut other_inbox) = bounded(2, 1000, other_stop.clone(), metrics.clone());
        slow.offer(event(10));
        slow.offer(event(10));
        other.offer(event(10));
        assert!(!slow_stop.token.is_cancelled());
        slow.offer(event(10));
        assert_eq!(
            slow_stop.stopped().await,
            (close::SLOW_CONSUMER, "slow consumer")
        );
        assert!(
            !other_stop.token.is_cancelled(),
            "the others are unaffected"
        );
        assert_eq!(metrics.dropped.get(), 1);
        assert!(slow_inbox.try_recv().is_some() && other_inbox.try_recv().is_some());

        // Bytes count as much as messages.
        let big_stop = Stop::default();
        let (big, _inbox) = bounded(100, 1000, big_stop.clone(), metrics.clone());
        big.offer(event(600));
        assert!(!big_stop.token.is_cancelled());
        big.offer(event(600));
        assert!(big_stop.token.is_cancelled());
    }
}
