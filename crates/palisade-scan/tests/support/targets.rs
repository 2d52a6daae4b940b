//! Deliberately weak JWT verifiers on loopback, each with one known flaw, for the scanner's
//! tests and for comparing it with other scanners (`examples/weak-targets.rs`).
//! `GET /me` answers 200 to a token the verifier accepts and 401 otherwise; the RSA and EC
//! targets publish their keys at `/.well-known/jwks.json`.

use std::net::SocketAddr;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, KeyPair};
use aws_lc_rs::{hmac, rsa};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use data_encoding::{BASE64, BASE64URL_NOPAD};
use serde_json::{Value, json};

/// The flaw a target has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flaw {
    /// Verifies HS256 properly, and accepts `alg: none` too.
    AcceptsNone,
    /// Verifies HS256 properly and never looks at `exp`.
    IgnoresExp,
    /// HS256 with a secret from every common list; allows 90 s past `exp` and 30 s before
    /// `nbf`, and never checks `aud`.
    WeakSecret,
    /// RS256, but lets the token's alg choose: HS256 is keyed with the public key's PEM.
    RsaConfusion,
    /// ES256 whose verifier takes r = s = 0 for a valid signature (CVE-2022-21449).
    Psychic,
    /// RS256/ES256 with the key fetched from the token's `jku`.
    TrustsJku,
    /// Fetches the token's `jku` (SSRF) but then verifies with its own key only.
    FetchesJku,
    /// None: a strict HS256 verifier, for the absence of false positives.
    Sound,
}

pub(crate) const ALL: [Flaw; 8] = [
    Flaw::AcceptsNone,
    Flaw::IgnoresExp,
    Flaw::WeakSecret,
    Flaw::RsaConfusion,
    Flaw::Psychic,
    Flaw::TrustsJku,
    Flaw::FetchesJku,
    Flaw::Sound,
];

pub(crate) const WEAK_SECRET: &[u8] = b"changeme";
pub(crate) const AUDIENCE: &str = "https://api.weak.test";
pub(crate) const ISSUER: &str = "https://id.weak.test";

struct Keys {
    flaw: Flaw,
    hmac: Vec<u8>,
    rsa: signature::RsaKeyPair,
    ec: signature::EcdsaKeyPair,
    client: reqwest::Client,
}

pub(crate) struct WeakTarget {
    pub(crate) flaw: Flaw,
    pub(crate) url: String,
    keys: Arc<Keys>,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn b64(bytes: &[u8]) -> String {
    BASE64URL_NOPAD.encode(bytes)
}

impl WeakTarget {
    #[allow(clippy::disallowed_methods)] // a deliberately weak third-party server, not Palisade
    pub(crate) async fn start(flaw: Flaw) -> Self {
        let rng = SystemRandom::new();
        let mut hmac_secret = vec![0u8; 32];
        aws_lc_rs::rand::fill(&mut hmac_secret).unwrap();
        if flaw == Flaw::WeakSecret {
            hmac_secret = WEAK_SECRET.to_vec();
        }
        let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .unwrap();
        let keys = Arc::new(Keys {
            flaw,
            hmac: hmac_secret,
            rsa: signature::RsaKeyPair::generate(rsa::KeySize::Rsa2048).unwrap(),
            ec: signature::EcdsaKeyPair::from_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                pkcs8.as_ref(),
            )
            .unwrap(),
            client: reqwest::Client::new(),
        });
        let app = axum::Router::new()
            .route("/me", get(me))
            .route("/.well-known/jwks.json", get(jwks))
            .with_state(keys.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            flaw,
            url: format!("http://{addr}/me"),
            keys,
        }
    }

