//! What protecting the home timeline costs: one page read through the real
//! API — network and user allowances, access-token verification with its grant and account
//! checks, the scope, one Cedar decision per post — against the same page-building code with
//! authentication and authorization taken out, in one run, on SQLite and (when
//! `PALISADE_TEST_POSTGRES_URL` is set) PostgreSQL. Both are called in process, without TLS or
//! the middleware stack, which every real request adds to both sides: this is the strictest
//! ratio. Measured one request at a time and with several in flight, the two sides taking
//! turns in rounds. `bench/timeline_overhead.sh` runs it.

use axum::body::Body;
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
use std::time::{Duration, Instant};
use tower::ServiceExt;

const ISSUER: &str = "https://bench.example";
const RESOURCE: &str = "https://bench.example/api";
const AUTHORS: usize = 10;
const POSTS_PER_AUTHOR: usize = 50;
const PAGE: usize = 20;
/// Requests served at once in the loaded measurement.
const IN_FLIGHT: u32 = 8;

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
            ticket_key: palisade_crypto::random_bytes::<32>(),
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
    let social = palisade_social::Service::new(
        db.clone(),
        Arc::new(palisade_authz::Authorizer::new()),
        palisade_realtime::Fanout::new(cluster.bus.clone()),
    );
    let protected = palisade_social::router(
        &social,
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

/// One request through `router`; checks it succeeded and, for a page, that it is full.
async fn serve_one(router: axum::Router, mut request: Request<Body>, full_page: bool) {
    request
        .extensions_mut()
        .insert(PeerAddr("127.0.0.1:40000".parse().unwrap()));
    let response = router.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap();
    if full_page {
        assert_eq!(body["posts"].as_array().unwrap().len(), PAGE);
    }
}

/// The time of one request while `in_flight` are served at once, each slot a task on the
/// runtime's workers as a server's connections are: `per_slot` requests in each.
fn served(
    rt: &tokio::runtime::Runtime,
    router: &axum::Router,
    request: impl Fn() -> Request<Body>,
    full_page: bool,
    in_flight: u32,
    per_slot: u32,
) -> Duration {
    let slots: Vec<Vec<_>> = (0..in_flight)
        .map(|_| (0..per_slot).map(|_| request()).collect())
        .collect();
    let start = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = slots
            .into_iter()
            .map(|requests| {
                let router = router.clone();
                tokio::spawn(async move {
                    for request in requests {
                        serve_one(router.clone(), request, full_page).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    start.elapsed() / (in_flight * per_slot)
}

/// What one configuration measured: the median time per request of each side, over rounds in
/// which the sides take turns (so that a drift of the machine falls on all of them alike), and
/// the median of the rounds' protected/unprotected ratios.
struct Measured {
    protected: Duration,
    unprotected: Duration,
    authentication: Duration,
    overhead_percent: f64,
}

const WARM_UP: u32 = 100;
const ROUNDS: usize = 31;
const PER_ROUND: u32 = 40;

fn median<T: PartialOrd + Copy>(mut values: Vec<T>) -> T {
    values.sort_by(|a, b| a.partial_cmp(b).expect("comparable"));
    values[values.len() / 2]
}

fn measure(rt: &tokio::runtime::Runtime, s: &Setup, in_flight: u32) -> Measured {
    let bearer = format!("Bearer {}", s.token);
    let protected = || {
        Request::get(format!("/api/timeline?limit={PAGE}"))
            .header("authorization", &bearer)
            .body(Body::empty())
            .unwrap()
    };
    let unprotected = || {
        Request::get(format!("/timeline/{}?limit={PAGE}", s.viewer))
            .body(Body::empty())
            .unwrap()
    };
    // Authentication alone, for the breakdown: the principal of the same token.
    let me = || {
        Request::get("/api/me")
            .header("authorization", &bearer)
            .body(Body::empty())
            .unwrap()
    };
    let run = |side: usize, count: u32| match side {
        0 => served(rt, &s.protected, protected, true, in_flight, count),
        1 => served(rt, &s.unprotected, unprotected, true, in_flight, count),
        _ => served(rt, &s.protected, me, false, in_flight, count),
    };
    for side in 0..3 {
        run(side, WARM_UP);
    }
    let mut times: [Vec<Duration>; 3] = Default::default();
    let mut ratios = Vec::new();
    for round in 0..ROUNDS {
        // Each side goes first in turn.
        for i in 0..3 {
            let side = (round + i) % 3;
            times[side].push(run(side, PER_ROUND));
        }
        ratios.push(times[0][round].as_secs_f64() / times[1][round].as_secs_f64());
    }
    let [protected, unprotected, authentication] = times.map(median);
    Measured {
        protected,
        unprotected,
        authentication,
        overhead_percent: (median(ratios) - 1.0) * 100.0,
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut backends = vec![("SQLite", Backend::Sqlite)];
    if std::env::var_os("PALISADE_TEST_POSTGRES_URL").is_some() {
        backends.push(("PostgreSQL", Backend::Postgres));
    }
    let micros = |d: Duration| (d.as_secs_f64() * 1e7).round() / 10.0;
    let mut results = serde_json::Map::new();
    for (name, backend) in backends {
        let s = rt.block_on(setup(backend));
        let mut backend_results = serde_json::Map::new();
        // One request at a time (latency), and IN_FLIGHT at once (a server under load).
        for in_flight in [1, IN_FLIGHT] {
            let m = measure(&rt, &s, in_flight);
            println!(
                "{name:10} {in_flight} in flight: protected {:7.1} µs  unprotected {:7.1} µs  \
                 overhead {:5.1} %  (authentication alone {:.1} µs)",
                micros(m.protected),
                micros(m.unprotected),
                m.overhead_percent,
                micros(m.authentication),
            );
            backend_results.insert(
                format!("{in_flight}_in_flight"),
                serde_json::json!({
                    "protected_us": micros(m.protected),
                    "unprotected_us": micros(m.unprotected),
                    "authentication_only_us": micros(m.authentication),
                    "overhead_percent": (m.overhead_percent * 10.0).round() / 10.0,
                }),
            );
        }
        results.insert(name.into(), backend_results.into());
    }
    if let Some(out) = std::env::var_os("PALISADE_BENCH_OUT") {
        let doc = serde_json::json!({
            "benchmark": "home timeline page: protected vs the same handler unprotected, in process",
            "method": format!("{ROUNDS} rounds of {PER_ROUND} requests per side, the sides taking turns; \
                medians per side and the median of the rounds' ratios"),
            "machine": { "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) },
            "backends": results,
        });
        std::fs::write(out, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    }
}
