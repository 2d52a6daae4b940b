//! What protecting the home timeline costs: one page read through the real
//! API — network and user allowances, access-token verification with its grant and account
//! checks, the scope, one Cedar decision per post — against the same page-building code with
//! authentication and authorization taken out, in one run, on SQLite and (when
//! `PALISADE_TEST_POSTGRES_URL` is set) PostgreSQL. Both are called in process, without TLS or
//! the middleware stack, which every real request adds to both sides: this is the strictest
//! ratio. `bench/timeline_overhead.sh` runs it.

use axum::body::Body;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use palisade_http::Guards;
use palisade_http::client_ip::PeerAddr;
use palisade_principal::{
    AccessClaims, AccessTokenGuard, ApiSettings, Audience, Authenticator, AuthenticatorConfig,
    Dpop, Revocations, Scopes, TenantId,
};
use palisade_store::Backend;
use palisade_store::test_support::{TestDb, open};
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

const ISSUER: &str = "https://bench.example";
const RESOURCE: &str = "https://bench.example/api";
const AUTHORS: usize = 10;
const POSTS_PER_AUTHOR: usize = 50;
const PAGE: usize = 20;

struct Setup {
    _db: TestDb,
    protected: axum::Router,
    unprotected: axum::Router,
    token: String,
    viewer: String,
}

async fn account(db: &palisade_store::Db, tag: &str) -> String {
    let email = palisade_identity::users::Email::parse(&format!("{tag}@bench.example")).unwrap();
    palisade_identity::users::create(db, palisade_store::DEFAULT_TENANT, &email, "unused")
        .await
        .unwrap()
}

/// A viewer following ten authors of fifty posts each (public and followers-only), and both
/// routers over that database.
async fn setup(backend: Backend) -> Setup {
    let test_db = open(backend).await;
    let db = test_db.db.clone();
    let viewer = account(&db, &format!("viewer-{}", palisade_store::new_id())).await;
    let mut authors = Vec::new();
    for a in 0..AUTHORS {
        let author = account(&db, &format!("author{a}-{}", palisade_store::new_id())).await;
        sqlx::query(
            "INSERT INTO follows (follower_id, followee_id, created_at) VALUES ($1, $2, 0)",
        )
        .bind(&viewer)
        .bind(&author)
        .execute(db.pool())
        .await
        .unwrap();
        authors.push(author);
    }
    // The authors post in turn, as a timeline interleaves them.
    let mut at = 1_700_000_000_000i64;
    for p in 0..POSTS_PER_AUTHOR {
        for (a, author) in authors.iter().enumerate() {
            at += 1;
            sqlx::query(
                "INSERT INTO posts (id, author_id, tenant_id, body, visibility, hidden, created_at) \
                 VALUES ($1, $2, 'default', $3, $4, 0, $5)",
            )
            .bind(palisade_store::new_id())
            .bind(author)
            .bind(format!("post {p} by author {a}, with a little text to show"))
            .bind(if (p + a) % 2 == 0 { "public" } else { "followers" })
            .bind(at)
            .execute(db.pool())
            .await
            .unwrap();
        }
    }
    // Statistics for the planner, as a database in service has them (PostgreSQL's autovacuum
    // would gather them a minute later, in the middle of the measurement).
    sqlx::query("ANALYZE").execute(db.pool()).await.unwrap();
    let grant = palisade_store::new_id();
    sqlx::query(
        "INSERT INTO oauth_grants (grant_id, user_id, client_id, scope, created_at) \
         VALUES ($1, $2, 'bench-app', 'social:read', 0)",
    )
    .bind(&grant)
    .bind(&viewer)
    .execute(db.pool())
    .await
    .unwrap();

    let sealing = palisade_crypto::SealingKey::from_bytes(&[7; 32]).unwrap();
    let keys = palisade_jose::keyring::KeyRing::open(
        db.clone(),
        sealing,
        palisade_jose::keyring::KeyPolicy {
            algorithm: palisade_jose::keys::Algorithm::EdDSA,
            rotation_interval_ms: i64::MAX / 4,
            publish_ahead_ms: 0,
            retire_after_ms: 3_600_000,
        },
    )
    .await
    .unwrap();
    // The resource side as the server assembles it, on an in-process bus.
    let cluster = palisade_cluster::Cluster::in_process(db.clone());
    let revocations = Revocations::new(db.clone(), cluster.bus.clone());
    let authenticator = Authenticator::new(
        keys.clone(),
        AuthenticatorConfig {
            issuer: ISSUER.into(),
            audience: RESOURCE.into(),
            resources: vec![RESOURCE.into()],
            skew_seconds: 30,
        },
        Dpop::new(ISSUER, 30, None, cluster.replay.clone()),
        revocations,
    );
    let unlimited = u32::MAX / 2;
    let settings = ApiSettings {
        requests_per_minute: unlimited,
        client_requests_per_minute: unlimited,
        network_requests_per_minute: unlimited,
        max_in_flight: 1024,
    };
    let guards = Guards::new().with(
        "access_token",
        AccessTokenGuard::new(authenticator, cluster.counter.clone(), settings),
    );
    // A token as the token endpoint issues it for a user's grant.
    let now = palisade_store::now_ms() / 1000;
    let claims = AccessClaims {
        iss: ISSUER.into(),
        sub: viewer.clone(),
        aud: Audience::One(RESOURCE.into()),
        client_id: "bench-app".into(),
        scope: Scopes::parse("social:read"),
        jti: palisade_crypto::random_token(),
        iat: now,
        exp: now + 3600,
        tenant: TenantId::new(palisade_store::DEFAULT_TENANT),
        sid: Some("bench-session".into()),
        gid: Some(grant),
        rev: Some(0),
        cnf: None,
    };
    let token = palisade_jose::jws::sign(&keys.signing_key(), "at+jwt", &claims);
    let protected = palisade_social::router(
        db.clone(),
        Arc::new(palisade_authz::Authorizer::new()),
        palisade_http::shed::Shedder::new(settings.max_in_flight),
    )
    .finish()
    .0
    .layer(axum::Extension(guards));
    Setup {
        _db: test_db,
        protected,
        unprotected: palisade_social::unprotected::router(db),
        token,
        viewer,
    }
}

