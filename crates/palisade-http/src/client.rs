//! A small plain-HTTP client for the sidecars Palisade talks to over loopback or a private
//! network (an OTLP collector, audit witnesses). Requests are bounded by a timeout and answers
//! by a size limit.

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

const MAX_ANSWER: usize = 64 * 1024;

#[derive(Clone)]
pub struct PlainHttp(Client<HttpConnector, Full<Bytes>>);

impl Default for PlainHttp {
    fn default() -> Self {
        Self(Client::builder(TokioExecutor::new()).build_http())
    }
}

/// Parses a base URL that must be `http://` and appends `path`.
pub fn http_endpoint(base: &str, path: &str) -> Result<Uri, String> {
    let uri: Uri = format!("{}{path}", base.trim_end_matches('/'))
        .parse()
        .map_err(|e| format!("{base}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("{base}: must be an http:// URL"));
    }
    Ok(uri)
}

impl PlainHttp {
    /// POSTs `body` and returns the status and at most 64 KiB of the answer.
    pub async fn post(
        &self,
        uri: &Uri,
        content_type: &str,
        body: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), String> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri.clone())
            .header(http::header::CONTENT_TYPE, content_type)
            .body(Full::new(body.into()))
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let response = self.0.request(request).await.map_err(|e| e.to_string())?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| "timed out".to_owned())?
    }
}
