//! Direct messages (SOC-3) under the policies (RES-2, RES-3): only participants read or write
//! a conversation (another account editing the id in the path gets nothing), messages are
//! numbered, history pages newest first without gaps, read markers only move forward, and a
//! block stops the conversation.

use crate::common::flow::*;
use crate::common::social::*;
use crate::common::*;
use serde_json::json;

const SCOPES: &str = "social:read social:write messages";

async fn conversations_are_for_their_participants(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let client_id = &public_app(
        &server,
        "Chat",
        &["social:read", "social:write", "messages"],
        &[],
    );
    let alice = member(&server, client_id, "alice", SCOPES).await;
    let bob = member(&server, client_id, "bob", SCOPES).await;
    let eve = member(&server, client_id, "eve", SCOPES).await;

    let id = start_conversation(&server, &alice, &[&bob.id]).await;
    let messages = format!("/api/conversations/{id}/messages");
    for i in 1..=12 {
        let (who, text) = if i % 2 == 1 {
            (&alice, "ping")
        } else {
            (&bob, "pong")
        };
        let (status, sent) = call(
            &server,
            &who.token,
            "POST",
            &messages,
            Some(json!({"body": format!("{text} {i}")})),
        )
        .await;
        assert_eq!((status, sent["seq"].as_i64()), (201, Some(i)));
    }

    // History, newest first, in pages without gaps.
    let mut seqs = Vec::new();
    let mut path = format!("{messages}?limit=5");
    loop {
        let (status, page) = call(&server, &bob.token, "GET", &path, None).await;
        assert_eq!(status, 200, "{page}");
        seqs.extend(
            page["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["seq"].as_i64().unwrap()),
        );
        match page["next"].as_i64() {
            Some(next) => path = format!("{messages}?limit=5&before={next}"),
            None => break,
        }
    }
    assert_eq!(seqs, (1..=12).rev().collect::<Vec<_>>());

    // Read markers move forward only, and not past the last message.
    let unread = |who: &Member| {
        let token = who.token.clone();
        let server = &server;
        let id = id.clone();
        async move {
            let (_, list) = call(server, &token, "GET", "/api/conversations", None).await;
            list["conversations"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["id"] == id.as_str())
                .map(|c| c["unread"].as_i64().unwrap())
        }
    };
    // Only the other's messages are unread: what one sent oneself is not news to one.
    assert_eq!(unread(&bob).await, Some(6), "alice's six");
    assert_eq!(unread(&alice).await, Some(6), "bob's six");
    let read = format!("/api/conversations/{id}/read");
    for (seq, left) in [(10, 1), (4, 1), (99, 1), (12, 0)] {
        assert_eq!(
            call(&server, &bob.token, "PUT", &read, Some(json!({"seq": seq})))
                .await
                .0,
            204
        );
        assert_eq!(unread(&bob).await, Some(left), "after marking {seq}");
    }

    // Someone else: not in the list, and the id in the path gets nothing.
    assert_eq!(unread(&eve).await, None);
    assert_eq!(
        call(&server, &eve.token, "GET", &messages, None).await.0,
        403
    );
    assert_eq!(
        call(
            &server,
            &eve.token,
            "POST",
            &messages,
            Some(json!({"body": "hi"}))
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(&server, &eve.token, "PUT", &read, Some(json!({"seq": 1})))
            .await
            .0,
        403
    );
    assert_eq!(
        call(
            &server,
            &eve.token,
            "GET",
            "/api/conversations/no-such/messages",
            None
        )
        .await
        .0,
        404
    );

    // A block stops the conversation, both ways.
    assert_eq!(
        call(
            &server,
            &bob.token,
            "PUT",
            &format!("/api/profiles/{}/block", alice.id),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        call(
            &server,
            &alice.token,
            "POST",
            &messages,
            Some(json!({"body": "hello?"}))
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(&server, &bob.token, "GET", &messages, None).await.0,
        403
    );
    let (status, _) = call(
        &server,
        &alice.token,
        "POST",
        "/api/conversations",
        Some(json!({"with": [bob.id]})),
    )
    .await;
    assert_eq!(
        status, 403,
        "no new conversation with someone who blocked you"
    );

    // Bad requests, each answer naming what is wrong.
    let (status, body) = call(
        &server,
        &eve.token,
        "POST",
        &messages,
        Some(json!({"body": ""})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("body: must have 1 to 5000 characters"),
        "{body}"
    );
    for bad in [json!({"with": []}), json!({"with": ["no-such-account"]})] {
        assert_eq!(
            call(&server, &eve.token, "POST", "/api/conversations", Some(bad))
                .await
                .0,
            400
        );
    }
}

on_both_backends!(conversations_are_for_their_participants);
