//! The middleware every request passes through, outermost first: trace context and
//! observation (logs, metrics, error rendering, security headers), panic catching, a timeout
//! and a body limit.

use crate::Guards;
use crate::error::{ErrorInfo, ErrorStyle, escape_html};
use crate::metrics::{HttpMetrics, RequestLabels, RouteLabels};
use crate::otlp::{OtlpExporter, ServerSpan};
use crate::trace::TraceContext;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use prometheus_client::metrics::gauge::Gauge;
use std::time::{Duration, Instant, SystemTime};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tracing::Instrument;

/// Limits applied to every request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub body_bytes: usize,
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            body_bytes: 64 * 1024,
            timeout: Duration::from_secs(30),
        }
    }
}

/// What the outermost layer reports to: metrics always, OTLP when a collector is configured.
#[derive(Clone)]
pub struct Observer {
    pub metrics: HttpMetrics,
    pub otlp: Option<OtlpExporter>,
}

/// `router` inside the stack; `guards` check the routes that declared an access kind.
pub fn wrap(router: Router, guards: Guards, observer: Observer, limits: Limits) -> Router {
    router
        .layer(axum::Extension(guards))
        .layer(DefaultBodyLimit::max(limits.body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.timeout,
        ))
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                // The panic payload is deliberately dropped: it may quote request data.
                crate::AppError::internal("handler panicked").into_response()
            },
        ))
        .layer(from_fn_with_state(observer, observe))
}

async fn observe(State(observer): State<Observer>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let started_at = SystemTime::now();
    let ctx = TraceContext::from_headers(req.headers());
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    req.extensions_mut().insert(ctx.trace_id.clone());

    let span =
        tracing::info_span!("request", trace_id = %ctx.trace_id, method = %method, route = %route);
    let in_flight = InFlight::enter(&observer.metrics.in_flight);
    let mut response = next.run(req).instrument(span.clone()).await;
    drop(in_flight);

    let status = response.status();
    let passthrough = response
        .extensions()
        .get::<crate::error::PassThrough>()
        .is_some();
    if (status.is_client_error() || status.is_server_error()) && !passthrough {
        response = render_error(response, &ctx.trace_id.0, wants_html);
    }
    crate::headers::apply(&mut response);
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&ctx.trace_id.0) {
        h.insert("x-trace-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&ctx.traceparent()) {
        h.insert("traceparent", v);
    }

    let elapsed = started.elapsed();
    if let Some(otlp) = &observer.otlp
        && ctx.sampled
    {
        otlp.record(ServerSpan {
            trace_id: ctx.trace_id.0.clone(),
            span_id: ctx.span_id.clone(),
            parent_span_id: ctx.parent_span_id.clone(),
            method: method.clone(),
            route: route.clone(),
            status: status.as_u16(),
            start: started_at,
            end: started_at + elapsed,
        });
    }
    let metrics = &observer.metrics;
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method: method.clone(),
            route: route.clone(),
            status: status.as_u16(),
        })
        .inc();
    metrics
        .duration
        .get_or_create(&RouteLabels { route })
        .observe(elapsed.as_secs_f64());
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            elapsed_ms = elapsed.as_secs_f64() * 1e3,
            "served"
        )
    });
    response
}

/// One request counted in flight until dropped: answered, or abandoned with its connection.
struct InFlight(Gauge);

impl InFlight {
    fn enter(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Replaces the body of an error response with the typed rendering, keeping the status and
/// headers (Retry-After, WWW-Authenticate, Set-Cookie) the handler chose.
fn render_error(response: Response, trace_id: &str, wants_html: bool) -> Response {
    let (mut parts, _) = response.into_parts();
    let info = parts
        .extensions
        .remove::<ErrorInfo>()
        .unwrap_or_else(|| ErrorInfo::for_status(parts.status));
    if let Some(detail) = &info.internal_detail {
        tracing::error!(trace_id, detail = %detail, "request failed");
    }
    let body = if wants_html {
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        error_page(parts.status, &info, trace_id)
    } else {
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let message = match info.style {
            ErrorStyle::App => "message",
            ErrorStyle::OAuth => "error_description",
        };
        let mut body = serde_json::Map::new();
        body.insert("error".into(), info.code.into());
        body.insert(message.into(), info.message.into());
        body.insert("trace_id".into(), trace_id.into());
        serde_json::Value::Object(body).to_string()
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

fn error_page(status: StatusCode, info: &ErrorInfo, trace_id: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{status_text} — Palisade</title><link rel=\"stylesheet\" href=\"/static/palisade.css\"></head>\
<body><main class=\"card\"><h1>{status_text}</h1><p role=\"alert\">{message}</p>\
<p class=\"muted\">Reference: <code>{trace_id}</code></p><p><a href=\"/\">Back to Palisade</a></p>\
</main></body></html>\n",
        status_text = escape_html(status.canonical_reason().unwrap_or("Error")),
        message = escape_html(&info.message),
        trace_id = escape_html(trace_id),
    )
}
