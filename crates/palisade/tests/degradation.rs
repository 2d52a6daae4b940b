//! Faults (SCL-2): with Redis gone, nodes keep serving on their own and say so (a log line and
//! `palisade_cluster_redis_up 0`), then rejoin when it is back; with PostgreSQL restarting,
//! requests are answered `503` with `Retry-After` — never `500` — and recover by themselves.

use crate::common::flow::*;
use crate::common::nodes::{Deployment, TestPostgres, TestRedis};
use crate::common::social::*;
use crate::common::*;
use std::time::{Duration, Instant};

async fn redis_up(node: &Server) -> Option<bool> {
    let metrics = node.metrics().await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("palisade_cluster_redis_up"))?;
    Some(line.ends_with(" 1"))
}

#[tokio::test]
async fn without_redis_nodes_serve_on_their_own_say_so_and_rejoin() {
    let mut d = Deployment::start(2, &[]).await;
    let (a, b) = (&d.nodes[0], &d.nodes[1]);
    for node in [a, b] {
        eventually(Duration::from_secs(10), "Redis in use", || async {
            (redis_up(node).await == Some(true)).then_some(())
        })
        .await;
    }
    let client_id = public_app(a, "Degraded", &["social:read"], &[]);
    let member = member(a, &client_id, "degraded", "social:read").await;

    d.redis.stop();
    let (a, b) = (&d.nodes[0], &d.nodes[1]);
    for node in [a, b] {
        // Requests keep being served: tokens, limits and throttles on the node itself.
        assert_eq!(
            call(node, &member.token, "GET", "/api/me", None).await.0,
            200
        );
        let mut agent = node.agent();
        assert_eq!(agent.log_in(&member.email, PASSWORD).await.status, 303);
        eventually(Duration::from_secs(10), "the outage noticed", || async {
            (redis_up(node).await == Some(false)).then_some(())
        })
        .await;
        assert!(
            node.logs().contains("Redis unreachable"),
            "a log line says so"
        );
        // Still ready — it serves — and readiness says the bus is degraded.
        eventually(Duration::from_secs(10), "the bus degraded", || async {
            let (status, ready) = node.readiness().await;
            assert_eq!(status, 200, "{ready}");
            (ready["checks"]["bus"] == "degraded").then_some(())
        })
        .await;
        assert_eq!(
            call(node, &member.token, "GET", "/api/me", None).await.0,
            200
        );
    }

    d.redis.resume();
    for node in [&d.nodes[0], &d.nodes[1]] {
        eventually(Duration::from_secs(10), "Redis in use again", || async {
            (redis_up(node).await == Some(true)).then_some(())
        })
        .await;
        assert!(node.logs().contains("Redis reachable"));
        eventually(Duration::from_secs(10), "the bus back", || async {
            (node.readiness().await.1["checks"]["bus"] == "ok").then_some(())
        })
        .await;
    }
    // Shared again: what one node revokes, the other refuses.
    let mut owner = d.nodes[0].agent();
    owner.log_in(&member.email, PASSWORD).await;
    let r = owner
        .post_form("/account/sessions/revoke-others", &[])
        .await;
    assert_eq!(r.status, 303);
    eventually(
        Duration::from_secs(5),
        "the revocation on the other node",
        || async {
            (call(&d.nodes[1], &member.token, "GET", "/api/me", None)
                .await
                .0
                == 401)
                .then_some(())
        },
    )
    .await;
}

/// Requests made while the database is away: each answered 503 with `Retry-After`, or served.
async fn requests_during_outage(node: &Server, token: &str, client: (&str, &str)) -> Vec<u16> {
    let mut statuses = Vec::new();
    let http = node.http_client();
    let base = node.base();
    let answered = [
        http.get(format!("{base}/api/me"))
            .bearer_auth(token)
            .send()
            .await,
        http.post(format!("{base}/oauth/token"))
            .basic_auth(client.0, Some(client.1))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await,
        http.get(format!("{base}/readyz")).send().await,
    ];
    // A sign-in, as a browser makes it (its page, then the form with the CSRF token).
    let login = node
        .agent()
        .log_in("someone@example.com", "whatever-it-is")
        .await;
    assert_ne!(login.status, 500, "never an error page: {}", login.body);
    if login.status == 503 {
        assert!(login.headers.contains_key("retry-after"));
    }
    for r in answered {
        let r = r.unwrap();
        let status = r.status().as_u16();
        assert_ne!(status, 500, "never an error page");
        if status == 503 {
            assert!(r.headers().contains_key("retry-after") || r.url().path() == "/readyz");
        }
        statuses.push(status);
    }
    statuses.push(login.status);
    statuses
}

#[tokio::test]
async fn while_postgres_restarts_requests_are_told_to_come_back_then_served() {
    let pg = TestPostgres::start();
    let d = Deployment::start_on(1, &[], TestRedis::start(), pg.url()).await;
    let node = &d.nodes[0];
    let client_id = public_app(node, "Outage", &["social:read"], &[]);
    let member = member(node, &client_id, "outage", "social:read").await;
    let service = node.register_client(&[
        "--name",
        "Outage service",
        "--grant",
        "client_credentials",
        "--scope",
        "social:read",
    ]);
    let client = (
        service["client_id"].as_str().unwrap(),
        service["client_secret"].as_str().unwrap(),
    );
    assert_eq!(
        call(node, &member.token, "GET", "/api/me", None).await.0,
        200
    );

    pg.stop();
    // Caches may answer for a moment; then the database is needed and the answer is 503.
    let down = Instant::now();
    let mut saw_unavailable = false;
    while !saw_unavailable {
        assert!(
            down.elapsed() < Duration::from_secs(30),
            "no 503 during the outage"
        );
        let statuses = requests_during_outage(node, &member.token, client).await;
        saw_unavailable = statuses.iter().filter(|s| **s == 503).count() >= 2;
    }
    // PLT-6: not ready while the database is away.
    eventually(Duration::from_secs(30), "not ready", || async {
        let (status, ready) = node.readiness().await;
        (status == 503 && ready["checks"]["database"] != "ok").then_some(())
    })
    .await;
    pg.resume();
    eventually(Duration::from_secs(30), "ready again", || async {
        (node.readiness().await.0 == 200).then_some(())
    })
    .await;
    eventually(Duration::from_secs(30), "service restored", || async {
        let statuses = requests_during_outage(node, &member.token, client).await;
        (statuses[..3] == [200, 200, 200] && statuses[3] == 401).then_some(())
    })
    .await;
}
