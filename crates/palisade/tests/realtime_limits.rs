//! The gateway's limits and lifetimes over the real server (RTM-2, RTM-3, RTM-5, RTM-6,
//! PLT-7): a stream of 10,000 messages survives connections killed at random, a slow consumer
//! is closed while the others get everything, floods and oversized frames are answered with
//! their own codes, a token's expiry closes the socket unless refreshed in band, and a shutdown
//! says goodbye with 1001.

use crate::common::flow::*;
use crate::common::realtime::*;
use crate::common::social::*;
use crate::common::*;
use serde_json::json;
use std::time::Duration;

const SCOPES: &str = "social:read social:write messages";

/// Limits high enough that the stream tests measure delivery, not the allowances.
const UNLIMITED: [(&str, &str); 2] = [
    ("PALISADE_REALTIME__MESSAGES_PER_MINUTE", "10000000"),
    ("PALISADE_REALTIME__USER_MESSAGES_PER_MINUTE", "10000000"),
];

fn options(backend: Backend, extra: &[(&str, &str)]) -> Options {
    let mut options = Options::on(backend);
    for (key, value) in UNLIMITED.iter().chain(extra) {
        options = options.env(key, *value);
    }
    options
}

/// A conversation between `n` new members; they and its channel.
async fn members_of_a_conversation(server: &Server, n: usize) -> (Vec<Member>, String) {
    let client_id = public_app(
        server,
        "Chat",
        &["social:read", "social:write", "messages"],
        &[],
    );
    let mut members = Vec::new();
    for i in 0..n {
        members.push(member(server, &client_id, &format!("m{i}"), SCOPES).await);
    }
    let others: Vec<&str> = members[1..].iter().map(|m| m.id.as_str()).collect();
    let (status, started) = call(
        server,
        &members[0].token,
        "POST",
        "/api/conversations",
        Some(json!({"with": others})),
    )
    .await;
    assert_eq!(status, 201, "{started}");
    (
        members,
        format!("conversation:{}", started["id"].as_str().unwrap()),
    )
}

/// Publishes `count` messages with bodies `prefix-<i>`, `window` at a time before reading their
/// acknowledgements; every one must be stored once.
async fn publish_stream(
    connection: &mut Connection,
    channel: &str,
    prefix: &str,
    count: u64,
    window: u64,
) {
    let mut seq = 0;
    while seq < count {
        let batch = window.min(count - seq);
        for i in seq + 1..=seq + batch {
            let frame = ClientFrame::Publish {
                channel: channel.to_owned(),
                seq: i,
                key: format!("{prefix}-{i}"),
                data: json!({"body": format!("{prefix}-{i}")}),
            };
            connection.send(&frame).await.unwrap();
        }
        for _ in 0..batch {
            match connection.frame().await.unwrap() {
                ServerFrame::Published {
                    duplicate: false, ..
                } => {}
                other => panic!("publish not stored: {other:?}"),
            }
        }
        seq += batch;
    }
}

