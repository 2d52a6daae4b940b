//! OpenTelemetry span export (PLT-5): every request's server span, with the trace and span ids
//! of its W3C trace context, is sent to an OTLP/HTTP collector (`POST {endpoint}/v1/traces`,
//! JSON encoding). Spans are batched by a background task; when the collector is slow or down,
//! the bounded queue drops spans (counted in a metric) rather than slowing requests.

use crate::client::{PlainHttp, http_endpoint};
use http::Uri;
use prometheus_client::metrics::counter::Counter;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const QUEUE: usize = 8192;
const BATCH: usize = 512;
const FLUSH_EVERY: Duration = Duration::from_secs(1);

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

impl OtlpExporter {
    /// Starts the exporter. `endpoint` is the collector's base URL (`http://host:4318`).
    pub fn spawn(
        endpoint: &str,
        service_name: &str,
        dropped: Counter,
        shutdown: CancellationToken,
    ) -> Result<(Self, tokio::task::JoinHandle<()>), String> {
        let uri = http_endpoint(endpoint, "/v1/traces")
            .map_err(|e| format!("telemetry.otlp_endpoint (a local collector or sidecar): {e}"))?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(uri, service_name.to_owned(), rx, shutdown));
        Ok((Self { tx, dropped }, task))
    }

    pub fn record(&self, span: ServerSpan) {
        if self.tx.try_send(span).is_err() {
            self.dropped.inc();
        }
    }
}

async fn run(
    uri: Uri,
    service: String,
    mut rx: mpsc::Receiver<ServerSpan>,
    shutdown: CancellationToken,
) {
    let client = PlainHttp::default();
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
            let body = encode(&service, &batch).to_string();
            batch.clear();
            send(&client, &uri, body).await;
        }
        if stop {
            return;
        }
    }
}

async fn send(client: &PlainHttp, uri: &Uri, body: String) {
    match client
        .post(uri, "application/json", body, Duration::from_secs(10))
        .await
    {
        Ok((status, _)) if status.is_success() => {}
        Ok((status, _)) => tracing::warn!(status = status.as_u16(), "OTLP collector refused spans"),
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
