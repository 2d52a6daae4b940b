//! A client's DPoP key (RFC 9449) as tests play it.

use data_encoding::BASE64URL_NOPAD;
use palisade_jose::{Algorithm, SigningKey};
use serde_json::json;

/// A client's DPoP key and the proofs it makes.
pub(crate) struct DpopKey(SigningKey);

impl DpopKey {
    pub(crate) fn new(alg: Algorithm) -> Self {
        Self(SigningKey::generate(alg).unwrap().0)
    }

    /// The key's RFC 7638 thumbprint (`jkt`).
    pub(crate) fn jkt(&self) -> String {
        self.0.kid.clone()
    }

    pub(crate) fn proof(
        &self,
        method: &str,
        url: &str,
        nonce: Option<&str>,
        token: Option<&str>,
    ) -> String {
        let mut jwk = serde_json::to_value(self.0.public().jwk()).unwrap();
        for member in ["kid", "alg", "use"] {
            jwk.as_object_mut().unwrap().remove(member);
        }
        let header = json!({"typ": "dpop+jwt", "alg": self.0.alg.as_str(), "jwk": jwk});
        let mut claims = json!({
            "jti": palisade_crypto::random_token(),
            "htm": method,
            "htu": url,
            "iat": palisade_store::now_ms() / 1000,
        });
        if let Some(n) = nonce {
            claims["nonce"] = n.into();
        }
        if let Some(t) = token {
            claims["ath"] = palisade_jose::dpop::access_token_hash(t).into();
        }
        let input = format!(
            "{}.{}",
            BASE64URL_NOPAD.encode(header.to_string().as_bytes()),
            BASE64URL_NOPAD.encode(claims.to_string().as_bytes())
        );
        let sig = self.0.sign(input.as_bytes());
        format!("{input}.{}", BASE64URL_NOPAD.encode(&sig))
    }
}
