//! Posts and the home timeline (SOC-2) under the policies (RES-2, RES-3): visibility public,
//! followers or private; only the author deletes; moderators hide (members cannot); the
//! timeline shows what one may read of the accounts one follows, newest first, page by page
//! without gaps or repeats, and leaves muted authors out.

use crate::common::flow::*;
use crate::common::social::*;
use crate::common::*;
use serde_json::json;

const SCOPES: &str = "social:read social:write moderation";

/// Posts as `who`; the post's id and time (the timeline's order is time, then id).
async fn post_at(server: &Server, who: &Member, body: &str, visibility: &str) -> (i64, String) {
    let (status, created) = call(
        server,
        &who.token,
        "POST",
        "/api/posts",
        Some(json!({"body": body, "visibility": visibility})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    (
        created["created_at"].as_i64().unwrap(),
        created["id"].as_str().unwrap().to_owned(),
    )
}

async fn post(server: &Server, who: &Member, body: &str, visibility: &str) -> String {
    post_at(server, who, body, visibility).await.1
}

/// Every post id of `who`'s timeline, following `next` with pages of `limit`.
async fn whole_timeline(server: &Server, who: &Member, limit: u32) -> Vec<String> {
    let mut ids = Vec::new();
    let mut path = format!("/api/timeline?limit={limit}");
    loop {
        let (status, page) = call(server, &who.token, "GET", &path, None).await;
        assert_eq!(status, 200, "{page}");
        let posts = page["posts"].as_array().unwrap();
        assert!(posts.len() <= limit as usize);
        ids.extend(posts.iter().map(|p| p["id"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(next) => path = format!("/api/timeline?limit={limit}&cursor={next}"),
            None => return ids,
        }
    }
}

async fn posts_and_the_timeline(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let client_id = &public_app(
        &server,
        "Social",
        &["social:read", "social:write", "moderation"],
        &[],
    );
    let alice = member(&server, client_id, "alice", SCOPES).await;
    let bob = member(&server, client_id, "bob", SCOPES).await;
    let moderator = member(&server, client_id, "moderator", SCOPES).await;
    server.set_role(&moderator.email, "moderator");

    let public = post(&server, &bob, "hello world", "public").await;
    let followers = post(&server, &bob, "for my followers", "followers").await;
    let private = post(&server, &bob, "note to self", "private").await;
    let read = |who: &Member, id: &str| {
        let (token, path) = (who.token.clone(), format!("/api/posts/{id}"));
        let server = &server;
        async move { call(server, &token, "GET", &path, None).await.0 }
    };
    assert_eq!(read(&alice, &public).await, 200);
    assert_eq!(read(&alice, &followers).await, 403);
    assert_eq!(read(&alice, &private).await, 403);
    assert_eq!(
        call(
            &server,
            &alice.token,
            "PUT",
            &format!("/api/profiles/{}/follow", bob.id),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        read(&alice, &followers).await,
        200,
        "followers see followers-only posts"
    );
    assert_eq!(read(&alice, &private).await, 403);
    for id in [&public, &followers, &private] {
        assert_eq!(read(&bob, id).await, 200, "the author sees all");
    }

    // Only the author deletes; members do not hide, moderators do.
    let path = |id: &str, suffix: &str| format!("/api/posts/{id}{suffix}");
    assert_eq!(
        call(&server, &alice.token, "DELETE", &path(&public, ""), None)
            .await
            .0,
        403
    );
    assert_eq!(
        read(&alice, &public).await,
        200,
        "the public post is still there"
    );
    assert_eq!(
        call(&server, &alice.token, "POST", &path(&public, "/hide"), None)
            .await
            .0,
        403
    );
    assert_eq!(
        call(
            &server,
            &moderator.token,
            "POST",
            &path(&public, "/hide"),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(read(&alice, &public).await, 403, "hidden");
    assert_eq!(read(&bob, &public).await, 200, "its author still sees it");
    // Roles above moderator include it; a demotion applies to the next request, same token.
    let hide = |who: &Member, id: &str| {
        let path = path(id, "/hide");
        let token = who.token.clone();
        let server = &server;
        async move { call(server, &token, "POST", &path, None).await.0 }
    };
    let another = post(&server, &bob, "another", "public").await;
    for (role, expected) in [
        ("tenant_admin", 204),
        ("member", 403),
        ("platform_admin", 204),
    ] {
        server.set_role(&moderator.email, role);
        assert_eq!(hide(&moderator, &another).await, expected, "as {role}");
    }
    assert_eq!(
        call(&server, &bob.token, "DELETE", &path(&private, ""), None)
            .await
            .0,
        204
    );
    assert_eq!(read(&bob, &private).await, 404);

    // Bad posts are refused, the answer naming the field and the rule it broke, and nothing
    // is published.
    let before = whole_timeline(&server, &bob, 100).await;
    for (bad, said) in [
        (
            json!({"body": " ", "visibility": "public"}),
            "body: must not be blank",
        ),
        (
            json!({"body": "x".repeat(5001), "visibility": "public"}),
            "body: must have 1 to 5000 characters",
        ),
        (
            json!({"body": "a\u{0}b", "visibility": "public"}),
            "body: must not contain control characters other than line breaks and tabs",
        ),
        (
            json!({"body": "x", "visibility": "everyone"}),
            "visibility: unknown variant `everyone`, expected one of",
        ),
        (json!({"visibility": "public"}), "missing field `body`"),
        (
            json!({"body": "x", "visibility": "public", "author": "someone"}),
            "author: unknown field `author`",
        ),
    ] {
        let (status, body) = call(&server, &bob.token, "POST", "/api/posts", Some(bad)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_json"))
        );
        let message = body["message"].as_str().unwrap();
        assert!(message.starts_with(said), "{message} is not {said}");
    }
    assert_eq!(whole_timeline(&server, &bob, 100).await, before);

    // The timeline: pages without gaps or repeats, newest first, only what alice may read.
    let (_, seen) = call(&server, &bob.token, "GET", &path(&followers, ""), None).await;
    let mut expected = vec![(seen["created_at"].as_i64().unwrap(), followers.clone())];
    for i in 0..23 {
        let visibility = if i % 3 == 0 { "private" } else { "public" };
        let made = post_at(&server, &bob, &format!("post {i}"), visibility).await;
        if visibility == "public" {
            expected.push(made);
        }
    }
    let mine = post_at(&server, &alice, "mine", "private").await;
    expected.push(mine.clone());
    expected.sort_by(|a, b| b.cmp(a));
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();
    for limit in [1, 7, 100] {
        assert_eq!(
            whole_timeline(&server, &alice, limit).await,
            expected,
            "limit {limit}"
        );
    }
    assert_eq!(
        call(
            &server,
            &alice.token,
            "GET",
            "/api/timeline?cursor=nonsense",
            None
        )
        .await
        .0,
        400
    );
    for (query, said) in [
        ("limit=0", "limit is from 1 to 100."),
        ("limit=101", "limit is from 1 to 100."),
        ("limit=ten", "limit: invalid digit found in string."),
        ("since=1", "since: unknown field `since`"),
        (
            "limit=1&limit=2",
            "The field `limit` appears more than once.",
        ),
    ] {
        let path = format!("/api/timeline?{query}");
        let (status, body) = call(&server, &alice.token, "GET", &path, None).await;
        assert_eq!(status, 400, "{query}");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with(said),
            "{query}: {message} is not {said}"
        );
    }

    // Muting bob leaves only alice's own post.
    assert_eq!(
        call(
            &server,
            &alice.token,
            "PUT",
            &format!("/api/profiles/{}/mute", bob.id),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        whole_timeline(&server, &alice, 10).await,
        vec![mine.1.clone()]
    );

    // Unmuted, bob's posts are back; once he blocks alice they are gone from her timeline.
    let mute = format!("/api/profiles/{}/mute", bob.id);
    assert_eq!(
        call(&server, &alice.token, "DELETE", &mute, None).await.0,
        204
    );
    assert_eq!(whole_timeline(&server, &alice, 100).await, expected);
    let block = format!("/api/profiles/{}/block", alice.id);
    assert_eq!(call(&server, &bob.token, "PUT", &block, None).await.0, 204);
    assert_eq!(whole_timeline(&server, &alice, 10).await, vec![mine.1]);
}

on_both_backends!(posts_and_the_timeline);
