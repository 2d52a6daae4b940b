//! One signing key: its algorithm, its key id, the private half (PKCS#8, only ever stored
//! sealed) and the public JWK published in the JWKS.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair, UnparsedPublicKey,
};
use data_encoding::BASE64URL_NOPAD;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    /// Ed25519 (RFC 8037): the default.
    EdDSA,
    /// ECDSA P-256 with SHA-256, for clients without EdDSA.
    ES256,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::EdDSA => "EdDSA",
            Algorithm::ES256 => "ES256",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "EdDSA" => Some(Algorithm::EdDSA),
            "ES256" => Some(Algorithm::ES256),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the key material is not a valid {0} private key")]
    Invalid(&'static str),
    #[error("key generation failed")]
    Generation,
}

/// A public key as published (RFC 7517), with exactly the members its type needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
}

enum Pair {
    Ed25519(Ed25519KeyPair),
    Es256(EcdsaKeyPair),
}

pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    pair: Pair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random key; returns it with its PKCS#8 encoding (to be sealed before storage).
    pub fn generate(alg: Algorithm) -> Result<(Self, Vec<u8>), KeyError> {
        let rng = SystemRandom::new();
        let pkcs8 = match alg {
            Algorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| KeyError::Generation)?
                .as_ref()
                .to_vec(),
            Algorithm::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| KeyError::Generation)?
                    .as_ref()
                    .to_vec()
            }
        };
        let key = Self::from_pkcs8(alg, &pkcs8)?;
        Ok((key, pkcs8))
    }

    pub fn from_pkcs8(alg: Algorithm, pkcs8: &[u8]) -> Result<Self, KeyError> {
        let pair = match alg {
            Algorithm::EdDSA => Pair::Ed25519(
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
                    .map_err(|_| KeyError::Invalid("Ed25519"))?,
            ),
            Algorithm::ES256 => Pair::Es256(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                    .map_err(|_| KeyError::Invalid("P-256"))?,
            ),
        };
        let public = match &pair {
            Pair::Ed25519(p) => p.public_key().as_ref().to_vec(),
            Pair::Es256(p) => p.public_key().as_ref().to_vec(),
        };
        Ok(Self {
            kid: key_id(alg, &public),
            alg,
            pair,
        })
    }

    pub fn public(&self) -> PublicKey {
        let bytes = match &self.pair {
            Pair::Ed25519(p) => p.public_key().as_ref().to_vec(),
            Pair::Es256(p) => p.public_key().as_ref().to_vec(),
        };
        PublicKey {
            kid: self.kid.clone(),
            alg: self.alg,
            bytes,
        }
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.pair {
            Pair::Ed25519(p) => p.sign(message).as_ref().to_vec(),
            Pair::Es256(p) => p
                .sign(&SystemRandom::new(), message)
                .expect("ECDSA signing with a valid key cannot fail")
                .as_ref()
                .to_vec(),
        }
    }
}

/// The key id: the RFC 7638 JWK thumbprint, so the same key always has the same id (and a
/// DPoP key's `jkt`).
pub fn key_id(alg: Algorithm, public: &[u8]) -> String {
    let canonical = match alg {
        Algorithm::EdDSA => format!(
            r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
            BASE64URL_NOPAD.encode(public)
        ),
        Algorithm::ES256 => {
            let (x, y) = public[1..].split_at(32);
            format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                BASE64URL_NOPAD.encode(x),
                BASE64URL_NOPAD.encode(y)
            )
        }
    };
    BASE64URL_NOPAD.encode(&palisade_crypto::sha256(canonical.as_bytes()))
}

/// The raw public key of JWK members: 32 bytes for Ed25519, the uncompressed point for P-256.
fn public_bytes(alg: Algorithm, kty: &str, crv: &str, x: &str, y: Option<&str>) -> Option<Vec<u8>> {
    let decode = |v: &str| {
        BASE64URL_NOPAD
            .decode(v.as_bytes())
            .ok()
            .filter(|b| b.len() == 32)
    };
    match (alg, kty, crv) {
        (Algorithm::EdDSA, "OKP", "Ed25519") if y.is_none() => decode(x),
        (Algorithm::ES256, "EC", "P-256") => {
            Some([&[0x04][..], &decode(x)?, &decode(y?)?].concat())
        }
        _ => None,
    }
}

