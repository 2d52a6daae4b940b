use crate::endpoint::Inspector;
use crate::warning::{WARNING_JOB, Warning};
use palisade_http::egress::Egress;
use palisade_jobs::{Jobs, NewJob};
use palisade_store::Db;
use palisade_tls::{SwappableResolver, TlsSettings, split_endpoint};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Which certificate: `served` (the node's own), the names of one served by SNI (an ACME
/// certificate), or a watched endpoint's `host:port`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Subject {
    pub certificate: String,
}

#[derive(Clone, Default)]
pub struct MonitorMetrics {
    pub not_after: Family<Subject, Gauge>,
    pub trusted: Family<Subject, Gauge>,
    pub failures: Family<Subject, Counter>,
    /// The smallest warning threshold, in days, a certificate has passed; 0 while none.
    pub warning_days: Family<Subject, Gauge>,
    pub runs: Counter,
}

impl MonitorMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "tls_monitored_not_after_seconds",
            "Expiry of each watched certificate (served, or tls.monitor endpoints), seconds since the Unix epoch",
            m.not_after.clone(),
        );
        registry.register(
            "tls_monitored_trusted",
            "Whether a watched endpoint's chain verifies against the system's roots (1) or not (0)",
            m.trusted.clone(),
        );
        registry.register(
            "tls_monitored_failures",
            "Watched endpoints whose certificate could not be read",
            m.failures.clone(),
        );
        registry.register(
            "tls_expiry_warning_days",
            "The smallest expiry warning threshold (days) a certificate has passed; 0 while none",
            m.warning_days.clone(),
        );
        registry.register(
            "tls_monitor_runs",
            "Rounds of certificate expiry checks",
            m.runs.clone(),
        );
        m
    }
}

struct Endpoint {
    label: String,
    host: String,
    port: u16,
}

/// Looks at the served certificate and the watched endpoints on a schedule.
pub struct Monitor {
    served: Arc<SwappableResolver>,
    endpoints: Vec<Endpoint>,
    inspector: Inspector,
    db: Db,
    jobs: Jobs,
    /// Ascending.
    thresholds: Vec<u32>,
    receivers: Vec<String>,
    interval: Duration,
    metrics: MonitorMetrics,
    /// What this node last logged for each subject: its fingerprint and threshold.
    logged: Mutex<HashMap<String, (String, u32)>>,
}

impl Monitor {
    pub fn new(
        settings: &TlsSettings,
        served: Arc<SwappableResolver>,
        egress: Egress,
        db: Db,
        jobs: Jobs,
        metrics: MonitorMetrics,
    ) -> Result<Self, String> {
        let endpoints = settings
            .monitor
            .iter()
            .map(|label| {
                let (host, port) = split_endpoint(label)?;
                Ok(Endpoint {
                    label: label.clone(),
                    host,
                    port,
                })
            })
            .collect::<Result<_, String>>()?;
        let mut thresholds = settings.expiry_warning_days.clone();
        thresholds.sort_unstable();
        thresholds.dedup();
        Ok(Self {
            served,
            endpoints,
            inspector: Inspector::new(egress)?,
            db,
            jobs,
            thresholds,
            receivers: settings
                .expiry_webhooks
                .iter()
                .map(|w| w.url.clone())
                .collect(),
            interval: Duration::from_secs(settings.monitor_interval_seconds),
            metrics,
            logged: Mutex::new(HashMap::new()),
        })
    }

