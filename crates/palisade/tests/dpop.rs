//! DPoP (OAU-10, RFC 9449) over TLS: tokens bound to the client's key, server nonces, proofs
//! used once — and the attacks: a bound token replayed as a bearer token, with another key's
//! proof, with a replayed proof or with a proof for another token; a bound refresh token or
//! code spent without the key.

use crate::common::dpop_key::DpopKey;
use crate::common::flow::*;
use crate::common::*;
use palisade_jose::Algorithm;
use serde_json::{Value, json};

struct Answer {
    status: u16,
    body: Value,
    nonce: Option<String>,
    challenge: Option<String>,
}

async fn answer(r: reqwest::Response) -> Answer {
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (nonce, challenge) = (header("dpop-nonce"), header("www-authenticate"));
    let status = r.status().as_u16();
    Answer {
        status,
        body: r.json().await.unwrap_or_default(),
        nonce,
        challenge,
    }
}

/// POSTs a form to the token endpoint with an optional proof and Basic credentials.
async fn token_request(
    server: &Server,
    fields: &[(&str, &str)],
    proof: Option<String>,
    basic: Option<(&str, &str)>,
) -> Answer {
    let mut req = server
        .http_client()
        .post(format!("{}/oauth/token", server.base()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode_form(fields));
    if let Some(p) = proof {
        req = req.header("dpop", p);
    }
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    answer(req.send().await.unwrap()).await
}

/// GETs userinfo with `Authorization: <scheme> <token>` and an optional proof.
async fn userinfo_with(
    server: &Server,
    scheme: &str,
    token: &str,
    proof: Option<String>,
) -> Answer {
    let mut req = server
        .http_client()
        .get(format!("{}/oauth/userinfo", server.base()))
        .header("authorization", format!("{scheme} {token}"));
    if let Some(p) = proof {
        req = req.header("dpop", p);
    }
    answer(req.send().await.unwrap()).await
}

/// Exchanges `flow`'s code (a public client: no credentials) with an optional proof.
async fn exchange_with(server: &Server, flow: &Flow, code: &str, proof: Option<String>) -> Answer {
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", flow.verifier.as_str()),
        ("client_id", flow.client_id.as_str()),
    ];
    token_request(server, &fields, proof, None).await
}

