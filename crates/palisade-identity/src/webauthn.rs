//! WebAuthn relying-party verification (IDN-6) for passkeys: the checks of WebAuthn Level 3
//! §7.1 (registration) and §7.2 (authentication) that matter for a relying party that asks for
//! no attestation — client data type, challenge, origin, RP ID hash, user presence and
//! verification flags, the credential's COSE key, signature and signature counter. ES256 and
//! Ed25519 keys are supported; verification runs on aws-lc-rs.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ED25519, UnparsedPublicKey};
use ciborium::Value;
use data_encoding::BASE64URL_NOPAD;
use serde::Deserialize;

pub const ALG_ES256: i64 = -7;
pub const ALG_EDDSA: i64 = -8;

const FLAG_USER_PRESENT: u8 = 0x01;
const FLAG_USER_VERIFIED: u8 = 0x04;
const FLAG_ATTESTED_DATA: u8 = 0x40;

#[derive(Debug, PartialEq, Eq)]
pub struct WebauthnError(pub &'static str);

impl std::fmt::Display for WebauthnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Who we are to authenticators: the RP ID (a host name, never an IP address) and the
/// origins whose signatures we accept.
#[derive(Debug, Clone)]
pub struct RelyingParty {
    pub id: String,
    /// The one accepted origin; `None` accepts `https://localhost` on any port, which only a
    /// development setup with RP ID `localhost` may use (the port is often ephemeral there).
    pub origin: Option<String>,
}

impl RelyingParty {
    fn origin_ok(&self, origin: &str) -> bool {
        match &self.origin {
            Some(expected) => origin == expected,
            None => {
                self.id == "localhost"
                    && (origin == "https://localhost"
                        || origin
                            .strip_prefix("https://localhost:")
                            .is_some_and(|port| {
                                !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
                            }))
            }
        }
    }

    fn id_hash(&self) -> [u8; 32] {
        palisade_crypto::sha256(self.id.as_bytes())
    }
}

#[derive(Deserialize)]
struct ClientDataJson {
    #[serde(rename = "type")]
    kind: String,
    challenge: String,
    origin: String,
    #[serde(rename = "crossOrigin", default)]
    cross_origin: bool,
}

/// The challenge a client-data document answers, for looking up the pending ceremony.
pub fn challenge_of(client_data_json: &[u8]) -> Result<Vec<u8>, WebauthnError> {
    let cd: ClientDataJson = serde_json::from_slice(client_data_json)
        .map_err(|_| WebauthnError("client data is not valid JSON"))?;
    BASE64URL_NOPAD
        .decode(cd.challenge.as_bytes())
        .map_err(|_| WebauthnError("challenge is not base64url"))
}

fn check_client_data(
    rp: &RelyingParty,
    json: &[u8],
    kind: &str,
    challenge: &[u8],
) -> Result<(), WebauthnError> {
    let cd: ClientDataJson =
        serde_json::from_slice(json).map_err(|_| WebauthnError("client data is not valid JSON"))?;
    if cd.kind != kind {
        return Err(WebauthnError("client data has the wrong ceremony type"));
    }
    let got = BASE64URL_NOPAD
        .decode(cd.challenge.as_bytes())
        .map_err(|_| WebauthnError("challenge is not base64url"))?;
    if !palisade_crypto::constant_time_eq(&got, challenge) {
        return Err(WebauthnError("challenge does not match"));
    }
    if !rp.origin_ok(&cd.origin) || cd.cross_origin {
        return Err(WebauthnError("origin is not this site"));
    }
    Ok(())
}

/// A credential public key, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub algorithm: i64,
    /// Uncompressed SEC1 point for ES256, the 32-byte key for Ed25519.
    pub bytes: Vec<u8>,
}

