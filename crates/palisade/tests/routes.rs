//! The route inventory (RES-6) and the attacks generated from it: every route the server
//! answers is declared public or protected; every protected one refuses a caller without
//! credentials; every route of the API refuses a token without its scope (RES-2), and no route
//! that names an object lets one user reach another's by editing the id in the path (RES-3).
//! The cases come from the inventory, so a new route is covered, or fails here, by itself.

mod common;

use common::flow::*;
use common::social::*;
use common::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;

const ADMIN_KEY: &str = "admin-key-for-the-route-inventory-0123456789";

/// The routes anyone may call, reviewed one by one. A new public route fails the inventory test
/// until it is added here.
const PUBLIC: &[&str] = &[
    "GET /",
    "GET /.well-known/jwks.json",
    "GET /.well-known/oauth-authorization-server",
    "GET /.well-known/openid-configuration",
    "GET /audit/checkpoint",
    "GET /audit/checkpoint/cosigned",
    "GET /audit/proof/bundle",
    "GET /audit/proof/consistency",
    "GET /audit/proof/inclusion",
    "GET /healthz",
    "GET /login",
    "POST /login",
    "GET /login/mfa",
    "POST /login/mfa",
    "POST /login/passkey",
    "POST /login/passkey/options",
    "GET /oauth/authorize",
    "POST /oauth/authorize",
    "GET /oauth/logout",
    "POST /oauth/logout",
    "POST /oauth/register",
    "GET /openapi.json",
    "GET /readyz",
    "GET /signup",
    "POST /signup",
    "GET /static/palisade.css",
    "GET /static/passkey.js",
];

const ALL_SCOPES: [&str; 5] = [
    "openid",
    "social:read",
    "social:write",
    "messages",
    "moderation",
];

struct Route {
    method: String,
    path: String,
    access: Value,
}

impl Route {
    fn spec(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    fn scope(&self) -> Option<&str> {
        (self.access["kind"] == "access_token").then(|| self.access["scope"].as_str().unwrap())
    }
}

async fn start(backend: Backend) -> Server {
    Server::start_with(
        Options::on(backend).accepting_key("PALISADE_ADMIN__API_KEY_SHA256", ADMIN_KEY),
    )
    .await
}

async fn inventory(server: &Server) -> Vec<Route> {
    let r = server
        .http_client()
        .get(format!("{}/admin/routes", server.base()))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| Route {
            method: r["method"].as_str().unwrap().to_owned(),
            path: r["path"].as_str().unwrap().to_owned(),
            access: r["access"].clone(),
        })
        .collect()
}

/// `path` with each `{parameter}` replaced by `id`.
fn with_id(path: &str, id: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').unwrap() + open;
        out.push_str(&rest[..open]);
        out.push_str(id);
        rest = &rest[close + 1..];
    }
    out + rest
}

/// A request to `route` as an unknown caller: no cookie, no key, no token.
async fn anonymous(server: &Server, route: &Route) -> reqwest::Response {
    let http = server.http_client();
    let url = format!("{}{}", server.base(), with_id(&route.path, "x0"));
    let method = reqwest::Method::from_bytes(route.method.as_bytes()).unwrap();
    let mut req = http
        .request(method, url)
        // A same-site browser, so that the answer is about credentials and not about CSRF.
        .header("origin", server.base())
        .header("sec-fetch-site", "same-origin");
    // The JSON API takes JSON; pages and OAuth endpoints take forms.
    let form = !route.path.starts_with("/api/") && !route.path.starts_with("/admin/");
    if route.method != "GET" && form {
        req = req
            .header("content-type", "application/x-www-form-urlencoded")
            .body("");
    } else if route.method != "GET" {
        req = req.json(&json!({}));
    }
    req.send().await.unwrap()
}

