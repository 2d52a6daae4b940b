//! Client authentication (OAU-4): exactly the method a client registered — HTTP Basic or the
//! form body with its secret (compared by digest), a `private_key_jwt` assertion (RFC 7523,
//! single use across nodes), the client certificate of a mutual-TLS connection (RFC 8705: an
//! SVID naming the registered SPIFFE ID, or the registered self-signed certificate), or nothing
//! for a public client.

use crate::clients::{AuthMethod, Client, ClientCache};
use crate::error::OAuthError;
use data_encoding::BASE64;
use palisade_cluster::ReplayStore;
use palisade_store::{Db, now_ms};

/// What authenticating a client looks things up in.
pub(crate) struct Known<'a> {
    pub db: &'a Db,
    pub cache: &'a ClientCache,
    pub replay: &'a ReplayStore,
    /// What a client assertion may name as its audience: the issuer, or the endpoint.
    pub audiences: &'a [String],
}

/// How a request presented its client credentials.
pub(crate) struct Presented {
    /// From `Authorization: Basic`.
    pub basic: Option<(String, String)>,
    /// From the form body.
    pub post_id: Option<String>,
    pub post_secret: Option<String>,
    /// A `client_assertion` of type `jwt-bearer` (RFC 7523).
    pub assertion: Option<String>,
    /// The client certificate of the connection, on the mTLS listener.
    pub certificate: Option<std::sync::Arc<palisade_tls::ca::PeerCertificate>>,
}

/// Longest lifetime accepted for a client assertion: they are meant to be made per request.
const MAX_ASSERTION_LIFETIME_S: i64 = 600;

/// RFC 7523: a JWT by the client, signed with one of its registered keys, naming this server
/// as audience, used once.
async fn authenticate_assertion(
    known: &Known<'_>,
    jwt: &str,
    claimed_id: Option<String>,
) -> Result<Client, OAuthError> {
    let refuse = || OAuthError::InvalidClient { basic: false };
    // The unverified `iss` only says which client's keys to verify with.
    let parts = palisade_jose::jws::split(jwt).ok_or_else(refuse)?;
    let unverified: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&parts.payload).map_err(|_| refuse())?;
    let id = unverified
        .get("iss")
        .and_then(|v| v.as_str())
        .ok_or_else(refuse)?
        .to_owned();
    if claimed_id.is_some_and(|c| c != id) {
        return Err(refuse());
    }
    let client = known.cache.find(known.db, &id).await?.ok_or_else(refuse)?;
    if client.auth_method != AuthMethod::PrivateKeyJwt {
        return Err(refuse());
    }
    let keys: Vec<_> = client
        .jwks
        .iter()
        .filter_map(palisade_jose::keys::PublicKey::from_jwk)
        .collect();
    let now = now_ms() / 1000;
    let claims = palisade_jose::verify::verify(
        jwt,
        &keys,
        &palisade_jose::verify::Expectations {
            typ: "JWT",
            issuer: &id,
            audience: None,
            now,
            skew_seconds: 30,
        },
    )
    .map_err(|_| refuse())?;
    let for_us = match claims.get("aud") {
        Some(serde_json::Value::String(a)) => known.audiences.contains(a),
        Some(serde_json::Value::Array(list)) => list.iter().any(|a| {
            a.as_str()
                .is_some_and(|a| known.audiences.iter().any(|x| x == a))
        }),
        _ => false,
    };
    let exp = claims.get("exp").and_then(|v| v.as_i64()).unwrap_or(0);
    let jti = claims
        .get("jti")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if claims.get("sub").and_then(|v| v.as_str()) != Some(id.as_str())
        || !for_us
        || jti.is_empty()
        || exp - now > MAX_ASSERTION_LIFETIME_S
    {
        return Err(refuse());
    }
    // Used once, on any node: the id is remembered until the assertion expires.
    let once = format!("{id}\n{jti}");
    if !known
        .replay
        .first_use("client_assertion", &once, (exp + 60) * 1000)
        .await?
    {
        return Err(refuse());
    }
    Ok(client)
}

