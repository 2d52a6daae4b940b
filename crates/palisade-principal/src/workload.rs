//! Workloads as principals (TLS-5): the guard of `Access::Svid` and `Access::Workload` routes.
//! The mTLS handshake has already verified the SVID's chain to the internal CA; rustls checks
//! no identity, so this guard reads the SPIFFE ID the listener attached to the request and
//! checks it against the allow-list of the route's group.

use axum::extract::{FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use http::request::Parts;
use palisade_http::{Access, AppError, Guard};
use palisade_tls::ca::{AllowList, PeerCertificate, SpiffeId, TrustDomain};
use std::sync::Arc;

/// The workload a route's guard admitted.
#[derive(Debug, Clone)]
pub struct Workload(pub SpiffeId);

/// The SVID a request's connection presented, if it is one of `trust_domain`'s.
pub fn presented_svid(request: &Request, trust_domain: &TrustDomain) -> Option<SpiffeId> {
    request
        .extensions()
        .get::<Arc<PeerCertificate>>()
        .and_then(|peer| peer.svid.clone())
        .filter(|id| id.trust_domain() == trust_domain)
}

pub struct WorkloadGuard {
    trust_domain: TrustDomain,
    allow: AllowList,
}

impl WorkloadGuard {
    pub fn new(trust_domain: TrustDomain, allow: AllowList) -> Self {
        Self {
            trust_domain,
            allow,
        }
    }
}

impl Guard for WorkloadGuard {
    fn admit<'a>(
        &'a self,
        access: Access,
        mut request: Request,
    ) -> BoxFuture<'a, Result<Request, Response>> {
        Box::pin(async move {
            let Some(id) = presented_svid(&request, &self.trust_domain) else {
                return Err(AppError::forbidden(
                    "svid_required",
                    "this route needs an X.509-SVID of the internal CA, presented on the mTLS listener",
                )
                .into_response());
            };
            let allowed = match access {
                Access::Svid => true,
                Access::Workload { group } => self.allow.permits(group, &id),
                _ => false,
            };
            if !allowed {
                return Err(AppError::forbidden(
                    "workload_not_allowed",
                    format!("{id} is not on this route's allow-list"),
                )
                .into_response());
            }
            request.extensions_mut().insert(Workload(id));
            Ok(request)
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Workload {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        parts.extensions.get::<Workload>().cloned().ok_or_else(|| {
            AppError::internal("a handler asked for a workload its route's guard did not admit")
        })
    }
}
