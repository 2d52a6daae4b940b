//! The gateway across nodes (RTM-2, RTM-8): two nodes sharing PostgreSQL and Redis. A message
//! sent on one reaches a subscriber on the other with the stream's offsets, and a password
//! changed on one closes the account's sockets on the other within a second.

use crate::common::flow::*;
use crate::common::nodes::Deployment;
use crate::common::realtime::*;
use crate::common::social::*;
use crate::common::*;
use serde_json::json;
use std::time::{Duration, Instant};

const SCOPES: &str = "social:read social:write messages";

#[tokio::test]
async fn messages_cross_nodes_and_a_revocation_closes_sockets_everywhere() {
    let d = Deployment::start(2, &[]).await;
    let (a, b) = (&d.nodes[0], &d.nodes[1]);
    let client_id = public_app(a, "Chat", &["social:read", "social:write", "messages"], &[]);
    let alice = member(a, &client_id, "alice", SCOPES).await;
    let (bob, mut bobs_agent) = member_signed_in(a, &client_id, "bob", SCOPES).await;
    let id = start_conversation(a, &alice, &[&bob.id]).await;
    let channel = format!("conversation:{id}");

    // Bob listens on B; Alice sends on A, over REST and over a socket.
    let mut bobs = connected(b, &bob).await;
    subscribe(&mut bobs, &channel, None).await;
    let path = format!("/api/conversations/{id}/messages");
    let (status, _) = call(
        a,
        &alice.token,
        "POST",
        &path,
        Some(json!({"body": "from A"})),
    )
    .await;
    assert_eq!(status, 201);
    let (_, offset, data) = message(&mut bobs).await;
    assert_eq!((offset, data["body"].as_str()), (1, Some("from A")));
    let mut alices = connected(a, &alice).await;
    let answer = publish(
        &mut alices,
        &channel,
        1,
        "x-1",
        json!({"body": "socket on A"}),
    )
    .await;
    assert!(
        matches!(answer, ServerFrame::Published { offset: 2, .. }),
        "{answer:?}"
    );
    assert_eq!(message(&mut bobs).await.1, 2);

    // Bob changes his password on A: his socket on B closes, within a second of the answer.
    let r = bobs_agent
        .post_form(
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "another horse battery staple"),
            ],
        )
        .await;
    let changed = Instant::now();
    assert_eq!(r.status, 303, "{}", r.body);
    let (code, reason) = closed_with(&mut bobs).await;
    let took = changed.elapsed();
    assert_eq!((code, reason.as_str()), (close::REVOKED, "revoked"));
    assert!(
        took <= Duration::from_secs(1),
        "closed {took:?} after the change"
    );
    // Alice's connection, on the same channel, is not affected.
    let answer = publish(
        &mut alices,
        &channel,
        2,
        "x-2",
        json!({"body": "still here"}),
    )
    .await;
    assert!(
        matches!(answer, ServerFrame::Published { offset: 3, .. }),
        "{answer:?}"
    );
    eventually(
        Duration::from_secs(10),
        "the close in the audit log",
        || async { (!audited(b, "realtime.connection.closed").await.is_empty()).then_some(()) },
    )
    .await;
}
