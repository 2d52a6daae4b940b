//! Tenants (IDN-8, RES-4): an organisation owns its accounts, clients and content. Its
//! accounts sign in naming it; its clients sign in its accounts only; its content is out of
//! reach of every other tenant's tokens; and the tenant in a token is trusted only as signed,
//! and only while it is still the account's.

use crate::common::flow::*;
use crate::common::social::*;
use crate::common::*;
use data_encoding::BASE64URL_NOPAD as B64;
use serde_json::{Value, json};

const SCOPES: [&str; 3] = ["social:read", "social:write", "messages"];

/// An account of `tenant` made by the CLI, signed in naming its organisation, with a token
/// from `client_id`.
async fn tenant_member(server: &Server, tenant: &str, client_id: &str) -> (Member, Agent) {
    let email = unique_email(tenant);
    let out = server.cli_with_input(
        &[
            "admin",
            "create-user",
            "--email",
            &email,
            "--tenant",
            tenant,
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut agent = server.agent();
    // Without the organisation, the address is unknown (it is in no other tenant).
    let r = agent.log_in(&email, PASSWORD).await;
    assert_eq!(r.status, 401, "signed in without naming the organisation");
    let r = agent
        .post_form(
            "/login",
            &[
                ("email", email.as_str()),
                ("password", PASSWORD),
                ("organisation", tenant),
            ],
        )
        .await;
    assert_eq!(r.status, 303);
    let token = token_for(server, &mut agent, client_id, &SCOPES.join(" ")).await;
    let (status, me) = call(server, &token, "GET", "/api/me", None).await;
    assert_eq!((status, me["tenant"].as_str()), (200, Some(tenant)));
    let member = Member {
        id: me["subject"].as_str().unwrap().to_owned(),
        email,
        token,
    };
    (member, agent)
}

/// The JWT with its claims edited and its signature kept.
fn with_claims(token: &str, edit: impl FnOnce(&mut Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&B64.decode(parts[1].as_bytes()).unwrap()).unwrap();
    edit(&mut claims);
    let payload = B64.encode(claims.to_string().as_bytes());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

const ADMIN_KEY: &str = "admin-key-for-the-tenancy-tests-0123456789";

async fn tenants_are_isolated(backend: Backend) {
    let server = Server::start_with(
        Options::on(backend).accepting_key("PALISADE_ADMIN__API_KEY_SHA256", ADMIN_KEY),
    )
    .await;
    let out = server.cli(&["admin", "create-tenant", "--id", "acme", "--name", "Acme"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = server.cli(&["admin", "create-tenant", "--id", "acme", "--name", "Again"]);
    assert!(!out.status.success(), "a tenant id is taken once");
    let out = server.cli(&["admin", "create-tenant", "--id", "Not Valid", "--name", "x"]);
    assert!(!out.status.success(), "tenant ids are checked");
    let out = server.cli_with_input(
        &[
            "admin",
            "create-user",
            "--email",
            &unique_email("x"),
            "--tenant",
            "nowhere",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(
        !out.status.success(),
        "accounts belong to an existing tenant"
    );

    // The admin API registers clients in a tenant too, and only in one that exists.
    let register = |tenant: &str| {
        server
            .http_client()
            .post(format!(
                "{}/admin/oauth/clients?tenant={tenant}",
                server.base()
            ))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({
                "client_name": "Acme service", "grant_types": ["client_credentials"],
                "token_endpoint_auth_method": "client_secret_basic", "scope": "social:read"
            }))
            .send()
    };
    let r = register("acme").await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["tenant_id"], "acme");
    let r = register("nowhere").await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "unknown_tenant");

    let default_app = public_app(&server, "Default app", &SCOPES, &[]);
    let acme_app = public_app(&server, "Acme app", &SCOPES, &["--tenant", "acme"]);
    let alice = member(&server, &default_app, "alice", &SCOPES.join(" ")).await;
    let (carol, mut carol_agent) = tenant_member(&server, "acme", &acme_app).await;
    let (dave, _) = tenant_member(&server, "acme", &acme_app).await;

    // Inside acme, everything works as usual.
    let (status, post) = call(
        &server,
        &carol.token,
        "POST",
        "/api/posts",
        Some(json!({"body": "acme news", "visibility": "public"})),
    )
    .await;
    assert_eq!(status, 201);
    let acme_post = format!("/api/posts/{}", post["id"].as_str().unwrap());
    assert_eq!(
        call(&server, &dave.token, "GET", &acme_post, None).await.0,
        200
    );
    let carol_profile = format!("/api/profiles/{}", carol.id);
    let public = json!({"display_name": "Carol", "bio": "", "public": true});
    assert_eq!(
        call(&server, &carol.token, "PUT", &carol_profile, Some(public))
            .await
            .0,
        200
    );
    assert_eq!(
        call(&server, &dave.token, "GET", &carol_profile, None)
            .await
            .0,
        200
    );

    // (b) A default-tenant token on acme's objects: nothing, whatever the object's visibility.
    for (method, path, body) in [
        ("GET", acme_post.clone(), None),
        ("DELETE", acme_post.clone(), None),
        ("GET", carol_profile.clone(), None),
        ("GET", format!("{carol_profile}/friends"), None),
        ("PUT", format!("{carol_profile}/follow"), None),
    ] {
        // Not found, as if it did not exist: the answer says nothing about other tenants' ids.
        let (status, answer) = call(&server, &alice.token, method, &path, body).await;
        assert_eq!(status, 404, "{method} {path} across tenants: {answer}");
    }
    let (status, _) = call(
        &server,
        &alice.token,
        "POST",
        "/api/conversations",
        Some(json!({"with": [carol.id]})),
    )
    .await;
    assert_eq!(status, 400, "a conversation is within one organisation");
    // Even a follow across tenants, written straight into the database, shows nothing: every
    // post of the timeline passes the policies' tenant rule.
    sqlx::query("INSERT INTO follows (follower_id, followee_id, created_at) VALUES ($1, $2, 0)")
        .bind(&alice.id)
        .bind(&carol.id)
        .execute(server.db().await.pool())
        .await
        .unwrap();
    let (_, timeline) = call(&server, &alice.token, "GET", "/api/timeline", None).await;
    assert_eq!(timeline["posts"], json!([]));

    // The right password with another organisation is a wrong sign-in; and failures against
    // one organisation's account do not lock out the same address elsewhere.
    let mut elsewhere = server.agent();
    elsewhere.get("/login").await;
    let wrong_org = [
        ("email", alice.email.as_str()),
        ("password", PASSWORD),
        ("organisation", "acme"),
    ];
    assert_eq!(elsewhere.post_form("/login", &wrong_org).await.status, 401);
    for _ in 0..6 {
        elsewhere.post_form("/login", &wrong_org).await;
    }
    assert_eq!(elsewhere.log_in(&alice.email, PASSWORD).await.status, 303);

    // The CLI names accounts within their tenant.
    let lock = |tenant: &str| {
        server.cli(&[
            "admin",
            "lock-user",
            "--email",
            &dave.email,
            "--tenant",
            tenant,
        ])
    };
    assert!(
        !lock("default").status.success(),
        "dave is not in the default tenant"
    );
    assert!(lock("acme").status.success());
    assert_eq!(
        call(&server, &dave.token, "GET", "/api/me", None).await.0,
        401,
        "a locked account's token stops working"
    );

    // A client signs in its own tenant's accounts only: carol, signed in, is asked to sign in
    // again as an account of the default tenant; with prompt=none she is told so.
    let flow = Flow::new(&default_app, "social:read");
    let r = carol_agent.get(&flow.url()).await;
    assert_eq!(r.status, 303);
    assert!(r.location().starts_with("/login"), "{}", r.location());
    let flow = Flow::new(&default_app, "social:read").with("prompt", Some("none"));
    let r = carol_agent.get(&flow.url()).await;
    assert!(
        r.location().contains("error=login_required"),
        "{}",
        r.location()
    );

    // A forged tenant claim: the signature no longer matches.
    let forged = with_claims(&alice.token, |c| c["tenant"] = json!("acme"));
    assert_eq!(call(&server, &forged, "GET", &acme_post, None).await.0, 401);
    // A token signed with the server's own key, whose tenant is not the account's: refused
    // too — the tenant claim must still be the account's.
    let key = server.signing_key().await;
    let sign = |edit: &dyn Fn(&mut Value)| {
        let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": key.kid});
        let claims = with_claims(&alice.token, edit);
        let payload = claims.split('.').nth(1).unwrap();
        let input = format!("{}.{payload}", B64.encode(header.to_string().as_bytes()));
        format!("{input}.{}", B64.encode(&key.sign(input.as_bytes())))
    };
    let other_tenant = sign(&|c| c["tenant"] = json!("acme"));
    let (status, _) = call(&server, &other_tenant, "GET", &acme_post, None).await;
    assert_eq!(
        status, 401,
        "a signed claim for another tenant than the account's"
    );
    let no_tenant = sign(&|c| {
        c.as_object_mut().unwrap().remove("tenant");
    });
    assert_eq!(
        call(&server, &no_tenant, "GET", "/api/me", None).await.0,
        401
    );
    // The same construction with the true tenant is accepted: the refusals above are the claim.
    let true_tenant = sign(&|_| {});
    assert_eq!(
        call(&server, &true_tenant, "GET", "/api/me", None).await.0,
        200
    );
}

on_both_backends!(tenants_are_isolated);
