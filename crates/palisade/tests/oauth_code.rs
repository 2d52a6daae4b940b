//! The authorization code flow over TLS (OAU-1, OAU-2, OAU-3, OAU-6, OAU-7, TOK-1, TOK-4):
//! sign-in, consent listing the requested scopes, a code sent back with `state` and `iss`,
//! PKCE-bound exchange for an access token and an ID token, userinfo — and the attacks: code
//! replay revokes what the code gave, PKCE downgrades and wrong verifiers fail, a redirect URI
//! off by a character gets an error page rather than a redirect, a code outlives neither its
//! session, and "log out everywhere" ends access tokens at once.

use crate::common;

use crate::common::flow::*;
use crate::common::*;
use palisade_jose::verify::{Expectations, verify};
use std::time::Duration;

async fn code_flow_and_its_attacks(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let issuer = format!("https://localhost:{}", server.https.port());
    let app = server.register_client(&[
        "--name",
        "Photo <App>",
        "--auth-method",
        "none",
        "--grant",
        "authorization_code",
        "--scope",
        "openid",
        "--scope",
        "email",
        // Registered by an administrator, yet a user's consent can never grant it.
        "--scope",
        "audit:write",
        "--redirect-uri",
        REDIRECT,
    ]);
    let client_id = app["client_id"].as_str().unwrap().to_owned();
    let rs = server.register_client(&["--name", "resource", "--grant", "client_credentials"]);
    let rs_auth = (
        rs["client_id"].as_str().unwrap().to_owned(),
        rs["client_secret"].as_str().unwrap().to_owned(),
    );

    // Not signed in: off to the sign-in page, which comes back here; prompt=none says so instead.
    let flow = Flow::new(&client_id, "openid email");
    let mut stranger = server.agent();
    let r = stranger.get(&flow.url()).await;
    assert_eq!(r.status, 303);
    assert!(
        r.location()
            .starts_with("/login?return_to=%2Foauth%2Fauthorize"),
        "{}",
        r.location()
    );
    let r = stranger
        .get(
            &Flow::new(&client_id, "openid")
                .with("prompt", Some("none"))
                .url(),
        )
        .await;
    assert_eq!(callback(r.location())["error"], "login_required");

    let mut a = server.agent();
    let email = unique_email("oauth");
    a.sign_up(&email, PASSWORD).await;
    a.log_in(&email, PASSWORD).await;

    // The consent page names the client (escaped) and exactly the requested scopes.
    let r = a.get(&flow.url()).await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("Photo &#60;App&#62;") && !r.body.contains("Photo <App>"));
    let listed = &r.body[r.body.find("id=\"scopes\"").unwrap()..r.body.find("</ul>").unwrap()];
    assert_eq!(
        listed.matches("<li>").count(),
        2,
        "exactly the requested scopes"
    );
    assert!(listed.contains("email address") && listed.contains("account identifier"));
    assert!(
        r.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let mut fields = flow.fields();
    fields.push(("decision", "allow"));
    let r = a.post_form("/oauth/authorize/decision", &fields).await;
    let params = callback(r.location());
    assert_eq!(
        (params["state"].as_str(), params["iss"].as_str()),
        ("st-42", issuer.as_str())
    );
    let code = params["code"].clone();

    // The exchange: PKCE-bound, answering an access token and an ID token.
    let (status, tokens) = exchange(&server, &flow, &code, &flow.verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let keys = server.published_keys().await;
    let id_token = verify(
        tokens["id_token"].as_str().unwrap(),
        &keys,
        &Expectations {
            typ: "JWT",
            issuer: &issuer,
            audience: Some(&client_id),
            now: palisade_store::now_ms() / 1000,
            skew_seconds: 30,
        },
    )
    .unwrap();
    assert_eq!(id_token["nonce"], "n-0S6_WzA2Mj");
    assert!(id_token["auth_time"].as_i64().unwrap() > 0 && id_token["sid"].is_string());
    let (status, info) = userinfo(&server, &access).await;
    assert_eq!(status, 200);
    assert_eq!(
        (info["sub"].clone(), info["email"].as_str()),
        (id_token["sub"].clone(), Some(email.as_str()))
    );
    assert!(introspect(&server, &rs_auth, &access).await);

    // Replaying the code fails and revokes what the first exchange gave.
    let (status, e) = exchange(&server, &flow, &code, &flow.verifier).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
    assert!(
        !introspect(&server, &rs_auth, &access).await,
        "replay revoked the first tokens"
    );
    assert_eq!(userinfo(&server, &access).await.0, 401);

    // Consent is remembered: the next request comes straight back with a code. A wrong
    // verifier fails, and burns the code.
    let flow2 = Flow::new(&client_id, "openid");
    let r = a.get(&flow2.url()).await;
    assert_eq!(r.status, 303, "no consent page the second time");
    let code2 = callback(r.location())["code"].clone();
    let (status, _) = exchange(
        &server,
        &flow2,
        &code2,
        &Flow::new(&client_id, "openid").verifier,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        exchange(&server, &flow2, &code2, &flow2.verifier).await.0,
        400
    );
    // prompt=consent shows the page again.
    assert_eq!(
        a.get(
            &Flow::new(&client_id, "openid")
                .with("prompt", Some("consent"))
                .url()
        )
        .await
        .status,
        200
    );

    // PKCE downgrades are refused (back to the client, as errors).
    for flow in [
        Flow::new(&client_id, "openid").with("code_challenge_method", Some("plain")),
        Flow::new(&client_id, "openid").with("code_challenge_method", None),
        Flow::new(&client_id, "openid").with("code_challenge", None),
        Flow::new(&client_id, "openid").with("code_challenge", Some("short")),
    ] {
        let r = a.get(&flow.url()).await;
        assert_eq!(
            callback(r.location())["error"],
            "invalid_request",
            "{}",
            flow.url()
        );
    }
    let r = a.get(&Flow::new(&client_id, "openid admin").url()).await;
    assert_eq!(callback(r.location())["error"], "invalid_scope");
    // A service's power (writing audit events) is not the user's to consent to.
    let r = a
        .get(&Flow::new(&client_id, "openid audit:write").url())
        .await;
    let refused = callback(r.location());
    assert_eq!(refused["error"], "invalid_scope");
    assert_eq!(
        refused["error_description"],
        "A service scope cannot be granted by a user's consent."
    );

    // No open redirect: a redirect URI off by a character, a path or a host gets a page.
    for uri in [
        "https://app.example/cb/",
        "https://app.example/cb/../evil",
        "https://app.example/cB",
        "https://app.example.evil.com/cb",
        "https://evil.example/cb",
    ] {
        let r = a
            .get(
                &Flow::new(&client_id, "openid")
                    .with("redirect_uri", Some(uri))
                    .url(),
            )
            .await;
        assert_eq!(r.status, 400, "{uri}");
        assert!(r.headers.get("location").is_none(), "{uri}");
    }
    // CORS preflight on the authorization endpoint: no grant to a foreign origin.
    let preflight = server
        .http_client()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/oauth/authorize", server.base()),
        )
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(!preflight.status().is_success(), "{}", preflight.status());
    assert!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let r = a.get(&Flow::new("no-such-client", "openid").url()).await;
    assert_eq!((r.status, r.headers.get("location").is_none()), (400, true));

    // A code is bound to the session that approved it: signing out makes it useless.
    let flow3 = Flow::new(&client_id, "openid");
    let code3 = code_for(&mut a, &flow3).await;
    a.log_out().await;
    let (status, e) = exchange(&server, &flow3, &code3, &flow3.verifier).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));

    // "Log out everywhere" raises the epoch: a valid access token stops working at once.
    a.log_in(&email, PASSWORD).await;
    let flow4 = Flow::new(&client_id, "openid");
    let code4 = code_for(&mut a, &flow4).await;
    let (_, tokens) = exchange(&server, &flow4, &code4, &flow4.verifier).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert!(introspect(&server, &rs_auth, &access).await);
    let r = a.post_form("/account/sessions/revoke-others", &[]).await;
    assert_eq!(r.status, 303);
    assert!(
        !introspect(&server, &rs_auth, &access).await,
        "rejected within the same second"
    );

    // OAU-11: consent, code issuance, token issuance and the replay are in the audit log.
    let actions: Vec<String> = server.events().await.into_iter().map(|e| e.0).collect();
    for expected in [
        "oauth.consent.granted",
        "oauth.code.issued",
        "oauth.token.issued",
        "oauth.code.replayed",
    ] {
        assert!(actions.iter().any(|a| a == expected), "{expected} missing");
    }
    server.logs_flushed().await;
    let logs = server.logs();
    assert!(
        !logs.contains(&code) && !logs.contains(&access),
        "codes and tokens never reach the logs"
    );
}