    /// Claims a careful issuer would set, living `lifetime` seconds from now.
    pub(crate) fn claims(lifetime: i64) -> Value {
        let now = now();
        json!({ "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "jti": format!("j{now}"), "iat": now, "exp": now + lifetime })
    }

    /// A token this target accepts (for `IgnoresExp`, one that expired an hour ago).
    pub(crate) fn token(&self) -> String {
        let lifetime = if self.flaw == Flaw::IgnoresExp {
            -3600
        } else {
            600
        };
        self.sign(Self::claims(lifetime))
    }

    pub(crate) fn sign(&self, claims: Value) -> String {
        let alg = match self.flaw {
            Flaw::RsaConfusion | Flaw::TrustsJku | Flaw::FetchesJku => "RS256",
            Flaw::Psychic => "ES256",
            _ => "HS256",
        };
        let header = json!({ "alg": alg, "typ": "at+jwt", "kid": "k1" });
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = match alg {
            "RS256" => {
                let mut sig = vec![0; self.keys.rsa.public_modulus_len()];
                self.keys
                    .rsa
                    .sign(
                        &signature::RSA_PKCS1_SHA256,
                        &SystemRandom::new(),
                        input.as_bytes(),
                        &mut sig,
                    )
                    .unwrap();
                sig
            }
            "ES256" => self
                .keys
                .ec
                .sign(&SystemRandom::new(), input.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
            _ => hmac::sign(
                &hmac::Key::new(hmac::HMAC_SHA256, &self.keys.hmac),
                input.as_bytes(),
            )
            .as_ref()
            .to_vec(),
        };
        format!("{input}.{}", b64(&signature))
    }
}

async fn jwks(State(keys): State<Arc<Keys>>) -> axum::Json<Value> {
    axum::Json(json!({ "keys": [rsa_jwk(&keys.rsa, "k1"), ec_jwk(&keys.ec, "k2")] }))
}

fn rsa_jwk(key: &signature::RsaKeyPair, kid: &str) -> Value {
    let p = key.public_key();
    json!({ "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
        "n": b64(p.modulus().big_endian_without_leading_zero()),
        "e": b64(p.exponent().big_endian_without_leading_zero()) })
}

fn ec_jwk(key: &signature::EcdsaKeyPair, kid: &str) -> Value {
    let point = key.public_key().as_ref();
    json!({ "kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256",
        "x": b64(&point[1..33]), "y": b64(&point[33..]) })
}

async fn me(State(keys): State<Arc<Keys>>, headers: HeaderMap) -> (StatusCode, &'static str) {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match token {
        Some(t) if verify(&keys, t).await.is_some() => (StatusCode::OK, "hello alice"),
        _ => (StatusCode::UNAUTHORIZED, "unauthorized"),
    }
}

fn part(p: &str) -> Option<Value> {
    serde_json::from_slice(&BASE64URL_NOPAD.decode(p.as_bytes()).ok()?).ok()
}

/// `Some(())` when the target accepts the token, with its flaw.
async fn verify(keys: &Keys, token: &str) -> Option<()> {
    let mut parts = token.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header = part(h)?;
    let claims = part(p)?;
    let signature = BASE64URL_NOPAD.decode(s.as_bytes()).ok()?;
    let input = format!("{h}.{p}");
    let alg = header.get("alg")?.as_str()?;
    let signed = match (keys.flaw, alg) {
        (Flaw::AcceptsNone, a) if a.eq_ignore_ascii_case("none") => true,
        (Flaw::AcceptsNone | Flaw::IgnoresExp | Flaw::WeakSecret | Flaw::Sound, "HS256") => {
            hmac::verify(
                &hmac::Key::new(hmac::HMAC_SHA256, &keys.hmac),
                input.as_bytes(),
                &signature,
            )
            .is_ok()
        }
        (Flaw::RsaConfusion, "HS256") => {
            let der = keys.rsa.public_key().as_der().ok()?;
            let pem = format!(
                "-----BEGIN PUBLIC KEY-----\n{}-----END PUBLIC KEY-----\n",
                pem_lines(der.as_ref())
            );
            hmac::verify(
                &hmac::Key::new(hmac::HMAC_SHA256, pem.as_bytes()),
                input.as_bytes(),
                &signature,
            )
            .is_ok()
        }
        (Flaw::RsaConfusion, "RS256") => {
            rsa_verify(keys.rsa.public_key().as_ref(), &input, &signature)
        }
        (Flaw::TrustsJku, "RS256") if header.get("jku").is_none() => {
            rsa_verify(keys.rsa.public_key().as_ref(), &input, &signature)
        }
        (Flaw::FetchesJku, "RS256" | "ES256") => {
            fetch(keys, &header).await;
            rsa_verify(keys.rsa.public_key().as_ref(), &input, &signature)
        }
        (Flaw::TrustsJku, "RS256" | "ES256") => {
            let set = fetch(keys, &header).await?;
            let kid = header.get("kid")?;
            let jwk = set["keys"]
                .as_array()?
                .iter()
                .find(|k| k.get("kid") == Some(kid))?;
            let n = |m: &str| BASE64URL_NOPAD.decode(jwk[m].as_str()?.as_bytes()).ok();
            if alg == "RS256" {
                let public = rsa::PublicKeyComponents {
                    n: n("n")?,
                    e: n("e")?,
                };
                public
                    .verify(
                        &signature::RSA_PKCS1_2048_8192_SHA256,
                        input.as_bytes(),
                        &signature,
                    )
                    .is_ok()
            } else {
                let point = [vec![4], n("x")?, n("y")?].concat();
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(input.as_bytes(), &signature)
                    .is_ok()
            }
        }
        (Flaw::Psychic, "ES256") => {
            // The broken check: r and s are never compared with zero.
            signature.len() == 64 && signature.iter().all(|&b| b == 0)
                || signature::UnparsedPublicKey::new(
                    &signature::ECDSA_P256_SHA256_FIXED,
                    keys.ec.public_key().as_ref(),
                )
                .verify(input.as_bytes(), &signature)
                .is_ok()
        }
        _ => false,
    };
    if !signed {
        return None;
    }
    let now = now();
    let (exp_leeway, nbf_leeway, check_aud) = match keys.flaw {
        Flaw::WeakSecret => (90, 30, false),
        _ => (0, 0, true),
    };
    if keys.flaw != Flaw::IgnoresExp && now > claims.get("exp")?.as_i64()? + exp_leeway {
        return None;
    }
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64)
        && now + nbf_leeway < nbf
    {
        return None;
    }
    if check_aud && claims.get("aud")? != AUDIENCE {
        return None;
    }
    (claims.get("iss")? == ISSUER).then_some(())
}

fn rsa_verify(pkcs1: &[u8], input: &str, signature: &[u8]) -> bool {
    signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, pkcs1)
        .verify(input.as_bytes(), signature)
        .is_ok()
}

async fn fetch(keys: &Keys, header: &Value) -> Option<Value> {
    let url = header.get("jku")?.as_str()?;
    keys.client.get(url).send().await.ok()?.json().await.ok()
}

fn pem_lines(der: &[u8]) -> String {
    BASE64
        .encode(der)
        .as_bytes()
        .chunks(64)
        .map(|l| format!("{}\n", String::from_utf8_lossy(l)))
        .collect()
}
