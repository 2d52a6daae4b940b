//! The ACME client's HTTP goes through the node's one egress client (its address policy, its
//! timeouts and size cap, the operator's extra roots for a private directory).

use bytes::Bytes;
use http_body_util::BodyExt;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use palisade_http::egress::Egress;
use std::future::Future;
use std::pin::Pin;

pub(crate) struct EgressHttp(pub Egress);

impl HttpClient for EgressHttp {
    fn request(
        &self,
        request: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let egress = self.0.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?
                .to_bytes();
            let answer = egress
                .send(http::Request::from_parts(parts, body))
                .await
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            Ok(BytesResponse::from(answer.map(http_body_util::Full::new)))
        })
    }
}
