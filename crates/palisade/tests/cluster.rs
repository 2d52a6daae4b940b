//! Three nodes of one deployment on loopback (SCL-1), sharing PostgreSQL and Redis: what one
//! node establishes or changes holds on the others — sessions, revocation, rate limits, the
//! login throttle, single-use DPoP proofs, signing keys and replaced policies.

use crate::common::dpop_key::DpopKey;
use crate::common::flow::*;
use crate::common::nodes::{Deployment, PUBLIC_URL};
use crate::common::social::*;
use crate::common::*;
use std::time::{Duration, Instant};

const SCOPES: &[&str] = &["openid", "social:read", "social:write"];

/// Polls `still` (whether the old state is still observed) until it is not, and fails if any
/// poll that still saw it had begun more than `bound` after `since`: the change reached this
/// node within `bound`, however slowly the machine runs the polls.
async fn reached_within<F, Fut>(since: Instant, bound: Duration, what: &str, mut still: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = since + Duration::from_secs(20);
    loop {
        let started = Instant::now();
        if !still().await {
            return;
        }
        assert!(
            started <= since + bound,
            "{what}: still the old state {:?} after the change",
            started - since
        );
        assert!(Instant::now() < deadline, "{what}: never changed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_session_works_everywhere_and_a_revocation_reaches_every_node_within_a_second() {
    let d = Deployment::start(3, &[]).await;
    let (a, b, c) = (&d.nodes[0], &d.nodes[1], &d.nodes[2]);
    let client_id = public_app(a, "Everywhere", SCOPES, &[]);
    let (member, agent_a) = member_signed_in(a, &client_id, "roaming", "social:read").await;

    // The session made on A is a session on B.
    let mut agent_b = b.agent();
    agent_b.cookies = agent_a.cookies.clone();
    let page = agent_b.get("/account").await;
    assert_eq!(page.status, 200, "B knows A's session");
    assert!(page.body.contains(&member.email));

    // C serves the token, and has the account's state at hand.
    assert_eq!(call(c, &member.token, "GET", "/api/me", None).await.0, 200);
    let changed = Instant::now();
    let r = agent_b
        .post_form(
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "a different horse battery"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "password changed on B: {}", r.body);
    reached_within(
        changed,
        Duration::from_secs(1),
        "the password change on C",
        || async { call(c, &member.token, "GET", "/api/me", None).await.0 == 200 },
    )
    .await;
    let (status, body) = call(c, &member.token, "GET", "/api/me", None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );
}

#[tokio::test]
async fn rate_limits_and_the_login_throttle_count_across_nodes() {
    // Three a minute (one every 20 s), counted across the nodes.
    let d = Deployment::start(
        3,
        &[
            ("PALISADE_API__REQUESTS_PER_MINUTE", "3"),
            ("PALISADE_IDENTITY__THROTTLE_ACCOUNT_FREE_ATTEMPTS", "2"),
            ("PALISADE_IDENTITY__THROTTLE_BASE_DELAY_MS", "60000"),
        ],
    )
    .await;
    let client_id = public_app(&d.nodes[0], "Limited", SCOPES, &[]);
    // Signing in asks `/api/me` once: one of the three.
    let since = std::time::Instant::now();
    let member = member(&d.nodes[0], &client_id, "limited", "social:read").await;
    let mut allowed = 0;
    for i in 0..12 {
        let node = &d.nodes[i % 3];
        let r = node
            .http_client()
            .get(format!("{}/api/me", node.base()))
            .bearer_auth(&member.token)
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            200 => allowed += 1,
            429 => assert!(r.headers().contains_key("retry-after")),
            other => panic!("{other}"),
        }
    }
    // Three a minute across the nodes, not three each: two left after the sign-in's, and no
    // more than the time since refilled.
    assert_within_rate(allowed, 2, 3, since);

    // Two free failures on A and B; the third, on C, starts the back-off everywhere.
    let email = unique_email("guessed");
    let mut owner = d.nodes[0].agent();
    owner.sign_up(&email, PASSWORD).await;
    for node in &d.nodes {
        let r = node.agent().log_in(&email, "not the password").await;
        assert_eq!(r.status, 401, "a wrong password is refused");
    }
    for node in &d.nodes {
        let r = node.agent().log_in(&email, PASSWORD).await;
        assert_eq!(
            r.status, 429,
            "throttled on every node, the right password included"
        );
    }
}

#[tokio::test]
async fn a_dpop_proof_used_on_one_node_is_refused_on_another() {
    let d = Deployment::start(2, &[]).await;
    let (a, b) = (&d.nodes[0], &d.nodes[1]);
    let client = a.register_client(&[
        "--name",
        "Bound service",
        "--grant",
        "client_credentials",
        "--scope",
        "social:read",
    ]);
    let (id, secret) = (
        client["client_id"].as_str().unwrap(),
        client["client_secret"].as_str().unwrap(),
    );
    let key = DpopKey::new(palisade_jose::Algorithm::EdDSA);
    let token_url = format!("{PUBLIC_URL}/oauth/token");
    let ask = |nonce: Option<String>| {
        a.http_client()
            .post(format!("{}/oauth/token", a.base()))
            .basic_auth(id, Some(secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .header(
                "dpop",
                key.proof("POST", &token_url, nonce.as_deref(), None),
            )
            .body("grant_type=client_credentials")
            .send()
    };
    // The first proof lacks the nonce the server asks for; any node's nonce works on all.
    let first = ask(None).await.unwrap();
    assert_eq!(first.status(), 400);
    let nonce = first.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    let issued: serde_json::Value = ask(Some(nonce.clone()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(issued["token_type"], "DPoP");
    let token = issued["access_token"].as_str().unwrap();

    let proof = key.proof(
        "GET",
        &format!("{PUBLIC_URL}/api/me"),
        Some(&nonce),
        Some(token),
    );
    let me = |node: &Server| {
        node.http_client()
            .get(format!("{}/api/me", node.base()))
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof.clone())
            .send()
    };
    assert_eq!(me(a).await.unwrap().status(), 200);
    let replayed = me(b).await.unwrap();
    assert_eq!(replayed.status(), 401);
    assert!(
        replayed.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_dpop_proof"),
        "refused as a replayed proof"
    );
}

#[tokio::test]
async fn a_key_rotation_on_one_node_is_served_by_the_others_within_a_second() {
    let d = Deployment::start(2, &[]).await;
    let (a, b) = (&d.nodes[0], &d.nodes[1]);
    let keys = |node: &Server| {
        let out = node.cli(&["keys", "list"]);
        assert!(out.status.success());
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
    };
    let before: Vec<String> = keys(a)
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    let out = a.cli(&["keys", "rotate", "--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rotated = Instant::now();
    // The rotation published a new next key: B's JWKS must show it.
    let next = keys(a)
        .into_iter()
        .find(|k| k["state"] == "next")
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .unwrap();
    assert!(!before.contains(&next));
    reached_within(
        rotated,
        Duration::from_secs(1),
        "the new key on B",
        || async {
            let jwks = b.fetch_json("/.well-known/jwks.json").await;
            !jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kid"] == next.as_str())
        },
    )
    .await;
}

#[tokio::test]
async fn a_policy_replacement_decides_on_every_node_and_survives_their_restart() {
    let admin = "admin-key-of-the-deployment-0123456789";
    let digest = format!("[\"{}\"]", palisade_crypto::sha256_hex(admin.as_bytes()));
    let mut d = Deployment::start(3, &[("PALISADE_ADMIN__API_KEY_SHA256", &digest)]).await;
    let client_id = public_app(&d.nodes[0], "Policies", SCOPES, &[]);
    let member = member(&d.nodes[0], &client_id, "profiled", "social:read").await;
    let profile = format!("/api/profiles/{}", member.id);
    for node in &d.nodes {
        assert_eq!(
            call(node, &member.token, "GET", &profile, None).await.0,
            200
        );
    }
    let a = &d.nodes[0];
    let url = format!("{}/admin/authz/policies", a.base());
    let current = a
        .http_client()
        .get(&url)
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let replaced =
        format!("{current}\nforbid(principal, action == Action::\"ReadProfile\", resource);\n");
    let r = a
        .http_client()
        .put(&url)
        .bearer_auth(admin)
        .body(replaced)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    for node in &d.nodes {
        eventually(
            Duration::from_secs(10),
            "the replacement decides",
            || async {
                (call(node, &member.token, "GET", &profile, None).await.0 == 403).then_some(())
            },
        )
        .await;
    }
    d.restart_all().await;
    for node in &d.nodes {
        let (status, body) = call(node, &member.token, "GET", &profile, None).await;
        assert_eq!(
            status, 403,
            "the stored replacement after a restart: {body}"
        );
    }
}