on_both_backends!(code_flow_and_its_attacks);

/// A public client of the code flow that may refresh; its id.
fn notes_app(server: &Server) -> String {
    server.register_client(&[
        "--name",
        "Notes",
        "--auth-method",
        "none",
        "--grant",
        "authorization_code",
        "--grant",
        "refresh_token",
        "--scope",
        "openid",
        "--scope",
        "offline_access",
        "--redirect-uri",
        REDIRECT,
    ])["client_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A signed-in user's tokens from a client that may refresh.
async fn refreshable(
    server: &Server,
    scope: &str,
) -> (Agent, String, serde_json::Value, (String, String)) {
    let client_id = notes_app(server);
    let rs = server.register_client(&["--name", "resource", "--grant", "client_credentials"]);
    let rs_auth = (
        rs["client_id"].as_str().unwrap().to_owned(),
        rs["client_secret"].as_str().unwrap().to_owned(),
    );
    let mut a = server.agent();
    let email = unique_email("refresh");
    a.sign_up(&email, PASSWORD).await;
    a.log_in(&email, PASSWORD).await;
    let flow = Flow::new(&client_id, scope);
    let code = code_for(&mut a, &flow).await;
    let (status, tokens) = exchange(server, &flow, &code, &flow.verifier).await;
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens["refresh_token"].is_string());
    (a, client_id, tokens, rs_auth)
}

/// OAU-5: rotation on every use; reuse of a rotated token (outside the grace window, here 0)
/// revokes the whole family and is audited; a revoked user refreshes nothing; RFC 7009
/// revocation ends a family.
async fn refresh_rotation_reuse_and_revocation(backend: Backend) {
    let server =
        Server::start_with(Options::on(backend).env("PALISADE_OAUTH__REFRESH_GRACE_MS", "0")).await;
    let (_signed_in, client_id, tokens, rs_auth) = refreshable(&server, "openid").await;
    let r1 = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (status, second) = refresh(&server, &client_id, &r1).await;
    assert_eq!(status, 200, "{second}");
    let r2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2, "rotated");
    let a2 = second["access_token"].as_str().unwrap().to_owned();
    assert!(introspect(&server, &rs_auth, &a2).await);

    // Narrowing the scope is allowed, widening is not.
    let (status, e) = token_post(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &r2),
            ("client_id", &client_id),
            ("scope", "openid offline_access"),
        ],
    )
    .await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_scope")));

    // The rotated r1 comes back: theft. The family dies, r2 and its access token with it.
    let (status, e) = refresh(&server, &client_id, &r1).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
    assert!(
        !introspect(&server, &rs_auth, &a2).await,
        "the family's access tokens are revoked"
    );
    let (status, _) = refresh(&server, &client_id, &r2).await;
    assert_eq!(status, 400, "the family's newest refresh token too");
    let actions: Vec<String> = server.events().await.into_iter().map(|e| e.0).collect();
    assert!(actions.iter().any(|x| x == "oauth.refresh.reused"));

    // RFC 7009: revoking a refresh token ends its family; unknown tokens are answered alike.
    let (_, client2, tokens, _) = refreshable(&server, "openid").await;
    let r = tokens["refresh_token"].as_str().unwrap().to_owned();
    let revoke = |token: String, client: String| {
        let http = server.http_client();
        let url = format!("{}/oauth/revoke", server.base());
        async move {
            http.post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encode_form(&[("token", &token), ("client_id", &client)]))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // OAU-5: another client cannot spend it, and trying does not harm its owner's family.
    let (status, e) = refresh(&server, &client_id, &r).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(revoke("not-a-token".into(), client2.clone()).await, 200);
    assert_eq!(
        revoke(r.clone(), client_id.clone()).await,
        200,
        "another client's token: answered, ignored"
    );
    let (status, next) = refresh(&server, &client2, &r).await;
    assert_eq!(
        status, 200,
        "still alive after another client tried to revoke it"
    );
    let r_next = next["refresh_token"].as_str().unwrap().to_owned();
    let access_next = next["access_token"].as_str().unwrap().to_owned();
    assert_eq!(revoke(r_next.clone(), client2.clone()).await, 200);
    assert_eq!(refresh(&server, &client2, &r_next).await.0, 400, "revoked");
    assert!(
        !introspect(&server, &rs_auth, &access_next).await,
        "its access tokens too"
    );

    // OAU-11, AUD-2: refreshes and revocations are audited with the client they came through
    // and the device; a revocation names no account but the grant.
    let db = server.db().await;
    type Row = (String, Option<String>, Option<String>, Option<String>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT action, actor, client, device FROM security_events \
         WHERE action IN ('oauth.token.refreshed', 'oauth.token.revoked') ORDER BY seq",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    let of = |action: &str| rows.iter().filter(|r| r.0 == action).collect::<Vec<_>>();
    assert_eq!(of("oauth.token.refreshed").len(), 2, "{rows:?}");
    for (_, actor, client, device) in of("oauth.token.refreshed") {
        assert!(actor.is_some() && device.is_some(), "{rows:?}");
        assert!([&client_id, &client2].contains(&client.as_ref().unwrap()));
    }
    let revoked = of("oauth.token.revoked");
    assert_eq!(revoked.len(), 1, "only the owner's revocation: {rows:?}");
    assert_eq!(revoked[0].2.as_deref(), Some(client2.as_str()));

    // A deleted client's refresh tokens refresh nothing.
    let (_, gone, tokens, _) = refreshable(&server, "openid").await;
    let orphan = tokens["refresh_token"].as_str().unwrap().to_owned();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert!(server.cli(&["clients", "delete", &gone]).status.success());
    let (status, e) = refresh(&server, &gone, &orphan).await;
    assert_eq!((status, e["error"].as_str()), (401, Some("invalid_client")));
    assert!(
        !introspect(&server, &rs_auth, &access).await,
        "nor do its access tokens work"
    );

    // TOK-4: after "log out everywhere", refresh tokens issued before refresh nothing.
    let (mut owner, client3, tokens, _) = refreshable(&server, "openid offline_access").await;
    let r = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(
        owner
            .post_form("/account/sessions/revoke-others", &[])
            .await
            .status,
        303
    );
    let (status, e) = refresh(&server, &client3, &r).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
}

const ACR_PASSWORD: &str = "urn:palisade:acr:password";
const ACR_MFA: &str = "urn:palisade:acr:mfa";

/// The `acr` and `amr` of the ID token a code gives, and of the one its refresh gives.
async fn assurance(server: &Server, flow: &Flow, code: &str) -> [(String, Vec<String>); 2] {
    let of = |tokens: &serde_json::Value| {
        let claims = jwt_claims(tokens["id_token"].as_str().expect("an ID token"));
        let amr = claims["amr"].as_array().unwrap().iter();
        let amr = amr.map(|m| m.as_str().unwrap().to_owned()).collect();
        (claims["acr"].as_str().unwrap().to_owned(), amr)
    };
    let (status, tokens) = exchange(server, flow, code, &flow.verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let (status, refreshed) = refresh(server, &flow.client_id, refresh_token).await;
    assert_eq!(status, 200, "{refreshed}");
    [of(&tokens), of(&refreshed)]
}

/// Follows the sign-in page an authorization request sent the browser to, with a password and
/// (when the account asks for one) a TOTP code, back to the request: where it redirects.
async fn sign_in_again(agent: &mut Agent, login: &str, email: &str, totp: Option<&str>) -> String {
    let page = agent.get(login).await;
    let mut fields = page.hidden_fields();
    fields.extend([
        ("email".into(), email.into()),
        ("password".into(), PASSWORD.into()),
    ]);
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (&**k, &**v)).collect();
    let mut next = agent
        .post_form("/login", &pairs)
        .await
        .location()
        .to_owned();
    if let Some(code) = totp {
        let page = agent.get(&next).await;
        let mut fields = page.hidden_fields();
        fields.push(("code".into(), code.into()));
        let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (&**k, &**v)).collect();
        next = agent
            .post_form("/login/mfa", &pairs)
            .await
            .location()
            .to_owned();
    }
    assert!(
        next.starts_with("/oauth/authorize?"),
        "back to the request: {next}"
    );
    agent.get(&next).await.location().to_owned()
}

