//! The one token verification policy (TOK-5, RFC 8725), used by introspection and by every
//! resource: the algorithm comes from the key named by `kid`, never from the header, so `none`
//! and HMAC-with-a-public-key cannot happen; headers that point elsewhere for keys (`jku`,
//! `x5u`, `jwk`, `x5c`, `x5t`) and critical extensions are refused; `typ` must be the expected
//! one; `iss`, `aud`, `exp`, `nbf` and `iat` are enforced with a bounded clock skew; sizes are
//! limited before anything is decoded.

use crate::jws;
use crate::keys::PublicKey;
use serde_json::{Map, Value};

/// Tokens longer than this are refused unread.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
const MAX_HEADER_BYTES: usize = 1024;
/// The clock skew is configurable up to this.
pub const MAX_SKEW_SECONDS: i64 = 120;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is malformed")]
    Malformed,
    #[error("token is too large")]
    TooLarge,
    #[error("token header is not acceptable: {0}")]
    Header(&'static str),
    #[error("token is signed by an unknown key")]
    UnknownKey,
    #[error("token signature does not verify")]
    Signature,
    #[error("token claim `{0}` is missing or wrong")]
    Claim(&'static str),
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
}

/// What a token must be to be accepted.
pub struct Expectations<'a> {
    /// The `typ` header, e.g. `at+jwt` for access tokens (RFC 9068).
    pub typ: &'a str,
    pub issuer: &'a str,
    /// The audience the token must name (`aud` is a string or an array containing it).
    pub audience: Option<&'a str>,
    /// Unix seconds.
    pub now: i64,
    /// Bounded by [`MAX_SKEW_SECONDS`].
    pub skew_seconds: i64,
}

/// Verifies `token` against the published keys; returns its claims.
pub fn verify(
    token: &str,
    keys: &[PublicKey],
    expect: &Expectations,
) -> Result<Map<String, Value>, TokenError> {
    verify_by_key(token, keys, expect).map(|(_, claims)| claims)
}

/// [`verify`], also naming the key that signed the token (its `kid`).
pub fn verify_by_key(
    token: &str,
    keys: &[PublicKey],
    expect: &Expectations,
) -> Result<(String, Map<String, Value>), TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge);
    }
    let parts = jws::split(token).ok_or(TokenError::Malformed)?;
    if parts.header.len() > MAX_HEADER_BYTES {
        return Err(TokenError::TooLarge);
    }
    let header: Map<String, Value> =
        serde_json::from_slice(&parts.header).map_err(|_| TokenError::Malformed)?;
    for refused in ["jku", "x5u", "jwk", "x5c", "x5t", "x5t#S256", "crit"] {
        if header.contains_key(refused) {
            return Err(TokenError::Header(
                "key references and critical extensions are refused",
            ));
        }
    }
    let typ = header
        .get("typ")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // A plain JWT (a client assertion, RFC 7523) may omit `typ`; typed tokens may not.
    let typ_ok = (typ.is_empty() && expect.typ == "JWT")
        || typ.eq_ignore_ascii_case(expect.typ)
        || typ
            .strip_prefix("application/")
            .is_some_and(|t| t.eq_ignore_ascii_case(expect.typ));
    if !typ_ok {
        return Err(TokenError::Header("wrong token type"));
    }
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or(TokenError::Header("no key id"))?;
    let key = keys
        .iter()
        .find(|k| k.kid == kid)
        .ok_or(TokenError::UnknownKey)?;
    // The header's `alg` must agree with the key's; the key's is what is used either way.
    if header.get("alg").and_then(Value::as_str) != Some(key.alg.as_str()) {
        return Err(TokenError::Header("algorithm does not match the key"));
    }
    if !key.verify(parts.signing_input.as_bytes(), &parts.signature) {
        return Err(TokenError::Signature);
    }
    let claims: Map<String, Value> =
        serde_json::from_slice(&parts.payload).map_err(|_| TokenError::Malformed)?;
    check_claims(&claims, expect)?;
    Ok((key.kid.clone(), claims))
}

