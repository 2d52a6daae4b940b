//! The OpenID Foundation's "Basic OP" certification plan, item by item
//! (`tests/conformance/oidc-basic-op-plan.md`), against the running server over TLS. Each
//! check names the suite's module it ports, so a later official run maps one to one. Every
//! request uses PKCE S256 (Palisade's policy, which the suite allows).

use crate::common::flow::*;
use crate::common::*;
use palisade_jose::verify::{Expectations, verify};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// A server with a signed-in user and a confidential client per authentication method.
struct Op {
    server: Server,
    issuer: String,
    basic: (String, String),
    post: (String, String),
    user: Agent,
    email: String,
}

fn client(server: &Server, method: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec![
        "--name",
        "RP",
        "--auth-method",
        method,
        "--grant",
        "authorization_code",
        "--grant",
        "refresh_token",
        "--redirect-uri",
        REDIRECT,
    ];
    for scope in ["openid", "profile", "email", "address", "phone"] {
        args.extend(["--scope", scope]);
    }
    args.extend(extra);
    let c = server.register_client(&args);
    (
        c["client_id"].as_str().unwrap().to_owned(),
        c["client_secret"].as_str().unwrap_or_default().to_owned(),
    )
}

impl Op {
    async fn start(options: Options) -> Self {
        let server = Server::start_with(options).await;
        let issuer = format!("https://localhost:{}", server.https.port());
        let basic = client(&server, "client_secret_basic", &[]);
        let post = client(&server, "client_secret_post", &[]);
        let (user, email) = Self::user(&server, "op").await;
        Op {
            server,
            issuer,
            basic,
            post,
            user,
            email,
        }
    }

    async fn user(server: &Server, tag: &str) -> (Agent, String) {
        let mut user = server.agent();
        let email = unique_email(tag);
        user.sign_up(&email, PASSWORD).await;
        user.log_in(&email, PASSWORD).await;
        (user, email)
    }