/// OAU-4, IDN-6: the ID token says how the user signed in — `amr` (RFC 8176) and the `acr`
/// that follows — after a password, a TOTP code, a recovery code and a passkey, and again after
/// a refresh; `acr_values` asking for multi-factor sends a password session back to sign in
/// with its second factor, or tells the client the account has none.
async fn acr_and_amr_follow_how_the_user_signed_in(backend: Backend) {
    use common::factors::*;
    let server = Server::start_with(Options::on(backend)).await;
    let client_id = notes_app(&server);
    let scope = "openid offline_access";
    let wants = |acr: &str| Flow::new(&client_id, scope).with("acr_values", Some(acr));
    let amr = |methods: &[&str]| methods.iter().map(|m| m.to_string()).collect::<Vec<_>>();
    let mut a = server.agent();
    let email = unique_email("acr");
    a.sign_up(&email, PASSWORD).await;
    a.log_in(&email, PASSWORD).await;

    // A password: the password level, also after a refresh.
    let flow = Flow::new(&client_id, scope);
    let code = code_for(&mut a, &flow).await;
    let expected = (ACR_PASSWORD.to_owned(), amr(&["pwd"]));
    assert_eq!(
        assurance(&server, &flow, &code).await,
        [expected.clone(), expected]
    );
    // Multi-factor asked of an account with no second factor: the client is told so.
    let r = a.get(&wants(ACR_MFA).url()).await;
    let answer = callback(r.location());
    assert_eq!(
        answer["error"], "unmet_authentication_requirements",
        "{answer:?}"
    );
    assert!(!answer.contains_key("code"));

    // With an authenticator app enrolled, the password session is asked to step up.
    let (secret, recovery_codes) = enrol_totp(&mut a).await;
    let silent = wants(ACR_MFA).with("prompt", Some("none"));
    let answer = callback(a.get(&silent.url()).await.location());
    assert_eq!(answer["error"], "interaction_required", "{answer:?}");
    let flow = wants(ACR_MFA);
    let login = a.get(&flow.url()).await.location().to_owned();
    assert!(login.starts_with("/login?return_to="), "{login}");
    let page = a.get(&login).await;
    assert!(
        page.body
            .contains("This application asks for a second factor"),
        "{}",
        page.body
    );
    let back = sign_in_again(&mut a, &login, &email, Some(&totp_code(&secret, 1))).await;
    let code = callback(&back)["code"].clone();
    let expected = (ACR_MFA.to_owned(), amr(&["pwd", "otp"]));
    assert_eq!(
        assurance(&server, &flow, &code).await,
        [expected.clone(), expected]
    );
    // A multi-factor session satisfies a request for the password level.
    let flow = wants(ACR_PASSWORD);
    let code = code_for(&mut a, &flow).await;
    assert_eq!(assurance(&server, &flow, &code).await[0].0, ACR_MFA);

    // A recovery code is a second factor too.
    a.log_out().await;
    a.log_in(&email, PASSWORD).await;
    let r = a
        .post_form("/login/mfa", &[("code", &recovery_codes[0])])
        .await;
    assert_eq!((r.status, r.location()), (303, "/account"), "{}", r.body);
    let flow = wants(ACR_MFA);
    let code = code_for(&mut a, &flow).await;
    let expected = (ACR_MFA.to_owned(), amr(&["pwd", "mfa"]));
    assert_eq!(
        assurance(&server, &flow, &code).await,
        [expected.clone(), expected]
    );

    // A user-verified passkey, password-less.
    let (mut key, handle) = register_passkey(&server, &mut a).await;
    let mut laptop = server.agent();
    passkey_sign_in(&server, &mut laptop, &mut key, &handle).await;
    let flow = wants(ACR_MFA);
    let code = code_for(&mut laptop, &flow).await;
    let expected = (ACR_MFA.to_owned(), amr(&["hwk", "user"]));
    assert_eq!(
        assurance(&server, &flow, &code).await,
        [expected.clone(), expected]
    );
}