/// RES-6: the inventory is the router. Public routes are exactly the reviewed list; every other
/// route refuses an anonymous caller the way its declaration says; the OpenAPI description
/// documents exactly the API's routes with the scope the inventory gives them.
#[tokio::test]
async fn every_route_declares_who_may_call_it() {
    let server = start(Backend::Sqlite).await;
    let routes = inventory(&server).await;
    assert!(routes.len() > 50, "{} routes", routes.len());

    let public: BTreeSet<String> = routes
        .iter()
        .filter(|r| r.access["kind"] == "public")
        .map(Route::spec)
        .collect();
    let reviewed: BTreeSet<String> = PUBLIC.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        public, reviewed,
        "public routes differ from the reviewed list"
    );

    for route in routes.iter().filter(|r| r.access["kind"] != "public") {
        let r = anonymous(&server, route).await;
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        let refused = match route.access["kind"].as_str().unwrap() {
            // A browser without a session is sent to sign in, or refused outright (a write
            // carries no CSRF token that could match a session).
            "session" => {
                status == 401
                    || status == 403
                    || (status == 303
                        && location.as_deref().is_some_and(|l| l.starts_with("/login")))
            }
            // OAuth clients are told `invalid_client` (RFC 6749 §5.2), or the request is
            // malformed before the client is known.
            "client" => status == 401 || status == 400,
            _ => status == 401,
        };
        assert!(
            refused,
            "{} ({}) answered {status} {location:?} to an anonymous caller",
            route.spec(),
            route.access
        );
    }

    // The OpenAPI description: the API's routes, each with the scope the inventory gives it.
    let openapi = server.fetch_json("/openapi.json").await;
    assert_eq!(openapi["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in openapi["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let route = routes
                .iter()
                .find(|r| r.path == *path && r.method.eq_ignore_ascii_case(method))
                .unwrap_or_else(|| panic!("{method} {path} is documented but not routed"));
            assert_eq!(
                operation["security"],
                json!([{ "oauth2": [route.scope().unwrap()] }]),
                "{method} {path}"
            );
            documented.insert(route.spec());
        }
    }
    let api: BTreeSet<String> = routes
        .iter()
        .filter(|r| r.path.starts_with("/api/"))
        .map(Route::spec)
        .collect();
    assert_eq!(documented, api, "every API route is documented");
}

/// The objects a user owns, by the path that names them.
struct Objects {
    profile: String,
    post: String,
    conversation: String,
}

impl Objects {
    /// The id `path` takes. A route naming a kind of object not listed here fails the test
    /// until it is added.
    fn id_for(&self, path: &str) -> &str {
        if path.starts_with("/api/profiles/") {
            &self.profile
        } else if path.starts_with("/api/posts/") {
            &self.post
        } else if path.starts_with("/api/conversations/") {
            &self.conversation
        } else {
            panic!("{path} names an object this test does not know")
        }
    }

    /// Creates `owner`'s private profile and post, and a conversation of theirs with `other`.
    async fn of(server: &Server, owner: &Member, other: &Member) -> Objects {
        let (status, _) = call(
            server,
            &owner.token,
            "PUT",
            &format!("/api/profiles/{}", owner.id),
            Some(json!({"display_name": "Owner", "bio": "mine", "public": false})),
        )
        .await;
        assert_eq!(status, 200);
        let body = json!({"body": "my own", "visibility": "private"});
        let (status, post) = call(server, &owner.token, "POST", "/api/posts", Some(body)).await;
        assert_eq!(status, 201, "{post}");
        let body = json!({"with": [other.id]});
        let (status, c) = call(
            server,
            &owner.token,
            "POST",
            "/api/conversations",
            Some(body),
        )
        .await;
        assert_eq!(status, 201, "{c}");
        let (status, _) = call(
            server,
            &owner.token,
            "POST",
            &format!("/api/conversations/{}/messages", c["id"].as_str().unwrap()),
            Some(json!({"body": "between us"})),
        )
        .await;
        assert_eq!(status, 201);
        Objects {
            profile: owner.id.clone(),
            post: post["id"].as_str().unwrap().to_owned(),
            conversation: c["id"].as_str().unwrap().to_owned(),
        }
    }
}

/// A valid body for the operation's request schema, from the OpenAPI description; a schema not
/// listed here fails the test until it is added.
fn example_body(openapi: &Value, route: &Route) -> Option<Value> {
    let operation = &openapi["paths"][&route.path][route.method.to_lowercase()];
    let schema = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        .as_str()?
        .rsplit('/')
        .next()
        .unwrap();
    Some(match schema {
        "Update" => json!({"display_name": "Changed", "bio": "changed", "public": true}),
        "NewPost" => json!({"body": "hello", "visibility": "public"}),
        "NewConversation" => json!({"with": []}),
        "NewMessage" => json!({"body": "hello"}),
        "ReadMarker" => json!({"seq": 1}),
        other => panic!("no example body for {other}"),
    })
}

