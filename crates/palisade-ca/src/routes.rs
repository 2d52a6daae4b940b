//! The CA's routes: enrolment with a join token, renewal over mTLS, and the trust bundle.

use crate::{Ca, ServiceError};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use http::{StatusCode, header};
use palisade_http::input::Json;
use palisade_http::{Access, AppError, ErrorInfo, Guard, Routes};
use palisade_principal::Workload;
use palisade_tls::ca::{CaError, IssuedSvid};
use rustls_pki_types::CertificateSigningRequestDer;
use rustls_pki_types::pem::PemObject;
use serde_json::json;
use x509_parser::prelude::*;

pub fn router(ca: Ca) -> Routes {
    Routes::new()
        .route(Access::JoinToken, "POST /ca/svid", enroll)
        .route(Access::Svid, "POST /ca/svid/renew", renew)
        .route(Access::Public, "GET /ca/bundle", bundle)
        .route(Access::Public, "GET /ca/bundle.pem", bundle_pem)
        .with_state(ca)
}

/// A certificate signing request, PEM or base64 DER.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SvidRequest {
    csr: String,
}

impl SvidRequest {
    fn der(&self) -> Result<Vec<u8>, AppError> {
        let text = self.csr.trim();
        if text.starts_with("-----BEGIN") {
            return CertificateSigningRequestDer::from_pem_slice(text.as_bytes())
                .map(|der| der.as_ref().to_vec())
                .map_err(|_| invalid_csr());
        }
        data_encoding::BASE64
            .decode(text.as_bytes())
            .map_err(|_| invalid_csr())
    }
}

fn invalid_csr() -> AppError {
    AppError::bad_request(
        "invalid_csr",
        "csr: must be a PKCS#10 certificate signing request, PEM or base64 DER",
    )
}

/// The join token the guard found live; spent by the handler.
#[derive(Clone)]
struct PresentedJoinToken(String);

async fn enroll(
    State(ca): State<Ca>,
    axum::Extension(PresentedJoinToken(token)): axum::Extension<PresentedJoinToken>,
    Json(request): Json<SvidRequest>,
) -> Result<Response, Response> {
    let csr = request.der().map_err(IntoResponse::into_response)?;
    match ca.enroll(&token, &csr).await {
        Ok(svid) => Ok(issued(&ca, &svid)),
        // Spent by a request that raced this one past the guard.
        Err(ServiceError::JoinToken) => Err(refused()),
        Err(e) => Err(to_app(e).into_response()),
    }
}

async fn renew(
    State(ca): State<Ca>,
    Workload(id): Workload,
    Json(request): Json<SvidRequest>,
) -> Result<Response, AppError> {
    let svid = ca.renew(&id, &request.der()?).await.map_err(to_app)?;
    Ok(issued(&ca, &svid))
}

fn issued(ca: &Ca, svid: &IssuedSvid) -> Response {
    let half = (svid.not_after - svid.not_before) / 2;
    (
        StatusCode::CREATED,
        axum::Json(json!({
            "spiffe_id": svid.id,
            "certificate": crate::store::pem(&svid.certificate),
            "bundle": crate::store::pem(ca.authority().certificate()),
            "serial": svid.serial,
            "not_before": svid.not_before,
            "not_after": svid.not_after,
            "renew_after": svid.not_before + half,
        })),
    )
        .into_response()
}

fn to_app(error: ServiceError) -> AppError {
    match error {
        ServiceError::Ca(CaError::Csr) => invalid_csr(),
        ServiceError::Ca(e @ CaError::Key(_)) => {
            AppError::bad_request("key_not_accepted", e.to_string())
        }
        ServiceError::Ca(e @ CaError::OutsideTrustDomain(..)) => {
            AppError::bad_request("outside_trust_domain", e.to_string())
        }
        ServiceError::Store(e) => e.into(),
        other => AppError::internal(other),
    }
}

/// The trust bundle in the SPIFFE format (SPIFFE Trust Domain and Bundle §4): a JWK set whose
/// one key, for `x509-svid` use, carries the CA certificate.
async fn bundle(State(ca): State<Ca>) -> Result<Response, AppError> {
    let certificate = ca.authority().certificate();
    let (_, parsed) = X509Certificate::from_der(certificate).map_err(AppError::internal)?;
    let point = match parsed.public_key().parsed() {
        Ok(x509_parser::public_key::PublicKey::EC(point)) => point.data().to_vec(),
        _ => return Err(AppError::internal("the CA key is not a P-256 key")),
    };
    let (x, y) = match point.as_slice() {
        [0x04, rest @ ..] if rest.len() == 64 => rest.split_at(32),
        _ => {
            return Err(AppError::internal(
                "the CA key is not an uncompressed point",
            ));
        }
    };
    let b64url = |b: &[u8]| data_encoding::BASE64URL_NOPAD.encode(b);
    let body = json!({
        "keys": [{
            "use": "x509-svid",
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(x),
            "y": b64url(y),
            "x5c": [data_encoding::BASE64.encode(certificate)],
        }],
        "spiffe_refresh_hint": ca.svid_lifetime().whole_seconds() / 2,
    });
    Ok(axum::Json(body).into_response())
}

async fn bundle_pem(State(ca): State<Ca>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        crate::store::pem(ca.authority().certificate()),
    )
        .into_response()
}

/// The guard of `Access::JoinToken`: `Authorization: Bearer <join token>` naming a token that
/// is known, unused and unexpired. The handler spends it.
pub struct JoinTokenGuard(pub Ca);

impl Guard for JoinTokenGuard {
    fn admit<'a>(
        &'a self,
        _: Access,
        mut request: Request,
    ) -> BoxFuture<'a, Result<Request, Response>> {
        Box::pin(async move {
            let token = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_owned);
            let live = match &token {
                Some(token) => self
                    .0
                    .join_token_is_live(token)
                    .await
                    .map_err(|e| to_app(e).into_response())?,
                None => false,
            };
            let Some(token) = token.filter(|_| live) else {
                self.0
                    .record_refusal(None, "join_token")
                    .await
                    .map_err(|e| to_app(e).into_response())?;
                return Err(refused());
            };
            request.extensions_mut().insert(PresentedJoinToken(token));
            Ok(request)
        })
    }
}

fn refused() -> Response {
    let mut response = (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")],
    )
        .into_response();
    response.extensions_mut().insert(ErrorInfo::new(
        "invalid_join_token",
        "the join token is unknown, already used or expired",
    ));
    response
}
