//! Compact JWS (RFC 7515): `base64url(header).base64url(payload).base64url(signature)`.

use crate::keys::SigningKey;
use data_encoding::BASE64URL_NOPAD;
use serde::Serialize;
use serde_json::json;

/// Signs `claims` (a JSON object) with `key`; the header names the key's algorithm and id and
/// the token type.
pub fn sign(key: &SigningKey, typ: &str, claims: &impl Serialize) -> String {
    let header = json!({ "alg": key.alg.as_str(), "kid": key.kid, "typ": typ });
    let payload = serde_json::to_vec(claims).expect("claims serialize");
    let signing_input = format!(
        "{}.{}",
        BASE64URL_NOPAD.encode(header.to_string().as_bytes()),
        BASE64URL_NOPAD.encode(&payload)
    );
    let signature = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", BASE64URL_NOPAD.encode(&signature))
}

/// A compact JWS split into its parts, nothing verified yet.
pub struct Parts<'a> {
    /// `header.payload`, the bytes the signature covers.
    pub signing_input: &'a str,
    pub header: Vec<u8>,
    pub payload: Vec<u8>,
    pub signature: Vec<u8>,
}

pub fn split(token: &str) -> Option<Parts<'_>> {
    let (signing_input, signature) = token.rsplit_once('.')?;
    let (header, payload) = signing_input.split_once('.')?;
    if payload.contains('.') {
        return None;
    }
    Some(Parts {
        signing_input,
        header: BASE64URL_NOPAD.decode(header.as_bytes()).ok()?,
        payload: BASE64URL_NOPAD.decode(payload.as_bytes()).ok()?,
        signature: BASE64URL_NOPAD.decode(signature.as_bytes()).ok()?,
    })
}
