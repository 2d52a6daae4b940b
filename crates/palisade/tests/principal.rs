//! The principal of resource requests (RES-1) on `GET /api/me`: one typed value from a
//! verified token — the user, tenant, role, scopes, client and session — with the role read
//! from the account on every request, so a promotion or demotion applies to the next request
//! made with the same token; a token without the route's scope gets nothing.

use crate::common;

use crate::common::flow::*;
use crate::common::*;

async fn me(server: &Server, token: Option<&str>) -> (u16, serde_json::Value, String) {
    let mut req = server
        .http_client()
        .get(format!("{}/api/me", server.base()));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default(), challenge)
}

async fn the_principal_comes_from_the_token_and_the_account(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let client_id = public_app(&server, "Social app", &["openid", "social:read"], &[]);
    let mut user = server.agent();
    let email = unique_email("principal");
    user.sign_up(&email, PASSWORD).await;
    user.log_in(&email, PASSWORD).await;
    let token_for = async |user: &mut Agent, scope: &str| {
        let flow = Flow::new(&client_id, scope);
        let code = code_for(user, &flow).await;
        let (status, tokens) = exchange(&server, &flow, &code, &flow.verifier).await;
        assert_eq!(status, 200, "{tokens}");
        tokens["access_token"].as_str().unwrap().to_owned()
    };
    let token = token_for(&mut user, "openid social:read").await;

    let (status, _, challenge) = me(&server, None).await;
    assert_eq!(status, 401);
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    let (status, _, challenge) = me(&server, Some("not-a-token")).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("invalid_token"));

    let (status, principal, _) = me(&server, Some(&token)).await;
    assert_eq!(status, 200, "{principal}");
    assert_eq!(principal["tenant"], "default");
    assert_eq!(principal["role"], "member");
    assert_eq!(principal["client_id"], client_id.as_str());
    assert_eq!(
        principal["scopes"],
        serde_json::json!(["openid", "social:read"])
    );
    assert!(principal["session"].is_string());
    assert!(principal["key_binding"].is_null());

    // Promotion and demotion apply to the next request with the very same token.
    let set_role = |role: &str| server.set_role(&email, role);
    set_role("moderator");
    assert_eq!(me(&server, Some(&token)).await.1["role"], "moderator");
    set_role("member");
    assert_eq!(me(&server, Some(&token)).await.1["role"], "member");
    assert!(
        !server
            .cli(&["admin", "set-role", "--email", &email, "--role", "root"])
            .status
            .success(),
        "unknown roles are refused"
    );
    eventually(
        std::time::Duration::from_secs(20),
        "both role changes audited",
        || async {
            let events = server.events().await;
            (events
                .iter()
                .filter(|e| e.0 == "authz.role.changed")
                .count()
                == 2)
                .then_some(())
        },
    )
    .await;

    // A token without the route's scope gets nothing.
    let narrow = token_for(&mut user, "openid").await;
    let (status, _, challenge) = me(&server, Some(&narrow)).await;
    assert_eq!(status, 403);
    assert!(challenge.contains("insufficient_scope"));

    // A client acting for itself has no role.
    let service = server.register_client(&[
        "--name",
        "service",
        "--grant",
        "client_credentials",
        "--scope",
        "social:read",
    ]);
    let r = server
        .http_client()
        .post(format!("{}/oauth/token", server.base()))
        .basic_auth(
            service["client_id"].as_str().unwrap(),
            service["client_secret"].as_str(),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    let tokens: serde_json::Value = r.json().await.unwrap();
    let (status, principal, _) = me(&server, tokens["access_token"].as_str()).await;
    assert_eq!(status, 200, "{principal}");
    assert_eq!(principal["subject"], service["client_id"]);
    assert!(principal["role"].is_null());

    // A locked account's token stops working at once.
    let out = server.cli(&["admin", "lock-user", "--email", &email]);
    assert!(out.status.success());
    assert_eq!(me(&server, Some(&token)).await.0, 401);
}

on_both_backends!(the_principal_comes_from_the_token_and_the_account);

