//! DPoP (RFC 9449, OAU-10) on the server side, for the token endpoint and every resource alike:
//! a proof checked by `palisade_jose::dpop` must also carry a fresh server nonce (§8, when
//! nonces are on) and is accepted once (its `jti`, in the cluster's replay store, so a proof
//! used on one node is refused on every other). Checking and spending are two steps, so that a
//! resource spends a proof only once everything else about the request verified: a made-up
//! token sent with someone's proof does not burn it.
//!
//! Nonces are stateless — an HMAC of the current five-minute window under a key every node
//! derives from the shared sealing key — so any node accepts any node's nonce.

use data_encoding::BASE64URL_NOPAD;
use http::HeaderMap;
use palisade_cluster::ReplayStore;
use palisade_jose::dpop::{Proof, ProofExpectations, verify_proof};
use palisade_store::{StoreError, now_ms};

pub use palisade_jose::dpop::Proof as DpopProof;

pub const NONCE_HEADER: &str = "dpop-nonce";
/// A nonce is valid in the window it was made in and the next one.
const NONCE_WINDOW_SECONDS: i64 = 300;

/// Why a DPoP proof was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum DpopError {
    /// Missing where required, malformed, forged, misdirected or replayed.
    #[error("{0}")]
    Invalid(String),
    /// The proof lacks the current server nonce: retry with the one in `DPoP-Nonce`.
    #[error("the DPoP proof must carry the server's nonce")]
    UseNonce,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub struct Dpop {
    issuer: String,
    skew_seconds: i64,
    /// `None` turns server nonces off.
    nonce_key: Option<[u8; 32]>,
    replay: ReplayStore,
}

impl Dpop {
    pub fn new(
        issuer: &str,
        skew_seconds: i64,
        nonce_key: Option<[u8; 32]>,
        replay: ReplayStore,
    ) -> Self {
        Self {
            issuer: issuer.to_owned(),
            skew_seconds,
            nonce_key,
            replay,
        }
    }

    /// Where single-use ids are spent.
    pub(crate) fn replay(&self) -> &ReplayStore {
        &self.replay
    }

    /// The nonce to hand out now, when nonces are on.
    pub fn nonce(&self) -> Option<String> {
        let key = self.nonce_key.as_ref()?;
        Some(nonce_for(key, now_ms() / 1000 / NONCE_WINDOW_SECONDS))
    }

    fn nonce_is_current(&self, nonce: Option<&str>) -> bool {
        let Some(key) = &self.nonce_key else {
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

    /// The request's one `DPoP` header, if it sent one; two are refused.
    pub fn header(headers: &HeaderMap) -> Result<Option<&str>, DpopError> {
        let mut values = headers.get_all("dpop").iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(DpopError::Invalid("Send one DPoP proof.".into()));
        }
        value
            .to_str()
            .map(Some)
            .map_err(|_| DpopError::Invalid("The DPoP proof is malformed.".into()))
    }

    /// Checks a proof for `method` on `path` (this server's path, as the client addressed it
    /// under the issuer), with the access token it accompanies at a resource: form, signature,
    /// method, URI, age, token hash and nonce. Nothing is written.
    pub fn check(
        &self,
        proof: &str,
        method: &str,
        path: &str,
        access_token: Option<&str>,
    ) -> Result<Proof, DpopError> {
        let uri = format!("{}{path}", self.issuer);
        let proof = verify_proof(
            proof,
            &ProofExpectations {
                method,
                uri: &uri,
                access_token,
                now: now_ms() / 1000,
                skew_seconds: self.skew_seconds,
            },
        )
        .map_err(|e| DpopError::Invalid(e.to_string()))?;
        if !self.nonce_is_current(proof.nonce.as_deref()) {
            return Err(DpopError::UseNonce);
        }
        Ok(proof)
    }

    /// Spends a checked proof: refused when it was used before, here or on another node.
    pub async fn spend(&self, proof: &Proof) -> Result<(), DpopError> {
        let keep_until = (proof.iat
            + palisade_jose::dpop::MAX_PROOF_AGE_SECONDS
            + 2 * palisade_jose::verify::MAX_SKEW_SECONDS)
            * 1000;
        let id = format!("{}\n{}", proof.jkt, proof.jti);
        if self.replay.first_use("dpop", &id, keep_until).await? {
            Ok(())
        } else {
            Err(DpopError::Invalid(
                "The DPoP proof was already used.".into(),
            ))
        }
    }

    /// Checks and spends the request's proof, if it sent one (the token endpoint, PAR).
    pub async fn proof_of(
        &self,
        headers: &HeaderMap,
        method: &str,
        path: &str,
    ) -> Result<Option<Proof>, DpopError> {
        let Some(proof) = Self::header(headers)? else {
            return Ok(None);
        };
        let proof = self.check(proof, method, path, None)?;
        self.spend(&proof).await?;
        Ok(Some(proof))
    }
}

fn nonce_for(key: &[u8; 32], window: i64) -> String {
    let mac = palisade_crypto::hmac_sha256(key, &window.to_be_bytes());
    let mut raw = window.to_be_bytes().to_vec();
    raw.extend_from_slice(&mac[..16]);
    BASE64URL_NOPAD.encode(&raw)
}

/// A `dpop_jkt` value (RFC 9449 §10): a base64url SHA-256 thumbprint.
pub fn is_thumbprint(s: &str) -> bool {
    s.len() == 43 && BASE64URL_NOPAD.decode(s.as_bytes()).is_ok()
}
