//! Delivering an expiry warning to a receiver: a durable job per receiver, certificate and
//! threshold, signed (Standard Webhooks) when it is sent and posted through the egress client,
//! retried with back-off until the receiver answers 2xx. The secret is looked up by the
//! receiver's URL when the job runs; it is never written into the job.

use futures_util::future::BoxFuture;
use palisade_crypto::webhook::{WebhookSecret, headers};
use palisade_http::egress::Egress;
use palisade_jobs::{Handler, Job, Retry};
use std::collections::HashMap;
use std::time::Duration;

/// The job kind of one warning to one receiver.
pub const WARNING_JOB: &str = "tls.expiry_warning";

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Warning {
    pub url: String,
    /// The `webhook-id`: the same on every attempt, so the receiver can deduplicate.
    pub id: String,
    /// The JSON sent, exactly as signed.
    pub body: String,
}

/// The handler of [`WARNING_JOB`].
pub struct WarningDelivery {
    egress: Egress,
    secrets: HashMap<String, WebhookSecret>,
}

impl WarningDelivery {
    pub fn new(egress: Egress, receivers: &[palisade_tls::ExpiryWebhook]) -> Result<Self, String> {
        let secrets = receivers
            .iter()
            .map(|r| Ok((r.url.clone(), WebhookSecret::parse(r.secret.expose())?)))
            .collect::<Result<_, String>>()?;
        Ok(Self { egress, secrets })
    }
}

impl Handler for WarningDelivery {
    fn run<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let warning: Warning = job.payload()?;
            // A receiver removed from the configuration gets nothing more.
            let Some(secret) = self.secrets.get(&warning.url) else {
                return Ok(());
            };
            let now = palisade_store::now_ms() / 1000;
            let signed = headers(secret, &warning.id, now, warning.body.as_bytes());
            let answer = self
                .egress
                .post_with_headers(&warning.url, "application/json", &signed, warning.body)
                .await
                .map_err(|e| e.to_string())?;
            if !answer.status.is_success() {
                return Err(format!("the receiver answered {}", answer.status));
            }
            tracing::info!(id = %warning.id, attempt = job.attempt, "certificate expiry warning delivered");
            Ok(())
        })
    }

    fn retry(&self) -> Retry {
        Retry {
            first: Duration::from_secs(5),
            max: Duration::from_secs(3600),
        }
    }
}