    /// Exchanges a code with the client's registered authentication method.
    async fn exchange(&self, client: &(String, String), flow: &Flow, code: &str) -> (u16, Value) {
        let mut fields = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", flow.verifier.as_str()),
        ];
        self.token(client, &mut fields).await
    }

    async fn token<'a>(
        &'a self,
        client: &'a (String, String),
        fields: &mut Vec<(&'a str, &'a str)>,
    ) -> (u16, Value) {
        let mut req = self
            .server
            .http_client()
            .post(format!("{}/oauth/token", self.server.base()))
            .header("content-type", "application/x-www-form-urlencoded");
        if client == &self.post {
            fields.extend([
                ("client_id", client.0.as_str()),
                ("client_secret", client.1.as_str()),
            ]);
        } else {
            req = req.basic_auth(&client.0, Some(&client.1));
        }
        let r = req.body(encode_form(fields)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    /// Runs the flow for `client` in the user's session; the token response.
    async fn tokens(&mut self, client: &(String, String), flow: &Flow) -> Value {
        let code = code_for(&mut self.user, flow).await;
        let (status, tokens) = self.exchange(client, flow, &code).await;
        assert_eq!(status, 200, "{tokens}");
        tokens
    }

    /// Verifies an ID token for `client` the way a relying party must.
    async fn id_token(&self, token: &str, client: &str) -> serde_json::Map<String, Value> {
        let metadata = self
            .server
            .fetch_json("/.well-known/openid-configuration")
            .await;
        let header: Value = serde_json::from_slice(
            &data_encoding::BASE64URL_NOPAD
                .decode(token.split('.').next().unwrap().as_bytes())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            header["alg"], metadata["id_token_signing_alg_values_supported"][0],
            "IdTokenSignature: signed with the advertised algorithm"
        );
        let claims = verify(
            token,
            &self.server.published_keys().await,
            &Expectations {
                typ: "JWT",
                issuer: &self.issuer,
                audience: Some(client),
                now: palisade_store::now_ms() / 1000,
                skew_seconds: 5,
            },
        )
        .expect("IdTokenSignature: a key from the JWKS verifies it");
        for claim in ["iss", "aud", "exp", "iat", "sub", "auth_time"] {
            assert!(claims.contains_key(claim), "{claim}");
        }
        claims
    }

    /// The parameters the authorization endpoint sends the browser back with.
    async fn authorize(&mut self, flow: &Flow) -> HashMap<String, String> {
        let r = self.user.get(&flow.url()).await;
        callback(r.location())
    }
}

/// Waits until the clock is past `auth_time` (unix seconds), so that a new sign-in is later.
async fn after_second(auth_time: i64) {
    eventually(
        Duration::from_secs(3),
        "the clock to pass auth_time",
        || async { (palisade_store::now_ms() / 1000 > auth_time).then_some(()) },
    )
    .await;
}

/// ServerTest, ServerTestClientSecretPost, AlternateHappyFlow, EnsureRequestWithValidPkceSucceeds,
/// EnsureRequestWithoutNonceSucceedsForCodeFlow, IdTokenSignature.
async fn happy_paths(backend: Backend) {
    let mut op = Op::start(Options::on(backend)).await;
    let basic = op.basic.clone();
    let flow = Flow::new(&basic.0, "openid");
    let tokens = op.tokens(&basic, &flow).await;
    let claims = op
        .id_token(tokens["id_token"].as_str().unwrap(), &basic.0)
        .await;
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    // Another client and another user, without a nonce: the ID token carries none.
    let (other, _) = Op::user(&op.server, "alternate").await;
    let first_user = std::mem::replace(&mut op.user, other);
    let post = op.post.clone();
    let flow = Flow::new(&post.0, "openid").with("nonce", None);
    let tokens = op.tokens(&post, &flow).await;
    let other_claims = op
        .id_token(tokens["id_token"].as_str().unwrap(), &post.0)
        .await;
    assert!(!other_claims.contains_key("nonce"));
    assert_ne!(other_claims["sub"], claims["sub"]);
    op.user = first_user;
}

on_both_backends!(happy_paths);

/// ResponseTypeMissing, EnsurePostRequestSucceeds, EnsureRequestWithUnknownParameterSucceeds,
/// EnsureRegisteredRedirectUri, EnsureRequestObjectWithRedirectUri,
/// UnsignedRequestObjectSupportedCorrectlyOrRejectedAsUnsupported,
/// RequestUriUnsignedSupportedCorrectlyOrRejectedAsUnsupported, EnsureRequestWithAcrValuesSucceeds,
/// ClaimsEssential, ClaimsLocales, UiLocales, DisplayPage, DisplayPopup.
async fn authorization_request_variants(backend: Backend) {
    let mut op = Op::start(Options::on(backend)).await;
    let id = op.basic.0.clone();
    let basic = op.basic.clone();
    // The first visit consents, so that the variants below answer at once.
    op.tokens(&basic, &Flow::new(&id, "openid")).await;

    // OAU-1: code flow only: no response type, the implicit ones and hybrids are refused, and
    // nothing but the error comes back (no token, no code).
    for response_type in [None, Some("token"), Some("id_token"), Some("code id_token")] {
        let flow = Flow::new(&id, "openid").with("response_type", response_type);
        let answer = op.authorize(&flow).await;
        assert_eq!(
            answer["error"], "unsupported_response_type",
            "{response_type:?}"
        );
        for leaked in ["code", "access_token", "id_token"] {
            assert!(
                !answer.contains_key(leaked),
                "{response_type:?}: {answer:?}"
            );
        }
    }

    let flow = Flow::new(&id, "openid");
    let r = op.user.post_form("/oauth/authorize", &flow.fields()).await;
    assert!(
        callback(r.location()).contains_key("code"),
        "authorization by form POST"
    );

    let unsigned_object =
        "eyJhbGciOiJub25lIn0.eyJyZWRpcmVjdF91cmkiOiJodHRwczovL2V2aWwuZXhhbXBsZS9jYiJ9.";
    for (param, value, error) in [
        ("request", unsigned_object, "request_not_supported"),
        (
            "request_uri",
            "https://rp.example/request.jwt",
            "request_uri_not_supported",
        ),
    ] {
        let answer = op
            .authorize(&Flow::new(&id, "openid").with(param, Some(value)))
            .await;
        assert_eq!(answer["error"], error, "{param}");
        assert!(!answer.contains_key("code"));
    }

    let r = op
        .user
        .get(
            &Flow::new(&id, "openid")
                .with("redirect_uri", Some("https://rp.example/other"))
                .url(),
        )
        .await;
    assert_eq!(
        r.status, 400,
        "an unregistered redirect URI gets an error page"
    );
    assert!(r.location().is_empty(), "and never a redirect");

    for (param, value) in [
        ("unknown_parameter", "ignored"),
        (
            "acr_values",
            "urn:palisade:acr:mfa urn:palisade:acr:password",
        ),
        (
            "claims",
            r#"{"id_token":{"acr":{"essential":true}},"userinfo":{"email":{"essential":true}}}"#,
        ),
        ("claims_locales", "en fr"),
        ("ui_locales", "en-GB fr"),
        ("display", "page"),
        ("display", "popup"),
    ] {
        let flow = Flow::new(&id, "openid").with(param, Some(value));
        let answer = op.authorize(&flow).await;
        let code = answer
            .get("code")
            .unwrap_or_else(|| panic!("{param}={value}: {answer:?}"));
        let (status, tokens) = op.exchange(&basic, &flow, code).await;
        assert_eq!(status, 200, "{param}: {tokens}");
        let claims = op.id_token(tokens["id_token"].as_str().unwrap(), &id).await;
        assert_eq!(
            claims["acr"], "urn:palisade:acr:password",
            "acr is always present"
        );
    }
}

on_both_backends!(authorization_request_variants);

/// LoginHint: the hint pre-fills the sign-in form.
async fn login_hint(backend: Backend) {
    let op = Op::start(Options::on(backend)).await;
    let mut stranger = op.server.agent();
    let flow = Flow::new(&op.basic.0, "openid").with("login_hint", Some("someone@example.com"));
    let r = stranger.get(&flow.url()).await;
    assert!(r.location().starts_with("/login?"), "{}", r.location());
    let page = stranger.get(r.location()).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(r#"value="someone@example.com""#),
        "the email field is pre-filled"
    );
}

on_both_backends!(login_hint);

/// PromptNoneNotLoggedIn, PromptNoneLoggedIn, IdTokenHint, PromptLogin, MaxAge1, MaxAge10000.
async fn prompt_and_max_age(backend: Backend) {
    let mut op = Op::start(Options::on(backend)).await;
    let basic = op.basic.clone();
    let id = basic.0.clone();
    let mut stranger = op.server.agent();
    let none = Flow::new(&id, "openid").with("prompt", Some("none"));
    let answer = callback(stranger.get(&none.url()).await.location());
    assert_eq!(answer["error"], "login_required", "PromptNoneNotLoggedIn");

    let first = op.tokens(&basic, &Flow::new(&id, "openid")).await;
    let id_token = first["id_token"].as_str().unwrap().to_owned();
    let first = op.id_token(&id_token, &id).await;
    let auth_time = first["auth_time"].as_i64().unwrap();
    let answer = op.authorize(&none).await;
    assert!(
        answer.contains_key("code"),
        "PromptNoneLoggedIn: no UI, a code"
    );

    let hinted = none.with("id_token_hint", Some(&id_token));
    let answer = op.authorize(&hinted).await;
    assert!(
        answer.contains_key("code"),
        "IdTokenHint for the signed-in user: {answer:?}"
    );
    let (mut other, _) = Op::user(&op.server, "someone-else").await;
    let answer = callback(other.get(&hinted.url()).await.location());
    assert_eq!(answer["error"], "login_required", "a hint for another user");

    let long = Flow::new(&id, "openid").with("max_age", Some("10000"));
    let answer = op.authorize(&long).await;
    let (_, tokens) = op.exchange(&basic, &long, &answer["code"]).await;
    let claims = op.id_token(tokens["id_token"].as_str().unwrap(), &id).await;
    assert_eq!(
        claims["auth_time"], auth_time,
        "MaxAge10000: no new sign-in"
    );

    for (module, flow) in [
        (
            "MaxAge1",
            Flow::new(&id, "openid").with("max_age", Some("1")),
        ),
        (
            "PromptLogin",
            Flow::new(&id, "openid").with("prompt", Some("login")),
        ),
    ] {
        let tokens = op.tokens(&basic, &Flow::new(&id, "openid")).await;
        let before = op.id_token(tokens["id_token"].as_str().unwrap(), &id).await;
        let before = before["auth_time"].as_i64().unwrap();
        after_second(before + 1).await;
        let r = op.user.get(&flow.url()).await;
        assert!(
            r.location().starts_with("/login?"),
            "{module}: sign in again"
        );
        let email = op.email.clone();
        op.user.log_in(&email, PASSWORD).await;
        let flow = flow.with("prompt", None);
        let tokens = op.tokens(&basic, &flow).await;
        let claims = op.id_token(tokens["id_token"].as_str().unwrap(), &id).await;
        assert!(
            claims["auth_time"].as_i64().unwrap() > before,
            "{module}: auth_time advances"
        );
    }
}

on_both_backends!(prompt_and_max_age);

/// AuthCodeReuse, AuthCodeReuseAfter30Seconds (the server's answer does not depend on the
/// delay: the second use fails and revokes the first use's tokens whenever it comes).
async fn auth_code_reuse(backend: Backend) {
    let mut op = Op::start(Options::on(backend)).await;
    let basic = op.basic.clone();
    let flow = Flow::new(&basic.0, "openid");
    let code = code_for(&mut op.user, &flow).await;
    let (status, tokens) = op.exchange(&basic, &flow, &code).await;
    assert_eq!(status, 200);
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let (status, e) = op.exchange(&basic, &flow, &code).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
    let r = op
        .server
        .http_client()
        .get(format!("{}/oauth/userinfo", op.server.base()))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the first use's access token is revoked");
}

on_both_backends!(auth_code_reuse);

/// IdTokenUnsigned: asking for unsigned (or otherwise signed) ID tokens is refused.
async fn id_token_unsigned(backend: Backend) {
    let server =
        Server::start_with(Options::on(backend).env("PALISADE_OAUTH__OPEN_REGISTRATION", "true"))
            .await;
    let register = |alg: &str| {
        let body = serde_json::json!({
            "redirect_uris": [REDIRECT], "scope": "openid", "id_token_signed_response_alg": alg,
        });
        server
            .http_client()
            .post(format!("{}/oauth/register", server.base()))
            .json(&body)
            .send()
    };
    for alg in ["none", "HS256", "RS256"] {
        let r = register(alg).await.unwrap();
        assert_eq!(r.status(), 400, "{alg}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"], "invalid_client_metadata");
    }
    assert_eq!(register("EdDSA").await.unwrap().status(), 201);
}