async fn dpop_binds_tokens_to_the_clients_key(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let base = server.base();
    // Proofs name the URIs the server publishes (its issuer), whatever address was dialled.
    let issuer = format!("https://localhost:{}", server.https.port());
    let token_url = format!("{issuer}/oauth/token");
    let userinfo_url = format!("{issuer}/oauth/userinfo");
    let client_id = public_app(
        &server,
        "Phone app",
        &["openid", "email"],
        &["--grant", "refresh_token"],
    );
    let rs = server.register_client(&["--name", "resource", "--grant", "client_credentials"]);
    let rs_auth = (
        rs["client_id"].as_str().unwrap().to_owned(),
        rs["client_secret"].as_str().unwrap().to_owned(),
    );
    let key = DpopKey::new(Algorithm::ES256);
    let thief = DpopKey::new(Algorithm::ES256);

    let metadata = server.fetch_json("/.well-known/openid-configuration").await;
    assert_eq!(
        metadata["dpop_signing_alg_values_supported"],
        json!(["EdDSA", "ES256"])
    );

    let mut user = server.agent();
    let email = unique_email("dpop");
    user.sign_up(&email, PASSWORD).await;
    user.log_in(&email, PASSWORD).await;

    // A code requested for the key (dpop_jkt) is worth nothing without a proof of that key.
    let flow = Flow::new(&client_id, "openid email").with("dpop_jkt", Some(&key.jkt()));
    let code = code_for(&mut user, &flow).await;
    // The first proof lacks the server's nonce: use_dpop_nonce, with one to use.
    let r = exchange_with(
        &server,
        &flow,
        &code,
        Some(key.proof("POST", &token_url, None, None)),
    )
    .await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (400, Some("use_dpop_nonce")),
        "{}",
        r.body
    );
    let nonce = r.nonce.expect("a DPoP-Nonce header");
    // The thief's key, with the nonce, cannot exchange the code.
    let r = exchange_with(
        &server,
        &flow,
        &code,
        Some(thief.proof("POST", &token_url, Some(&nonce), None)),
    )
    .await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (400, Some("invalid_dpop_proof")),
        "{}",
        r.body
    );
    // …which burnt the code: a stolen code attempt leaves nothing to exchange.
    let r = exchange_with(
        &server,
        &flow,
        &code,
        Some(key.proof("POST", &token_url, Some(&nonce), None)),
    )
    .await;
    assert_eq!(r.body["error"], "invalid_grant", "{}", r.body);
    let code = code_for(&mut user, &flow).await;
    // A proof for another URI or method is refused.
    for (method, url) in [
        ("POST", format!("{issuer}/oauth/par")),
        ("GET", token_url.clone()),
        ("POST", format!("{base}/oauth/token")),
    ] {
        let r = exchange_with(
            &server,
            &flow,
            &code,
            Some(key.proof(method, &url, Some(&nonce), None)),
        )
        .await;
        assert_eq!(r.body["error"], "invalid_dpop_proof", "{method} {url}");
    }
    let code = code_for(&mut user, &flow).await;
    let r = exchange_with(
        &server,
        &flow,
        &code,
        Some(key.proof("POST", &token_url, Some(&nonce), None)),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["token_type"], "DPoP");
    assert!(
        r.nonce.is_some(),
        "every token answer carries a fresh nonce"
    );
    let access = r.body["access_token"].as_str().unwrap().to_owned();
    let refresh_token = r.body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(jwt_claims(&access)["cnf"]["jkt"], key.jkt());

    // A forged token (its signature altered) with a well-formed proof over it is refused before
    // anything is written: the proof's id is not stored, so forgeries cannot fill the store.
    let stored_proof_ids = async || {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM replay_ids")
            .fetch_one(server.db().await.pool())
            .await
            .unwrap();
        n
    };
    let before = stored_proof_ids().await;
    let forged = format!(
        "{}{}",
        &access[..access.len() - 2],
        if access.ends_with("AA") { "BB" } else { "AA" }
    );
    let r = userinfo_with(
        &server,
        "DPoP",
        &forged,
        Some(key.proof("GET", &userinfo_url, Some(&nonce), Some(&forged))),
    )
    .await;
    assert_eq!(r.status, 401, "a forged token");
    assert!(r.challenge.unwrap().contains("invalid_token"));
    assert_eq!(
        stored_proof_ids().await,
        before,
        "no proof id stored for a token that did not verify"
    );

    // The resource: the token with a proof of its key for this request works once.
    let proof = key.proof("GET", &userinfo_url, Some(&nonce), Some(&access));
    let r = userinfo_with(&server, "DPoP", &access, Some(proof.clone())).await;
    assert_eq!(r.status, 200, "{:?}", r.challenge);
    assert_eq!(r.body["email"], email);
    let r = userinfo_with(&server, "DPoP", &access, Some(proof)).await;
    assert_eq!(r.status, 401, "a replayed proof");
    assert!(r.challenge.unwrap().contains("invalid_dpop_proof"));
    // Stolen: as a bearer token, with the thief's proof, without a proof, with a proof of the
    // key for another token, or without the nonce.
    let r = userinfo_with(&server, "Bearer", &access, None).await;
    assert_eq!(r.status, 401, "a bound token used as a bearer token");
    assert!(r.challenge.unwrap().contains("invalid_token"));
    let r = userinfo_with(
        &server,
        "DPoP",
        &access,
        Some(thief.proof("GET", &userinfo_url, Some(&nonce), Some(&access))),
    )
    .await;
    assert_eq!(r.status, 401, "another key's proof");
    let r = userinfo_with(&server, "DPoP", &access, None).await;
    assert_eq!(r.status, 401, "no proof");
    let r = userinfo_with(
        &server,
        "DPoP",
        &access,
        Some(key.proof("GET", &userinfo_url, Some(&nonce), Some("another token"))),
    )
    .await;
    assert_eq!(r.status, 401, "a proof for another token (ath)");
    let r = userinfo_with(
        &server,
        "DPoP",
        &access,
        Some(key.proof("GET", &userinfo_url, None, Some(&access))),
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(r.challenge.unwrap().contains("use_dpop_nonce"));
    assert!(r.nonce.is_some(), "the resource hands out the nonce to use");

    // Introspection tells the resource the token is bound, and to which key.
    let v = introspection(&server, &rs_auth, &access).await;
    assert_eq!(
        (v["active"].as_bool(), v["token_type"].as_str()),
        (Some(true), Some("DPoP"))
    );
    assert_eq!(v["cnf"]["jkt"], key.jkt());

    // The public client's refresh token is bound too: without the key it is refused and left
    // unspent, so the owner's next refresh is not mistaken for reuse.
    let refresh_fields = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
        ("client_id", client_id.as_str()),
    ];
    let r = token_request(&server, &refresh_fields, None, None).await;
    assert_eq!(r.body["error"], "invalid_dpop_proof", "no proof");
    let r = token_request(
        &server,
        &refresh_fields,
        Some(thief.proof("POST", &token_url, Some(&nonce), None)),
        None,
    )
    .await;
    assert_eq!(r.body["error"], "invalid_dpop_proof", "the thief's key");
    let r = token_request(
        &server,
        &refresh_fields,
        Some(key.proof("POST", &token_url, Some(&nonce), None)),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        jwt_claims(r.body["access_token"].as_str().unwrap())["cnf"]["jkt"],
        key.jkt()
    );

    // A confidential client's client_credentials token is bound to its proof's key (EdDSA here).
    let service_key = DpopKey::new(Algorithm::EdDSA);
    let r = token_request(
        &server,
        &[("grant_type", "client_credentials")],
        Some(service_key.proof("POST", &token_url, Some(&nonce), None)),
        Some((&rs_auth.0, &rs_auth.1)),
    )
    .await;
    assert_eq!(
        (r.status, r.body["token_type"].as_str()),
        (200, Some("DPoP")),
        "{}",
        r.body
    );
    assert_eq!(
        jwt_claims(r.body["access_token"].as_str().unwrap())["cnf"]["jkt"],
        service_key.jkt()
    );
    // Malformed proofs are refused with the protocol's error, never a 5xx.
    for junk in ["", "a.b.c", "not a jwt", &"x".repeat(5000)] {
        let r = token_request(
            &server,
            &[("grant_type", "client_credentials")],
            Some(junk.to_owned()),
            Some((&rs_auth.0, &rs_auth.1)),
        )
        .await;
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (400, Some("invalid_dpop_proof")),
            "{junk:.20}"
        );
    }
}

