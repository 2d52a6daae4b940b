//! The real-time gateway over the real server (RTM-1..7, SOC-3): conversations live over the
//! socket and REST alike, exactly-once publishes, resume from an offset, and the policies on
//! every subscribe and publish.

use crate::common::flow::*;
use crate::common::realtime::*;
use crate::common::social::*;
use crate::common::*;
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
    let id = start_conversation(server, &alice, &[&bob.id]).await;
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

/// The `error` code and message of a refused upgrade's JSON body.
fn error_of(body: &serde_json::Value) -> (&str, &str) {
    (
        body["error"].as_str().unwrap_or_default(),
        body["message"].as_str().unwrap_or_default(),
    )
}

// RTM-1: authentication before the upgrade; never a credential in the URL; the Origin
// allow-list; tickets single-use, short-lived and bound to their Origin.
#[tokio::test]
async fn upgrades_need_one_credential_and_an_allowed_origin() {
    let clock = Clock::new();
    let server = Server::start_with(clock.on(Options::on(Backend::Sqlite))).await;
    let client_id = chat_app(&server);
    let (victim, agent) = member_signed_in(&server, &client_id, "victim", SCOPES).await;
    let own = own_origin(&server);
    let evil = "https://evil.example";

    // Credentials in the URL are refused, whatever else the request carries.
    for query in [
        format!("?access_token={}", victim.token),
        format!("?x={}", victim.token),
        "?ticket=abc".to_owned(),
    ] {
        let (status, body) = refused(ws_at(&server, &query).bearer(&victim.token)).await;
        assert_eq!(
            (status, error_of(&body).0),
            (400, "token_in_url"),
            "{query}"
        );
        assert!(error_of(&body).1.contains("never accepted in the URL"));
    }
    // No credential at all; no subprotocol.
    let (status, body) = refused(ws(&server)).await;
    assert_eq!((status, error_of(&body).0), (401, "unauthenticated"));
    let (status, body) = refused(ws(&server).protocols(&[])).await;
    assert_eq!((status, error_of(&body).0), (400, "subprotocol_required"));

    // Cross-site WebSocket hijacking: the victim's cookie from another site's page.
    let cookie = cookie_header(&agent);
    let (status, body) = refused(ws(&server).header("cookie", &cookie).origin(evil)).await;
    assert_eq!((status, error_of(&body).0), (403, "origin_not_allowed"));
    let (status, body) = refused(ws(&server).header("cookie", &cookie)).await;
    assert_eq!((status, error_of(&body).0), (403, "origin_required"));
    let (status, body) = refused(ws(&server).bearer(&victim.token).origin(evil)).await;
    assert_eq!((status, error_of(&body).0), (403, "origin_not_allowed"));
    // From the server's own pages the cookie is enough.
    let mut own_page = ws(&server)
        .header("cookie", &cookie)
        .origin(&own)
        .open()
        .await
        .unwrap();
    match own_page.frame().await.unwrap() {
        ServerFrame::Welcome { subject, .. } => assert_eq!(subject, victim.id),
        other => panic!("{other:?}"),
    }

    // Tickets: forged, asked from another site, reused, presented from another Origin.
    let (status, body) = refused(ws(&server).ticket("forged")).await;
    assert_eq!(
        (status, error_of(&body)),
        (401, ("invalid_ticket", "The ticket is not valid."))
    );
    let (status, body) = ticket(&server, &victim.token, Some(evil)).await;
    assert_eq!((status, error_of(&body).0), (403, "origin_not_allowed"));
    let (status, issued) = ticket(&server, &victim.token, Some(&own)).await;
    assert_eq!(status, 201, "{issued}");
    let own_ticket = issued["ticket"].as_str().unwrap();
    let (status, body) = refused(ws(&server).ticket(own_ticket)).await;
    assert_eq!(
        (status, error_of(&body)),
        (
            401,
            ("invalid_ticket", "The ticket was issued to another origin.")
        )
    );
    let first = ws(&server).ticket(own_ticket).origin(&own).open().await;
    assert!(first.is_ok(), "a ticket works once from its origin");
    let (status, body) = refused(ws(&server).ticket(own_ticket).origin(&own)).await;
    assert_eq!(
        (status, error_of(&body)),
        (401, ("invalid_ticket", "The ticket has been used already."))
    );
    // A ticket expires thirty seconds after it was issued.
    let (_, issued) = ticket(&server, &victim.token, None).await;
    clock.advance(&server, Duration::from_secs(31)).await;
    let (status, body) = refused(ws(&server).ticket(issued["ticket"].as_str().unwrap())).await;
    assert_eq!(
        (status, error_of(&body)),
        (401, ("invalid_ticket", "The ticket has expired."))
    );
}