on_both_backends!(id_token_unsigned);

/// RefreshToken: a new ID token for the same issuer and subject; the old refresh token is dead.
async fn refresh_token(backend: Backend) {
    // No grace window: a second use at once is reuse, not a concurrent refresh.
    let mut op = Op::start(Options::on(backend).env("PALISADE_OAUTH__REFRESH_GRACE_MS", "0")).await;
    let post = op.post.clone();
    let tokens = op.tokens(&post, &Flow::new(&post.0, "openid")).await;
    let original = op
        .id_token(tokens["id_token"].as_str().unwrap(), &post.0)
        .await;
    let old = tokens["refresh_token"].as_str().unwrap().to_owned();
    let mut fields = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", old.as_str()),
    ];
    let (status, refreshed) = op.token(&post, &mut fields).await;
    assert_eq!(status, 200, "{refreshed}");
    let renewed = op
        .id_token(refreshed["id_token"].as_str().unwrap(), &post.0)
        .await;
    for claim in ["iss", "sub", "auth_time", "acr", "sid"] {
        assert_eq!(renewed[claim], original[claim], "{claim}");
    }
    assert!(!renewed.contains_key("nonce"));
    let mut again = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", old.as_str()),
    ];
    let (status, e) = op.token(&post, &mut again).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "rotated away"
    );
}

