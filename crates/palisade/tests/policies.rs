//! Authorization policies on a running server (RES-2, RES-5): read from `authz.policy_file`
//! (an invalid file stops the start naming the key), replaced on the admin API or by SIGHUP —
//! validated first, an invalid set refused with the old one kept — and every replacement
//! audited.

use crate::common;

use crate::common::*;
use std::time::Duration;

const ADMIN_KEY: &str = "admin-key-for-the-policy-tests-0123456789";

const EXTRA: &str = r#"
@id("no-posts-on-a-frozen-tenant")
forbid (principal, action == Action::"CreatePost", resource)
when { resource.tenant == Tenant::"frozen" };
"#;

async fn policies_are_validated_replaced_and_audited(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policies.cedar");
    std::fs::write(&file, palisade_authz::DEFAULT_POLICIES).unwrap();
    let server = Server::start_with(
        Options::on(backend)
            .accepting_key("PALISADE_ADMIN__API_KEY_SHA256", ADMIN_KEY)
            .env("PALISADE_AUTHZ__POLICY_FILE", file.display().to_string()),
    )
    .await;
    let http = server.http_client();
    let url = format!("{}/admin/authz/policies", server.base());
    let current = || async {
        let r = http.get(&url).bearer_auth(ADMIN_KEY).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    };
    let put = |text: String| http.put(&url).bearer_auth(ADMIN_KEY).body(text).send();
    assert_eq!(current().await, palisade_authz::DEFAULT_POLICIES);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(
        http.put(&url).body(EXTRA).send().await.unwrap().status(),
        401,
        "no replacement without the admin key"
    );

    // Invalid sets are refused, saying why, and change nothing.
    for (bad, why) in [
        ("permit (principal, action, resource", "parse"),
        (
            r#"permit (principal, action == Action::"ReadPost", resource) when { resource.colour == "red" };"#,
            "schema",
        ),
    ] {
        let r = put(bad.to_owned()).await.unwrap();
        assert_eq!(r.status(), 400, "{why}");
        let e: serde_json::Value = r.json().await.unwrap();
        assert_eq!(e["error"], "invalid_policies");
        assert!(e["message"].as_str().unwrap().contains(why), "{e}");
        assert_eq!(current().await, palisade_authz::DEFAULT_POLICIES);
    }

    // A valid set replaces the old one and is audited.
    let extended = format!("{}{EXTRA}", palisade_authz::DEFAULT_POLICIES);
    assert_eq!(put(extended.clone()).await.unwrap().status(), 204);
    assert_eq!(current().await, extended);
    let replaced = || async {
        server
            .events()
            .await
            .into_iter()
            .filter(|e| e.0 == "authz.policies.replaced")
            .count()
    };
    assert_eq!(replaced().await, 1);

    // The file, edited and signalled: a valid one is taken, an invalid one refused.
    std::fs::write(&file, EXTRA).unwrap();
    server.signal("HUP");
    eventually(Duration::from_secs(20), "the file's policies", || async {
        (current().await == EXTRA).then_some(())
    })
    .await;
    eventually(Duration::from_secs(20), "the reload audited", || async {
        (replaced().await == 2).then_some(())
    })
    .await;
    std::fs::write(
        &file,
        "forbid (principal, action, resource) when { nonsense };",
    )
    .unwrap();
    server.signal("HUP");
    eventually(Duration::from_secs(20), "the refusal logged", || async {
        server.logs().contains("policies refused").then_some(())
    })
    .await;
    assert_eq!(current().await, EXTRA, "the policies in force stay");
}

on_both_backends!(policies_are_validated_replaced_and_audited);

/// An invalid policy file stops the server at start, naming the setting.
#[test]
fn an_invalid_policy_file_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policies.cedar");
    std::fs::write(
        &file,
        "permit (principal, action == Action::\"Fly\", resource);",
    )
    .unwrap();
    let out = std::process::Command::new(binary())
        .arg("serve")
        .current_dir(dir.path())
        .env("PALISADE_DATA_DIR", dir.path().join("data"))
        .env("PALISADE_SERVER__HTTPS_LISTEN", "127.0.0.1:0")
        .env("PALISADE_SERVER__HTTP_LISTEN", "127.0.0.1:0")
        .env("PALISADE_SERVER__ADMIN_LISTEN", "127.0.0.1:0")
        .env("PALISADE_AUTHZ__POLICY_FILE", &file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = said(&out);
    assert!(text.contains("authz.policy_file"), "{text}");
}

/// RES-5: policies replaced 100 times on the admin API while requests keep coming — each
/// replacement a different but equivalent set — and every one of thousands of decisions is the
/// expected one: a follower reads a followers-only post, a stranger never does.
async fn decisions_hold_while_policies_reload(backend: Backend) {
    use common::flow::public_app;
    use common::social::{call, member};
    let server = Server::start_with(
        Options::on(backend)
            .accepting_key("PALISADE_ADMIN__API_KEY_SHA256", ADMIN_KEY)
            .env("PALISADE_API__REQUESTS_PER_MINUTE", "1000000")
            .env("PALISADE_API__NETWORK_REQUESTS_PER_MINUTE", "1000000"),
    )
    .await;
    let scopes = ["social:read", "social:write"];
    let app = public_app(&server, "Reload", &scopes, &[]);
    let author = member(&server, &app, "author", &scopes.join(" ")).await;
    let follower = member(&server, &app, "follower", &scopes.join(" ")).await;
    let stranger = member(&server, &app, "stranger", &scopes.join(" ")).await;
    let follow = format!("/api/profiles/{}/follow", author.id);
    assert_eq!(
        call(&server, &follower.token, "PUT", &follow, None).await.0,
        204
    );
    let (status, post) = call(
        &server,
        &author.token,
        "POST",
        "/api/posts",
        Some(serde_json::json!({"body": "for followers", "visibility": "followers"})),
    )
    .await;
    assert_eq!(status, 201);
    let path = format!("/api/posts/{}", post["id"].as_str().unwrap());

    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = |token: String, expected: u16| {
        let (server_base, http, path, done) = (
            server.base(),
            server.http_client(),
            path.clone(),
            done.clone(),
        );
        tokio::spawn(async move {
            let mut decisions = 0u32;
            // At least 1000 decisions each, and on until the last reload is in.
            while decisions < 1000 || !done.load(std::sync::atomic::Ordering::Acquire) {
                let r = http
                    .get(format!("{server_base}{path}"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), expected, "decision {decisions}");
                decisions += 1;
            }
            decisions
        })
    };
    let readers = [
        reader(follower.token.clone(), 200),
        reader(stranger.token.clone(), 403),
        reader(follower.token.clone(), 200),
        reader(stranger.token.clone(), 403),
    ];

    let http = server.http_client();
    let url = format!("{}/admin/authz/policies", server.base());
    for n in 0..100 {
        // The defaults plus a rule that never applies, numbered: a new set every time.
        let text = format!(
            "{}\n@id(\"reload-{n}\")\nforbid (principal, action == Action::\"ModerateUser\", resource) when {{ false }};\n",
            palisade_authz::DEFAULT_POLICIES
        );
        let r = http
            .put(&url)
            .bearer_auth(ADMIN_KEY)
            .body(text)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "reload {n}");
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    let mut total = 0;
    for reader in readers {
        total += reader.await.unwrap();
    }
    assert!(total >= 4000, "{total} decisions");
}

on_both_backends!(decisions_hold_while_policies_reload);
