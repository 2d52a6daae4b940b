//! Standard Webhooks signatures (the `webhook-id`, `webhook-timestamp` and `webhook-signature`
//! headers): `v1,` followed by the base64 HMAC-SHA256 of `id.timestamp.body` under a secret
//! written `whsec_<base64>`. The receiver recomputes it over the exact bytes it received and
//! rejects stale timestamps; the id stays the same across retries so it can deduplicate.

use crate::Secret;
use data_encoding::BASE64;

/// A receiver's signing secret.
#[derive(Clone, Debug)]
pub struct WebhookSecret(Secret<Vec<u8>>);

impl WebhookSecret {
    /// `whsec_` and base64 of 24 to 64 random bytes, as the specification serialises it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let encoded = text
            .strip_prefix("whsec_")
            .ok_or("a webhook secret begins with whsec_")?;
        let bytes = BASE64
            .decode(encoded.as_bytes())
            .map_err(|_| "a webhook secret is whsec_ and base64")?;
        if !(24..=64).contains(&bytes.len()) {
            return Err("a webhook secret holds 24 to 64 bytes".into());
        }
        Ok(Self(Secret::new(bytes)))
    }

    /// The `webhook-signature` value for a message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut signed = format!("{id}.{timestamp}.").into_bytes();
        signed.extend_from_slice(body);
        let mac = crate::hmac_sha256(self.0.expose(), &signed);
        format!("v1,{}", BASE64.encode(&mac))
    }
}

/// The three headers of a message signed with `secret`.
pub fn headers(
    secret: &WebhookSecret,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> [(&'static str, String); 3] {
    [
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", secret.sign(id, timestamp, body)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specifications_vector_signs_as_published() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = secret.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(WebhookSecret::parse("whsec_c2hvcnQ=").is_err());
        assert_eq!(format!("{secret:?}"), "WebhookSecret([redacted])");
    }
}