/// Calls `route` with `token` on the objects of `objects`.
async fn call_route(
    server: &Server,
    openapi: &Value,
    token: &str,
    route: &Route,
    objects: &Objects,
) -> (u16, Value) {
    let path = if route.path.contains('{') {
        with_id(&route.path, objects.id_for(&route.path))
    } else {
        route.path.clone()
    };
    call(
        server,
        token,
        &route.method,
        &path,
        example_body(openapi, route),
    )
    .await
}

/// RES-2 (c): for every route taking an access token, the owner's own token with every scope
/// but the one the route needs is refused, on the owner's own objects — never a default grant.
async fn a_token_without_the_scope_gets_nothing(backend: Backend) {
    let server = start(backend).await;
    let routes = inventory(&server).await;
    let openapi = server.fetch_json("/openapi.json").await;
    let client_id = &public_app(&server, "Scopes", &ALL_SCOPES, &[]);
    let (owner, mut agent) =
        member_signed_in(&server, client_id, "owner", &ALL_SCOPES.join(" ")).await;
    let other = member(&server, client_id, "other", "social:read").await;
    let objects = Objects::of(&server, &owner, &other).await;

    let mut checked = 0;
    for route in routes.iter().filter(|r| r.scope().is_some()) {
        let missing = route.scope().unwrap();
        let scope: Vec<&str> = ALL_SCOPES.into_iter().filter(|s| *s != missing).collect();
        let token = token_for(&server, &mut agent, client_id, &scope.join(" ")).await;
        let (status, body) = call_route(&server, &openapi, &token, route, &objects).await;
        assert_eq!(status, 403, "{} without {missing}: {body}", route.spec());
        // Refused for the scope itself, before any policy or handler ran.
        assert_eq!(body["error"], "insufficient_scope", "{}", route.spec());
        checked += 1;
    }
    assert!(checked >= 20, "{checked} routes checked");
}

/// RES-3 (a): for every route that names an object, another user editing the id in the path
/// is refused, and the owner's objects are unchanged afterwards. Acting on one's own relation
/// to an account (follow, block, mute) is the route's purpose and is listed apart.
async fn no_one_reaches_anothers_objects_by_editing_the_path(backend: Backend) {
    const OWN_RELATION: &[&str] = &[
        "PUT /api/profiles/{id}/follow",
        "DELETE /api/profiles/{id}/follow",
        "PUT /api/profiles/{id}/block",
        "DELETE /api/profiles/{id}/block",
        "PUT /api/profiles/{id}/mute",
        "DELETE /api/profiles/{id}/mute",
    ];
    let server = start(backend).await;
    let routes = inventory(&server).await;
    let openapi = server.fetch_json("/openapi.json").await;
    let client_id = &public_app(&server, "Idor", &ALL_SCOPES, &[]);
    let everything = ALL_SCOPES.join(" ");
    let bob = member(&server, client_id, "bob", &everything).await;
    let carol = member(&server, client_id, "carol", &everything).await;
    let mallory = member(&server, client_id, "mallory", &everything).await;
    let bobs = Objects::of(&server, &bob, &carol).await;

    let mut checked = 0;
    for route in routes
        .iter()
        .filter(|r| r.scope().is_some() && r.path.contains("{id}"))
        .filter(|r| !OWN_RELATION.contains(&r.spec().as_str()))
    {
        let (status, body) = call_route(&server, &openapi, &mallory.token, route, &bobs).await;
        assert!(
            status == 403 || status == 404,
            "mallory on bob's object: {} answered {status} {body}",
            route.spec()
        );
        checked += 1;
    }
    assert!(checked >= 9, "{checked} routes checked");

    // Bob's objects are as he left them.
    let (_, profile) = call(
        &server,
        &bob.token,
        "GET",
        &format!("/api/profiles/{}", bob.id),
        None,
    )
    .await;
    assert_eq!(profile["display_name"], "Owner");
    assert_eq!(profile["public"], false);
    let (status, post) = call(
        &server,
        &bob.token,
        "GET",
        &format!("/api/posts/{}", bobs.post),
        None,
    )
    .await;
    assert_eq!((status, &post["hidden"]), (200, &json!(false)));
    let (_, history) = call(
        &server,
        &carol.token,
        "GET",
        &format!("/api/conversations/{}/messages", bobs.conversation),
        None,
    )
    .await;
    let bodies: Vec<&Value> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["body"])
        .collect();
    assert_eq!(bodies, [&json!("between us")]);
}

on_both_backends!(a_token_without_the_scope_gets_nothing);
on_both_backends!(no_one_reaches_anothers_objects_by_editing_the_path);