fn check_claims(claims: &Map<String, Value>, expect: &Expectations) -> Result<(), TokenError> {
    let skew = expect.skew_seconds.clamp(0, MAX_SKEW_SECONDS);
    if claims.get("iss").and_then(Value::as_str) != Some(expect.issuer) {
        return Err(TokenError::Claim("iss"));
    }
    if let Some(audience) = expect.audience {
        let named = match claims.get("aud") {
            Some(Value::String(a)) => a == audience,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
            _ => false,
        };
        if !named {
            return Err(TokenError::Claim("aud"));
        }
    }
    let time = |name: &'static str| -> Result<Option<i64>, TokenError> {
        match claims.get(name) {
            None => Ok(None),
            Some(v) => v.as_i64().map(Some).ok_or(TokenError::Claim(name)),
        }
    };
    let exp = time("exp")?.ok_or(TokenError::Claim("exp"))?;
    if exp + skew <= expect.now {
        return Err(TokenError::Expired);
    }
    if time("nbf")?.is_some_and(|nbf| nbf - skew > expect.now) {
        return Err(TokenError::NotYetValid);
    }
    if time("iat")?.is_some_and(|iat| iat - skew > expect.now) {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Algorithm, SigningKey};
    use data_encoding::BASE64URL_NOPAD;
    use serde_json::json;

    const ISS: &str = "https://issuer.example";
    const NOW: i64 = 1_800_000_000;

    fn expect() -> Expectations<'static> {
        Expectations {
            typ: "at+jwt",
            issuer: ISS,
            audience: Some("https://api.example"),
            now: NOW,
            skew_seconds: 30,
        }
    }

    fn claims(extra: Value) -> Map<String, Value> {
        let mut c = json!({
            "iss": ISS, "aud": "https://api.example", "sub": "user-1",
            "iat": NOW - 10, "exp": NOW + 600,
        });
        if let (Value::Object(c), Value::Object(e)) = (&mut c, extra) {
            c.extend(e);
        }
        c.as_object().unwrap().clone()
    }

    /// A token with a hand-made header and signature, as an attacker would craft one.
    fn forged(header: Value, claims: &Map<String, Value>, signature: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            BASE64URL_NOPAD.encode(header.to_string().as_bytes()),
            BASE64URL_NOPAD.encode(Value::Object(claims.clone()).to_string().as_bytes()),
            BASE64URL_NOPAD.encode(signature)
        )
    }

    #[test]
    fn valid_tokens_of_both_algorithms_verify() {
        for alg in [Algorithm::EdDSA, Algorithm::ES256] {
            let key = SigningKey::generate(alg).unwrap().0;
            let token = jws::sign(&key, "at+jwt", &claims(json!({})));
            let got = verify(&token, &[key.public()], &expect()).unwrap();
            assert_eq!(got["sub"], "user-1");
            // The media-type spelling of `typ` is accepted too.
            let token = jws::sign(&key, "application/at+jwt", &claims(json!({})));
            verify(&token, &[key.public()], &expect()).unwrap();
        }
    }

    #[test]
    fn attacks_and_wrong_claims_are_refused() {
        let key = SigningKey::generate(Algorithm::EdDSA).unwrap().0;
        let keys = [key.public()];
        let good = claims(json!({}));
        let check = |token: &str| verify(token, &keys, &expect());

        // alg: none, with and without a signature.
        let none = forged(
            json!({"alg": "none", "kid": key.kid, "typ": "at+jwt"}),
            &good,
            b"",
        );
        assert!(check(&none).is_err());
        // HS256 "signed" with the public key as the HMAC secret.
        let header = json!({"alg": "HS256", "kid": key.kid, "typ": "at+jwt"});
        let input = format!(
            "{}.{}",
            BASE64URL_NOPAD.encode(header.to_string().as_bytes()),
            BASE64URL_NOPAD.encode(Value::Object(good.clone()).to_string().as_bytes())
        );
        let mac = palisade_crypto::hmac_sha256(&key.public().bytes, input.as_bytes());
        let hs256 = format!("{input}.{}", BASE64URL_NOPAD.encode(&mac));
        assert_eq!(
            check(&hs256),
            Err(TokenError::Header("algorithm does not match the key"))
        );
        // A key of our own, named by kid, by jku, by an embedded jwk.
        let stranger = SigningKey::generate(Algorithm::EdDSA).unwrap().0;
        let theirs = jws::sign(&stranger, "at+jwt", &good);
        assert_eq!(check(&theirs), Err(TokenError::UnknownKey));
        for header in [
            json!({"alg": "EdDSA", "kid": key.kid, "typ": "at+jwt", "jku": "https://evil.example/jwks"}),
            json!({"alg": "EdDSA", "kid": key.kid, "typ": "at+jwt", "jwk": stranger.public().jwk()}),
            json!({"alg": "EdDSA", "kid": key.kid, "typ": "at+jwt", "x5u": "https://evil.example/c"}),
            json!({"alg": "EdDSA", "kid": key.kid, "typ": "at+jwt", "crit": ["exp"]}),
        ] {
            let token = forged(header, &good, b"sig");
            assert!(
                matches!(check(&token), Err(TokenError::Header(_))),
                "{token}"
            );
        }
        // A valid signature over a changed payload.
        let token = jws::sign(&key, "at+jwt", &good);
        let (head, rest) = token.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let mut changed = good.clone();
        changed.insert("sub".into(), json!("admin"));
        let tampered = format!(
            "{head}.{}.{sig}",
            BASE64URL_NOPAD.encode(Value::Object(changed).to_string().as_bytes())
        );
        assert_eq!(check(&tampered), Err(TokenError::Signature));
        // Wrong type: an ID token presented as an access token.
        let id_token = jws::sign(&key, "JWT", &good);
        assert_eq!(
            check(&id_token),
            Err(TokenError::Header("wrong token type"))
        );
        // Claims.
        let signed = |extra: Value| jws::sign(&key, "at+jwt", &claims(extra));
        assert_eq!(
            check(&signed(json!({"iss": "https://evil.example"}))),
            Err(TokenError::Claim("iss"))
        );
        assert_eq!(
            check(&signed(json!({"aud": "https://other.example"}))),
            Err(TokenError::Claim("aud"))
        );
        assert!(check(&signed(json!({"aud": ["x", "https://api.example"]}))).is_ok());
        assert_eq!(
            check(&signed(json!({"exp": NOW - 31}))),
            Err(TokenError::Expired)
        );
        assert!(
            check(&signed(json!({"exp": NOW - 29}))).is_ok(),
            "within the skew"
        );
        assert_eq!(
            check(&signed(json!({"nbf": NOW + 60}))),
            Err(TokenError::NotYetValid)
        );
        assert_eq!(
            check(&signed(json!({"iat": NOW + 60}))),
            Err(TokenError::NotYetValid)
        );
        let mut no_exp = good.clone();
        no_exp.remove("exp");
        assert_eq!(
            check(&jws::sign(&key, "at+jwt", &no_exp)),
            Err(TokenError::Claim("exp"))
        );
        assert_eq!(
            check(&signed(json!({"exp": "soon"}))),
            Err(TokenError::Claim("exp"))
        );
        // The skew cannot be configured beyond its bound.
        let lax = Expectations {
            skew_seconds: 100_000,
            ..expect()
        };
        assert_eq!(
            verify(&signed(json!({"exp": NOW - 121})), &keys, &lax),
            Err(TokenError::Expired)
        );
        // Sizes and shapes.
        assert_eq!(
            check(&"a".repeat(MAX_TOKEN_BYTES + 1)),
            Err(TokenError::TooLarge)
        );
        for junk in ["", "a.b", "a.b.c.d", "!!.!!.!!", &format!("{head}..{sig}")] {
            assert!(check(junk).is_err(), "{junk}");
        }
    }
}