// RTM-7, RES-2: subscribe and publish are decided by the policies, as REST is.
#[tokio::test]
async fn subscribe_and_publish_follow_the_policies() {
    let server = Server::start_with(Options::on(Backend::Sqlite)).await;
    let client_id = chat_app(&server);
    let (alice, bob, id) = conversation(&server, &client_id).await;
    let channel = format!("conversation:{id}");
    let eve = member(&server, &client_id, "eve", SCOPES).await;
    let reader = member(&server, &client_id, "reader", "social:read").await;
    let db = server.db().await;
    let history = || async {
        let (stored,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM messages")
            .fetch_one(db.pool())
            .await
            .unwrap();
        stored
    };
    let refusal = |frame: ServerFrame| match frame {
        ServerFrame::Error { code, channel, .. } => (code, channel),
        other => panic!("expected a refusal, got {other:?}"),
    };

    // A non-participant neither reads nor writes; nothing is stored.
    let mut eves = connected(&server, &eve).await;
    let answer = subscribe(&mut eves, &channel, None).await;
    assert_eq!(refusal(answer), ("forbidden".into(), Some(channel.clone())));
    let answer = publish(&mut eves, &channel, 1, "e-1", json!({"body": "let me in"})).await;
    assert_eq!(refusal(answer).0, "forbidden");
    assert_eq!(history().await, 0);
    let answer = subscribe(&mut eves, "conversation:no-such-id", None).await;
    assert_eq!(refusal(answer).0, "not_found");
    // A token without the `messages` scope.
    let mut readers = connected(&server, &reader).await;
    assert_eq!(
        refusal(subscribe(&mut readers, &channel, None).await).0,
        "forbidden"
    );
    assert_eq!(
        refusal(subscribe(&mut readers, "nowhere", None).await).0,
        "not_found"
    );

    // Once Bob blocks Alice, she can neither subscribe nor send, and her open subscription
    // ends.
    let mut alices_open = connected(&server, &alice).await;
    subscribe(&mut alices_open, &channel, None).await;
    let (status, _) = call(
        &server,
        &bob.token,
        "PUT",
        &format!("/api/profiles/{}/block", alice.id),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let mut alices = connected(&server, &alice).await;
    assert_eq!(
        refusal(subscribe(&mut alices, &channel, None).await).0,
        "forbidden"
    );
    let answer = publish(&mut alices, &channel, 1, "a-1", json!({"body": "hello?"})).await;
    assert_eq!(refusal(answer).0, "forbidden");
    assert_eq!(history().await, 0, "nothing was stored");
    assert_eq!(
        alices_open.frame().await.unwrap(),
        ServerFrame::Unsubscribed {
            channel: channel.clone(),
            reason: "the policies no longer allow it".into()
        }
    );

    // An author's posts: followers-only posts reach followers only; a private profile is for
    // followers alone; the server alone writes there.
    let (status, _) = call(
        &server,
        &alice.token,
        "PUT",
        &format!("/api/profiles/{}", alice.id),
        Some(json!({"display_name": "Alice", "bio": "", "public": true})),
    )
    .await;
    assert_eq!(status, 200);
    let posts = format!("posts:{}", alice.id);
    let mut alices_notes = connected(&server, &alice).await;
    subscribe(&mut alices_notes, "notifications", None).await;
    let (status, _) = call(
        &server,
        &eve.token,
        "PUT",
        &format!("/api/profiles/{}/follow", alice.id),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (_, _, note) = message(&mut alices_notes).await;
    assert_eq!(note, json!({"kind": "follower", "follower": eve.id}));
    let mut follower = connected(&server, &eve).await;
    let mut stranger = connected(&server, &reader).await;
    for connection in [&mut follower, &mut stranger] {
        assert!(matches!(
            subscribe(connection, &posts, None).await,
            ServerFrame::Subscribed { .. }
        ));
    }
    let answer = publish(&mut follower, &posts, 1, "p-1", json!({"body": "forged"})).await;
    assert_eq!(refusal(answer).0, "forbidden");
    for (visibility, body) in [
        ("followers", "for followers"),
        ("private", "mine"),
        ("public", "for all"),
    ] {
        let (status, _) = call(
            &server,
            &alice.token,
            "POST",
            "/api/posts",
            Some(json!({"body": body, "visibility": visibility})),
        )
        .await;
        assert_eq!(status, 201);
    }
    let (_, offset, data) = message(&mut follower).await;
    assert_eq!(
        (offset, data["post"]["body"].as_str()),
        (1, Some("for followers"))
    );
    let (_, offset, _) = message(&mut follower).await;
    assert_eq!(offset, 2);
    let (_, offset, data) = message(&mut stranger).await;
    assert_eq!(
        (offset, data["post"]["body"].as_str()),
        (2, Some("for all")),
        "a stranger sees public posts only, and private posts reach nobody"
    );
}

// RTM-4: a subscriber that reconnects with its last position gets exactly what it missed, in
// order, or is told recovery is impossible — never a silent gap.
#[tokio::test]
async fn a_resumed_subscription_gets_exactly_what_it_missed() {
    let server = Server::start_with(
        Options::on(Backend::Sqlite).env("PALISADE_REALTIME__HISTORY_LIMIT", "5"),
    )
    .await;
    let client_id = chat_app(&server);
    let (alice, bob, id) = conversation(&server, &client_id).await;
    let channel = format!("conversation:{id}");
    let send = |n: usize| {
        let (server, token, id) = (&server, alice.token.clone(), id.clone());
        async move {
            for _ in 0..n {
                let path = format!("/api/conversations/{id}/messages");
                let (status, _) =
                    call(server, &token, "POST", &path, Some(json!({"body": "m"}))).await;
                assert_eq!(status, 201);
            }
        }
    };
    let at = |offset| {
        Some(Position {
            offset,
            epoch: "d1".into(),
        })
    };

    let mut bobs = connected(&server, &bob).await;
    subscribe(&mut bobs, &channel, None).await;
    send(2).await;
    assert_eq!(message(&mut bobs).await.1, 1);
    assert_eq!(message(&mut bobs).await.1, 2);
    bobs.abort();
    send(3).await;
    let mut bobs = connected(&server, &bob).await;
    match subscribe(&mut bobs, &channel, at(2)).await {
        ServerFrame::Subscribed {
            offset,
            recovered,
            reason,
            ..
        } => {
            assert_eq!((offset, recovered, reason), (5, true, None));
        }
        other => panic!("{other:?}"),
    }
    for expected in 3..=5 {
        assert_eq!(message(&mut bobs).await.1, expected);
    }
    send(1).await;
    assert_eq!(
        message(&mut bobs).await.1,
        6,
        "then live, without a gap or a repeat"
    );
    bobs.abort();

    // Past the history window, and positions that cannot be right: explicitly not recovered.
    send(10).await;
    let mut bobs = connected(&server, &bob).await;
    for (since, why) in [
        (at(6), "too far behind: reload the history"),
        (at(99), "position ahead of the stream"),
        (
            Some(Position {
                offset: 6,
                epoch: "other".into(),
            }),
            "epoch changed",
        ),
    ] {
        match subscribe(&mut bobs, &channel, since).await {
            ServerFrame::Subscribed {
                offset,
                recovered,
                reason,
                ..
            } => {
                assert_eq!(
                    (offset, recovered, reason.as_deref()),
                    (16, false, Some(why))
                );
            }
            other => panic!("{other:?}"),
        }
    }
    send(1).await;
    assert_eq!(
        message(&mut bobs).await.1,
        17,
        "nothing replayed; live from the head"
    );
}

async fn revoked(connection: &mut Connection) {
    let (code, reason) = closed_with(connection).await;
    assert_eq!((code, reason.as_str()), (close::REVOKED, "revoked"));
}

async fn alive(connection: &mut Connection) {
    assert!(matches!(
        subscribe(connection, "notifications", None).await,
        ServerFrame::Subscribed { .. }
    ));
}

/// A connection authenticated by `agent`'s session cookie, from the server's own pages.
async fn from_own_page(server: &Server, agent: &Agent) -> Connection {
    let mut connection = ws(server)
        .header("cookie", &cookie_header(agent))
        .origin(&own_origin(server))
        .open()
        .await
        .unwrap();
    assert!(matches!(
        connection.frame().await.unwrap(),
        ServerFrame::Welcome { .. }
    ));
    connection
}

async fn bearer(server: &Server, member: &Member) -> Connection {
    let mut connection = ws(server).bearer(&member.token).open().await.unwrap();
    assert!(matches!(
        connection.frame().await.unwrap(),
        ServerFrame::Welcome { .. }
    ));
    connection
}

// RTM-2: each way a credential ends closes exactly the sockets it authenticated, with 4003,
// audited: signing out (the cookie's sockets), revoking an application's consent (its
// tokens'), locking the account (all of them).
#[tokio::test]
async fn every_revocation_closes_the_sockets_it_ends() {
    let server = Server::start_with(Options::on(Backend::Sqlite)).await;
    let client_id = chat_app(&server);
    let (member, mut agent) = member_signed_in(&server, &client_id, "revoked", SCOPES).await;
    // Signing out ends the session's socket; the token's stays.
    let mut by_cookie = from_own_page(&server, &agent).await;
    let mut by_token = bearer(&server, &member).await;
    agent.log_out().await;
    revoked(&mut by_cookie).await;
    alive(&mut by_token).await;

    // Withdrawing the application's consent ends its tokens' sockets.
    agent.log_in(&member.email, PASSWORD).await;
    let mut by_cookie = from_own_page(&server, &agent).await;
    agent.get("/account/apps").await;
    let r = agent
        .post_form("/account/apps/revoke", &[("client_id", client_id.as_str())])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    revoked(&mut by_token).await;
    alive(&mut by_cookie).await;

    // Locking the account ends everything.
    let mut by_token = bearer(
        &server,
        &member_with_token(&server, &mut agent, &client_id).await,
    )
    .await;
    let out = server.cli(&["admin", "lock-user", "--email", &member.email]);
    assert!(out.status.success(), "{}", said(&out));
    revoked(&mut by_cookie).await;
    revoked(&mut by_token).await;
    eventually(
        Duration::from_secs(10),
        "the closes in the audit log",
        || async {
            (audited(&server, "realtime.connection.closed").await.len() == 4).then_some(())
        },
    )
    .await;
}

/// The signed-in account with a fresh token (a new consent).
async fn member_with_token(server: &Server, agent: &mut Agent, client_id: &str) -> Member {
    let token = token_for(server, agent, client_id, SCOPES).await;
    let (_, me) = call(server, &token, "GET", "/api/me", None).await;
    Member {
        id: me["subject"].as_str().unwrap().to_owned(),
        email: String::new(),
        token,
    }
}
