//! Signing probes: with the scanner's own keys (for injected keys), with a supplied key, or
//! with a cracked secret.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, KeyPair};
use serde_json::{Value, json};

use super::token::{Object, b64, compact, signing_input};
use crate::ScanError;

pub enum Signer {
    Hmac {
        alg: &'static str,
        secret: Vec<u8>,
    },
    Rsa {
        key: signature::RsaKeyPair,
        pkcs8: Vec<u8>,
    },
    Ec {
        alg: &'static str,
        key: signature::EcdsaKeyPair,
        pkcs8: Vec<u8>,
    },
    Ed25519 {
        key: signature::Ed25519KeyPair,
    },
}

fn failed<E: std::fmt::Debug>(what: &'static str) -> impl Fn(E) -> ScanError {
    move |e| ScanError::Key(format!("{what}: {e:?}"))
}

impl Signer {
    /// An HMAC signer for `alg` (HS256, HS384 or HS512).
    pub fn hmac(alg: &str, secret: Vec<u8>) -> Result<Self, ScanError> {
        let alg = match alg {
            "HS256" => "HS256",
            "HS384" => "HS384",
            "HS512" => "HS512",
            other => {
                return Err(ScanError::Key(format!(
                    "a secret signs HS256, HS384 or HS512 tokens, not {other}"
                )));
            }
        };
        Ok(Self::Hmac { alg, secret })
    }

    /// A fresh RSA-2048 key, for RS256 probes.
    pub fn generate_rsa() -> Result<Self, ScanError> {
        let key = signature::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .map_err(failed("generating an RSA key"))?;
        let pkcs8 = key
            .as_der()
            .map_err(failed("encoding an RSA key"))?
            .as_ref()
            .to_vec();
        Ok(Self::Rsa { key, pkcs8 })
    }

