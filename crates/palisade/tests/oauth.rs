//! The OAuth provider over TLS (OAU-3, OAU-4, OAU-8, OAU-11, TOK-1, TOK-5): metadata with the
//! exact issuer, client credentials for registered confidential clients only, RFC 9068 access
//! tokens signed by a published key, RFC 6749 errors with trace ids, introspection, and the
//! audit ingest accepting a token granting `audit:write`.

use crate::common::*;
use palisade_jose::verify::{Expectations, verify};

struct Registered {
    id: String,
    secret: Option<String>,
}

fn register(server: &Server, args: &[&str]) -> Registered {
    let v = server.register_client(args);
    Registered {
        id: v["client_id"].as_str().unwrap().to_owned(),
        secret: v["client_secret"].as_str().map(str::to_owned),
    }
}

fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        data_encoding::BASE64.encode(format!("{id}:{secret}").as_bytes())
    )
}

async fn client_credentials_introspection_and_errors(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let http = server.http_client();
    let base = server.base();
    let issuer = format!("https://localhost:{}", server.https.port());

    let meta = server
        .fetch_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(
        meta["issuer"],
        issuer.as_str(),
        "the issuer matches exactly"
    );
    assert_eq!(meta["token_endpoint"], format!("{issuer}/oauth/token"));
    let grants = meta["grant_types_supported"].as_array().unwrap();
    assert!(grants.contains(&"client_credentials".into()));

    let billing = register(
        &server,
        &[
            "--name",
            "billing",
            "--grant",
            "client_credentials",
            "--scope",
            "audit:write",
        ],
    );
    let secret = billing.secret.clone().unwrap();
    let poster = register(
        &server,
        &[
            "--name",
            "poster",
            "--auth-method",
            "client_secret_post",
            "--grant",
            "client_credentials",
        ],
    );
    let public = register(
        &server,
        &[
            "--name",
            "spa",
            "--auth-method",
            "none",
            "--grant",
            "authorization_code",
            "--redirect-uri",
            "https://app.example/cb",
        ],
    );
    assert!(public.secret.is_none());
    // Registration policy: no plain-http redirect URIs off loopback, no unknown scopes.
    for bad in [
        vec![
            "--name",
            "x",
            "--grant",
            "authorization_code",
            "--redirect-uri",
            "http://app.example/cb",
        ],
        vec![
            "--name",
            "x",
            "--grant",
            "client_credentials",
            "--scope",
            "everything",
        ],
        vec![
            "--name",
            "x",
            "--auth-method",
            "none",
            "--grant",
            "client_credentials",
        ],
    ] {
        assert!(
            !server
                .cli(&[&["clients", "create"], &bad[..]].concat())
                .status
                .success(),
            "{bad:?}"
        );
    }

    let token_request = |auth: Option<String>, form: &str| {
        let mut req = http
            .post(format!("{base}/oauth/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_owned());
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };

    // Basic authentication.
    let r = token_request(
        Some(basic(&billing.id, &secret)),
        "grant_type=client_credentials",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "audit:write");
    assert_eq!(body["expires_in"], 600);
    let token = body["access_token"].as_str().unwrap().to_owned();

    // The token is an RFC 9068 JWT signed by a key of the published JWKS.
    let keys = server.published_keys().await;
    let claims = verify(
        &token,
        &keys,
        &Expectations {
            typ: "at+jwt",
            issuer: &issuer,
            audience: Some(&format!("{issuer}/api")),
            now: palisade_store::now_ms() / 1000,
            skew_seconds: 30,
        },
    )
    .unwrap();
    assert_eq!(claims["client_id"], billing.id.as_str());
    assert_eq!(claims["sub"], billing.id.as_str());
    assert!(claims["jti"].as_str().unwrap().len() >= 32);

    // Post authentication, and the client's registered method only.
    let poster_form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        poster.id,
        poster.secret.clone().unwrap()
    );
    let r = token_request(None, &poster_form).await.unwrap();
    assert_eq!(r.status(), 200);
    let r = token_request(
        None,
        &format!(
            "grant_type=client_credentials&client_id={}&client_secret={secret}",
            billing.id
        ),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401, "billing is registered for Basic");

    // Errors: RFC 6749 JSON with the trace id, never cached; Basic failures are challenged.
    let r = token_request(
        Some(basic(&billing.id, "wrong")),
        "grant_type=client_credentials",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        r#"Basic realm="palisade", charset="UTF-8""#
    );
    assert_eq!(r.headers()["cache-control"], "no-store");
    let trace = r.headers()["x-trace-id"].to_str().unwrap().to_owned();
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (e["error"].as_str(), e["trace_id"].as_str()),
        (Some("invalid_client"), Some(trace.as_str()))
    );
    let auth = || Some(basic(&billing.id, &secret));
    for (form, code) in [
        (
            "grant_type=password&username=a&password=b",
            "unsupported_grant_type",
        ),
        ("grant_type=implicit", "unsupported_grant_type"),
        (
            "grant_type=client_credentials&scope=openid",
            "invalid_scope",
        ),
        (
            "grant_type=client_credentials&scope=audit:write%20admin",
            "invalid_scope",
        ),
        (
            "grant_type=client_credentials&resource=https://evil.example/api",
            "invalid_target",
        ),
        (
            "grant_type=client_credentials&grant_type=client_credentials",
            "invalid_request",
        ),
        ("scope=audit:write", "invalid_request"),
    ] {
        let r = token_request(auth(), form).await.unwrap();
        assert_eq!(r.status(), 400, "{form}");
        let e: serde_json::Value = r.json().await.unwrap();
        assert_eq!(e["error"], code, "{form}");
    }
    let json_body = http
        .post(format!("{base}/oauth/token"))
        .header("authorization", basic(&billing.id, &secret))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), 400);
    let r = token_request(
        None,
        &format!("grant_type=client_credentials&client_id={}", public.id),
    )
    .await
    .unwrap();
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        e["error"], "unauthorized_client",
        "public clients get no client credentials"
    );

    // Introspection: client-authenticated; a tampered token is simply inactive.
    let introspect = |auth: Option<String>, token: &str| {
        let mut req = http
            .post(format!("{base}/oauth/introspect"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };
    let r = introspect(auth(), &token).await.unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (v["active"].as_bool(), v["scope"].as_str()),
        (Some(true), Some("audit:write"))
    );
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    let v: serde_json::Value = introspect(auth(), &tampered)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v, serde_json::json!({"active": false}));
    assert_eq!(introspect(None, &token).await.unwrap().status(), 401);

    // The audit ingest accepts the token (it grants audit:write) and refuses a token without it.
    let ingest = |bearer: &str| {
        http.post(format!("{base}/audit/events"))
            .header("authorization", format!("Bearer {bearer}"))
            .json(&serde_json::json!({"action": "billing.invoice.sent", "outcome": "success"}))
            .send()
    };
    assert_eq!(ingest(&token).await.unwrap().status(), 201);
    let poster_token: serde_json::Value = token_request(None, &poster_form)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refused = ingest(poster_token["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(
        refused.json::<serde_json::Value>().await.unwrap()["error"],
        "insufficient_scope"
    );
    assert_eq!(ingest(&tampered).await.unwrap().status(), 401);

    // OAU-11: issuance and failed client authentication are audited; nothing secret is logged.
    let actions: Vec<String> = server.events().await.into_iter().map(|e| e.0).collect();
    assert!(actions.iter().any(|a| a == "oauth.token.issued"));
    assert!(
        actions
            .iter()
            .any(|a| a == "oauth.client.authentication_failed")
    );
    server.logs_flushed().await;
    let logs = server.logs();
    for s in [&secret, &token] {
        assert!(!logs.contains(s.as_str()), "a secret reached the logs");
    }
}