impl PublicKey {
    fn from_cose(key: &Value) -> Result<Self, WebauthnError> {
        let Value::Map(entries) = key else {
            return Err(WebauthnError("credential key is not a COSE map"));
        };
        let get = |label: i64| {
            entries
                .iter()
                .find(|(k, _)| {
                    k.as_integer()
                        .is_some_and(|i| i128::from(i) == i128::from(label))
                })
                .map(|(_, v)| v)
        };
        let int = |label| get(label).and_then(Value::as_integer).map(i128::from);
        let bytes = |label| get(label).and_then(Value::as_bytes);
        match (int(1), int(3), int(-1)) {
            (Some(2), Some(-7), Some(1)) => {
                let (x, y) = (bytes(-2), bytes(-3));
                match (x, y) {
                    (Some(x), Some(y)) if x.len() == 32 && y.len() == 32 => {
                        let mut point = vec![0x04];
                        point.extend_from_slice(x);
                        point.extend_from_slice(y);
                        Ok(Self {
                            algorithm: ALG_ES256,
                            bytes: point,
                        })
                    }
                    _ => Err(WebauthnError("malformed P-256 key")),
                }
            }
            (Some(1), Some(-8), Some(6)) => match bytes(-2) {
                Some(x) if x.len() == 32 => Ok(Self {
                    algorithm: ALG_EDDSA,
                    bytes: x.clone(),
                }),
                _ => Err(WebauthnError("malformed Ed25519 key")),
            },
            _ => Err(WebauthnError(
                "unsupported key type (ES256 and Ed25519 are accepted)",
            )),
        }
    }

    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let alg: &'static dyn aws_lc_rs::signature::VerificationAlgorithm = match self.algorithm {
            ALG_ES256 => &ECDSA_P256_SHA256_ASN1,
            ALG_EDDSA => &ED25519,
            _ => return false,
        };
        UnparsedPublicKey::new(alg, &self.bytes)
            .verify(message, signature)
            .is_ok()
    }
}

struct AuthenticatorData {
    rp_id_hash: [u8; 32],
    flags: u8,
    sign_count: u32,
    credential: Option<(Vec<u8>, PublicKey)>,
}

fn parse_authenticator_data(data: &[u8]) -> Result<AuthenticatorData, WebauthnError> {
    if data.len() < 37 {
        return Err(WebauthnError("authenticator data is too short"));
    }
    let mut rp_id_hash = [0u8; 32];
    rp_id_hash.copy_from_slice(&data[..32]);
    let flags = data[32];
    let sign_count = u32::from_be_bytes([data[33], data[34], data[35], data[36]]);
    let credential = if flags & FLAG_ATTESTED_DATA != 0 {
        let rest = &data[37..];
        if rest.len() < 18 {
            return Err(WebauthnError("attested credential data is too short"));
        }
        let id_len = u16::from_be_bytes([rest[16], rest[17]]) as usize;
        if id_len == 0 || id_len > 1023 || rest.len() < 18 + id_len {
            return Err(WebauthnError("credential id has a bad length"));
        }
        let id = rest[18..18 + id_len].to_vec();
        let key: Value = ciborium::from_reader(&rest[18 + id_len..])
            .map_err(|_| WebauthnError("credential key is not CBOR"))?;
        Some((id, PublicKey::from_cose(&key)?))
    } else {
        None
    };
    Ok(AuthenticatorData {
        rp_id_hash,
        flags,
        sign_count,
        credential,
    })
}

fn check_authenticator_data(
    rp: &RelyingParty,
    ad: &AuthenticatorData,
) -> Result<(), WebauthnError> {
    if !palisade_crypto::constant_time_eq(&ad.rp_id_hash, &rp.id_hash()) {
        return Err(WebauthnError("credential is for another relying party"));
    }
    // Passkeys replace a password and a second factor at once, so the authenticator must have
    // verified the user (PIN or biometrics), not merely seen a touch.
    if ad.flags & FLAG_USER_PRESENT == 0 || ad.flags & FLAG_USER_VERIFIED == 0 {
        return Err(WebauthnError("user presence and verification are required"));
    }
    Ok(())
}

#[derive(Debug)]
pub struct NewCredential {
    pub id: Vec<u8>,
    pub public_key: PublicKey,
    pub sign_count: u32,
}

/// Verifies a registration response (§7.1) against the challenge we issued.
pub fn verify_registration(
    rp: &RelyingParty,
    challenge: &[u8],
    client_data_json: &[u8],
    attestation_object: &[u8],
) -> Result<NewCredential, WebauthnError> {
    check_client_data(rp, client_data_json, "webauthn.create", challenge)?;
    let att: Value = ciborium::from_reader(attestation_object)
        .map_err(|_| WebauthnError("attestation object is not CBOR"))?;
    let Value::Map(entries) = att else {
        return Err(WebauthnError("attestation object is not a map"));
    };
    let field = |name: &str| {
        entries
            .iter()
            .find(|(k, _)| k.as_text() == Some(name))
            .map(|(_, v)| v)
    };
    // We ask for no attestation, and browsers then anonymise it to "none".
    if field("fmt").and_then(Value::as_text) != Some("none") {
        return Err(WebauthnError(
            "only attestation format \"none\" is accepted",
        ));
    }
    let auth_data = field("authData")
        .and_then(Value::as_bytes)
        .ok_or(WebauthnError(
            "attestation object has no authenticator data",
        ))?;
    let ad = parse_authenticator_data(auth_data)?;
    check_authenticator_data(rp, &ad)?;
    let (id, public_key) = ad
        .credential
        .ok_or(WebauthnError("no credential in the registration"))?;
    Ok(NewCredential {
        id,
        public_key,
        sign_count: ad.sign_count,
    })
}

