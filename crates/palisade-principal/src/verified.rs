//! Access tokens whose signature and claims already verified on this node, so that a client
//! presenting the same token again does not pay for a signature check each time (an Ed25519
//! verification is most of what authenticating a request costs).
//!
//! An entry is keyed by the SHA-256 of the whole token — never by a part of it, or a token with
//! someone's signature and other claims would find the entry — so the map holds no usable
//! token. It is trusted only while the key that signed the token is still published (a revoked
//! key ends its tokens at once) and until the token expires. What can change while a token
//! lives (revocation, the account, a DPoP proof) is checked on every request all the same.

use crate::claims::AccessClaims;
use std::collections::HashMap;
use std::sync::Mutex;

const MAX_ENTRIES: usize = 50_000;

struct Entry {
    kid: String,
    claims: AccessClaims,
}

#[derive(Default)]
pub(crate) struct VerifiedTokens(Mutex<HashMap<[u8; 32], Entry>>);

/// What a token is known by here.
pub(crate) struct Digest([u8; 32]);

impl Digest {
    pub(crate) fn of(token: &str) -> Self {
        Self(palisade_crypto::sha256(token.as_bytes()))
    }
}

impl VerifiedTokens {
    /// The claims of the token if it verified before, its key is still published (`published`
    /// says) and it has not expired by `now` (Unix seconds, with `skew`).
    pub(crate) fn get(
        &self,
        token: &Digest,
        now: i64,
        skew: i64,
        published: impl Fn(&str) -> bool,
    ) -> Option<AccessClaims> {
        let (kid, claims) = {
            let entries = self.0.lock().expect("verified tokens");
            let entry = entries.get(&token.0)?;
            (entry.kid.clone(), entry.claims.clone())
        };
        (claims.exp + skew > now && published(&kid)).then_some(claims)
    }

    /// Remembers that the token, signed by `kid`, verified with these claims.
    pub(crate) fn insert(&self, token: Digest, kid: String, claims: AccessClaims, now: i64) {
        let digest = token.0;
        let mut entries = self.0.lock().expect("verified tokens");
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| e.claims.exp > now);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(digest, Entry { kid, claims });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> AccessClaims {
        serde_json::from_value(serde_json::json!({
            "iss": "https://issuer.example", "sub": "u1", "aud": "https://issuer.example/api",
            "client_id": "app", "scope": "social:read", "jti": "j", "iat": 1, "exp": exp,
            "tenant": "default" }))
        .unwrap()
    }

    const TOKEN: &str = "header.payload.signature";

    #[test]
    fn a_token_is_trusted_only_while_its_key_is_published_and_it_lives() {
        let verified = VerifiedTokens::default();
        verified.insert(Digest::of(TOKEN), "k1".into(), claims(100), 50);
        let published = |kid: &str| kid == "k1";
        assert_eq!(
            verified.get(&Digest::of(TOKEN), 99, 0, published),
            Some(claims(100))
        );
        assert_eq!(
            verified.get(&Digest::of(TOKEN), 100, 0, published),
            None,
            "expired"
        );
        assert_eq!(
            verified.get(&Digest::of(TOKEN), 109, 10, published),
            Some(claims(100)),
            "within skew"
        );
        assert_eq!(
            verified.get(&Digest::of(TOKEN), 99, 0, |_| false),
            None,
            "key revoked"
        );
    }

    #[test]
    fn only_the_whole_token_finds_its_entry() {
        let verified = VerifiedTokens::default();
        verified.insert(Digest::of(TOKEN), "k1".into(), claims(100), 50);
        // The same signature under other claims, or any other change, is a stranger.
        for other in [
            "header.other.signature",
            "header.payload.signaturE",
            "header.payload",
        ] {
            assert_eq!(
                verified.get(&Digest::of(other), 60, 0, |_| true),
                None,
                "{other}"
            );
        }
    }

    #[test]
    fn a_full_map_drops_expired_entries_first() {
        let verified = VerifiedTokens::default();
        for i in 0..MAX_ENTRIES {
            let exp = if i == 0 { 1_000 } else { 10 };
            verified.insert(Digest::of(&format!("t{i}")), "k1".into(), claims(exp), 5);
        }
        verified.insert(Digest::of("newcomer"), "k1".into(), claims(1_000), 20);
        assert_eq!(
            verified.get(&Digest::of("t0"), 20, 0, |_| true),
            Some(claims(1_000))
        );
        assert_eq!(
            verified.get(&Digest::of("newcomer"), 20, 0, |_| true),
            Some(claims(1_000))
        );
        assert_eq!(verified.0.lock().unwrap().len(), 2);
    }
}