    /// Checks at once, then every interval, until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            self.check_all().await;
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    async fn check_all(&self) {
        for (subject, served) in self.served.served() {
            // The resolver writes fingerprints as OpenSSL shows them; warnings use plain hex.
            let fingerprint = served.fingerprint.replace(':', "").to_ascii_lowercase();
            self.consider(&subject, served.not_after, &fingerprint)
                .await;
        }
        for endpoint in &self.endpoints {
            let subject = Subject {
                certificate: endpoint.label.clone(),
            };
            match self.inspector.observe(&endpoint.host, endpoint.port).await {
                Ok(observed) => {
                    self.metrics
                        .trusted
                        .get_or_create(&subject)
                        .set(i64::from(observed.trusted));
                    if !observed.trusted {
                        tracing::warn!(endpoint = %endpoint.label, "a watched endpoint's certificate is not trusted");
                    }
                    self.consider(&endpoint.label, observed.not_after, &observed.fingerprint)
                        .await;
                }
                Err(error) => {
                    self.metrics.failures.get_or_create(&subject).inc();
                    tracing::warn!(endpoint = %endpoint.label, %error, "cannot read a watched endpoint's certificate");
                }
            }
        }
        self.metrics.runs.inc();
    }

    /// Exports a certificate's expiry and, past a threshold, warns once per certificate and
    /// threshold: a log line on each node, and one message per receiver on the cluster.
    async fn consider(&self, subject: &str, not_after: i64, fingerprint: &str) {
        let label = Subject {
            certificate: subject.to_owned(),
        };
        self.metrics.not_after.get_or_create(&label).set(not_after);
        let left = not_after - palisade_store::now_ms() / 1000;
        let Some(threshold) = passed(&self.thresholds, left) else {
            self.metrics.warning_days.get_or_create(&label).set(0);
            return;
        };
        self.metrics
            .warning_days
            .get_or_create(&label)
            .set(i64::from(threshold));
        let seen = (fingerprint.to_owned(), threshold);
        let first = self
            .logged
            .lock()
            .map(|mut logged| logged.insert(subject.to_owned(), seen.clone()) != Some(seen))
            .unwrap_or(true);
        if first {
            tracing::warn!(
                certificate = subject,
                days_left = left / 86_400,
                threshold_days = threshold,
                not_after,
                fingerprint,
                "certificate expires soon"
            );
        }
        for url in &self.receivers {
            if let Err(e) = self
                .enqueue(url, subject, not_after, left, threshold, fingerprint)
                .await
            {
                tracing::error!(error = %e, certificate = subject, "cannot queue a certificate expiry warning");
            }
        }
    }

    async fn enqueue(
        &self,
        url: &str,
        subject: &str,
        not_after: i64,
        left: i64,
        threshold: u32,
        fingerprint: &str,
    ) -> Result<(), palisade_store::StoreError> {
        let key = format!("{url}\n{fingerprint}\n{threshold}");
        let id = format!("msg_{}", &palisade_crypto::sha256_hex(key.as_bytes())[..32]);
        let body = serde_json::json!({
            "type": "tls.certificate.expiring",
            "timestamp": rfc3339(palisade_store::now_ms() / 1000),
            "data": {
                "certificate": subject,
                "not_after": rfc3339(not_after),
                "days_left": left.div_euclid(86_400),
                "threshold_days": threshold,
                "fingerprint_sha256": fingerprint,
            },
        });
        let warning = Warning {
            url: url.to_owned(),
            id,
            body: body.to_string(),
        };
        let job = NewJob::new(WARNING_JOB, &warning).key(key);
        if palisade_jobs::enqueue(self.db.pool(), &job)
            .await?
            .is_some()
        {
            self.jobs.notify().await;
        }
        Ok(())
    }
}

/// The smallest threshold (days) a certificate with `left` seconds to live has passed.
fn passed(ascending: &[u32], left: i64) -> Option<u32> {
    ascending
        .iter()
        .copied()
        .find(|days| left <= i64::from(*days) * 86_400)
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339(unix: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_threshold_passed_is_the_one_raised() {
        let days = [1, 3, 7, 14, 30];
        let d = 86_400;
        assert_eq!(passed(&days, 31 * d), None);
        assert_eq!(passed(&days, 30 * d), Some(30));
        assert_eq!(passed(&days, 2 * d), Some(3));
        assert_eq!(passed(&days, 0), Some(1));
        assert_eq!(passed(&days, -d), Some(1));
        assert_eq!(rfc3339(1614265330), "2021-02-25T15:02:10Z");
    }
}
