//! What protecting one request costs (RES-1, RES-2): verifying an access token under the
//! RFC 8725 policy, one Cedar decision, and both together. `bench/authz_decision.sh` runs it.

use criterion::{Criterion, criterion_group, criterion_main};
use palisade_authz::{Action, Actor, Authorizer, Facts, Object, Role};
use palisade_jose::keys::{Algorithm, SigningKey};
use palisade_jose::verify::{Expectations, verify};
use serde_json::json;
use std::hint::black_box;

const ISSUER: &str = "https://id.example";

fn decision(c: &mut Criterion) {
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap().0;
    let published = [key.public()];
    let now = 1_800_000_000;
    let claims = json!({
        "iss": ISSUER, "sub": "alice", "aud": "https://id.example/api", "client_id": "app",
        "scope": "openid social:read social:write", "jti": "j", "iat": now, "exp": now + 600,
        "tenant": "t1",
    });
    let token = palisade_jose::jws::sign(&key, "at+jwt", claims.as_object().unwrap());
    let expect = Expectations {
        typ: "at+jwt",
        issuer: ISSUER,
        audience: None,
        now,
        skew_seconds: 30,
    };
    let authz = Authorizer::new();
    let actor = Actor {
        user_id: "alice",
        tenant: "t1",
        role: Role::Member,
    };
    let post = Object::Post {
        id: "p1",
        author: "bob",
        tenant: "t1",
        visibility: "followers",
        hidden: false,
    };
    let facts = Facts {
        scopes: &["openid", "social:read", "social:write"],
        follower: true,
        blocked: false,
    };
    assert!(authz.allows(&actor, Action::ReadPost, &post, &facts));

    c.bench_function("verify access token (EdDSA)", |b| {
        b.iter(|| verify(black_box(&token), &published, &expect).unwrap())
    });
    c.bench_function("Cedar decision (read a followers-only post)", |b| {
        b.iter(|| authz.allows(black_box(&actor), Action::ReadPost, &post, &facts))
    });
    c.bench_function("verify and decide", |b| {
        b.iter(|| {
            let claims = verify(black_box(&token), &published, &expect).unwrap();
            let actor = Actor {
                user_id: claims["sub"].as_str().unwrap(),
                tenant: claims["tenant"].as_str().unwrap(),
                role: Role::Member,
            };
            authz.allows(&actor, Action::ReadPost, &post, &facts)
        })
    });
}

criterion_group!(benches, decision);
criterion_main!(benches);