    /// A fresh P-256 key, for ES256 probes.
    pub fn generate_p256() -> Result<Self, ScanError> {
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(alg, &SystemRandom::new())
            .map_err(failed("generating a P-256 key"))?;
        let key = signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref())
            .map_err(failed("reading a P-256 key"))?;
        Ok(Self::Ec {
            alg: "ES256",
            key,
            pkcs8: pkcs8.as_ref().to_vec(),
        })
    }

    /// A supplied private key in PKCS#8 PEM: RSA (signing RS256), P-256/P-384/P-521 or
    /// Ed25519.
    pub fn from_pkcs8_pem(text: &str) -> Result<Self, ScanError> {
        let der = super::der::pem_decode(text, "PRIVATE KEY")
            .ok_or_else(|| ScanError::Key("not a PEM \"PRIVATE KEY\" (PKCS#8)".into()))?;
        if let Ok(key) = signature::Ed25519KeyPair::from_pkcs8(&der) {
            return Ok(Self::Ed25519 { key });
        }
        for (alg, signing) in [
            ("ES256", &signature::ECDSA_P256_SHA256_FIXED_SIGNING),
            ("ES384", &signature::ECDSA_P384_SHA384_FIXED_SIGNING),
            ("ES512", &signature::ECDSA_P521_SHA512_FIXED_SIGNING),
        ] {
            if let Ok(key) = signature::EcdsaKeyPair::from_pkcs8(signing, &der) {
                return Ok(Self::Ec {
                    alg,
                    key,
                    pkcs8: der,
                });
            }
        }
        let key = signature::RsaKeyPair::from_pkcs8(&der).map_err(|_| {
            ScanError::Key("the key is none of RSA, P-256, P-384, P-521 or Ed25519".into())
        })?;
        Ok(Self::Rsa { key, pkcs8: der })
    }

    pub fn alg(&self) -> &'static str {
        match self {
            Self::Hmac { alg, .. } | Self::Ec { alg, .. } => alg,
            Self::Rsa { .. } => "RS256",
            Self::Ed25519 { .. } => "EdDSA",
        }
    }

    pub fn sign(&self, input: &[u8]) -> Result<Vec<u8>, ScanError> {
        let rng = SystemRandom::new();
        Ok(match self {
            Self::Hmac { alg, secret } => {
                let algorithm = match *alg {
                    "HS384" => hmac::HMAC_SHA384,
                    "HS512" => hmac::HMAC_SHA512,
                    _ => hmac::HMAC_SHA256,
                };
                hmac::sign(&hmac::Key::new(algorithm, secret), input)
                    .as_ref()
                    .to_vec()
            }
            Self::Rsa { key, .. } => {
                let mut out = vec![0; key.public_modulus_len()];
                key.sign(&signature::RSA_PKCS1_SHA256, &rng, input, &mut out)
                    .map_err(failed("signing with RSA"))?;
                out
            }
            Self::Ec { key, .. } => key
                .sign(&rng, input)
                .map_err(failed("signing with ECDSA"))?
                .as_ref()
                .to_vec(),
            Self::Ed25519 { key } => key.sign(input).as_ref().to_vec(),
        })
    }

    /// A token of `header` (with this signer's alg) and `claims`.
    pub fn token(&self, header: &Object, claims: &Object) -> Result<String, ScanError> {
        let mut header = header.clone();
        header.insert("alg".into(), self.alg().into());
        let input = signing_input(&header, claims);
        Ok(compact(&input, &self.sign(input.as_bytes())?))
    }

    /// The public key as a JWK, for asymmetric keys.
    pub fn public_jwk(&self, kid: &str) -> Option<Value> {
        match self {
            Self::Hmac { .. } => None,
            Self::Rsa { key, .. } => {
                let public = key.public_key();
                Some(json!({
                    "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                }))
            }
            Self::Ec { alg, key, .. } => {
                let point = key.public_key().as_ref();
                let half = (point.len() - 1) / 2;
                let crv = match *alg {
                    "ES384" => "P-384",
                    "ES512" => "P-521",
                    _ => "P-256",
                };
                Some(json!({
                    "kty": "EC", "kid": kid, "use": "sig", "alg": alg, "crv": crv,
                    "x": b64(&point[1..1 + half]), "y": b64(&point[1 + half..]),
                }))
            }
            Self::Ed25519 { key } => Some(json!({
                "kty": "OKP", "kid": kid, "use": "sig", "alg": "EdDSA", "crv": "Ed25519",
                "x": b64(key.public_key().as_ref()),
            })),
        }
    }

    /// A self-signed certificate for the public key, in PEM, for `x5u` probes.
    pub fn certificate_pem(&self) -> Result<String, ScanError> {
        let pkcs8 = match self {
            Self::Rsa { pkcs8, .. } | Self::Ec { pkcs8, .. } => pkcs8.as_slice(),
            _ => {
                return Err(ScanError::Key(
                    "only RSA and ECDSA probe keys have certificates".into(),
                ));
            }
        };
        let key = rcgen::KeyPair::try_from(pkcs8).map_err(failed("reading the probe key"))?;
        let params = rcgen::CertificateParams::new(vec!["palisade-scan.invalid".to_owned()])
            .map_err(failed("certificate parameters"))?;
        Ok(params
            .self_signed(&key)
            .map_err(failed("self-signing"))?
            .pem())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::token::Token;

    #[test]
    fn signs_tokens_its_public_key_verifies() {
        for signer in [
            Signer::generate_rsa().unwrap(),
            Signer::generate_p256().unwrap(),
        ] {
            let jwk = signer.public_jwk("k").unwrap();
            let token =
                Token::parse(&signer.token(&Object::new(), &Object::new()).unwrap()).unwrap();
            let (algorithm, public): (&dyn signature::VerificationAlgorithm, Vec<u8>) =
                match signer.alg() {
                    "RS256" => (
                        &signature::RSA_PKCS1_2048_8192_SHA256,
                        crate::jwt::der::rsa_pkcs1(
                            &data_encoding::BASE64URL_NOPAD
                                .decode(jwk["n"].as_str().unwrap().as_bytes())
                                .unwrap(),
                            &data_encoding::BASE64URL_NOPAD
                                .decode(jwk["e"].as_str().unwrap().as_bytes())
                                .unwrap(),
                        ),
                    ),
                    _ => {
                        let x = data_encoding::BASE64URL_NOPAD
                            .decode(jwk["x"].as_str().unwrap().as_bytes())
                            .unwrap();
                        let y = data_encoding::BASE64URL_NOPAD
                            .decode(jwk["y"].as_str().unwrap().as_bytes())
                            .unwrap();
                        (
                            &signature::ECDSA_P256_SHA256_FIXED,
                            [&[4u8][..], &x, &y].concat(),
                        )
                    }
                };
            signature::UnparsedPublicKey::new(algorithm, public)
                .verify(token.signing_input.as_bytes(), &token.signature)
                .unwrap();
            assert!(
                signer
                    .certificate_pem()
                    .unwrap()
                    .starts_with("-----BEGIN CERTIFICATE-----")
            );
        }
    }

    #[test]
    fn reads_a_pkcs8_key_and_refuses_other_pem() {
        let Signer::Ec { pkcs8, .. } = Signer::generate_p256().unwrap() else {
            unreachable!()
        };
        let pem = crate::jwt::der::pem("PRIVATE KEY", &pkcs8);
        assert_eq!(Signer::from_pkcs8_pem(&pem).unwrap().alg(), "ES256");
        let wrong = crate::jwt::der::pem("CERTIFICATE", &pkcs8);
        assert!(matches!(
            Signer::from_pkcs8_pem(&wrong),
            Err(ScanError::Key(_))
        ));
    }
}
