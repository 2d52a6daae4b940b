//! DPoP proofs (RFC 9449 §4.3): a JWT the client signs per request with a key of its own,
//! carried in the `DPoP` header, naming the method and URI of that request. A token bound to
//! the key (its `cnf.jkt`) is useless to whoever steals it without the private key.
//!
//! This module checks one proof on its own — its form, signature, method, URI, age and, for a
//! resource request, the hash of the access token it comes with. Single use (`jti`) and server
//! nonces need state and are the caller's.

use crate::jws;
use crate::keys::{Algorithm, PublicKey};
use data_encoding::BASE64URL_NOPAD;
use serde_json::{Map, Value};

/// Proofs longer than this are refused unread (a proof is a few hundred bytes).
const MAX_PROOF_BYTES: usize = 4096;
const MAX_JTI_BYTES: usize = 256;
/// A proof is accepted for this long after its `iat` (plus the clock skew).
pub const MAX_PROOF_AGE_SECONDS: i64 = 60;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("the DPoP proof is malformed")]
    Malformed,
    #[error("the DPoP proof header is not acceptable: {0}")]
    Header(&'static str),
    #[error("the DPoP proof signature does not verify")]
    Signature,
    #[error("the DPoP proof claim `{0}` is missing or wrong")]
    Claim(&'static str),
}

/// What the proof must say.
pub struct ProofExpectations<'a> {
    /// The HTTP method of the request, e.g. `POST`.
    pub method: &'a str,
    /// The request's URI without query and fragment, as the client addressed it.
    pub uri: &'a str,
    /// The access token presented with the proof, for a resource request (`ath`).
    pub access_token: Option<&'a str>,
    /// Unix seconds.
    pub now: i64,
    pub skew_seconds: i64,
}

/// A proof that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The RFC 7638 thumbprint of the proof's key: what a bound token's `cnf.jkt` names.
    pub jkt: String,
    pub jti: String,
    pub iat: i64,
    pub nonce: Option<String>,
}

/// Checks a proof: `typ` `dpop+jwt`, an asymmetric algorithm that agrees with the embedded
/// public key, a valid signature by that key, the request's method and URI, a fresh `iat`, a
/// `jti`, and `ath` exactly when an access token is presented.
pub fn verify_proof(proof: &str, expect: &ProofExpectations) -> Result<Proof, ProofError> {
    if proof.len() > MAX_PROOF_BYTES {
        return Err(ProofError::Malformed);
    }
    let parts = jws::split(proof).ok_or(ProofError::Malformed)?;
    let header: Map<String, Value> =
        serde_json::from_slice(&parts.header).map_err(|_| ProofError::Malformed)?;
    if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(ProofError::Header("typ must be dpop+jwt"));
    }
    for refused in ["jku", "x5u", "x5c", "crit"] {
        if header.contains_key(refused) {
            return Err(ProofError::Header(
                "key references and critical extensions are refused",
            ));
        }
    }
    // `none` and HMAC are not in the list: only the asymmetric algorithms keys exist for.
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(Algorithm::parse)
        .ok_or(ProofError::Header("unsupported algorithm"))?;
    let key = header
        .get("jwk")
        .and_then(Value::as_object)
        .and_then(|jwk| PublicKey::from_jwk_value(alg, jwk))
        .ok_or(ProofError::Header(
            "jwk must be a public key of the algorithm",
        ))?;
    if !key.verify(parts.signing_input.as_bytes(), &parts.signature) {
        return Err(ProofError::Signature);
    }
    let claims: Map<String, Value> =
        serde_json::from_slice(&parts.payload).map_err(|_| ProofError::Malformed)?;
    let text = |name: &'static str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .ok_or(ProofError::Claim(name))
    };
    let jti = text("jti")?;
    if jti.is_empty() || jti.len() > MAX_JTI_BYTES {
        return Err(ProofError::Claim("jti"));
    }
    if text("htm")? != expect.method {
        return Err(ProofError::Claim("htm"));
    }
    // RFC 9449 §4.3: compared without query and fragment.
    let htu = text("htu")?;
    let htu = htu.split(['?', '#']).next().unwrap_or_default();
    if htu != expect.uri {
        return Err(ProofError::Claim("htu"));
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or(ProofError::Claim("iat"))?;
    let skew = expect
        .skew_seconds
        .clamp(0, crate::verify::MAX_SKEW_SECONDS);
    if iat > expect.now + skew || iat < expect.now - MAX_PROOF_AGE_SECONDS - skew {
        return Err(ProofError::Claim("iat"));
    }
    match (expect.access_token, claims.get("ath")) {
        (None, None) => {}
        (Some(token), Some(Value::String(ath))) => {
            let expected = access_token_hash(token);
            if !palisade_crypto::constant_time_eq(expected.as_bytes(), ath.as_bytes()) {
                return Err(ProofError::Claim("ath"));
            }
        }
        _ => return Err(ProofError::Claim("ath")),
    }
    let nonce = match claims.get("nonce") {
        None => None,
        Some(Value::String(n)) => Some(n.clone()),
        Some(_) => return Err(ProofError::Claim("nonce")),
    };
    Ok(Proof {
        jkt: key.kid,
        jti: jti.to_owned(),
        iat,
        nonce,
    })
}

