//! OpenTelemetry span export (PLT-5): every request's server span, with the trace and span ids
//! of its W3C trace context, is sent to an OTLP/HTTP collector (`POST {endpoint}/v1/traces`,
//! JSON encoding). Spans are batched by a background task; when the collector is slow or down,
//! the bounded queue drops spans (counted in a metric) rather than slowing requests.

use crate::egress::Egress;
use prometheus_client::metrics::counter::Counter;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const QUEUE: usize = 8192;
const BATCH: usize = 512;
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// `[telemetry]` settings.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// An OTLP/HTTP collector, e.g. `http://127.0.0.1:4318`; request spans are exported to
    /// `{otlp_endpoint}/v1/traces` when set.
    pub otlp_endpoint: Option<String>,
    pub service_name: String,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "palisade".into(),
        }
    }
}

impl TelemetrySettings {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(endpoint) = &self.otlp_endpoint
            && !endpoint.starts_with("http://")
        {
            return Err("telemetry.otlp_endpoint must be an http:// URL".into());
        }
        Ok(())
    }
}

/// One finished server span.
#[derive(Debug, Clone)]
pub struct ServerSpan {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub method: String,
    pub route: String,
    pub status: u16,
    pub start: SystemTime,
    pub end: SystemTime,
}

#[derive(Clone)]
pub struct OtlpExporter {
    tx: mpsc::Sender<ServerSpan>,
    dropped: Counter,
}

/// The exporter's sending side, to run for as long as the server does.
pub struct OtlpTask {
    url: String,
    service: String,
    rx: mpsc::Receiver<ServerSpan>,
    egress: Egress,
}

impl OtlpExporter {
    /// The exporter and its task. `endpoint` is the collector's base URL (`http://host:4318`).
    pub fn new(
        endpoint: &str,
        service_name: &str,
        dropped: Counter,
        egress: Egress,
    ) -> Result<(Self, OtlpTask), String> {
        if !endpoint.starts_with("http://") {
            return Err("telemetry.otlp_endpoint must be an http:// URL".into());
        }
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = OtlpTask {
            url,
            service: service_name.to_owned(),
            rx,
            egress,
        };
        Ok((Self { tx, dropped }, task))
    }

    pub fn record(&self, span: ServerSpan) {
        if self.tx.try_send(span).is_err() {
            self.dropped.inc();
        }
    }
}

impl OtlpTask {
    /// Sends batches until `shutdown`, then what is queued.
    pub async fn run(self, shutdown: CancellationToken) {
        let OtlpTask {
            url,
            service,
            mut rx,
            egress,
        } = self;
        run(&url, &service, &mut rx, &egress, shutdown).await;
    }
}

async fn run(
    url: &str,
    service: &str,
    rx: &mut mpsc::Receiver<ServerSpan>,
    egress: &Egress,
    shutdown: CancellationToken,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut ticker = tokio::time::interval(FLUSH_EVERY);
    loop {
        let stop = tokio::select! {
            received = rx.recv() => match received {
                Some(span) => {
                    batch.push(span);
                    if batch.len() < BATCH {
                        continue;
                    }
                    false
                }
                None => true,
            },
            _ = ticker.tick() => false,
            _ = shutdown.cancelled() => true,
        };
        if stop {
            while let Ok(span) = rx.try_recv() {
                batch.push(span);
            }
        }
        if !batch.is_empty() {
            let body = encode(service, &batch).to_string();
            batch.clear();
            send(egress, url, body).await;
        }
        if stop {
            return;
        }
    }
}

async fn send(egress: &Egress, url: &str, body: String) {
    match egress.post(url, "application/json", body).await {
        Ok(answer) if answer.status.is_success() => {}
        Ok(answer) => {
            tracing::warn!(
                status = answer.status.as_u16(),
                "OTLP collector refused spans"
            )
        }
        Err(e) => tracing::warn!(error = %e, "OTLP export failed"),
    }
}

fn unix_nanos(t: SystemTime) -> String {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
        .to_string()
}

fn attr(key: &str, value: Value) -> Value {
    json!({ "key": key, "value": value })
}

/// The OTLP/JSON `ExportTraceServiceRequest` for a batch (ids as hex, times as decimal strings,
/// per the OTLP JSON mapping).
fn encode(service: &str, spans: &[ServerSpan]) -> Value {
    let spans: Vec<Value> = spans
        .iter()
        .map(|s| {
            let mut span = json!({
                "traceId": s.trace_id,
                "spanId": s.span_id,
                "name": format!("{} {}", s.method, s.route),
                "kind": 2, // SPAN_KIND_SERVER
                "startTimeUnixNano": unix_nanos(s.start),
                "endTimeUnixNano": unix_nanos(s.end),
                "attributes": [
                    attr("http.request.method", json!({ "stringValue": s.method })),
                    attr("http.route", json!({ "stringValue": s.route })),
                    attr("http.response.status_code", json!({ "intValue": s.status.to_string() })),
                ],
                // STATUS_CODE_ERROR for server errors only, per the HTTP semantic conventions.
                "status": { "code": if s.status >= 500 { 2 } else { 0 } },
            });
            if let Some(parent) = &s.parent_span_id {
                span["parentSpanId"] = json!(parent);
            }
            span
        })
        .collect();
    json!({ "resourceSpans": [{
        "resource": { "attributes": [ attr("service.name", json!({ "stringValue": service })) ] },
        "scopeSpans": [{ "scope": { "name": "palisade-http" }, "spans": spans }],
    }]})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_otlp_json_shape() {
        let span = ServerSpan {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            span_id: "00f067aa0ba902b7".into(),
            parent_span_id: Some("b7ad6b7169203331".into()),
            method: "GET".into(),
            route: "/healthz".into(),
            status: 200,
            start: UNIX_EPOCH + Duration::from_nanos(1_000),
            end: UNIX_EPOCH + Duration::from_nanos(2_500),
        };
        let v = encode("palisade", &[span]);
        let s = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(s["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(s["parentSpanId"], "b7ad6b7169203331");
        assert_eq!(s["name"], "GET /healthz");
        assert_eq!(s["startTimeUnixNano"], "1000");
        assert_eq!(s["endTimeUnixNano"], "2500");
        assert_eq!(s["kind"], 2);
        assert_eq!(
            v["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
            "palisade"
        );
    }
}