on_both_backends!(client_credentials_introspection_and_errors);

/// OAU-4: `private_key_jwt` (RFC 7523): an assertion signed with the client's registered key,
/// for this server, used once. Replays, other audiences, other keys and the wrong method fail.
async fn private_key_jwt_clients(backend: Backend) {
    use palisade_jose::keys::{Algorithm, SigningKey};
    let server = Server::start_with(Options::on(backend)).await;
    let issuer = format!("https://localhost:{}", server.https.port());
    let key = SigningKey::generate(Algorithm::ES256).unwrap().0;
    let jwks_path = server.dir.path().join("client-jwks.json");
    std::fs::write(
        &jwks_path,
        serde_json::json!({ "keys": [key.public().jwk()] }).to_string(),
    )
    .unwrap();
    let client = register(
        &server,
        &[
            "--name",
            "signer",
            "--auth-method",
            "private_key_jwt",
            "--grant",
            "client_credentials",
            "--scope",
            "audit:write",
            "--jwks-file",
            jwks_path.to_str().unwrap(),
        ],
    );
    assert!(
        client.secret.is_none(),
        "no secret for a key-authenticated client"
    );
    let assertion = |signer: &SigningKey, aud: &str, jti: &str| {
        let now = palisade_store::now_ms() / 1000;
        let claims = serde_json::json!({
            "iss": client.id, "sub": client.id, "aud": aud, "jti": jti,
            "iat": now, "exp": now + 120,
        });
        palisade_jose::jws::sign(signer, "JWT", claims.as_object().unwrap())
    };
    let token = |assertion: String| {
        let http = server.http_client();
        let url = format!("{}/oauth/token", server.base());
        async move {
            http.post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encode_form(&[
                    ("grant_type", "client_credentials"),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &assertion),
                ]))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let token_endpoint = format!("{issuer}/oauth/token");
    let good = assertion(&key, &token_endpoint, "jti-1");
    assert_eq!(token(good.clone()).await, 200);
    assert_eq!(token(good).await, 401, "an assertion is used once");
    assert_eq!(
        token(assertion(&key, &issuer, "jti-2")).await,
        200,
        "the issuer is a valid audience"
    );
    assert_eq!(
        token(assertion(&key, "https://other.example/token", "jti-3")).await,
        401
    );
    let stranger = SigningKey::generate(Algorithm::ES256).unwrap().0;
    assert_eq!(
        token(assertion(&stranger, &token_endpoint, "jti-4")).await,
        401
    );
    let secret_attempt = server
        .http_client()
        .post(format!("{}/oauth/token", server.base()))
        .basic_auth(&client.id, Some("guess"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(secret_attempt.status(), 401, "only the registered method");
}

on_both_backends!(private_key_jwt_clients);

/// OAU-9: dynamic registration (RFC 7591) behind an initial access token, the registration
/// policy, and management of one's own registration (RFC 7592).
/// OAU-9: with `oauth.registration_allowed_hosts` set, registration and RFC 7592 updates accept
/// redirect URIs on those hosts only — exactly those names, not their subdomains nor names that
/// merely begin with them — and a refused update leaves the client as it was.
async fn registration_keeps_to_the_redirect_allow_list(backend: Backend) {
    let server = Server::start_with(
        Options::on(backend)
            .env("PALISADE_OAUTH__OPEN_REGISTRATION", "true")
            .env(
                "PALISADE_OAUTH__REGISTRATION_ALLOWED_HOSTS",
                r#"["app.example"]"#,
            ),
    )
    .await;
    let http = server.http_client();
    let base = server.base();
    let metadata = |uri: &str| {
        serde_json::json!({
            "client_name": "Listed", "redirect_uris": [uri],
            "grant_types": ["authorization_code"], "token_endpoint_auth_method": "none",
            "scope": "openid",
        })
    };
    for host in [
        "evil.example",
        "sub.app.example",
        "app.example.evil.example",
    ] {
        let r = http
            .post(format!("{base}/oauth/register"))
            .json(&metadata(&format!("https://{host}/cb")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{host}");
        let e: serde_json::Value = r.json().await.unwrap();
        assert_eq!(e["error"], "invalid_redirect_uri", "{host}: {e}");
        assert_eq!(
            e["error_description"],
            format!("redirect URI host `{host}` is not allowed")
        );
    }
    let r = http
        .post(format!("{base}/oauth/register"))
        .json(&metadata("https://app.example/cb"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let reg: serde_json::Value = r.json().await.unwrap();
    let management = reg["registration_client_uri"]
        .as_str()
        .unwrap()
        .replace(&format!("https://localhost:{}", server.https.port()), &base);
    let token = reg["registration_access_token"].as_str().unwrap();
    let mut moved = metadata("https://evil.example/cb");
    moved["client_id"] = reg["client_id"].clone();
    let r = http
        .put(&management)
        .bearer_auth(token)
        .json(&moved)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let read: serde_json::Value = http
        .get(&management)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        read["redirect_uris"],
        serde_json::json!(["https://app.example/cb"])
    );
}

async fn dynamic_registration(backend: Backend) {
    let initial = "initial-access-token-for-the-tests-0123456789";
    let server = Server::start_with(
        Options::on(backend).accepting_key("PALISADE_OAUTH__REGISTRATION_TOKEN_SHA256", initial),
    )
    .await;
    let http = server.http_client();
    let base = server.base();
    let register = |token: Option<&str>, body: serde_json::Value| {
        let mut req = http.post(format!("{base}/oauth/register")).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let metadata = serde_json::json!({
        "client_name": "Dynamic", "redirect_uris": ["https://app.example/cb"],
        "grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_basic",
        "scope": "social:read", "logo_uri": "https://app.example/logo.png",
    });
    // RFC 7591 §3, RFC 6750 §3: registration without the initial access token is told what
    // it needs; a wrong one is an invalid token.
    for (token, challenge, says) in [
        (
            None,
            r#"Bearer realm="palisade""#,
            "Registration needs an initial access token, sent as a Bearer token (RFC 7591 §3).",
        ),
        (
            Some("wrong-token"),
            r#"Bearer realm="palisade", error="invalid_token""#,
            "The initial access token is not valid.",
        ),
    ] {
        let r = register(token, metadata.clone()).await.unwrap();
        assert_eq!(r.status(), 401, "{token:?}");
        assert_eq!(r.headers()["www-authenticate"], challenge);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(
            (body["error"].as_str(), body["error_description"].as_str()),
            (Some("invalid_token"), Some(says))
        );
    }
    for (bad, code) in [
        (
            serde_json::json!({"redirect_uris": ["http://app.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            serde_json::json!({"redirect_uris": ["https://app.example/cb"], "scope": "root"}),
            "invalid_client_metadata",
        ),
        (
            serde_json::json!({"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "tls_client_auth"}),
            "invalid_client_metadata",
        ),
        // AUD-1: the power to write audit events is not for whoever registers a client.
        (
            serde_json::json!({"redirect_uris": ["https://app.example/cb"], "grant_types": ["client_credentials"], "scope": "audit:write"}),
            "invalid_client_metadata",
        ),
    ] {
        let r = register(Some(initial), bad).await.unwrap();
        assert_eq!(r.status(), 400);
        let e: serde_json::Value = r.json().await.unwrap();
        assert_eq!(e["error"], code);
    }
    assert!(
        !server
            .events()
            .await
            .iter()
            .any(|e| e.0 == "oauth.client.registered"),
        "nothing was registered"
    );
    let r = register(Some(initial), metadata).await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let reg: serde_json::Value = r.json().await.unwrap();
    let (id, secret) = (
        reg["client_id"].as_str().unwrap(),
        reg["client_secret"].as_str().unwrap(),
    );
    let management = reg["registration_client_uri"]
        .as_str()
        .unwrap()
        .replace(&format!("https://localhost:{}", server.https.port()), &base);
    let reg_token = reg["registration_access_token"].as_str().unwrap();

    // The new client works at once.
    let t = http
        .post(format!("{base}/oauth/token"))
        .basic_auth(id, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(t.status(), 200);

    // RFC 7592: read, update, delete with the registration access token only.
    let read = |token: &str| http.get(&management).bearer_auth(token).send();
    let r = read("not-the-token").await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        r#"Bearer realm="palisade", error="invalid_token""#
    );
    let r = http.get(&management).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        r#"Bearer realm="palisade""#
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("registration access token"),
        "{body}"
    );
    assert_eq!(
        read(secret).await.unwrap().status(),
        401,
        "the client secret is not the registration token"
    );
    let current: serde_json::Value = read(reg_token).await.unwrap().json().await.unwrap();
    assert_eq!(
        (current["client_id"].as_str(), current.get("client_secret")),
        (Some(id), None)
    );
    let update = |scope: &str| {
        http.put(&management)
            .bearer_auth(reg_token)
            .json(&serde_json::json!({
                "client_id": id, "client_name": "Renamed", "redirect_uris": ["https://app.example/cb2"],
                "grant_types": ["client_credentials"], "scope": scope,
            }))
            .send()
    };
    let r = update("audit:write").await.unwrap();
    assert_eq!(r.status(), 400, "no service scope by updating either");
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_client_metadata"
    );
    let unchanged: serde_json::Value = read(reg_token).await.unwrap().json().await.unwrap();
    assert_eq!(unchanged["scope"], "social:read");
    let r = update("social:read").await.unwrap();
    assert_eq!(r.status(), 200);
    let updated: serde_json::Value = r.json().await.unwrap();
    assert_eq!(updated["client_name"], "Renamed");
    assert_eq!(
        updated["redirect_uris"],
        serde_json::json!(["https://app.example/cb2"])
    );
    assert_eq!(
        http.delete(&management)
            .bearer_auth(reg_token)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(read(reg_token).await.unwrap().status(), 401, "gone");
    let actions: Vec<String> = server.events().await.into_iter().map(|e| e.0).collect();
    for action in [
        "oauth.client.registered",
        "oauth.client.updated",
        "oauth.client.deleted",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action}");
    }
}

on_both_backends!(dynamic_registration);
on_both_backends!(registration_keeps_to_the_redirect_allow_list);

/// Client administration on the admin API: admin key only; the registration policy applies.
async fn clients_on_the_admin_api(backend: Backend) {
    let key = "admin-key-for-client-administration-0123";
    let server = Server::start_with(
        Options::on(backend).accepting_key("PALISADE_ADMIN__API_KEY_SHA256", key),
    )
    .await;
    let http = server.http_client();
    let url = format!("{}/admin/oauth/clients", server.base());
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(
        http.get(&url)
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let create = |body: serde_json::Value| http.post(&url).bearer_auth(key).json(&body).send();
    let bad = create(serde_json::json!({"grant_types": ["client_credentials"], "scope": "root"}))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let r = create(serde_json::json!({
        "client_name": "Billing", "grant_types": ["client_credentials"], "scope": "audit:write",
    }))
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let created: serde_json::Value = r.json().await.unwrap();
    let id = created["client_id"].as_str().unwrap().to_owned();
    assert!(created["client_secret"].is_string());
    let listed: Vec<serde_json::Value> = http
        .get(&url)
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        listed
            .iter()
            .any(|c| c["client_id"] == id.as_str() && c.get("client_secret").is_none())
    );
    let one = format!("{url}/{id}");
    assert_eq!(http.delete(&one).send().await.unwrap().status(), 401);
    assert_eq!(
        http.delete(&one)
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        http.delete(&one)
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

on_both_backends!(clients_on_the_admin_api);

/// OAU-9: dynamic registration is rate limited per client network, with `429` and
/// `Retry-After`; other addresses are unaffected.
async fn registration_is_rate_limited_per_address(backend: Backend) {
    let server = Server::start_with(
        Options::on(backend)
            .env("PALISADE_OAUTH__OPEN_REGISTRATION", "true")
            .env("PALISADE_OAUTH__REGISTRATION_PER_MINUTE", "3"),
    )
    .await;
    let metadata = serde_json::json!({
        "client_name": "Flood", "redirect_uris": ["https://app.example/cb"],
    });
    let register = |from: &str| {
        let url = format!("{}/oauth/register", server.base());
        server
            .http_client_from(Some(from.parse().unwrap()))
            .post(url)
            .json(&metadata)
            .send()
    };
    let since = std::time::Instant::now();
    let (accepted, _) = flood_until_limited(201, || async {
        let r = register("127.0.0.1").await.unwrap();
        (r.status().as_u16(), None)
    })
    .await;
    assert_within_rate(accepted, 3, 3, since);
    let r = register("127.0.0.1").await.unwrap();
    assert_eq!(r.status(), 429);
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["error"], "too_many_requests");
    let r = register("127.0.0.2").await.unwrap();
    assert_eq!(r.status(), 201, "another address is not limited");
}

on_both_backends!(registration_is_rate_limited_per_address);

/// TOK-5 end to end: forged and misdirected access tokens — `alg: none`, HS256 keyed with the
/// public key, an unknown `kid`, a `jku` or embedded `jwk`, and tokens validly signed by the
/// server's own key but expired beyond the skew, for another audience or issuer, or of another
/// type — are inactive at introspection and refused by a resource (the audit ingest). A token
/// with the right claims, signed the same way, is accepted: the checks are what refuse them.
async fn forged_and_misdirected_tokens_are_refused(backend: Backend) {
    use data_encoding::BASE64URL_NOPAD as B64;
    use palisade_jose::keys::{Algorithm, SigningKey};
    use serde_json::{Value, json};
    let server = Server::start_with(Options::on(backend)).await;
    let http = server.http_client();
    let base = server.base();
    let issuer = format!("https://localhost:{}", server.https.port());
    let rs = register(
        &server,
        &[
            "--name",
            "rs",
            "--grant",
            "client_credentials",
            "--scope",
            "audit:write",
        ],
    );
    let rs_auth = (rs.id.clone(), rs.secret.clone().unwrap());

    // The server's own signing key: tokens it signs reach the claim checks.
    let key = server.signing_key().await;
    let now = palisade_store::now_ms() / 1000;
    let claims = |edit: Value| {
        let mut c = json!({
            "iss": issuer, "sub": rs.id, "aud": format!("{issuer}/api"), "client_id": rs.id,
            "scope": "audit:write", "jti": palisade_crypto::random_token(),
            "iat": now, "exp": now + 600, "tenant": "default",
        });
        c.as_object_mut()
            .unwrap()
            .extend(edit.as_object().unwrap().clone());
        c.as_object().unwrap().clone()
    };
    let encode = |v: &Value| B64.encode(v.to_string().as_bytes());
    let attacker = SigningKey::generate(Algorithm::EdDSA).unwrap().0;
    let hand_signed = |signer: &SigningKey, header: Value| {
        let input = format!(
            "{}.{}",
            encode(&header),
            encode(&Value::Object(claims(json!({}))))
        );
        let sig = signer.sign(input.as_bytes());
        format!("{input}.{}", B64.encode(&sig))
    };
    let none = format!(
        "{}.{}.",
        encode(&json!({"alg": "none", "typ": "at+jwt", "kid": key.kid})),
        encode(&Value::Object(claims(json!({}))))
    );
    let hs256 = {
        let input = format!(
            "{}.{}",
            encode(&json!({"alg": "HS256", "typ": "at+jwt", "kid": key.kid})),
            encode(&Value::Object(claims(json!({}))))
        );
        let mac = palisade_crypto::hmac_sha256(&key.public().bytes, input.as_bytes());
        format!("{input}.{}", B64.encode(&mac))
    };
    let forged = [
        ("alg none", none),
        ("HS256 with the public key", hs256),
        (
            "unknown kid",
            palisade_jose::jws::sign(&attacker, "at+jwt", &claims(json!({}))),
        ),
        (
            "jku",
            hand_signed(
                &attacker,
                json!({"alg": "EdDSA", "typ": "at+jwt", "kid": attacker.kid, "jku": "https://evil.example/jwks"}),
            ),
        ),
        (
            "embedded jwk",
            hand_signed(
                &attacker,
                json!({"alg": "EdDSA", "typ": "at+jwt", "kid": key.kid, "jwk": attacker.public().jwk()}),
            ),
        ),
        (
            "expired beyond the skew",
            palisade_jose::jws::sign(
                &key,
                "at+jwt",
                &claims(json!({"iat": now - 900, "exp": now - 200})),
            ),
        ),
        (
            "another audience",
            palisade_jose::jws::sign(
                &key,
                "at+jwt",
                &claims(json!({"aud": "https://other.example/api"})),
            ),
        ),
        (
            "another issuer",
            palisade_jose::jws::sign(
                &key,
                "at+jwt",
                &claims(json!({"iss": "https://evil.example"})),
            ),
        ),
        (
            "an ID token",
            palisade_jose::jws::sign(&key, "JWT", &claims(json!({}))),
        ),
    ];
    let introspect = |token: String| {
        let auth = rs_auth.clone();
        let url = format!("{base}/oauth/introspect");
        let http = http.clone();
        async move {
            let v: Value = http
                .post(url)
                .basic_auth(&auth.0, Some(&auth.1))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encode_form(&[("token", &token)]))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["active"].as_bool().unwrap()
        }
    };
    let ingest = |token: String| {
        http.post(format!("{base}/audit/events"))
            .bearer_auth(token)
            .json(&json!({"action": "forgery.attempt", "outcome": "success"}))
            .send()
    };
    for (attack, token) in forged {
        assert!(!introspect(token.clone()).await, "{attack}: inactive");
        assert_eq!(
            ingest(token).await.unwrap().status(),
            401,
            "{attack}: refused"
        );
    }
    let genuine = palisade_jose::jws::sign(&key, "at+jwt", &claims(json!({})));
    assert!(
        introspect(genuine.clone()).await,
        "the control token is active"
    );
    assert_eq!(ingest(genuine).await.unwrap().status(), 201);
}

on_both_backends!(forged_and_misdirected_tokens_are_refused);