/// Deliveries the gateway dropped: each offered to the slow consumer's full queue, from the
/// first until it was closed.
fn dropped(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("palisade_realtime_deliveries_dropped_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A small deterministic generator, seeded and reported so a failure can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

// RTM-4: 10,000 messages; the subscriber's TCP connection is killed at random points and
// resumes from its last offset each time. What it received is exactly what was sent.
#[tokio::test]
async fn a_stream_survives_connections_killed_at_random() {
    const COUNT: u64 = 10_000;
    let server = Server::start_with(options(
        Backend::Postgres,
        &[("PALISADE_REALTIME__HISTORY_LIMIT", "20000")],
    ))
    .await;
    let (members, channel) = members_of_a_conversation(&server, 2).await;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("kill points seeded with {seed}");

    // Subscribed from the start: the first connection begins at offset 0.
    let mut first = Some(connected(&server, &members[1]).await);
    let mut positions = Positions::default();
    positions
        .observe(&subscribe(first.as_mut().unwrap(), &channel, None).await)
        .unwrap();
    let mut sender = connected(&server, &members[0]).await;
    let started = std::time::Instant::now();
    let sending = async {
        publish_stream(&mut sender, &channel, "m", COUNT, 200).await;
        println!("sent {COUNT} in {:?}", started.elapsed());
    };
    let receiving = async {
        let mut random = Lcg(seed);
        let mut bodies = Vec::new();
        let mut reconnects = 0;
        while (bodies.len() as u64) < COUNT {
            let mut connection = match first.take() {
                Some(connection) => connection,
                None => {
                    let mut connection = connected(&server, &members[1]).await;
                    let since = positions.get(&channel).cloned();
                    let subscribed = subscribe(&mut connection, &channel, since).await;
                    assert!(
                        matches!(
                            subscribed,
                            ServerFrame::Subscribed {
                                recovered: true,
                                ..
                            }
                        ),
                        "{subscribed:?}"
                    );
                    positions.observe(&subscribed).unwrap();
                    connection
                }
            };
            let kill_after = 1 + random.next(1500);
            for _ in 0..kill_after {
                match connection.recv().await.unwrap() {
                    Incoming::Frame(frame @ ServerFrame::Message { .. }) => {
                        positions
                            .observe(&frame)
                            .expect("in order, no gap, no repeat");
                        if let ServerFrame::Message { data, .. } = frame {
                            bodies.push(data["body"].as_str().unwrap().to_owned());
                        }
                        if bodies.len() as u64 == COUNT {
                            break;
                        }
                    }
                    Incoming::Frame(other) => panic!("{other:?}"),
                    // Closed by the server (a full queue): resume like any other drop.
                    Incoming::Closed { .. } => break,
                }
            }
            connection.abort();
            reconnects += 1;
        }
        (bodies, reconnects)
    };
    let ((), (bodies, reconnects)) = tokio::join!(sending, receiving);
    println!(
        "received in {:?} over {reconnects} connections",
        started.elapsed()
    );
    let expected: Vec<String> = (1..=COUNT).map(|i| format!("m-{i}")).collect();
    assert!(
        bodies == expected,
        "received sequence differs from the sent one"
    );
    assert!(
        reconnects > 3,
        "the connection was killed {reconnects} times"
    );
}

// RTM-5: a consumer that does not read is closed with its own code once its queue is full;
// the others receive everything.
#[tokio::test]
async fn a_slow_consumer_is_closed_and_the_others_get_everything() {
    const COUNT: u64 = 2_500;
    let server = Server::start_with(options(
        Backend::Sqlite,
        &[
            ("PALISADE_REALTIME__QUEUE_MESSAGES", "64"),
            ("PALISADE_REALTIME__QUEUE_BYTES", "65536"),
        ],
    ))
    .await;
    let (members, channel) = members_of_a_conversation(&server, 3).await;
    let mut slow = connected(&server, &members[1]).await;
    let mut reader = connected(&server, &members[2]).await;
    for connection in [&mut slow, &mut reader] {
        subscribe(connection, &channel, None).await;
    }
    let mut sender = connected(&server, &members[0]).await;
    let long = "x".repeat(4_500);
    let sending = async {
        let mut seq = 0;
        while seq < COUNT {
            for i in seq + 1..=seq + 100 {
                let data = json!({"body": format!("{i} {long}")});
                let frame = ClientFrame::Publish {
                    channel: channel.clone(),
                    seq: i,
                    key: format!("k{i}"),
                    data,
                };
                sender.send(&frame).await.unwrap();
            }
            for _ in 0..100 {
                assert!(matches!(
                    sender.frame().await.unwrap(),
                    ServerFrame::Published { .. }
                ));
            }
            seq += 100;
        }
    };
    let reading = async {
        for expected in 1..=COUNT {
            assert_eq!(message(&mut reader).await.1, expected);
        }
    };
    let metrics = || async {
        reqwest::get(format!("http://{}/metrics", server.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let stalled = async {
        // The slow one reads nothing until its queue has overflowed; then what the network
        // buffered reaches it, followed by its close code.
        eventually(Duration::from_secs(60), "the queue overflowed", || async {
            (dropped(&metrics().await) > 0).then_some(())
        })
        .await;
        closed_with(&mut slow).await
    };
    let ((), (), (code, reason)) = tokio::join!(sending, reading, stalled);
    assert_eq!(
        (code, reason.as_str()),
        (close::SLOW_CONSUMER, "slow consumer")
    );
    let metrics = metrics().await;
    assert!(
        metrics.contains(r#"palisade_realtime_disconnects_total{reason="slow consumer"} 1"#),
        "{metrics}"
    );
    assert!(dropped(&metrics) > 0);
}

// RTM-6: frames over the size limit, floods, too many subscriptions and too many connections
// each get their own answer, and the limit-closes are audited.
#[tokio::test]
async fn limits_have_their_own_answers() {
    let server = Server::start_with(
        Options::on(Backend::Sqlite)
            .env("PALISADE_REALTIME__MESSAGES_PER_MINUTE", "30")
            .env("PALISADE_REALTIME__MAX_SUBSCRIPTIONS", "2")
            .env("PALISADE_REALTIME__USER_CONNECTIONS", "2")
            .env("PALISADE_REALTIME__MAX_MESSAGE_BYTES", "1024"),
    )
    .await;
    let (members, channel) = members_of_a_conversation(&server, 2).await;
    let user = &members[0];

    let mut first = connected(&server, user).await;
    let mut second = connected(&server, user).await;
    let (_, issued) = ticket(&server, &user.token, None).await;
    let (status, body) = refused(ws(&server).ticket(issued["ticket"].as_str().unwrap())).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("rate_limited")),
        "a third connection"
    );

    // Subscriptions per connection.
    for channel in ["notifications", channel.as_str()] {
        assert!(matches!(
            subscribe(&mut first, channel, None).await,
            ServerFrame::Subscribed { .. }
        ));
    }
    match subscribe(&mut first, &format!("posts:{}", user.id), None).await {
        ServerFrame::Error { code, .. } => assert_eq!(code, "too_many_subscriptions"),
        other => panic!("{other:?}"),
    }
    // A frame over the size limit closes with 1009.
    second
        .send_raw(palisade_realtime_client::Message::text("x".repeat(2_000)))
        .await
        .unwrap();
    assert_eq!(closed_with(&mut second).await.0, close::TOO_BIG);
    // Its slot is given back.
    let again = eventually(Duration::from_secs(10), "the slot given back", || async {
        let (_, issued) = ticket(&server, &user.token, None).await;
        ws(&server)
            .ticket(issued["ticket"].as_str()?)
            .open()
            .await
            .ok()
    })
    .await;
    drop(again);

    // A flood: past the allowance each frame is refused with an error frame, and a client that
    // keeps on is closed with its own code.
    for _ in 0..60 {
        let frame = ClientFrame::Unsubscribe {
            channel: "none".into(),
        };
        first.send(&frame).await.unwrap();
    }
    let mut limited = 0;
    let code = loop {
        match first.recv().await.unwrap() {
            Incoming::Frame(ServerFrame::Error { code, .. }) if code == "rate_limited" => {
                limited += 1
            }
            Incoming::Frame(other) => panic!("{other:?}"),
            Incoming::Closed { code, .. } => break code,
        }
    };
    assert_eq!((code, limited), (close::RATE_LIMITED, 20));
    let closes = audited(&server, "realtime.connection.closed").await;
    assert_eq!(
        closes.len(),
        2,
        "the size and rate closes are audited: {closes:?}"
    );
}

// RTM-2: the socket closes with its own code when its token expires, unless a fresh token
// arrived in band first.
#[tokio::test]
async fn an_expiring_token_closes_the_socket_unless_refreshed() {
    let clock = Clock::new();
    let server = Server::start_with(clock.on(Options::on(Backend::Sqlite))).await;
    let client_id = public_app(&server, "Chat", &["social:read", "messages"], &[]);
    let (holder, mut agent) =
        member_signed_in(&server, &client_id, "expiring", "social:read").await;
    // Three seconds before the token expires, by the server's clock.
    let exp = jwt_claims(&holder.token)["exp"].as_i64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    clock
        .advance(&server, Duration::from_secs((exp - now - 3) as u64))
        .await;
    let open = || async {
        let mut connection = ws(&server).bearer(&holder.token).open().await.unwrap();
        match connection.frame().await.unwrap() {
            ServerFrame::Welcome { expires_at, .. } => assert_eq!(expires_at, exp),
            other => panic!("{other:?}"),
        }
        connection
    };
    let mut kept = open().await;
    let mut expiring = open().await;
    let fresh = token_for(&server, &mut agent, &client_id, "social:read").await;
    kept.send(&ClientFrame::Refresh {
        token: Some(fresh.clone()),
        ticket: None,
    })
    .await
    .unwrap();
    let fresh_exp = jwt_claims(&fresh)["exp"].as_i64().unwrap();
    assert_eq!(
        kept.frame().await.unwrap(),
        ServerFrame::Refreshed {
            expires_at: fresh_exp
        }
    );
    // Another account's token is not a refresh.
    let other = member(&server, &client_id, "other", "social:read").await;
    kept.send(&ClientFrame::Refresh {
        token: Some(other.token),
        ticket: None,
    })
    .await
    .unwrap();
    match kept.frame().await.unwrap() {
        ServerFrame::Error { code, .. } => assert_eq!(code, "other_subject"),
        other => panic!("{other:?}"),
    }

    let (code, reason) = closed_with(&mut expiring).await;
    assert_eq!(
        (code, reason.as_str()),
        (close::TOKEN_EXPIRED, "token expired")
    );
    // The refreshed one outlived the old token.
    assert!(matches!(
        subscribe(&mut kept, "notifications", None).await,
        ServerFrame::Subscribed { .. }
    ));
}

// PLT-7, RTM-3: a shutdown sends every socket a close with 1001 and exits cleanly.
#[tokio::test]
async fn a_shutdown_closes_sockets_with_going_away() {
    let server = Server::start_with(Options::on(Backend::Sqlite)).await;
    let (members, channel) = members_of_a_conversation(&server, 2).await;
    let mut connections = Vec::new();
    for member in &members {
        let mut connection = connected(&server, member).await;
        subscribe(&mut connection, &channel, None).await;
        connections.push(connection);
    }
    server.signal("TERM");
    for connection in &mut connections {
        let (code, reason) = closed_with(connection).await;
        assert_eq!(
            (code, reason.as_str()),
            (close::GOING_AWAY, "server shutting down")
        );
    }
    assert!(server.exited().await.success());
}

// RTM-3: a client that answers nothing (not even the server's pings) is closed with 4000.
#[tokio::test]
async fn a_silent_client_is_closed_by_the_heartbeat() {
    let server = Server::start_with(
        Options::on(Backend::Sqlite)
            .env("PALISADE_REALTIME__PING_INTERVAL_SECONDS", "1")
            .env("PALISADE_REALTIME__PONG_TIMEOUT_SECONDS", "1"),
    )
    .await;
    let client_id = public_app(&server, "Quiet", &["social:read"], &[]);
    let quiet = member(&server, &client_id, "quiet", "social:read").await;
    // Never read from: its pings go unanswered.
    let (_, issued) = ticket(&server, &quiet.token, None).await;
    let mut silent = ws(&server)
        .ticket(issued["ticket"].as_str().unwrap())
        .open()
        .await
        .unwrap();
    eventually(Duration::from_secs(30), "the heartbeat timeout", || async {
        let metrics = reqwest::get(format!("http://{}/metrics", server.admin))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        metrics
            .contains(r#"palisade_realtime_disconnects_total{reason="heartbeat timeout"} 1"#)
            .then_some(())
    })
    .await;
    let (code, reason) = closed_with(&mut silent).await;
    assert_eq!(
        (code, reason.as_str()),
        (close::HEARTBEAT_TIMEOUT, "heartbeat timeout")
    );
}