/// RFC 6749 §2.3.1: `base64(urlencode(id) ":" urlencode(secret))`.
pub(crate) fn parse_basic(header: &str) -> Option<(String, String)> {
    let encoded = header.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(BASE64.decode(encoded.trim().as_bytes()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .ok()
            .map(|s| s.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

/// Authenticates the client of a token or introspection request: exactly one method, the one
/// the client registered, with the right secret.
pub(crate) async fn authenticate(
    known: &Known<'_>,
    presented: Presented,
) -> Result<Client, OAuthError> {
    if let Some(jwt) = presented.assertion {
        if presented.basic.is_some() || presented.post_secret.is_some() {
            return Err(OAuthError::InvalidRequest(
                "Use one client authentication method, not several.".into(),
            ));
        }
        return authenticate_assertion(known, &jwt, presented.post_id).await;
    }
    let basic = presented.basic.is_some();
    let refuse = || OAuthError::InvalidClient { basic };
    let (method, id, secret) = match (presented.basic, presented.post_id, presented.post_secret) {
        (Some(_), _, Some(_)) => {
            return Err(OAuthError::InvalidRequest(
                "Use one client authentication method, not several.".into(),
            ));
        }
        (Some((id, secret)), post_id, None) => {
            if post_id.is_some_and(|p| p != id) {
                return Err(OAuthError::InvalidRequest(
                    "The client_id does not match the authenticated client.".into(),
                ));
            }
            (AuthMethod::ClientSecretBasic, id, Some(secret))
        }
        (None, Some(id), Some(secret)) => (AuthMethod::ClientSecretPost, id, Some(secret)),
        (None, Some(id), None) => (AuthMethod::None, id, None),
        (None, None, _) => return Err(refuse()),
    };
    let client = known.cache.find(known.db, &id).await?.ok_or_else(refuse)?;
    // Only the client id in the form: a public client, or one whose credential is the
    // connection's certificate.
    if method == AuthMethod::None && client.auth_method.is_mutual_tls() {
        let registered = client.tls_client_certificate.as_deref();
        let presented = presented.certificate.as_deref();
        let proved = match client.auth_method {
            AuthMethod::TlsClientAuth => presented
                .and_then(|p| p.svid.as_ref())
                .is_some_and(|id| Some(id.to_string().as_str()) == registered),
            _ => presented.is_some_and(|p| {
                registered.is_some_and(|r| {
                    palisade_crypto::constant_time_eq(r.as_bytes(), p.thumbprint.as_bytes())
                })
            }),
        };
        return if proved { Ok(client) } else { Err(refuse()) };
    }
    if client.auth_method != method {
        return Err(refuse());
    }
    match (&client.secret_sha256, secret) {
        (Some(digest), Some(secret)) => {
            let given = palisade_crypto::sha256_hex(secret.as_bytes());
            if !palisade_crypto::constant_time_eq(digest.as_bytes(), given.as_bytes()) {
                return Err(refuse());
            }
        }
        (None, None) => {}
        _ => return Err(refuse()),
    }
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::{NewClient, Registrar, create, delete};
    use palisade_cluster::Bus;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let header = format!("Basic {}", BASE64.encode(b"my%20app:s%3Acret+x"));
        assert_eq!(
            parse_basic(&header),
            Some(("my app".into(), "s:cret x".into()))
        );
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
        assert_eq!(
            parse_basic(&format!("Basic {}", BASE64.encode(b"no-colon"))),
            None
        );
    }

    async fn clients_authenticate_only_as_registered(db: Db) {
        let (client, secret) = create(
            &db,
            NewClient {
                tenant_id: palisade_store::DEFAULT_TENANT.into(),
                name: "billing".into(),
                auth_method: AuthMethod::ClientSecretBasic,
                redirect_uris: vec![],
                grant_types: vec!["client_credentials".into()],
                scopes: vec!["audit:write".into()],
                jwks: vec![],
                backchannel_logout_uri: None,
                registered_by: Registrar::Admin,
                resource: None,
                tls_client_certificate: None,
            },
        )
        .await
        .unwrap();
        let secret = secret.unwrap();
        let (stored,): (String,) =
            sqlx::query_as("SELECT secret_sha256 FROM oauth_clients WHERE client_id = $1")
                .bind(&client.client_id)
                .fetch_one(db.pool())
                .await
                .unwrap();
        assert_ne!(stored, secret, "only the digest is stored");
        let replay = ReplayStore::in_database(db.clone());
        let authenticate = async |presented| {
            let cache = ClientCache::new(Bus::in_process());
            let known = Known {
                db: &db,
                cache: &cache,
                replay: &replay,
                audiences: &[],
            };
            super::authenticate(&known, presented).await
        };
        let basic = |id: &str, s: &str| Presented {
            basic: Some((id.to_owned(), s.to_owned())),
            post_id: None,
            post_secret: None,
            assertion: None,
            certificate: None,
        };
        let ok = authenticate(basic(&client.client_id, &secret))
            .await
            .unwrap();
        assert_eq!(ok.client_id, client.client_id);
        for bad in [
            basic(&client.client_id, "wrong"),
            basic("unknown", &secret),
            // Registered for Basic: the same secret in the body is refused.
            Presented {
                basic: None,
                post_id: Some(client.client_id.clone()),
                post_secret: Some(secret.clone()),
                assertion: None,
                certificate: None,
            },
            // No secret at all, as a public client would.
            Presented {
                basic: None,
                post_id: Some(client.client_id.clone()),
                post_secret: None,
                assertion: None,
                certificate: None,
            },
        ] {
            assert!(matches!(
                authenticate(bad).await,
                Err(OAuthError::InvalidClient { .. })
            ));
        }
        let both = Presented {
            basic: Some((client.client_id.clone(), secret.clone())),
            post_id: None,
            post_secret: Some(secret.clone()),
            assertion: None,
            certificate: None,
        };
        assert!(matches!(
            authenticate(both).await,
            Err(OAuthError::InvalidRequest(_))
        ));
        let bus = palisade_cluster::Bus::in_process();
        let cache = crate::clients::ClientCache::new(bus.clone());
        let revocations = palisade_principal::Revocations::new(db.clone(), bus);
        let deleted = delete(&db, &cache, &revocations, &client.client_id).await;
        assert_eq!(deleted.unwrap().as_deref(), Some("default"));
        assert!(
            authenticate(basic(&client.client_id, &secret))
                .await
                .is_err()
        );
    }
    palisade_store::both_backends!(clients_authenticate_only_as_registered);
}
