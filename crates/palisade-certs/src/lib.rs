//! Certificates that never expire by surprise (TLS-4). [`Monitor`] looks at the served
//! certificate and at every watched endpoint (`tls.monitor`) on a schedule, exports each one's
//! expiry as a metric, and raises a warning when a certificate passes one of the configured
//! thresholds (`tls.expiry_warning_days`): a log line, and a Standard Webhooks message to each
//! receiver, delivered by a durable job whose key makes it once per certificate and threshold
//! on the whole cluster, however many nodes see it and however often they restart. [`acme`]
//! obtains and renews the served certificate from an ACME CA.
// Library code handles every failure; tests may unwrap.
#![warn(clippy::unwrap_used)]

pub mod acme;
mod endpoint;
mod monitor;
mod warning;

pub use monitor::{Monitor, MonitorMetrics};
pub use warning::{WARNING_JOB, WarningDelivery};
