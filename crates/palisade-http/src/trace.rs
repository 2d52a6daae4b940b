//! W3C Trace Context (PLT-5): a valid incoming `traceparent` keeps its trace id, anything else
//! starts a new trace. The id is attached to the request, the log span, every error body and
//! the `x-trace-id` response header; the response's `traceparent` names this server's span.

use data_encoding::HEXLOWER;
use http::HeaderMap;

/// The 32-hex-digit W3C trace id of the current request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceId(pub String);

impl std::fmt::Display for TraceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The trace context of one request: the trace it belongs to and this server's span in it.
#[derive(Debug, Clone)]
pub struct TraceContext {
    pub trace_id: TraceId,
    pub span_id: String,
    /// The caller's span, when the request continued a trace.
    pub parent_span_id: Option<String>,
    pub sampled: bool,
}

impl TraceContext {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let parent = headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_traceparent);
        let span_id = HEXLOWER.encode(&palisade_crypto::random_bytes::<8>());
        match parent {
            Some((trace_id, parent, sampled)) => Self {
                trace_id: TraceId(trace_id),
                span_id,
                parent_span_id: Some(parent),
                sampled,
            },
            None => Self {
                trace_id: TraceId(HEXLOWER.encode(&palisade_crypto::random_bytes::<16>())),
                span_id,
                parent_span_id: None,
                sampled: true,
            },
        }
    }

    pub fn traceparent(&self) -> String {
        let flags = if self.sampled { "01" } else { "00" };
        format!("00-{}-{}-{flags}", self.trace_id, self.span_id)
    }
}

/// Parses `version-traceid-parentid-flags` per W3C Trace Context level 1. Returns the trace id,
/// the parent span id and the sampled flag, or `None` for anything malformed (which then starts
/// a fresh trace).
fn parse_traceparent(value: &str) -> Option<(String, String, bool)> {
    let parts: Vec<&str> = value.trim().split('-').collect();
    if parts.len() < 4 {
        return None;
    }
    let (version, trace_id, parent_id, flags) = (parts[0], parts[1], parts[2], parts[3]);
    let is_hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    if !is_hex(version, 2) || version == "ff" || (version == "00" && parts.len() != 4) {
        return None;
    }
    if !is_hex(trace_id, 32) || trace_id.bytes().all(|b| b == b'0') {
        return None;
    }
    if !is_hex(parent_id, 16) || parent_id.bytes().all(|b| b == b'0') || !is_hex(flags, 2) {
        return None;
    }
    let sampled = u8::from_str_radix(flags, 16).ok()? & 1 == 1;
    Some((trace_id.to_owned(), parent_id.to_owned(), sampled))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(value: &str) -> TraceContext {
        let mut h = HeaderMap::new();
        h.insert("traceparent", value.parse().unwrap());
        TraceContext::from_headers(&h)
    }

    #[test]
    fn valid_parent_is_continued() {
        let c = ctx("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert_eq!(c.trace_id.0, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(c.sampled);
        assert_eq!(c.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
        assert!(
            c.traceparent()
                .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
        );
        assert_ne!(c.span_id, "00f067aa0ba902b7");
    }

    #[test]
    fn malformed_parents_start_a_new_trace() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "garbage",
        ] {
            let c = ctx(bad);
            assert_ne!(c.trace_id.0, "4bf92f3577b34da6a3ce929d0e0e4736", "{bad}");
            assert_eq!(c.trace_id.0.len(), 32);
        }
    }
}
