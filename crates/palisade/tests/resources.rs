//! Tokens serve the resource they were issued for (TOK-4, RES-1): with a second resource
//! configured, a token minted for it is refused by this server's own API and by userinfo, and
//! introspection tells a client only about tokens of its own tenant and, for a resource server,
//! of its own audience — every other token is `active: false`, whoever asks.

use crate::common::flow::*;
use crate::common::nodes::PUBLIC_URL;
use crate::common::*;
use data_encoding::BASE64URL_NOPAD;

const OWN_API: &str = "https://palisade.test/api";
const BILLING: &str = "https://billing.example/api";

fn audience_of(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&BASE64URL_NOPAD.decode(payload.as_bytes()).unwrap()).unwrap();
    claims["aud"].clone()
}

async fn me(server: &Server, token: &str) -> (u16, String) {
    let r = server
        .http_client()
        .get(format!("{}/api/me", server.base()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (r.status().as_u16(), challenge)
}

fn credentials(client: &serde_json::Value) -> (String, String) {
    (
        client["client_id"].as_str().unwrap().to_owned(),
        client["client_secret"].as_str().unwrap().to_owned(),
    )
}

async fn tokens_serve_only_their_own_resource(backend: Backend) {
    let server = Server::start_with(
        Options::on(backend)
            .env("PALISADE_PUBLIC_URL", PUBLIC_URL)
            .env(
                "PALISADE_OAUTH__RESOURCES",
                format!(r#"["{OWN_API}","{BILLING}"]"#),
            ),
    )
    .await;
    let client_id = public_app(&server, "Social app", &["openid", "social:read"], &[]);
    let mut user = server.agent();
    let email = unique_email("audience");
    user.sign_up(&email, PASSWORD).await;
    user.log_in(&email, PASSWORD).await;
    let mut token_for = async |resource: Option<&str>| {
        let flow = Flow::new(&client_id, "openid social:read").with("resource", resource);
        let code = code_for(&mut user, &flow).await;
        let (status, tokens) = exchange(&server, &flow, &code, &flow.verifier).await;
        assert_eq!(status, 200, "{tokens}");
        tokens["access_token"].as_str().unwrap().to_owned()
    };
    let own = token_for(None).await;
    let billing = token_for(Some(BILLING)).await;
    assert_eq!(audience_of(&own), OWN_API);
    assert_eq!(audience_of(&billing), BILLING);

    // This server's API and userinfo serve their own audience's token and nobody else's.
    assert_eq!(me(&server, &own).await.0, 200);
    let (status, challenge) = me(&server, &billing).await;
    assert_eq!(status, 401, "a token for another resource at /api");
    assert!(challenge.contains("invalid_token"), "{challenge}");
    assert_eq!(userinfo(&server, &own).await.0, 200);
    let (status, body) = userinfo(&server, &billing).await;
    assert_eq!(
        status, 401,
        "a token for another resource at userinfo: {body}"
    );

    // Introspection: a client with no resource of its own learns about its tenant's tokens; the
    // billing resource server about billing tokens only; another tenant's client about none.
    let general = credentials(&server.register_client(&[
        "--name",
        "gateway",
        "--grant",
        "client_credentials",
    ]));
    let billing_rs = credentials(&server.register_client(&[
        "--name",
        "billing",
        "--grant",
        "client_credentials",
        "--resource",
        BILLING,
    ]));
    assert!(
        server
            .cli(&["admin", "create-tenant", "--id", "acme", "--name", "Acme"])
            .status
            .success()
    );
    let other_tenant = credentials(&server.register_client(&[
        "--name",
        "acme gateway",
        "--grant",
        "client_credentials",
        "--tenant",
        "acme",
    ]));
    assert!(introspect(&server, &general, &own).await);
    assert!(introspect(&server, &general, &billing).await);
    let answer = introspection(&server, &billing_rs, &billing).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["aud"], BILLING);
    let answer = introspection(&server, &billing_rs, &own).await;
    assert_eq!(
        answer,
        serde_json::json!({"active": false}),
        "another audience's token tells the billing server nothing"
    );
    for token in [&own, &billing] {
        let answer = introspection(&server, &other_tenant, token).await;
        assert_eq!(
            answer,
            serde_json::json!({"active": false}),
            "another tenant's token tells nothing"
        );
    }
    // A resource server for a resource this server does not issue for is refused at creation.
    let out = server.cli(&[
        "clients",
        "create",
        "--name",
        "stranger",
        "--grant",
        "client_credentials",
        "--resource",
        "https://elsewhere.example/api",
    ]);
    assert!(!out.status.success());
}

on_both_backends!(tokens_serve_only_their_own_resource);