/// TOK-4: an access token issued before a password change, or before "log out everywhere", is
/// refused at once by the API and by userinfo with an `invalid_token` challenge, while a token
/// issued afterwards works.
async fn earlier_tokens_die_with_a_password_change_or_log_out_everywhere(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let client_id = public_app(&server, "Social app", &["openid", "social:read"], &[]);
    let scope = "openid social:read";
    let (member, mut user) =
        common::social::member_signed_in(&server, &client_id, "epoch", scope).await;
    let token_for =
        async |user: &mut Agent| common::social::token_for(&server, user, &client_id, scope).await;
    let accepted = async |token: &str| {
        let (api, body, _) = me(&server, Some(token)).await;
        let (info, claims) = userinfo(&server, token).await;
        assert_eq!(api, info, "the API and userinfo agree: {body} {claims}");
        api == 200
    };
    let refused_as_invalid = async |token: &str| {
        let (status, body, challenge) = me(&server, Some(token)).await;
        assert_eq!(status, 401, "{body}");
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        let (status, claims) = userinfo(&server, token).await;
        assert_eq!((status, claims.get("sub")), (401, None));
    };

    let before_password = member.token;
    assert!(accepted(&before_password).await);
    let r = user
        .post_form(
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(r.status, 303);
    refused_as_invalid(&before_password).await;

    let before_everywhere = token_for(&mut user).await;
    assert!(accepted(&before_everywhere).await);
    let r = user.post_form("/account/sessions/revoke-others", &[]).await;
    assert_eq!(r.status, 303);
    refused_as_invalid(&before_everywhere).await;
    refused_as_invalid(&before_password).await;

    let after = token_for(&mut user).await;
    assert!(accepted(&after).await, "a token issued afterwards works");
}

on_both_backends!(earlier_tokens_die_with_a_password_change_or_log_out_everywhere);

/// RES-7: a principal flooding the API gets `429` with `Retry-After`; others are unaffected.
async fn each_principal_has_its_own_allowance(backend: Backend) {
    let server =
        Server::start_with(Options::on(backend).env("PALISADE_API__REQUESTS_PER_MINUTE", "5"))
            .await;
    let client_id = public_app(&server, "Social app", &["social:read"], &[]);
    let mut tokens = Vec::new();
    for tag in ["flooder", "bystander"] {
        let mut user = server.agent();
        let email = unique_email(tag);
        user.sign_up(&email, PASSWORD).await;
        user.log_in(&email, PASSWORD).await;
        let flow = Flow::new(&client_id, "social:read");
        let code = code_for(&mut user, &flow).await;
        let (_, issued) = exchange(&server, &flow, &code, &flow.verifier).await;
        tokens.push(issued["access_token"].as_str().unwrap().to_owned());
    }
    let http = server.http_client();
    let since = std::time::Instant::now();
    let (accepted, retry_after) =
        flood_until_limited(200, || me_from(&server, &http, &tokens[0])).await;
    assert_within_rate(accepted, 5, 5, since);
    assert!(
        retry_after.is_some_and(|s| (1..=12).contains(&s)),
        "{retry_after:?}"
    );
    assert_eq!(
        me(&server, Some(&tokens[1])).await.0,
        200,
        "another user is not limited"
    );
}

on_both_backends!(each_principal_has_its_own_allowance);

/// RES-7: the shedder as the server mounts it: with `api.max_in_flight = 1` and one API request
/// held in flight, the next is answered `503` with `Retry-After` at once; pages are not shed,
/// and once the held request is answered (and its post made) the API serves again.
#[tokio::test]
async fn the_api_sheds_past_its_in_flight_bound() {
    let server =
        Server::start_with(Options::default().env("PALISADE_API__MAX_IN_FLIGHT", "1")).await;
    let client_id = public_app(&server, "Shed", &["social:read", "social:write"], &[]);
    let member =
        common::social::member(&server, &client_id, "shed", "social:read social:write").await;
    let authorization = format!("Bearer {}", member.token);
    let held = server
        .request_in_flight(
            "POST /api/posts",
            &[
                ("authorization", &authorization),
                ("content-type", "application/json"),
            ],
            r#"{"body":"held in flight","visibility":"public"}"#,
        )
        .await;

    let r = server
        .http_client()
        .get(format!("{}/api/me", server.base()))
        .bearer_auth(&member.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let refusal: serde_json::Value = r.json().await.unwrap();
    assert_eq!(refusal["error"], "unavailable");
    assert_eq!(server.agent().get_json("/healthz").await.status, 200);

    let answer = held.finish().await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let (status, me, _) = me(&server, Some(&member.token)).await;
    assert_eq!(status, 200, "{me}");
    let (_, timeline) =
        common::social::call(&server, &member.token, "GET", "/api/timeline", None).await;
    assert_eq!(timeline["posts"][0]["body"], "held in flight");
}

/// The status and `Retry-After` of `GET /api/me` with `token`, from `http`.
async fn me_from(server: &Server, http: &reqwest::Client, token: &str) -> (u16, Option<u64>) {
    let r = http
        .get(format!("{}/api/me", server.base()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (r.status().as_u16(), retry_after)
}

/// RES-7: one network flooding with made-up tokens is stopped before any token is checked;
/// another network is not.
#[tokio::test]
async fn each_network_has_its_own_allowance() {
    let server = Server::start_with(
        Options::default().env("PALISADE_API__NETWORK_REQUESTS_PER_MINUTE", "3"),
    )
    .await;
    let flooder = server.http_client();
    let since = std::time::Instant::now();
    let (accepted, retry_after) =
        flood_until_limited(401, || me_from(&server, &flooder, "made-up")).await;
    assert_within_rate(accepted, 3, 3, since);
    assert!(retry_after.is_some_and(|s| (1..=20).contains(&s)));
    let elsewhere = server.http_client_from(Some("127.0.0.2".parse().unwrap()));
    assert_eq!(me_from(&server, &elsewhere, "made-up").await.0, 401);
}

/// RES-7: the users of one client share its allowance; another client's users do not.
#[tokio::test]
async fn each_client_has_its_own_allowance() {
    let server =
        Server::start_with(Options::default().env("PALISADE_API__CLIENT_REQUESTS_PER_MINUTE", "4"))
            .await;
    let busy_app = public_app(&server, "Busy app", &["social:read"], &[]);
    let quiet_app = public_app(&server, "Quiet app", &["social:read"], &[]);
    // Each member's setup makes one request to /api/me: two of the busy app's four.
    let since = std::time::Instant::now();
    let first = common::social::member(&server, &busy_app, "first", "social:read").await;
    let second = common::social::member(&server, &busy_app, "second", "social:read").await;
    let other = common::social::member(&server, &quiet_app, "other", "social:read").await;
    let http = server.http_client();
    let (accepted, _) = flood_until_limited(200, || me_from(&server, &http, &first.token)).await;
    assert_within_rate(accepted, 2, 4, since);
    let (status, retry_after) = me_from(&server, &http, &second.token).await;
    assert_eq!(
        status, 429,
        "the client's allowance is spent, whoever its user"
    );
    assert!(retry_after.is_some());
    assert_eq!(me_from(&server, &http, &other.token).await.0, 200);
}
