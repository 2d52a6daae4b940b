//! The real-time gateway over the real server (RTM-1..7, SOC-3): conversations live over the
//! socket and REST alike, exactly-once publishes, resume from an offset, and the policies on
//! every subscribe and publish.

mod common;

use common::flow::*;
use common::realtime::*;
use common::social::*;
use common::*;
use serde_json::json;
use std::time::Duration;

const SCOPES: &str = "social:read social:write messages";

fn chat_app(server: &Server) -> String {
    public_app(
        server,
        "Chat",
        &["social:read", "social:write", "messages"],
        &[],
    )
}

/// Alice and Bob, members of one conversation.
async fn conversation(server: &Server, client_id: &str) -> (Member, Member, String) {
    let alice = member(server, client_id, "alice", SCOPES).await;
    let bob = member(server, client_id, "bob", SCOPES).await;
    let (status, started) = call(
        server,
        &alice.token,
        "POST",
        "/api/conversations",
        Some(json!({"with": [bob.id]})),
    )
    .await;
    assert_eq!(status, 201, "{started}");
    let id = started["id"].as_str().unwrap().to_owned();
    (alice, bob, id)
}

// RTM-4, RTM-7, SOC-3: a message sent over REST or over the socket is one stored, numbered
// message; a retried publish is acknowledged without being stored or delivered again, and a
// replayed sequence number is refused.
async fn a_conversation_is_the_same_over_rest_and_the_socket(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let client_id = chat_app(&server);
    let (alice, bob, id) = conversation(&server, &client_id).await;
    let channel = format!("conversation:{id}");

    let mut bobs = connected(&server, &bob).await;
    match subscribe(&mut bobs, &channel, None).await {
        ServerFrame::Subscribed {
            offset, recovered, ..
        } => assert_eq!((offset, recovered), (0, true)),
        other => panic!("{other:?}"),
    }
    let mut notes = connected(&server, &bob).await;
    subscribe(&mut notes, "notifications", None).await;

    let (status, sent) = call(
        &server,
        &alice.token,
        "POST",
        &format!("/api/conversations/{id}/messages"),
        Some(json!({"body": "over REST"})),
    )
    .await;
    assert_eq!((status, sent["seq"].as_i64()), (201, Some(1)), "{sent}");
    let (got, offset, data) = message(&mut bobs).await;
    assert_eq!((got.as_str(), offset), (channel.as_str(), 1));
    assert_eq!(
        (data["sender"].as_str(), data["body"].as_str()),
        (Some(alice.id.as_str()), Some("over REST"))
    );

    let mut alices = ws(&server).bearer(&alice.token).open().await.unwrap();
    assert!(matches!(
        alices.frame().await.unwrap(),
        ServerFrame::Welcome { .. }
    ));
    let body = json!({"body": "over the socket"});
    let answer = publish(&mut alices, &channel, 1, "k-1", body.clone()).await;
    assert_eq!(
        answer,
        ServerFrame::Published {
            seq: 1,
            channel: channel.clone(),
            offset: 2,
            duplicate: false
        }
    );
    let (_, offset, data) = message(&mut bobs).await;
    assert_eq!(
        (offset, data["body"].as_str()),
        (2, Some("over the socket"))
    );

    // The same key again (a retry): acknowledged with the first answer's offset, nothing new.
    let retry = publish(&mut alices, &channel, 2, "k-1", body.clone()).await;
    assert_eq!(
        retry,
        ServerFrame::Published {
            seq: 2,
            channel: channel.clone(),
            offset: 2,
            duplicate: true
        }
    );
    // The same sequence number again: refused.
    match publish(&mut alices, &channel, 2, "k-2", body.clone()).await {
        ServerFrame::Error { code, seq, .. } => {
            assert_eq!((code.as_str(), seq), ("replayed_seq", Some(2)))
        }
        other => panic!("{other:?}"),
    }
    // A REST retry with a key used over the socket finds that message too.
    let retried = server
        .http_client()
        .post(format!("{}/api/conversations/{id}/messages", server.base()))
        .bearer_auth(&alice.token)
        .header("idempotency-key", "k-1")
        .json(&json!({"body": "over the socket"}))
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), 200);
    let retried: serde_json::Value = retried.json().await.unwrap();
    assert_eq!(retried, json!({"seq": 2, "duplicate": true}));
    let third = publish(&mut alices, &channel, 3, "k-3", json!({"body": "third"})).await;
    assert!(
        matches!(
            third,
            ServerFrame::Published {
                offset: 3,
                duplicate: false,
                ..
            }
        ),
        "{third:?}"
    );
    let (_, offset, _) = message(&mut bobs).await;
    assert_eq!(offset, 3, "nothing was delivered for the duplicates");

    // REST shows the same numbered messages, once each.
    let (_, history) = call(
        &server,
        &bob.token,
        "GET",
        &format!("/api/conversations/{id}/messages"),
        None,
    )
    .await;
    let seqs: Vec<i64> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [3, 2, 1]);

    // Bob's notifications stream told him of each new message.
    for seq in 1..=3 {
        let (got, offset, data) = message(&mut notes).await;
        assert_eq!((got.as_str(), offset), ("notifications", seq));
        assert_eq!(
            (data["kind"].as_str(), data["seq"].as_u64()),
            (Some("message"), Some(seq))
        );
    }

    // An acknowledgement moves Bob's delivered marker, which the API reports.
    bobs.send(&ClientFrame::Ack {
        channel: channel.clone(),
        offset: 3,
    })
    .await
    .unwrap();
    eventually(Duration::from_secs(10), "the delivered marker", || async {
        let (_, list) = call(&server, &bob.token, "GET", "/api/conversations", None).await;
        (list["conversations"][0]["delivered_seq"] == 3).then_some(())
    })
    .await;
    // Malformed input is answered with an error frame, and the connection goes on.
    match publish(&mut alices, &channel, 4, "k-4", json!({"body": ""})).await {
        ServerFrame::Error { code, message, .. } => {
            assert_eq!(code, "invalid_message");
            assert!(message.starts_with("body:"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    alices
        .send_raw(tungstenite_text("{not json"))
        .await
        .unwrap();
    match alices.frame().await.unwrap() {
        ServerFrame::Error { code, .. } => assert_eq!(code, "bad_frame"),
        other => panic!("{other:?}"),
    }
    let fifth = publish(
        &mut alices,
        &channel,
        5,
        "k-5",
        json!({"body": "still here"}),
    )
    .await;
    assert!(
        matches!(fifth, ServerFrame::Published { offset: 4, .. }),
        "{fifth:?}"
    );
    assert_eq!(message(&mut bobs).await.1, 4, "others unharmed");
}

fn tungstenite_text(text: &str) -> palisade_realtime_client::Message {
    palisade_realtime_client::Message::text(text)
}

on_both_backends!(a_conversation_is_the_same_over_rest_and_the_socket);
