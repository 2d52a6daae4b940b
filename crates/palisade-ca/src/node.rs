//! A node's own X.509-SVID (`spiffe://<td>/palisade/node/<node id>`): issued at start, served
//! by the mTLS listener through a swappable resolver, and rotated at half its lifetime or at
//! once when an operator asks (`palisade ca rotate`, announced on the bus). Open connections
//! keep the certificate they negotiated, so a rotation drops none; a failed rotation keeps the
//! current SVID in service and retries with back-off while it is still valid.

use crate::{Ca, ServiceError};
use palisade_cluster::{Bus, Delivery};
use palisade_tls::{CertMetrics, LoadedCert, SwappableResolver};
use rustls_pki_types::PrivateKeyDer;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The bus topic on which `palisade ca rotate` asks every node for a new SVID.
pub const ROTATE_TOPIC: &str = "ca.rotate";

/// First and longest waits between attempts after a failed rotation.
const RETRY_FIRST: Duration = Duration::from_secs(2);
const RETRY_MAX: Duration = Duration::from_secs(300);

pub struct NodeIdentity {
    ca: Ca,
    node_id: String,
    dns_names: Vec<String>,
    resolver: Arc<SwappableResolver>,
    /// When the SVID in service should be replaced, seconds since the Unix epoch.
    renew_at: i64,
}

impl NodeIdentity {
    /// Issues this node's first SVID.
    pub async fn start(
        ca: Ca,
        node_id: String,
        dns_names: Vec<String>,
        metrics: CertMetrics,
    ) -> Result<Self, ServiceError> {
        let (loaded, renew_at) = issue(&ca, &node_id, &dns_names).await?;
        Ok(Self {
            ca,
            node_id,
            dns_names,
            resolver: Arc::new(SwappableResolver::new(loaded, metrics)),
            renew_at,
        })
    }

    pub fn resolver(&self) -> Arc<SwappableResolver> {
        self.resolver.clone()
    }

    /// Rotates the SVID until `shutdown`.
    pub async fn maintain(mut self, bus: Bus, shutdown: CancellationToken) {
        let mut requests = bus.subscribe(ROTATE_TOPIC);
        let mut retry = RETRY_FIRST;
        loop {
            let due = Duration::from_secs(u64::try_from(self.renew_at - now()).unwrap_or(0));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(due) => {}
                delivery = requests.recv() => match delivery {
                    Some(Delivery::Message(_)) => {}
                    // A resync is no request; `None` means the bus is gone (shutdown).
                    Some(Delivery::Resync) => continue,
                    None => return,
                },
            }
            match issue(&self.ca, &self.node_id, &self.dns_names).await {
                Ok((loaded, renew_at)) => {
                    tracing::info!(fingerprint = %loaded.fingerprint, "node SVID rotated");
                    self.resolver.swap(loaded);
                    self.renew_at = renew_at;
                    retry = RETRY_FIRST;
                }
                Err(e) => {
                    self.resolver.metrics().reload_failures.inc();
                    tracing::error!(error = %e, retry_in = ?retry, "node SVID rotation failed; the current SVID stays in service");
                    self.renew_at = now() + retry.as_secs() as i64;
                    retry = (retry * 2).min(RETRY_MAX);
                }
            }
        }
    }
}

async fn issue(
    ca: &Ca,
    node_id: &str,
    dns_names: &[String],
) -> Result<(LoadedCert, i64), ServiceError> {
    let (svid, key) = ca.issue_node(node_id, dns_names).await?;
    let renew_at = svid.not_before + (svid.not_after - svid.not_before) / 2;
    let loaded = LoadedCert::from_der(vec![svid.certificate], PrivateKeyDer::Pkcs8(key))
        .map_err(|e| palisade_tls::ca::CaError::Sign(e.to_string()))?;
    Ok((loaded, renew_at))
}

fn now() -> i64 {
    palisade_store::now_ms() / 1000
}