/// Verifies an authentication assertion (§7.2) with the stored key and counter; returns the
/// new counter. A counter that fails to increase (when either side is non-zero) signals a
/// cloned authenticator and is refused.
pub fn verify_assertion(
    rp: &RelyingParty,
    challenge: &[u8],
    client_data_json: &[u8],
    authenticator_data: &[u8],
    signature: &[u8],
    key: &PublicKey,
    stored_count: u32,
) -> Result<u32, WebauthnError> {
    check_client_data(rp, client_data_json, "webauthn.get", challenge)?;
    let ad = parse_authenticator_data(authenticator_data)?;
    check_authenticator_data(rp, &ad)?;
    let mut signed = authenticator_data.to_vec();
    signed.extend_from_slice(&palisade_crypto::sha256(client_data_json));
    if !key.verify(&signed, signature) {
        return Err(WebauthnError("signature does not verify"));
    }
    if (ad.sign_count != 0 || stored_count != 0) && ad.sign_count <= stored_count {
        return Err(WebauthnError(
            "signature counter did not increase: possible cloned authenticator",
        ));
    }
    Ok(ad.sign_count)
}

/// A minimal software authenticator (one P-256 credential) for tests of the relying party,
/// including the attacks a real authenticator would never produce.
#[cfg(any(test, feature = "test-support"))]
#[allow(
    clippy::unwrap_used,
    reason = "a software authenticator for tests: a failure should stop the test"
)]
pub mod testing {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    pub const UV: u8 = FLAG_USER_PRESENT | FLAG_USER_VERIFIED;
    pub const PRESENT_ONLY: u8 = FLAG_USER_PRESENT;

    pub struct SoftKey {
        key: EcdsaKeyPair,
        pub id: Vec<u8>,
        pub count: u32,
    }

    impl Default for SoftKey {
        fn default() -> Self {
            Self::new()
        }
    }

    impl SoftKey {
        pub fn new() -> Self {
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
                    .unwrap();
            Self {
                key: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
                    .unwrap(),
                id: palisade_crypto::random_bytes::<16>().to_vec(),
                count: 0,
            }
        }

        fn cose(&self) -> Vec<u8> {
            let point = self.key.public_key().as_ref();
            let map = Value::Map(vec![
                (Value::from(1), Value::from(2)),
                (Value::from(3), Value::from(-7)),
                (Value::from(-1), Value::from(1)),
                (Value::from(-2), Value::Bytes(point[1..33].to_vec())),
                (Value::from(-3), Value::Bytes(point[33..].to_vec())),
            ]);
            let mut out = Vec::new();
            ciborium::into_writer(&map, &mut out).unwrap();
            out
        }

        pub fn client_data(kind: &str, challenge: &[u8], origin: &str) -> Vec<u8> {
            serde_json::json!({"type": kind, "challenge": BASE64URL_NOPAD.encode(challenge), "origin": origin, "crossOrigin": false})
                .to_string()
                .into_bytes()
        }

        fn auth_data(&self, rp_id: &str, flags: u8, attested: bool) -> Vec<u8> {
            let mut ad = palisade_crypto::sha256(rp_id.as_bytes()).to_vec();
            ad.push(flags | if attested { FLAG_ATTESTED_DATA } else { 0 });
            ad.extend_from_slice(&self.count.to_be_bytes());
            if attested {
                ad.extend_from_slice(&[0u8; 16]);
                ad.extend_from_slice(&(self.id.len() as u16).to_be_bytes());
                ad.extend_from_slice(&self.id);
                ad.extend_from_slice(&self.cose());
            }
            ad
        }

        /// (clientDataJSON, attestationObject)
        pub fn register(
            &self,
            rp_id: &str,
            origin: &str,
            challenge: &[u8],
            flags: u8,
        ) -> (Vec<u8>, Vec<u8>) {
            let att = Value::Map(vec![
                (Value::from("fmt"), Value::from("none")),
                (Value::from("attStmt"), Value::Map(vec![])),
                (
                    Value::from("authData"),
                    Value::Bytes(self.auth_data(rp_id, flags, true)),
                ),
            ]);
            let mut out = Vec::new();
            ciborium::into_writer(&att, &mut out).unwrap();
            (Self::client_data("webauthn.create", challenge, origin), out)
        }

