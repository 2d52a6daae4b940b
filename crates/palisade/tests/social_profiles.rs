//! Profiles, follows, blocks, mutes and friends (SOC-1) decided by the Cedar policies (RES-2,
//! RES-3), with real tokens from Palisade's own token endpoint: profiles are private until
//! their owner opens them; only the owner changes a profile (editing the id in the path gets
//! nothing); followers see private profiles; a block cuts everything both ways but blocking
//! back; each action needs its scope.

use crate::common;

use crate::common::flow::*;
use crate::common::social::Member;
use crate::common::social::member;
use crate::common::*;
use serde_json::{Value, json};

/// `METHOD /api/profiles/{id}{suffix}` as `who`; the status and body.
async fn call(
    server: &Server,
    who: &Member,
    method: &str,
    id: &str,
    suffix: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let path = format!("/api/profiles/{id}{suffix}");
    common::social::call(server, &who.token, method, &path, body).await
}

fn profile(public: bool) -> Option<Value> {
    Some(json!({"display_name": "Bob", "bio": "Hello", "public": public}))
}

async fn profiles_follows_and_blocks(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let client_id = &public_app(&server, "Social", &["social:read", "social:write"], &[]);
    let rw = "social:read social:write";
    let alice = member(&server, client_id, "alice", rw).await;
    let bob = member(&server, client_id, "bob", rw).await;
    let carol = member(&server, client_id, "carol", rw).await;

    // Private until opened; the owner always sees theirs.
    assert_eq!(call(&server, &alice, "GET", &bob.id, "", None).await.0, 403);
    let (status, own) = call(&server, &bob, "GET", &bob.id, "", None).await;
    assert_eq!((status, own["public"].as_bool()), (200, Some(false)));

    // Editing the id in the path gets nothing: only the owner changes a profile.
    assert_eq!(
        call(&server, &alice, "PUT", &bob.id, "", profile(true))
            .await
            .0,
        403
    );
    let (status, saved) = call(&server, &bob, "PUT", &bob.id, "", profile(true)).await;
    assert_eq!((status, saved["display_name"].as_str()), (200, Some("Bob")));
    let (status, seen) = call(&server, &alice, "GET", &bob.id, "", None).await;
    assert_eq!((status, seen["bio"].as_str()), (200, Some("Hello")));
    // Public means readable, not writable: alice still cannot change it.
    let mut defaced = profile(true).unwrap();
    defaced["display_name"] = json!("Mallory");
    assert_eq!(
        call(&server, &alice, "PUT", &bob.id, "", Some(defaced))
            .await
            .0,
        403
    );
    let (_, unchanged) = call(&server, &alice, "GET", &bob.id, "", None).await;
    assert_eq!(unchanged, seen);

    // Followers see a private profile; others do not; nobody follows themselves.
    assert_eq!(
        call(&server, &alice, "PUT", &bob.id, "/follow", None)
            .await
            .0,
        204
    );
    assert_eq!(
        call(&server, &bob, "PUT", &bob.id, "/follow", None).await.0,
        403
    );
    call(&server, &bob, "PUT", &bob.id, "", profile(false)).await;
    assert_eq!(call(&server, &alice, "GET", &bob.id, "", None).await.0, 200);
    assert_eq!(call(&server, &carol, "GET", &bob.id, "", None).await.0, 403);

    // Friends are mutual follows.
    assert_eq!(
        call(&server, &bob, "PUT", &alice.id, "/follow", None)
            .await
            .0,
        204
    );
    let (status, friends) = call(&server, &alice, "GET", &bob.id, "/friends", None).await;
    assert_eq!(status, 200);
    assert_eq!(friends["friends"], json!([alice.id]));

    // A block cuts everything both ways — follows included — except blocking back.
    assert_eq!(
        call(&server, &bob, "PUT", &alice.id, "/block", None)
            .await
            .0,
        204
    );
    call(&server, &bob, "PUT", &bob.id, "", profile(true)).await;
    assert_eq!(call(&server, &alice, "GET", &bob.id, "", None).await.0, 403);
    assert_eq!(
        call(&server, &alice, "PUT", &bob.id, "/follow", None)
            .await
            .0,
        403
    );
    assert_eq!(call(&server, &bob, "GET", &alice.id, "", None).await.0, 403);
    assert_eq!(
        call(&server, &alice, "PUT", &bob.id, "/block", None)
            .await
            .0,
        204
    );
    assert_eq!(
        call(&server, &alice, "PUT", &bob.id, "/mute", None).await.0,
        204
    );
    let (_, friends) = call(&server, &carol, "GET", &bob.id, "/friends", None).await;
    assert_eq!(
        friends["friends"],
        json!([]),
        "the block removed the follows"
    );
    assert_eq!(
        call(&server, &bob, "DELETE", &alice.id, "/block", None)
            .await
            .0,
        204
    );
    assert_eq!(
        call(&server, &alice, "DELETE", &bob.id, "/block", None)
            .await
            .0,
        204
    );
    assert_eq!(call(&server, &alice, "GET", &bob.id, "", None).await.0, 200);
    // Each follow is gone, not only the friendship: with both profiles private, neither reads
    // the other's (a follower would).
    call(&server, &bob, "PUT", &bob.id, "", profile(false)).await;
    assert_eq!(call(&server, &alice, "GET", &bob.id, "", None).await.0, 403);
    assert_eq!(call(&server, &bob, "GET", &alice.id, "", None).await.0, 403);
    call(&server, &bob, "PUT", &bob.id, "", profile(true)).await;

    // Unknown and malformed ids are not found; bad bodies are refused.
    assert_eq!(
        call(
            &server,
            &alice,
            "GET",
            "0195d7a1-0000-7000-8000-000000000000",
            "",
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(
        call(&server, &alice, "GET", "..%2Fadmin", "", None).await.0,
        404
    );
    // Bad bodies are refused naming the field and the rule, and the profile stays as it was.
    let (_, before) = call(&server, &alice, "GET", &alice.id, "", None).await;
    for (bad, said) in [
        (
            json!({"display_name": "x".repeat(65), "bio": "", "public": true}),
            "display_name: must have at most 64 characters",
        ),
        (
            json!({"display_name": "a\u{7}b", "bio": "", "public": true}),
            "display_name: must be one line without control characters",
        ),
        (
            json!({"display_name": "a\nb", "bio": "", "public": true}),
            "display_name: must be one line without control characters",
        ),
        (
            json!({"display_name": "a", "bio": "b".repeat(501), "public": true}),
            "bio: must have at most 500 characters",
        ),
        (
            json!({"display_name": "a", "bio": "", "public": "yes"}),
            "public: invalid type: string \"yes\", expected a boolean",
        ),
        // Fields the API does not have are refused, not ignored.
        (
            json!({"display_name": "a", "bio": "", "public": true, "role": "admin"}),
            "role: unknown field `role`",
        ),
    ] {
        let (status, body) = call(&server, &alice, "PUT", &alice.id, "", Some(bad)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_json"))
        );
        let message = body["message"].as_str().unwrap();
        assert!(message.starts_with(said), "{message} is not {said}");
    }
    let (_, after) = call(&server, &alice, "GET", &alice.id, "", None).await;
    assert_eq!(after, before);

    // Each action needs its scope: a read-only token reads but changes nothing.
    let reader = member(&server, client_id, "reader", "social:read").await;
    assert_eq!(
        call(&server, &reader, "GET", &bob.id, "", None).await.0,
        200
    );
    assert_eq!(
        call(&server, &reader, "PUT", &reader.id, "", profile(true))
            .await
            .0,
        403
    );
    assert_eq!(
        call(&server, &reader, "PUT", &bob.id, "/follow", None)
            .await
            .0,
        403
    );
}

on_both_backends!(profiles_follows_and_blocks);