/// `ath`: the base64url SHA-256 of the access token.
pub fn access_token_hash(token: &str) -> String {
    BASE64URL_NOPAD.encode(&palisade_crypto::sha256(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;
    const URI: &str = "https://as.example/oauth/token";

    fn expect() -> ProofExpectations<'static> {
        ProofExpectations {
            method: "POST",
            uri: URI,
            access_token: None,
            now: NOW,
            skew_seconds: 30,
        }
    }

    /// A proof with the given header and claims, signed by `key` (as a client makes one).
    fn proof(key: &SigningKey, header: Value, claims: Value) -> String {
        let input = format!(
            "{}.{}",
            BASE64URL_NOPAD.encode(header.to_string().as_bytes()),
            BASE64URL_NOPAD.encode(claims.to_string().as_bytes())
        );
        let sig = key.sign(input.as_bytes());
        format!("{input}.{}", BASE64URL_NOPAD.encode(&sig))
    }

    fn header(key: &SigningKey) -> Value {
        let mut jwk = serde_json::to_value(key.public().jwk()).unwrap();
        // Clients send bare keys: no kid, alg or use.
        for member in ["kid", "alg", "use"] {
            jwk.as_object_mut().unwrap().remove(member);
        }
        json!({"typ": "dpop+jwt", "alg": key.alg.as_str(), "jwk": jwk})
    }

    fn claims() -> Value {
        json!({"jti": "proof-1", "htm": "POST", "htu": URI, "iat": NOW})
    }

    #[test]
    fn valid_proofs_of_both_algorithms_name_their_key() {
        for alg in [Algorithm::EdDSA, Algorithm::ES256] {
            let key = SigningKey::generate(alg).unwrap().0;
            let got = verify_proof(&proof(&key, header(&key), claims()), &expect()).unwrap();
            assert_eq!(got.jkt, key.kid, "jkt is the RFC 7638 thumbprint");
            assert_eq!(got.jti, "proof-1");
            assert_eq!(got.nonce, None);
            // The query of htu is not compared.
            let mut c = claims();
            c["htu"] = json!(format!("{URI}?x=1"));
            c["nonce"] = json!("n-1");
            let got = verify_proof(&proof(&key, header(&key), c), &expect()).unwrap();
            assert_eq!(got.nonce.as_deref(), Some("n-1"));
        }
    }

    #[test]
    fn forged_and_misdirected_proofs_are_refused() {
        let key = SigningKey::generate(Algorithm::EdDSA).unwrap().0;
        let other = SigningKey::generate(Algorithm::EdDSA).unwrap().0;
        let check = |p: String| verify_proof(&p, &expect());
        // Signed by a key other than the one it carries.
        assert_eq!(
            check(proof(&other, header(&key), claims())),
            Err(ProofError::Signature)
        );
        // Wrong typ, symmetric or no algorithm, a private key, key references.
        for (name, edit) in [
            ("typ", json!({"typ": "JWT"})),
            ("alg none", json!({"alg": "none"})),
            ("HS256", json!({"alg": "HS256"})),
            ("alg mismatch", json!({"alg": "ES256"})),
            (
                "private key",
                json!({"jwk": {"kty": "OKP", "crv": "Ed25519", "x": key.public().jwk().x, "d": "AAAA"}}),
            ),
            ("jku", json!({"jku": "https://evil.example/keys"})),
            ("crit", json!({"crit": ["nonce"]})),
        ] {
            let mut h = header(&key);
            h.as_object_mut()
                .unwrap()
                .extend(edit.as_object().unwrap().clone());
            assert!(
                matches!(check(proof(&key, h, claims())), Err(ProofError::Header(_))),
                "{name}"
            );
        }
        // Claims: another method, another URI, too old, from the future, no jti.
        for (name, edit) in [
            ("htm", json!({"htm": "GET"})),
            ("htu", json!({"htu": "https://as.example/oauth/other"})),
            ("htu", json!({"htu": "https://evil.example/oauth/token"})),
            ("iat", json!({"iat": NOW - MAX_PROOF_AGE_SECONDS - 31})),
            ("iat", json!({"iat": NOW + 31})),
            ("jti", json!({"jti": ""})),
            ("ath", json!({"ath": "unexpected"})),
        ] {
            let mut c = claims();
            c.as_object_mut()
                .unwrap()
                .extend(edit.as_object().unwrap().clone());
            assert_eq!(
                check(proof(&key, header(&key), c)),
                Err(ProofError::Claim(name)),
                "{name}"
            );
        }
        // A changed payload under the original signature.
        let good = proof(&key, header(&key), claims());
        let (head, rest) = good.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let mut c = claims();
        c["htu"] = json!("https://as.example/elsewhere");
        let tampered = format!(
            "{head}.{}.{sig}",
            BASE64URL_NOPAD.encode(c.to_string().as_bytes())
        );
        assert_eq!(check(tampered), Err(ProofError::Signature));
        assert_eq!(check("x".repeat(5000)), Err(ProofError::Malformed));
    }

    #[test]
    fn resource_proofs_must_hash_the_token_they_come_with() {
        let key = SigningKey::generate(Algorithm::ES256).unwrap().0;
        let at_resource = |token| ProofExpectations {
            method: "GET",
            uri: "https://as.example/oauth/userinfo",
            access_token: Some(token),
            ..expect()
        };
        let with_ath = |ath: &str| json!({"jti": "p", "htm": "GET", "htu": "https://as.example/oauth/userinfo", "iat": NOW, "ath": ath});
        let p = proof(&key, header(&key), with_ath(&access_token_hash("token-a")));
        assert!(verify_proof(&p, &at_resource("token-a")).is_ok());
        assert_eq!(
            verify_proof(&p, &at_resource("token-b")),
            Err(ProofError::Claim("ath"))
        );
        let mut without = with_ath("");
        without.as_object_mut().unwrap().remove("ath");
        assert_eq!(
            verify_proof(&proof(&key, header(&key), without), &at_resource("token-a")),
            Err(ProofError::Claim("ath"))
        );
    }
}