        /// (clientDataJSON, authenticatorData, signature)
        pub fn assert(
            &mut self,
            rp_id: &str,
            origin: &str,
            challenge: &[u8],
        ) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
            self.count += 1;
            let cd = Self::client_data("webauthn.get", challenge, origin);
            let ad = self.auth_data(rp_id, FLAG_USER_PRESENT | FLAG_USER_VERIFIED, false);
            let mut signed = ad.clone();
            signed.extend_from_slice(&palisade_crypto::sha256(&cd));
            let sig = self.key.sign(&SystemRandom::new(), &signed).unwrap();
            (cd, ad, sig.as_ref().to_vec())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{SoftKey, UV};
    use super::*;

    fn rp() -> RelyingParty {
        RelyingParty {
            id: "localhost".into(),
            origin: None,
        }
    }

    #[test]
    fn registration_and_assertion_round_trip() {
        let mut k = SoftKey::new();
        let (cd, att) = k.register("localhost", "https://localhost:8443", b"challenge-1", UV);
        let cred = verify_registration(&rp(), b"challenge-1", &cd, &att).unwrap();
        assert_eq!(cred.id, k.id);
        assert_eq!(cred.public_key.algorithm, ALG_ES256);
        let (cd, ad, sig) = k.assert("localhost", "https://localhost:8443", b"challenge-2");
        assert_eq!(
            verify_assertion(&rp(), b"challenge-2", &cd, &ad, &sig, &cred.public_key, 0),
            Ok(1)
        );
    }

    #[test]
    fn registration_attacks_are_refused() {
        let k = SoftKey::new();
        let cases = [
            (
                "phishing origin",
                k.register("localhost", "https://evil.example", b"c", UV),
            ),
            (
                "other RP",
                k.register("evil.example", "https://localhost:8443", b"c", UV),
            ),
            (
                "no user verification",
                k.register(
                    "localhost",
                    "https://localhost:8443",
                    b"c",
                    FLAG_USER_PRESENT,
                ),
            ),
            (
                "replayed challenge",
                k.register("localhost", "https://localhost:8443", b"old", UV),
            ),
        ];
        for (name, (cd, att)) in cases {
            assert!(
                verify_registration(&rp(), b"c", &cd, &att).is_err(),
                "{name}"
            );
        }
        let (_, att) = k.register("localhost", "https://localhost:8443", b"c", UV);
        let wrong_type = SoftKey::client_data("webauthn.get", b"c", "https://localhost:8443");
        assert!(verify_registration(&rp(), b"c", &wrong_type, &att).is_err());
    }

    #[test]
    fn assertion_attacks_are_refused() {
        let mut k = SoftKey::new();
        let (cd, att) = k.register("localhost", "https://localhost", b"r", UV);
        let key = verify_registration(&rp(), b"r", &cd, &att)
            .unwrap()
            .public_key;
        let (cd, ad, mut sig) = k.assert("localhost", "https://localhost", b"c");
        assert!(
            verify_assertion(&rp(), b"other", &cd, &ad, &sig, &key, 0).is_err(),
            "challenge"
        );
        assert!(
            verify_assertion(&rp(), b"c", &cd, &ad, &sig, &key, 5).is_err(),
            "counter went backwards"
        );
        let other = SoftKey::new();
        let (cd2, att2) = other.register("localhost", "https://localhost", b"r", UV);
        let other_key = verify_registration(&rp(), b"r", &cd2, &att2)
            .unwrap()
            .public_key;
        assert!(
            verify_assertion(&rp(), b"c", &cd, &ad, &sig, &other_key, 0).is_err(),
            "another key"
        );
        let last = sig.len() - 1;
        sig[last] ^= 1;
        assert!(
            verify_assertion(&rp(), b"c", &cd, &ad, &sig, &key, 0).is_err(),
            "tampered signature"
        );
    }

    #[test]
    fn origins() {
        let dev = rp();
        assert!(dev.origin_ok("https://localhost:1234"));
        assert!(dev.origin_ok("https://localhost"));
        assert!(!dev.origin_ok("http://localhost:1234"));
        assert!(!dev.origin_ok("https://localhost.evil.example"));
        assert!(!dev.origin_ok("https://localhost:12x"));
        let prod = RelyingParty {
            id: "example.com".into(),
            origin: Some("https://example.com".into()),
        };
        assert!(prod.origin_ok("https://example.com"));
        assert!(!prod.origin_ok("https://example.com:8443"));
    }
}
