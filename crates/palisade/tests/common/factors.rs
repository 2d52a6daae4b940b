//! Second factors as a user sets them up and uses them: a TOTP app (codes computed from the
//! secret the page shows), recovery codes, and a software passkey with user verification.

use super::*;
use data_encoding::BASE64URL_NOPAD as B64;
use palisade_identity::webauthn::testing::{SoftKey, UV};
use serde_json::{Value, json};

/// The TOTP code `step_offset` time steps from now.
pub(crate) fn totp_code(secret_b32: &str, step_offset: i64) -> String {
    use palisade_identity::totp;
    let secret = data_encoding::BASE32_NOPAD
        .decode(secret_b32.as_bytes())
        .unwrap();
    let now = palisade_store::now_ms() / 1000;
    totp::code_at_step(&secret, totp::step_at(now) + step_offset)
}

/// Enrols an authenticator app for the signed-in `agent`: its secret and the recovery codes
/// shown once.
pub(crate) async fn enrol_totp(agent: &mut Agent) -> (String, Vec<String>) {
    let enrol = agent.get("/account/mfa/totp").await;
    assert_eq!(enrol.status, 200);
    let secret = enrol.element_text("totp-secret").expect("secret shown");
    let r = agent
        .post_form("/account/mfa/totp", &[("code", &totp_code(&secret, 0))])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let codes = r
        .body
        .split("<li>")
        .skip(1)
        .map(|s| s.split("</li>").next().unwrap().trim().to_owned())
        .collect();
    (secret, codes)
}

/// The WebAuthn challenge of an options answer.
pub(crate) fn challenge(options: &Response) -> Vec<u8> {
    let v = options.json();
    B64.decode(v["publicKey"]["challenge"].as_str().unwrap().as_bytes())
        .unwrap()
}

/// A registration body for `key` from its client data and attestation.
pub(crate) fn registration(key: &SoftKey, cd: Vec<u8>, att: Vec<u8>) -> Value {
    json!({ "name": "test key", "credential": {
        "id": B64.encode(&key.id), "rawId": B64.encode(&key.id), "type": "public-key",
        "response": { "clientDataJSON": B64.encode(&cd), "attestationObject": B64.encode(&att) },
        "clientExtensionResults": {},
    }})
}

/// A sign-in body (returning to `/account`) from an assertion.
pub(crate) fn assertion(
    key_id: &str,
    (cd, ad, sig): (Vec<u8>, Vec<u8>, Vec<u8>),
    user_handle: &str,
) -> Value {
    json!({ "return_to": "/account", "credential": {
        "id": key_id, "rawId": key_id, "type": "public-key",
        "response": {
            "clientDataJSON": B64.encode(&cd), "authenticatorData": B64.encode(&ad),
            "signature": B64.encode(&sig), "userHandle": user_handle,
        },
        "clientExtensionResults": {},
    }})
}

/// A user-verifying passkey registered for the signed-in `agent`, and the user handle the
/// server gave it.
pub(crate) async fn register_passkey(server: &Server, agent: &mut Agent) -> (SoftKey, String) {
    let origin = format!("https://localhost:{}", server.https.port());
    let options = agent
        .post_json("/account/passkeys/options", &json!({}))
        .await;
    assert_eq!(options.status, 200, "{}", options.body);
    let user_handle = options.json()["publicKey"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = SoftKey::new();
    let (cd, att) = key.register("localhost", &origin, &challenge(&options), UV);
    let r = agent
        .post_json("/account/passkeys", &registration(&key, cd, att))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    (key, user_handle)
}

/// Signs `agent` in with `key`, password-less.
pub(crate) async fn passkey_sign_in(
    server: &Server,
    agent: &mut Agent,
    key: &mut SoftKey,
    user_handle: &str,
) {
    let origin = format!("https://localhost:{}", server.https.port());
    agent.get("/login").await;
    let options = agent.post_json("/login/passkey/options", &json!({})).await;
    let signed = key.assert("localhost", &origin, &challenge(&options));
    let r = agent
        .post_json(
            "/login/passkey",
            &assertion(&B64.encode(&key.id), signed, user_handle),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}