on_both_backends!(refresh_token);

/// ScopeProfile, ScopeEmail, ScopeAddress, ScopePhone, ScopeAll, UserInfoGet,
/// UserInfoPostHeader, UserInfoPostBody. Accounts hold an email address only: `email` yields
/// it, the other scopes are granted and yield nothing more — and no scope yields what it
/// does not cover.
async fn scopes_and_userinfo(backend: Backend) {
    let mut op = Op::start(Options::on(backend)).await;
    let basic = op.basic.clone();
    let url = format!("{}/oauth/userinfo", op.server.base());
    let http = op.server.http_client();
    for scope in [
        "openid profile",
        "openid email",
        "openid address",
        "openid phone",
        "openid profile email address phone",
    ] {
        let tokens = op.tokens(&basic, &Flow::new(&basic.0, scope)).await;
        assert_eq!(tokens["scope"], scope);
        let token = tokens["access_token"].as_str().unwrap();
        let sub = op
            .id_token(tokens["id_token"].as_str().unwrap(), &basic.0)
            .await["sub"]
            .clone();
        let answers = [
            http.get(&url).bearer_auth(token).send().await.unwrap(),
            http.post(&url).bearer_auth(token).send().await.unwrap(),
            http.post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encode_form(&[("access_token", token)]))
                .send()
                .await
                .unwrap(),
        ];
        for (how, r) in ["UserInfoGet", "UserInfoPostHeader", "UserInfoPostBody"]
            .iter()
            .zip(answers)
        {
            assert_eq!(r.status(), 200, "{how} {scope}");
            let info: Value = r.json().await.unwrap();
            assert_eq!(info["sub"], sub, "{how}");
            let with_email = scope.contains("email");
            assert_eq!(
                info.get("email").is_some(),
                with_email,
                "{how} {scope}: {info}"
            );
            if with_email {
                assert_eq!(info["email"], op.email);
            }
            let expected = if with_email { 3 } else { 1 };
            assert_eq!(
                info.as_object().unwrap().len(),
                expected,
                "{how} {scope}: only its claims"
            );
        }
    }
}

on_both_backends!(scopes_and_userinfo);
