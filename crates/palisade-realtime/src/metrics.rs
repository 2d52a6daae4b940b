//! The gateway's metrics (PLT-5): connections held, frames each way, deliveries dropped by
//! back-pressure, messages waiting to be sent, and why connections ended or were refused —
//! labelled by reason only, never by user or channel.

use palisade_http::metrics::ReasonLabels;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Default)]
pub struct RealtimeMetrics {
    pub(crate) connections: Gauge,
    pub(crate) frames_in: Counter,
    pub(crate) frames_out: Counter,
    pub(crate) dropped: Counter,
    pub(crate) queued: Gauge,
    pub(crate) disconnects: Family<ReasonLabels, Counter>,
    pub(crate) refused: Family<ReasonLabels, Counter>,
}

impl RealtimeMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let r = registry.sub_registry_with_prefix("realtime");
        r.register(
            "connections",
            "WebSocket connections open",
            metrics.connections.clone(),
        );
        r.register(
            "frames_received",
            "Frames received from clients",
            metrics.frames_in.clone(),
        );
        r.register(
            "frames_sent",
            "Frames sent to clients",
            metrics.frames_out.clone(),
        );
        r.register(
            "deliveries_dropped",
            "Deliveries not queued because the connection's queue was full (it is then closed)",
            metrics.dropped.clone(),
        );
        r.register(
            "queued_messages",
            "Messages waiting to be written to connections",
            metrics.queued.clone(),
        );
        r.register(
            "disconnects",
            "Connections ended, by reason",
            metrics.disconnects.clone(),
        );
        r.register(
            "upgrades_refused",
            "Upgrades refused before a connection was opened, by reason",
            metrics.refused.clone(),
        );
        metrics
    }

    pub(crate) fn disconnected(&self, reason: &str) {
        self.disconnects
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub(crate) fn refused(&self, reason: &str) {
        self.refused
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }
}