on_both_backends!(dpop_binds_tokens_to_the_clients_key);

/// RFC 9449 §10.1: a proof sent with a pushed authorization request binds the code to its key.
async fn pushed_requests_bind_the_code_to_the_proof_key(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let base = server.base();
    let app = web_app(&server, "Web app");
    let (id, secret) = (
        app["client_id"].as_str().unwrap().to_owned(),
        app["client_secret"].as_str().unwrap().to_owned(),
    );
    let key = DpopKey::new(Algorithm::EdDSA);
    let par_url = format!("https://localhost:{}/oauth/par", server.https.port());
    let flow = Flow::new(&id, "openid");
    let push = |proof: String| {
        let fields: Vec<(&str, &str)> = flow.fields();
        server
            .http_client()
            .post(format!("{base}/oauth/par"))
            .basic_auth(&id, Some(&secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("dpop", proof)
            .body(encode_form(&fields))
            .send()
    };
    let r = answer(push(key.proof("POST", &par_url, None, None)).await.unwrap()).await;
    assert_eq!(r.body["error"], "use_dpop_nonce");
    let nonce = r.nonce.unwrap();
    let r = answer(
        push(key.proof("POST", &par_url, Some(&nonce), None))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let request_uri = r.body["request_uri"].as_str().unwrap().to_owned();

    let mut user = server.agent();
    let email = unique_email("dpop-par");
    user.sign_up(&email, PASSWORD).await;
    user.log_in(&email, PASSWORD).await;
    let by_reference = Flow::new(&id, "openid");
    let by_reference = Flow {
        params: vec![
            ("client_id".into(), id.clone()),
            ("request_uri".into(), request_uri),
        ],
        ..by_reference
    };
    let code = code_for(&mut user, &by_reference).await;
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", flow.verifier.as_str()),
    ];
    let r = token_request(&server, &fields, None, Some((&id, &secret))).await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (400, Some("invalid_dpop_proof")),
        "the code is bound to the key that pushed the request"
    );
}

on_both_backends!(pushed_requests_bind_the_code_to_the_proof_key);