/// One page through `router`; checks it is a full page.
async fn page(router: &axum::Router, request: Request<Body>) {
    let mut request = request;
    request
        .extensions_mut()
        .insert(PeerAddr("127.0.0.1:40000".parse().unwrap()));
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let page: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(page["posts"].as_array().unwrap().len(), PAGE);
}

fn timeline(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut backends = vec![("SQLite", Backend::Sqlite)];
    if std::env::var_os("PALISADE_TEST_POSTGRES_URL").is_some() {
        backends.push(("PostgreSQL", Backend::Postgres));
    }
    for (name, backend) in backends {
        let s = rt.block_on(setup(backend));
        let query = format!("limit={PAGE}");
        let mut group = c.benchmark_group(format!("timeline page ({name})"));
        group.bench_function("protected", |b| {
            b.iter(|| {
                let request = Request::get(format!("/api/timeline?{query}"))
                    .header("authorization", format!("Bearer {}", s.token))
                    .body(Body::empty())
                    .unwrap();
                rt.block_on(page(&s.protected, request))
            })
        });
        // Authentication alone, for the breakdown: the principal of the same token.
        group.bench_function("authentication only (GET /api/me)", |b| {
            b.iter(|| {
                let mut request = Request::get("/api/me")
                    .header("authorization", format!("Bearer {}", s.token))
                    .body(Body::empty())
                    .unwrap();
                request
                    .extensions_mut()
                    .insert(PeerAddr("127.0.0.1:40000".parse().unwrap()));
                let response = rt.block_on(s.protected.clone().oneshot(request)).unwrap();
                assert_eq!(response.status(), 200);
            })
        });
        group.bench_function("unprotected", |b| {
            b.iter(|| {
                let request = Request::get(format!("/timeline/{}?{query}", s.viewer))
                    .body(Body::empty())
                    .unwrap();
                rt.block_on(page(&s.unprotected, request))
            })
        });
        group.finish();
    }
}

criterion_group!(benches, timeline);
criterion_main!(benches);
