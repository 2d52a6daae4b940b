//! DPoP (RFC 9449, OAU-10) on the server side: a proof checked by `palisade_jose::dpop` is also
//! required to carry a fresh server nonce (§8, when nonces are on) and is accepted once (its
//! `jti`). Nonces are stateless — an HMAC of the current five-minute window under a key every
//! node derives from the shared sealing key — so any node accepts any node's nonce.

use crate::OAuth;
use crate::error::OAuthError;
use data_encoding::BASE64URL_NOPAD;
use http::HeaderMap;
use palisade_jose::dpop::{Proof, ProofError, ProofExpectations, verify_proof};
use palisade_store::now_ms;

pub const NONCE_HEADER: &str = "dpop-nonce";
/// A nonce is valid in the window it was made in and the next one.
const NONCE_WINDOW_SECONDS: i64 = 300;

/// Why a DPoP proof was not accepted.
#[derive(Debug)]
pub enum DpopError {
    /// The proof is missing where required, malformed, forged, misdirected or replayed.
    Invalid(String),
    /// The proof lacks the current server nonce: retry with the one in `DPoP-Nonce`.
    UseNonce,
    Store(palisade_store::StoreError),
}

impl From<ProofError> for DpopError {
    fn from(e: ProofError) -> Self {
        DpopError::Invalid(e.to_string())
    }
}

impl From<DpopError> for OAuthError {
    fn from(e: DpopError) -> Self {
        match e {
            DpopError::Invalid(d) => OAuthError::InvalidDpopProof(d),
            DpopError::UseNonce => OAuthError::UseDpopNonce,
            DpopError::Store(e) => e.into(),
        }
    }
}

fn nonce_for(key: &[u8; 32], window: i64) -> String {
    let mac = palisade_crypto::hmac_sha256(key, &window.to_be_bytes());
    let mut raw = window.to_be_bytes().to_vec();
    raw.extend_from_slice(&mac[..16]);
    BASE64URL_NOPAD.encode(&raw)
}

impl OAuth {
    /// The nonce to hand out now, when nonces are on.
    pub fn dpop_nonce(&self) -> Option<String> {
        let key = self.0.config.dpop_nonce_key.as_ref()?;
        Some(nonce_for(key, now_ms() / 1000 / NONCE_WINDOW_SECONDS))
    }

    fn nonce_is_current(&self, nonce: Option<&str>) -> bool {
        let Some(key) = &self.0.config.dpop_nonce_key else {
            return true;
        };
        let Some(nonce) = nonce else {
            return false;
        };
        let window = now_ms() / 1000 / NONCE_WINDOW_SECONDS;
        [window, window - 1].iter().any(|w| {
            palisade_crypto::constant_time_eq(nonce_for(key, *w).as_bytes(), nonce.as_bytes())
        })
    }

    /// The request's DPoP proof, if it sent one, checked for `method` on `path` (with the
    /// access token it accompanies, at a resource): valid, with a current nonce, never seen
    /// before. More than one `DPoP` header is refused.
    pub async fn dpop_proof(
        &self,
        headers: &HeaderMap,
        method: &str,
        path: &str,
        access_token: Option<&str>,
    ) -> Result<Option<Proof>, DpopError> {
        let mut values = headers.get_all("dpop").iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(DpopError::Invalid("Send one DPoP proof.".into()));
        }
        let proof = value
            .to_str()
            .map_err(|_| DpopError::Invalid("The DPoP proof is malformed.".into()))?;
        let config = &self.0.config;
        let uri = format!("{}{path}", config.issuer);
        let proof = verify_proof(
            proof,
            &ProofExpectations {
                method,
                uri: &uri,
                access_token,
                now: now_ms() / 1000,
                skew_seconds: config.skew_seconds,
            },
        )?;
        if !self.nonce_is_current(proof.nonce.as_deref()) {
            return Err(DpopError::UseNonce);
        }
        let once =
            palisade_crypto::sha256_hex(format!("dpop\n{}\n{}", proof.jkt, proof.jti).as_bytes());
        let keep_until = (proof.iat
            + palisade_jose::dpop::MAX_PROOF_AGE_SECONDS
            + 2 * palisade_jose::verify::MAX_SKEW_SECONDS)
            * 1000;
        let fresh = crate::once::first_use(&self.0.db, &once, keep_until)
            .await
            .map_err(DpopError::Store)?;
        if !fresh {
            return Err(DpopError::Invalid(
                "The DPoP proof was already used.".into(),
            ));
        }
        Ok(Some(proof))
    }
}

/// A `dpop_jkt` value (RFC 9449 §10): a base64url SHA-256 thumbprint.
pub fn is_thumbprint(s: &str) -> bool {
    s.len() == 43 && BASE64URL_NOPAD.decode(s.as_bytes()).is_ok()
}

/// Adds the current nonce to an answer, so clients always hold a fresh one.
pub fn with_nonce(
    oauth: &OAuth,
    mut response: axum::response::Response,
) -> axum::response::Response {
    if let Some(nonce) = oauth.dpop_nonce() {
        response.headers_mut().insert(
            NONCE_HEADER,
            http::HeaderValue::from_str(&nonce).expect("base64url is a valid header value"),
        );
    }
    response
}
