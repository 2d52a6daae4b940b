//! Signing keys (TOK-2, TOK-3): the JWKS publishes the active and the next key (public parts
//! only), `palisade keys` rotates — refusing to before the next key has been published for a
//! JWKS cache lifetime, unless forced — and revokes, the running server follows within seconds,
//! and every change is an audit event in the Merkle log. A resource server that cached the
//! JWKS before a rotation verifies the new key's tokens without fetching it again; the retired
//! key's tokens stay valid until that key is revoked, and end at once when it is.

use crate::common::flow::introspect;
use crate::common::*;
use std::time::Duration;

async fn jwks(server: &Server) -> (String, Vec<serde_json::Value>) {
    let r = server
        .http_client()
        .get(format!("{}/.well-known/jwks.json", server.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cache = r.headers()["cache-control"].to_str().unwrap().to_owned();
    let body: serde_json::Value = r.json().await.unwrap();
    (cache, body["keys"].as_array().unwrap().clone())
}

/// A client_credentials access token for `auth`.
async fn client_token(server: &Server, auth: &(String, String)) -> String {
    server.client_credentials_token(&auth.0, &auth.1).await
}

/// The `kid` a token's header names.
fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: serde_json::Value = serde_json::from_slice(
        &data_encoding::BASE64URL_NOPAD
            .decode(header.as_bytes())
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

fn kids(keys: &[serde_json::Value]) -> Vec<String> {
    keys.iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn signing_keys_rotate_and_revoke(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let (cache, keys) = jwks(&server).await;
    assert_eq!(cache, "public, max-age=3600");
    assert_eq!(keys.len(), 2, "the active key and the next one");
    for k in &keys {
        assert_eq!(
            (k["kty"].as_str(), k["crv"].as_str()),
            (Some("OKP"), Some("Ed25519"))
        );
        assert_eq!(
            (k["alg"].as_str(), k["use"].as_str()),
            (Some("EdDSA"), Some("sig"))
        );
        assert!(k.get("d").is_none(), "no private part is ever published");
    }

    let out = server.cli(&["keys", "list"]);
    assert!(out.status.success());
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let active = listed.iter().find(|k| k["state"] == "active").unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(kids(&keys).contains(&active));

    // A resource server's view: it caches the JWKS now, and holds a token of the active key.
    let rs = server.register_client(&["--name", "rs", "--grant", "client_credentials"]);
    let rs_auth = (
        rs["client_id"].as_str().unwrap().to_owned(),
        rs["client_secret"].as_str().unwrap().to_owned(),
    );
    let cached_jwks = server.published_keys().await;
    let old_token = client_token(&server, &rs_auth).await;
    assert_eq!(kid_of(&old_token), active);

    // The next key was published a moment ago: clients may not have it yet.
    let out = server.cli(&["keys", "rotate"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));

    let out = server.cli(&["keys", "rotate", "--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rotated = eventually(
        Duration::from_secs(30),
        "the new next key published",
        || async {
            let (_, keys) = jwks(&server).await;
            (keys.len() == 3).then_some(kids(&keys))
        },
    )
    .await;
    assert!(rotated.contains(&active), "the retired key stays published");
    // Tokens now come from the pre-published key, which the cached JWKS already holds.
    let new_token = eventually(
        Duration::from_secs(30),
        "tokens signed by the new key",
        || async {
            let token = client_token(&server, &rs_auth).await;
            (kid_of(&token) != active).then_some(token)
        },
    )
    .await;
    let issuer = format!("https://localhost:{}", server.https.port());
    palisade_jose::verify::verify(
        &new_token,
        &cached_jwks,
        &palisade_jose::verify::Expectations {
            typ: "at+jwt",
            issuer: &issuer,
            audience: None,
            now: palisade_store::now_ms() / 1000,
            skew_seconds: 5,
        },
    )
    .expect("a JWKS cached before the rotation verifies the new key's tokens");
    assert!(
        introspect(&server, &rs_auth, &old_token).await,
        "the retired key's tokens stay valid"
    );

    let out = server.cli(&["keys", "revoke", &active]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually(
        Duration::from_secs(30),
        "the revoked key withdrawn",
        || async {
            let (_, keys) = jwks(&server).await;
            (!kids(&keys).contains(&active)).then_some(())
        },
    )
    .await;
    assert!(
        !introspect(&server, &rs_auth, &old_token).await,
        "a revoked key's tokens end at once"
    );
    assert!(introspect(&server, &rs_auth, &new_token).await);

    // The first start's two keys and both changes are in the audit log.
    let db = server.db().await;
    eventually(
        Duration::from_secs(30),
        "the key events in the log",
        || async {
            let rows: Vec<(String, Option<i64>)> = sqlx::query_as(
            "SELECT action, log_index FROM security_events WHERE action LIKE 'keys.%' ORDER BY seq",
        )
        .fetch_all(db.pool())
        .await
        .unwrap();
            let actions: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
            let expected = [
                "keys.signing.created",
                "keys.signing.created",
                "keys.signing.rotated",
                "keys.signing.revoked",
            ];
            (actions == expected && rows.iter().all(|r| r.1.is_some())).then_some(())
        },
    )
    .await;
}

on_both_backends!(signing_keys_rotate_and_revoke);