on_both_backends!(acr_and_amr_follow_how_the_user_signed_in);

/// OAU-5: 50 concurrent refreshes with one token (within the default grace window) all succeed
/// without a 5xx and leave exactly one live family.
async fn concurrent_refreshes_keep_one_family(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let (_a, client_id, tokens, _) = refreshable(&server, "openid").await;
    let r = tokens["refresh_token"].as_str().unwrap().to_owned();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (http, url, body) = (
            server.http_client(),
            format!("{}/oauth/token", server.base()),
            encode_form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &r),
                ("client_id", &client_id),
            ]),
        );
        tasks.spawn(async move {
            let r = http
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap();
            (status, body["refresh_token"].as_str().map(str::to_owned))
        });
    }
    let mut answers = Vec::new();
    while let Some(s) = tasks.join_next().await {
        answers.push(s.unwrap());
    }
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    // Every concurrent refresh got the one successor: two tabs refreshing at once both keep
    // a working token, and no branch of the family escapes reuse detection.
    let successors: std::collections::BTreeSet<_> =
        answers.iter().map(|(_, t)| t.clone().unwrap()).collect();
    assert_eq!(successors.len(), 1, "{successors:?}");
    let db = server.db().await;
    let (unspent,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM oauth_refresh_tokens WHERE rotated_at IS NULL")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(unspent, 1, "exactly one refresh token is live");
    let successor = successors.into_iter().next().unwrap();
    let next = server
        .http_client()
        .post(format!("{}/oauth/token", server.base()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode_form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &successor),
            ("client_id", &client_id),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(next.status(), 200, "the successor refreshes");
    let (families,): (i64,) =
        sqlx::query_as("SELECT COUNT(DISTINCT grant_id) FROM oauth_refresh_tokens")
            .fetch_one(db.pool())
            .await
            .unwrap();
    let (live,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM oauth_grants WHERE revoked_at IS NULL")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!((families, live), (1, 1));
}

/// Whether the account's connected-apps page says there are none.
async fn lists_no_apps(owner: &mut Agent) -> bool {
    owner
        .get("/account/apps")
        .await
        .body
        .contains("id=\"no-apps\"")
}

/// OAU-6: the account page lists the apps the user consented to; revoking one ends its access
/// and refresh tokens at once, and the next request asks for consent again.
async fn revoking_consent_ends_the_apps_tokens(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let (mut owner, client_id, tokens, rs_auth) =
        refreshable(&server, "openid offline_access").await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let r = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert!(
        owner
            .get("/account")
            .await
            .body
            .contains("href=\"/account/apps\"")
    );
    let page = owner.get("/account/apps").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Notes") && page.body.contains("offline_access"));
    let r2 = owner
        .post_form("/account/apps/revoke", &[("client_id", &client_id)])
        .await;
    assert_eq!((r2.status, r2.location()), (303, "/account/apps"));
    assert!(
        !introspect(&server, &rs_auth, &access).await,
        "access token ended"
    );
    assert_eq!(
        refresh(&server, &client_id, &r).await.0,
        400,
        "refresh token ended"
    );
    assert!(lists_no_apps(&mut owner).await);
    let again = owner.get(&Flow::new(&client_id, "openid").url()).await;
    assert_eq!(again.status, 200, "consent is asked again");
    assert!(again.body.contains(r#"name="decision" value="deny""#));

    // Pressing Deny: back to the client with `access_denied` and its state, no code, nothing
    // remembered — the next request asks again.
    let mut fields = again.hidden_fields();
    fields.push(("decision".into(), "deny".into()));
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let denied = owner.post_form("/oauth/authorize/decision", &fields).await;
    assert_eq!(denied.status, 303);
    let answer = callback(denied.location());
    assert_eq!(
        answer.get("error").map(String::as_str),
        Some("access_denied")
    );
    assert_eq!(answer.get("state").map(String::as_str), Some("st-42"));
    assert!(!answer.contains_key("code"), "{answer:?}");
    let asked = owner.get(&Flow::new(&client_id, "openid").url()).await;
    assert_eq!(asked.status, 200, "a denial is not remembered");
    assert!(lists_no_apps(&mut owner).await);

    let events = server.events().await;
    let actions: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert!(actions.contains(&"oauth.consent.revoked"));
    let denial = events
        .iter()
        .find(|e| e.0 == "oauth.consent.denied")
        .unwrap();
    assert_eq!(denial.1, "failure");
}

/// OAU-3, OAU-10, OAU-5: what is short-lived expires. With the server's clock moved past their
/// lifetimes (not waited for): a code older than 60 s gives nothing, a pushed `request_uri`
/// older than 60 s is refused, and a refresh token still works at 90 s but not past its 30
/// days.
async fn codes_pushed_requests_and_refresh_tokens_expire(backend: Backend) {
    let clock = Clock::new();
    let server = Server::start_with(clock.on(Options::on(backend))).await;
    let (mut a, client_id, tokens, _) = refreshable(&server, "openid offline_access").await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let flow = Flow::new(&client_id, "openid");
    let code = code_for(&mut a, &flow).await;
    let pusher = web_app(&server, "Pusher");
    let pusher_id = pusher["client_id"].as_str().unwrap();
    let auth = (pusher_id, pusher["client_secret"].as_str().unwrap());
    let (_, pushed) = push(
        &server,
        Some(auth),
        &Flow::new(pusher_id, "openid").fields(),
    )
    .await;
    let request_uri = pushed["request_uri"].as_str().unwrap();

    clock.advance(&server, Duration::from_secs(90)).await;
    let (status, e) = exchange(&server, &flow, &code, &flow.verifier).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );
    let by_reference = format!(
        "/oauth/authorize?client_id={}&request_uri={}",
        enc(pusher_id),
        enc(request_uri)
    );
    let r = a.get(&by_reference).await;
    assert_eq!(r.status, 400, "an expired request_uri: {}", r.body);
    assert!(r.headers.get("location").is_none());
    let (status, fresh) = refresh(&server, &client_id, &refresh_token).await;
    assert_eq!(status, 200, "within its lifetime: {fresh}");
    let refresh_token = fresh["refresh_token"].as_str().unwrap().to_owned();

    clock
        .advance(&server, Duration::from_secs(31 * 86_400))
        .await;
    let (status, e) = refresh(&server, &client_id, &refresh_token).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );
}

/// OAU-10, RFC 9126: a confidential client pushes its request (authenticated, validated at
/// once), sends the browser with the one-time `request_uri`, and the flow completes; the
/// `request_uri` works once and only for its client.
async fn pushed_authorization_requests(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let app = web_app(&server, "Pusher");
    let (id, secret) = (
        app["client_id"].as_str().unwrap().to_owned(),
        app["client_secret"].as_str().unwrap().to_owned(),
    );
    let flow = Flow::new(&id, "openid");
    let creds = Some((id.as_str(), secret.as_str()));
    assert_eq!(
        push(&server, None, &flow.fields()).await.0,
        401,
        "pushing needs client authentication"
    );
    let bad = Flow::new(&id, "openid").with("code_challenge_method", Some("plain"));
    let (status, e) = push(&server, creds, &bad.fields()).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_request")),
        "validated when pushed"
    );
    let (status, pushed) = push(&server, creds, &flow.fields()).await;
    assert_eq!(status, 201, "{pushed}");
    let request_uri = pushed["request_uri"].as_str().unwrap().to_owned();
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"));
    assert_eq!(pushed["expires_in"], 60);

    let mut a = server.agent();
    let email = unique_email("par");
    a.sign_up(&email, PASSWORD).await;
    a.log_in(&email, PASSWORD).await;
    let by_reference = format!(
        "/oauth/authorize?client_id={}&request_uri={}",
        enc(&id),
        enc(&request_uri)
    );
    // Another client cannot use it.
    let other = web_app(&server, "Other");
    let stolen = format!(
        "/oauth/authorize?client_id={}&request_uri={}",
        enc(other["client_id"].as_str().unwrap()),
        enc(&request_uri)
    );
    assert_eq!(a.get(&stolen).await.status, 400);
    let page = a.get(&by_reference).await;
    assert_eq!(page.status, 200, "the consent page for the pushed request");
    assert_eq!(
        a.get(&by_reference).await.status,
        400,
        "a request_uri works once"
    );
    let mut fields = flow.fields();
    fields.push(("decision", "allow"));
    let location = a
        .post_form("/oauth/authorize/decision", &fields)
        .await
        .location()
        .to_owned();
    let code = callback(&location)["code"].clone();
    let (status, tokens) = token_post(
        &server,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &flow.verifier),
            ("client_id", &id),
            ("client_secret", &secret),
        ],
    )
    .await;
    // The client is registered for Basic, so the secret in the body is refused; with Basic:
    assert_eq!(status, 401, "{tokens}");
    let r = server
        .http_client()
        .post(format!("{}/oauth/token", server.base()))
        .basic_auth(&id, Some(&secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode_form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &flow.verifier),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// OAU-8, RP-initiated logout: with a valid ID token as hint, the user confirms, the session
/// ends and the browser returns to the client's registered URI with its state; an unregistered
/// return address or a forged hint gets a page, not a redirect.
async fn rp_initiated_logout(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let (mut a, client_id, tokens, _) = refreshable(&server, "openid").await;
    let hint = tokens["id_token"].as_str().unwrap().to_owned();
    let url = |hint: &str, uri: &str| {
        format!(
            "/oauth/logout?id_token_hint={}&post_logout_redirect_uri={}&state=bye-1",
            enc(hint),
            enc(uri)
        )
    };
    assert_eq!(
        a.get(&url(&hint, "https://evil.example/")).await.status,
        400
    );
    let mut forged = hint.clone();
    forged.pop();
    forged.push(if hint.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(a.get(&url(&forged, REDIRECT)).await.status, 400);
    let confirm = a.get(&url(&hint, REDIRECT)).await;
    assert_eq!(confirm.status, 200, "the user confirms first");
    assert_eq!(
        a.get("/account").await.status,
        200,
        "still signed in until then"
    );
    let r = a
        .post_form(
            "/oauth/logout",
            &[
                ("id_token_hint", &hint),
                ("post_logout_redirect_uri", REDIRECT),
                ("state", "bye-1"),
                ("client_id", &client_id),
            ],
        )
        .await;
    assert_eq!(
        (r.status, r.location()),
        (303, format!("{REDIRECT}?state=bye-1").as_str())
    );
    assert_eq!(a.get("/account").await.status, 303, "signed out");
}

on_both_backends!(
    codes_pushed_requests_and_refresh_tokens_expire,
    refresh_rotation_reuse_and_revocation,
    concurrent_refreshes_keep_one_family,
    revoking_consent_ends_the_apps_tokens,
    pushed_authorization_requests,
    rp_initiated_logout
);