/// A public key: what verifies tokens and what the JWKS shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub kid: String,
    pub alg: Algorithm,
    /// Ed25519: 32 bytes; P-256: the uncompressed point (65 bytes).
    pub bytes: Vec<u8>,
}

impl PublicKey {
    pub fn jwk(&self) -> Jwk {
        let (kty, crv, x, y) = match self.alg {
            Algorithm::EdDSA => ("OKP", "Ed25519", BASE64URL_NOPAD.encode(&self.bytes), None),
            Algorithm::ES256 => (
                "EC",
                "P-256",
                BASE64URL_NOPAD.encode(&self.bytes[1..33]),
                Some(BASE64URL_NOPAD.encode(&self.bytes[33..])),
            ),
        };
        Jwk {
            kty: kty.into(),
            crv: Some(crv.into()),
            x: Some(x),
            y,
            kid: self.kid.clone(),
            alg: self.alg.as_str().into(),
            use_: "sig".into(),
        }
    }

    /// The key a published JWK describes (what a client does with a JWKS).
    pub fn from_jwk(jwk: &Jwk) -> Option<Self> {
        let alg = Algorithm::parse(&jwk.alg)?;
        let bytes = public_bytes(
            alg,
            &jwk.kty,
            jwk.crv.as_deref()?,
            jwk.x.as_deref()?,
            jwk.y.as_deref(),
        )?;
        Some(Self {
            kid: jwk.kid.clone(),
            alg,
            bytes,
        })
    }

    /// The key of a bare JWK object (a DPoP proof's `jwk` header, RFC 9449 §4.2) for `alg`:
    /// public members only, and its id is its RFC 7638 thumbprint.
    pub fn from_jwk_value(
        alg: Algorithm,
        jwk: &serde_json::Map<String, serde_json::Value>,
    ) -> Option<Self> {
        let member = |name: &str| jwk.get(name).and_then(serde_json::Value::as_str);
        if jwk.contains_key("d") {
            return None;
        }
        let bytes = public_bytes(
            alg,
            member("kty")?,
            member("crv")?,
            member("x")?,
            member("y"),
        )?;
        Some(Self {
            kid: key_id(alg, &bytes),
            alg,
            bytes,
        })
    }

    /// Checks a signature with this key's own algorithm: the token's header has no say.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self.alg {
            Algorithm::EdDSA => UnparsedPublicKey::new(&ED25519, &self.bytes)
                .verify(message, signature)
                .is_ok(),
            Algorithm::ES256 => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.bytes)
                .verify(message, signature)
                .is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_pkcs8_and_sign() {
        for alg in [Algorithm::EdDSA, Algorithm::ES256] {
            let (key, pkcs8) = SigningKey::generate(alg).unwrap();
            let again = SigningKey::from_pkcs8(alg, &pkcs8).unwrap();
            assert_eq!(key.kid, again.kid, "the kid is the key's thumbprint");
            let sig = key.sign(b"message");
            assert!(again.public().verify(b"message", &sig));
            assert!(!again.public().verify(b"massage", &sig));
            let jwk = key.public().jwk();
            assert_eq!(PublicKey::from_jwk(&jwk), Some(key.public()));
            assert_eq!(jwk.alg, alg.as_str());
            assert_eq!(jwk.kid, key.kid);
            let other = SigningKey::generate(alg).unwrap().0;
            assert_ne!(other.kid, key.kid);
            assert!(!other.public().verify(b"message", &sig));
        }
        assert!(SigningKey::from_pkcs8(Algorithm::ES256, b"garbage").is_err());
    }

    /// RFC 8037 appendix A.3: the thumbprint of its example Ed25519 key.
    #[test]
    fn ed25519_thumbprint_matches_rfc_8037() {
        let x = BASE64URL_NOPAD
            .decode(b"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap();
        assert_eq!(
            key_id(Algorithm::EdDSA, &x),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }
}
